//! What a send carries and how it is recorded: the content for a
//! conversation (its timer, its copy target), the history entry of what
//! was sent or received, read receipts, and disappearing-message timers.

use std::collections::BTreeMap;

use prost::Message as _;
use rand_core::CryptoRngCore;

use super::{Device, Result};
use crate::clock::Clock;
use crate::content::{self, Content};
use crate::conversation::Conversation;
use crate::error::DeviceError;
use crate::history::HistoryEntry;
use crate::records::NewMessage;
use crate::storage::Storage;
use crate::transport::Transport;

impl<S, T, C, R> Device<S, T, C, R>
where
    S: Storage,
    T: Transport,
    C: Clock,
    R: CryptoRngCore,
{
    /// Sends a content body to a conversation, optionally quoting an
    /// earlier message, and records it in our history. Returns the
    /// message id.
    pub async fn send(
        &mut self,
        conversation: &Conversation,
        body: content::Body,
        quote: Option<content::Quote>,
    ) -> Result<Vec<u8>, S, T> {
        let mut content = self.new_content(body);
        content.quote = quote;
        match conversation {
            Conversation::Group(group_id) => {
                let group = self.storage.group(group_id.as_bytes()).await;
                let group = group
                    .map_err(DeviceError::Storage)?
                    .ok_or_else(|| DeviceError::UnknownGroup(group_id.to_hex()))?;
                content.group_id = group_id.as_bytes().to_vec();
                content.expire_seconds = group.expire_seconds;
                self.send_group_content(&group, &content).await?;
            }
            Conversation::Direct(to) => {
                content.synced_to = to.to_string();
                let contact = self.storage.contact(to.as_str()).await;
                content.expire_seconds = contact.map_err(DeviceError::Storage)?.expire_seconds;
                let mut recipients = vec![to.to_string()];
                if *to != self.account.username.as_str() {
                    recipients.push(self.account.username.clone());
                }
                self.send_pairwise(&recipients, &content).await?;
            }
        }
        self.record_outgoing(conversation, &content, None).await?;
        Ok(content.message_id)
    }

    /// Records what we sent, as it will show in the history.
    pub(crate) async fn record_outgoing(
        &mut self,
        conversation: &Conversation,
        content: &Content,
        attachment_file: Option<String>,
    ) -> Result<Option<HistoryEntry>, S, T> {
        let username = self.account.username.clone();
        let device = self.account.device_id;
        self.record(
            conversation,
            &username,
            device,
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
    ) -> Result<Option<HistoryEntry>, S, T> {
        let Some((kind, mut body)) = content::describe(content) else {
            return Ok(None);
        };
        if let Some(quote) = &content.quote {
            let quoted = self
                .storage
                .quoted_message(&quote.message_id, conversation)
                .await
                .map_err(DeviceError::Storage)?;
            body = format!("{}{body}", reply_prefix(quoted));
        }
        let now = self.clock.now_millis();
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
        let inserted = self.storage.insert_message(&message).await;
        if !inserted.map_err(DeviceError::Storage)? {
            return Ok(None);
        }
        let conversation_name = match conversation {
            Conversation::Group(id) => {
                let group = self.storage.group(id.as_bytes()).await;
                group
                    .map_err(DeviceError::Storage)?
                    .map_or_else(|| id.to_hex(), |g| g.name)
            }
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
    pub async fn send_read_receipts(&mut self, entries: &[HistoryEntry]) -> Result<(), S, T> {
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
            let receipt = self.new_content(content::Body::ReadReceipt(content::ReadReceipt {
                message_ids,
            }));
            self.send_pairwise(&[sender], &receipt).await?;
        }
        Ok(())
    }

    /// Sets a conversation's disappearing-message timer, for both sides.
    pub async fn set_timer(
        &mut self,
        conversation: &Conversation,
        seconds: u32,
    ) -> Result<(), S, T> {
        self.apply_timer(conversation, seconds).await?;
        self.send(
            conversation,
            content::Body::ExpirationTimer(content::ExpirationTimer { seconds }),
            None,
        )
        .await?;
        Ok(())
    }

    /// Sets a conversation's timer locally.
    pub(super) async fn apply_timer(
        &mut self,
        conversation: &Conversation,
        seconds: u32,
    ) -> Result<(), S, T> {
        let store = &self.storage;
        match conversation {
            Conversation::Group(id) => {
                let group = store.group(id.as_bytes()).await;
                if let Some(mut group) = group.map_err(DeviceError::Storage)? {
                    group.expire_seconds = seconds;
                    store
                        .save_group(&group)
                        .await
                        .map_err(DeviceError::Storage)?;
                }
                Ok(())
            }
            Conversation::Direct(user) => store
                .set_contact_timer(user.as_str(), seconds)
                .await
                .map_err(DeviceError::Storage),
        }
    }
}

/// Longest part of a quoted message shown in a reply.
const QUOTE_CHARS: usize = 100;

/// How a reply shows what it quotes, from our history: its author and the
/// start of its text, or that we do not have it.
pub fn reply_prefix(quoted: Option<(String, String)>) -> String {
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
