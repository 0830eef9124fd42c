//! Outgoing messages: what to send and how it is recorded. The pairwise
//! path (sessions with every device of the recipients, encryption, the copy
//! to our own other devices, the stale-device answer) is the client core's
//! ([`starling_client_core::outgoing`]), over this device's store, server
//! and clock.

use std::collections::BTreeMap;

use prost::Message as _;
use rand::rngs::OsRng;
use starling_client_core::outgoing::Outgoing;

use super::Client;
use crate::api::{AccountEnvelopes, Api};
use crate::content::{self, Content, new_content};
use crate::conversation::{Conversation, ConversationRef};
use crate::error::{ClientError, Result};
use crate::ports::SystemClock;
use crate::store::{HistoryEntry, NewMessage, Store, now_millis};

impl Client {
    /// The core's outgoing path over this device's store, server and clock.
    fn outgoing(&mut self) -> Outgoing<'_, Store, Api, SystemClock> {
        Outgoing {
            storage: &self.store,
            transport: &self.api,
            clock: &SystemClock,
            username: &self.username,
            device_id: self.device_id,
            identity: &self.identity,
            own_devices: &mut self.own_devices,
        }
    }

    /// The devices of `username` we send to, learning them from the server
    /// when we know none yet.
    pub(super) async fn ensure_sessions(&mut self, username: &str) -> Result<Vec<u32>> {
        Ok(self
            .outgoing()
            .ensure_sessions(username, &mut OsRng)
            .await?)
    }

    /// Fetches a device's bundle and starts a fresh session with it.
    pub(super) async fn establish_from_server(
        &mut self,
        username: &str,
        device: u32,
    ) -> Result<()> {
        Ok(self
            .outgoing()
            .establish_from_server(username, device, &mut OsRng)
            .await?)
    }

    /// One attempt of a send: true when stored (or nothing to send); false
    /// when the server refused stale device lists, which are now fixed.
    pub(super) async fn send_or_fix(&mut self, sends: &[AccountEnvelopes]) -> Result<bool> {
        Ok(self.outgoing().send_or_fix(sends, &mut OsRng).await?)
    }

    /// Sends `content`, pairwise-encrypted, to every device of each
    /// recipient (our own account means our other devices).
    pub(super) async fn send_pairwise(
        &mut self,
        recipients: &[String],
        content: &Content,
    ) -> Result<()> {
        Ok(self
            .outgoing()
            .send_pairwise(recipients, content, &mut OsRng)
            .await?)
    }

    /// Sends a content body to a conversation (`@user`, a username, a
    /// group, or a [`Conversation`]) and records it in our history.
    /// Returns the message id.
    pub async fn send_body<'a>(
        &mut self,
        conversation: impl Into<ConversationRef<'a>>,
        body: content::Body,
    ) -> Result<Vec<u8>> {
        self.send_with_quote(conversation, body, None).await
    }

    /// Like [`Self::send_body`], quoting an earlier message.
    pub async fn send_with_quote<'a>(
        &mut self,
        conversation: impl Into<ConversationRef<'a>>,
        body: content::Body,
        quote: Option<content::Quote>,
    ) -> Result<Vec<u8>> {
        let conversation = self.conversation(conversation.into()).await?;
        let mut content = new_content(body);
        content.quote = quote;
        match &conversation {
            Conversation::Group(group_id) => {
                let group = self
                    .store
                    .group(group_id.as_bytes())
                    .await?
                    .ok_or_else(|| ClientError::UnknownGroup(group_id.to_hex()))?;
                content.group_id = group_id.as_bytes().to_vec();
                content.expire_seconds = group.expire_seconds;
                self.send_group_content(&group, &content).await?;
            }
            Conversation::Direct(to) => {
                content.synced_to = to.to_string();
                content.expire_seconds = self.store.contact(to.as_str()).await?.expire_seconds;
                let mut recipients = vec![to.to_string()];
                if *to != self.username.as_str() {
                    recipients.push(self.username.clone());
                }
                self.send_pairwise(&recipients, &content).await?;
            }
        }
        self.record_outgoing(&conversation, &content, None).await?;
        Ok(content.message_id)
    }

    /// Sends a text message.
    pub async fn send_text<'a>(
        &mut self,
        conversation: impl Into<ConversationRef<'a>>,
        text: &str,
    ) -> Result<Vec<u8>> {
        self.send_body(
            conversation,
            content::Body::Text(content::Text {
                body: text.to_owned(),
            }),
        )
        .await
    }

    /// Records what we sent, as it will show in the history.
    pub(super) async fn record_outgoing(
        &mut self,
        conversation: &Conversation,
        content: &Content,
        attachment_file: Option<String>,
    ) -> Result<Option<HistoryEntry>> {
        self.record(
            conversation,
            &self.username.clone(),
            self.device_id,
            true,
            content,
            attachment_file,
        )
        .await
    }

    /// Records a content in the history; `None` when it is not shown there
    /// or is a duplicate.
    pub(super) async fn record(
        &mut self,
        conversation: &Conversation,
        sender: &str,
        sender_device: u32,
        outgoing: bool,
        content: &Content,
        attachment_file: Option<String>,
    ) -> Result<Option<HistoryEntry>> {
        let Some((kind, mut body)) = content::describe(content) else {
            return Ok(None);
        };
        if let Some(quote) = &content.quote {
            let quoted = self
                .store
                .quoted_message(&quote.message_id, conversation)
                .await?;
            body = format!("{}{body}", reply_prefix(quoted));
        }
        let now = now_millis();
        let expires_at = (content.expire_seconds > 0)
            .then(|| now.saturating_add(i64::from(content.expire_seconds) * 1000));
        let message = NewMessage {
            message_id: content.message_id.clone(),
            conversation: conversation.clone(),
            sender: sender.to_owned(),
            sender_device,
            outgoing,
            kind: kind.to_owned(),
            body,
            content: content.encode_to_vec(),
            sent_at: content.sent_at,
            received_at: now,
            expires_at,
            attachment_file,
        };
        if !self.store.insert_message(&message).await? {
            return Ok(None);
        }
        let conversation_name = match conversation {
            Conversation::Group(id) => self
                .store
                .group(id.as_bytes())
                .await?
                .map_or_else(|| id.to_hex(), |g| g.name),
            Conversation::Direct(user) => user.to_string(),
        };
        Ok(Some(HistoryEntry {
            message_id: hex::encode(&message.message_id),
            conversation: message.conversation,
            conversation_name,
            sender: message.sender,
            sender_device,
            outgoing,
            kind: message.kind,
            body: message.body,
            sent_at: message.sent_at,
            edited: false,
            read: false,
            reactions: BTreeMap::new(),
            attachment_file: message.attachment_file,
        }))
    }

    /// Tells the senders of these direct messages that they were read.
    pub async fn send_read_receipts(&mut self, entries: &[HistoryEntry]) -> Result<()> {
        let mut by_sender: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        for entry in entries {
            if entry.outgoing || !matches!(entry.conversation, Conversation::Direct(_)) {
                continue;
            }
            if let Ok(id) = hex::decode(&entry.message_id) {
                by_sender.entry(entry.sender.clone()).or_default().push(id);
            }
        }
        for (sender, message_ids) in by_sender {
            let receipt = new_content(content::Body::ReadReceipt(content::ReadReceipt {
                message_ids,
            }));
            self.send_pairwise(&[sender], &receipt).await?;
        }
        Ok(())
    }

    /// Sets a conversation's disappearing-message timer, for both sides.
    pub async fn set_timer<'a>(
        &mut self,
        conversation: impl Into<ConversationRef<'a>>,
        seconds: u32,
    ) -> Result<()> {
        let conversation = self.conversation(conversation.into()).await?;
        self.apply_timer(&conversation, seconds).await?;
        self.send_body(
            &conversation,
            content::Body::ExpirationTimer(content::ExpirationTimer { seconds }),
        )
        .await?;
        Ok(())
    }

    pub(super) async fn apply_timer(
        &mut self,
        conversation: &Conversation,
        seconds: u32,
    ) -> Result<()> {
        match conversation {
            Conversation::Group(id) => {
                if let Some(mut group) = self.store.group(id.as_bytes()).await? {
                    group.expire_seconds = seconds;
                    self.store.save_group(&group).await?;
                }
                Ok(())
            }
            Conversation::Direct(user) => {
                self.store.set_contact_timer(user.as_str(), seconds).await
            }
        }
    }
}

/// Longest part of a quoted message shown in a reply.
const QUOTE_CHARS: usize = 100;

/// How a reply shows what it quotes, from our history: its author and the
/// start of its text, or that we do not have it.
fn reply_prefix(quoted: Option<(String, String)>) -> String {
    match quoted {
        Some((author, text)) => {
            let mut excerpt: String = text.chars().take(QUOTE_CHARS).collect();
            if excerpt.len() < text.len() {
                excerpt.push('…');
            }
            format!("[reply to {author}: \"{excerpt}\"] ")
        }
        None => "[reply to (unknown message)] ".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_show_what_we_have() {
        assert_eq!(reply_prefix(None), "[reply to (unknown message)] ");
        assert_eq!(
            reply_prefix(Some(("alice".into(), "hi".into()))),
            "[reply to alice: \"hi\"] "
        );
        let long = "x".repeat(300);
        let shown = reply_prefix(Some(("alice".into(), long)));
        assert_eq!(shown.matches('x').count(), QUOTE_CHARS);
    }
}
