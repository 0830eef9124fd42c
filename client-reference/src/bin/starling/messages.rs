//! What a person sends: `send`, `send-file`, `send-code`, `send-location`,
//! `react`, `edit`, `delete` and `timer`, and the message ids (typed as
//! their first hex characters) that replies, reactions and edits name.

use std::path::Path;

use starling_client::content::{self, Body};
use starling_client::{Client, ClientError, Conversation, kind_for};

use crate::error::{CliError, Result};
use crate::output::Output;

/// Most characters of a quoted message carried in a reply.
const QUOTE_CHARS: usize = 200;

/// `starling send`, optionally replying to a message.
pub(crate) async fn send(
    client: &mut Client,
    to: &str,
    text: String,
    reply_to: Option<&str>,
    out: Output,
) -> Result<()> {
    let quoted = match reply_to {
        Some(prefix) => Some(message_id_of(client, prefix).await?),
        None => None,
    };
    let conversation = client.resolve(to).await?;
    let quote = match quoted {
        Some(id) => Some(quote_of(client, &conversation, id).await?),
        None => None,
    };
    let id = client
        .send_with_quote(
            &conversation,
            Body::Text(content::Text { body: text }),
            quote,
        )
        .await?;
    sent(out, to, &id);
    Ok(())
}

/// `starling send-file`.
pub(crate) async fn send_file(
    client: &mut Client,
    to: &str,
    path: &Path,
    caption: &str,
    out: Output,
) -> Result<()> {
    let conversation = client.resolve(to).await?;
    let mut progress = out.progress("uploading");
    let kind = kind_for(&path.to_string_lossy());
    let id = client
        .send_file(&conversation, path, kind, caption, progress.as_mut())
        .await?;
    sent(out, to, &id);
    Ok(())
}

/// `starling send-code`.
pub(crate) async fn send_code(
    client: &mut Client,
    to: &str,
    path: &Path,
    language: String,
    out: Output,
) -> Result<()> {
    let code = tokio::fs::read_to_string(path).await?;
    let conversation = client.resolve(to).await?;
    let id = client
        .send_body(
            &conversation,
            Body::Code(content::CodeSnippet { language, code }),
        )
        .await?;
    sent(out, to, &id);
    Ok(())
}

/// `starling send-location`.
pub(crate) async fn send_location(
    client: &mut Client,
    to: &str,
    (latitude, longitude): (f64, f64),
    label: String,
    out: Output,
) -> Result<()> {
    if !(-90.0..=90.0).contains(&latitude) || !(-180.0..=180.0).contains(&longitude) {
        return Err(CliError::BadLocation);
    }
    let conversation = client.resolve(to).await?;
    let location = content::Location {
        latitude,
        longitude,
        label,
    };
    let id = client
        .send_body(&conversation, Body::Location(location))
        .await?;
    sent(out, to, &id);
    Ok(())
}

/// `starling react`.
pub(crate) async fn react(
    client: &mut Client,
    name: &str,
    message: &str,
    emoji: String,
    out: Output,
) -> Result<()> {
    let message_id = message_id_of(client, message).await?;
    let conversation = client.resolve(name).await?;
    let reaction = content::Reaction {
        message_id,
        emoji,
        remove: false,
    };
    let id = client
        .send_body(&conversation, Body::Reaction(reaction))
        .await?;
    sent(out, name, &id);
    Ok(())
}

/// `starling edit`: one of our own messages, here first, then for the
/// other side.
pub(crate) async fn edit(
    client: &mut Client,
    name: &str,
    message: &str,
    text: String,
    out: Output,
) -> Result<()> {
    let message_id = message_id_of(client, message).await?;
    let conversation = client.resolve(name).await?;
    if !client
        .store()
        .edit_message(&message_id, &conversation, client.username(), &text)
        .await?
    {
        return Err(CliError::NotYourMessage("edit"));
    }
    let edit = content::Edit {
        message_id,
        body: text,
    };
    let id = client.send_body(&conversation, Body::Edit(edit)).await?;
    sent(out, name, &id);
    Ok(())
}

/// `starling delete`: one of our own messages, for everyone.
pub(crate) async fn delete(
    client: &mut Client,
    name: &str,
    message: &str,
    out: Output,
) -> Result<()> {
    let message_id = message_id_of(client, message).await?;
    let conversation = client.resolve(name).await?;
    let deleted = client
        .store()
        .delete_message(&message_id, &conversation, client.username())
        .await?;
    match deleted {
        Some(Some(file)) => client.store().remove_attachment_file(&file).await,
        Some(None) => {}
        None => return Err(CliError::NotYourMessage("delete")),
    }
    let id = client
        .send_body(&conversation, Body::Delete(content::Delete { message_id }))
        .await?;
    sent(out, name, &id);
    Ok(())
}

/// `starling timer`.
pub(crate) async fn timer(
    client: &mut Client,
    name: &str,
    seconds: u32,
    out: Output,
) -> Result<()> {
    let conversation = client.resolve(name).await?;
    client.set_timer(&conversation, seconds).await?;
    out.print(&serde_json::json!({ "timer": seconds }), || {
        format!("disappearing messages: {seconds} s")
    });
    Ok(())
}

pub(crate) fn sent(out: Output, to: &str, id: &[u8]) {
    let id = hex::encode(id);
    out.print(&serde_json::json!({ "sent": to, "message_id": id }), || {
        format!("sent to {to} (id {})", id.get(..8).unwrap_or_default())
    });
}

/// The one message whose id starts with `prefix` (at least 4 hex
/// characters), in any conversation.
pub(crate) async fn message_id_of(client: &Client, prefix: &str) -> Result<Vec<u8>> {
    let prefix = prefix.to_ascii_lowercase();
    if prefix.len() < 4 || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(CliError::BadMessageId);
    }
    let ids = client.store().message_ids_with_prefix(&prefix).await?;
    match ids.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(CliError::NoSuchMessage(prefix)),
        _ => Err(CliError::AmbiguousMessageId(prefix)),
    }
}

/// The quote of message `id` of `conversation`, from our history.
async fn quote_of(
    client: &Client,
    conversation: &Conversation,
    id: Vec<u8>,
) -> Result<content::Quote> {
    let (author, text) = client
        .store()
        .quoted_message(&id, conversation)
        .await?
        .ok_or(ClientError::UnknownMessage)?;
    Ok(content::Quote {
        message_id: id,
        author,
        text: text.chars().take(QUOTE_CHARS).collect(),
    })
}
