//! What a person reads: `receive`, `history`, `search`, and `save` for a
//! received attachment (`chat` has a module of its own).

use std::path::{Path, PathBuf};

use starling_client::{Client, ClientError, ConversationRef, Event};

use crate::error::{Result, seconds};
use crate::messages::message_id_of;
use crate::output::{Output, clean, is_read_receipt, message_line};

/// `starling receive`: what arrived (waiting up to `wait` seconds for
/// something), attachments saved to `save_dir`, read receipts sent.
pub(crate) async fn receive(
    client: &mut Client,
    wait: Option<f64>,
    save_dir: Option<PathBuf>,
    read_receipts: bool,
    out: Output,
) -> Result<()> {
    let wait = wait.map(|s| seconds("--wait", s)).transpose()?;
    let events = client.receive(wait).await?;
    for event in events.iter().filter(|e| !is_read_receipt(e)) {
        out.event(event);
        if let (Event::Message(entry), Some(dir)) = (event, &save_dir)
            && matches!(entry.kind.as_str(), "file" | "image" | "voice" | "video")
        {
            tokio::fs::create_dir_all(dir).await?;
            let id =
                hex::decode(&entry.message_id).map_err(|e| ClientError::Protocol(e.to_string()))?;
            let mut progress = out.progress("downloading");
            let path = client.save_attachment(&id, dir, progress.as_mut()).await?;
            out.print(
                &serde_json::json!({ "saved": path, "message_id": entry.message_id }),
                || format!("  saved {}", clean(&path.to_string_lossy())),
            );
        }
    }
    for line in out.read_receipts(&events) {
        crate::output::print_line(line);
    }
    if read_receipts {
        let shown: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::Message(entry) => Some(entry.clone()),
                _ => None,
            })
            .collect();
        client.send_read_receipts(&shown).await?;
    }
    Ok(())
}

/// `starling save`: a received attachment, decrypted to `path`.
pub(crate) async fn save(
    client: &mut Client,
    message: &str,
    path: &Path,
    out: Output,
) -> Result<()> {
    let message_id = message_id_of(client, message).await?;
    let mut progress = out.progress("downloading");
    let written = client
        .save_attachment(&message_id, path, progress.as_mut())
        .await?;
    out.print(&serde_json::json!({ "saved": written }), || {
        format!("saved {}", clean(&written.to_string_lossy()))
    });
    Ok(())
}

/// `starling history`.
pub(crate) async fn history(client: &Client, name: &str, limit: u32, out: Output) -> Result<()> {
    let conversation = client.resolve(name).await?;
    for entry in client.history(&conversation, limit).await? {
        out.print(&entry, || message_line(&entry));
    }
    Ok(())
}

/// `starling search`, in every conversation or the one named.
pub(crate) async fn search(
    client: &Client,
    words: &str,
    name: Option<&str>,
    out: Output,
) -> Result<()> {
    let conversation = match name {
        Some(name) => Some(client.resolve(name).await?),
        None => None,
    };
    let within = conversation.as_ref().map(ConversationRef::from);
    let found = client.search(words, within).await?;
    if found.is_empty() && !out.json {
        eprintln!("no message matches \"{}\"", crate::output::clean(words));
    }
    for entry in found {
        out.print(&entry, || message_line(&entry));
    }
    Ok(())
}
