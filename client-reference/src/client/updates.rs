//! Changes to messages already in the history: edits, deletions,
//! reactions and read receipts. Each applies only to a message of the
//! conversation it arrived in, and edits and deletions only to the
//! sender's own messages; what changed comes back as [`Event::Updated`].

use super::Client;
use crate::content::Body;
use crate::conversation::Conversation;
use crate::error::Result;
use starling_client_core::{Event, UpdateKind};

impl Client {
    /// Applies an edit, deletion, reaction or read receipt from `sender`
    /// in `conversation`; any other body changes nothing.
    pub(super) async fn apply_update(
        &mut self,
        sender: &str,
        conversation: &Conversation,
        body: &Body,
    ) -> Result<Vec<Event>> {
        let updated = |id: &[u8], change| Event::Updated {
            conversation: conversation.clone(),
            message_id: hex::encode(id),
            change,
        };
        let changed = match body {
            Body::Edit(edit) => self
                .store
                .edit_message(&edit.message_id, conversation, sender, &edit.body)
                .await?
                .then(|| updated(&edit.message_id, UpdateKind::Edited)),
            Body::Delete(delete) => self
                .delete_for_everyone(sender, conversation, &delete.message_id)
                .await?
                .then(|| updated(&delete.message_id, UpdateKind::Deleted)),
            Body::Reaction(reaction) => {
                let emoji = (!reaction.remove).then_some(reaction.emoji.as_str());
                self.store
                    .react(&reaction.message_id, conversation, sender, emoji)
                    .await?
                    .then(|| updated(&reaction.message_id, UpdateKind::Reaction))
            }
            Body::ReadReceipt(receipt) => {
                let read = self
                    .store
                    .mark_read(conversation, &receipt.message_ids)
                    .await?;
                return Ok(read
                    .iter()
                    .map(|id| updated(id, UpdateKind::Read))
                    .collect());
            }
            _ => None,
        };
        Ok(changed.into_iter().collect())
    }

    /// Deletes `sender`'s message `message_id` of `conversation` and its
    /// attachment file; false when there is no such message of theirs.
    async fn delete_for_everyone(
        &self,
        sender: &str,
        conversation: &Conversation,
        message_id: &[u8],
    ) -> Result<bool> {
        match self
            .store
            .delete_message(message_id, conversation, sender)
            .await?
        {
            Some(file) => {
                if let Some(file) = file {
                    self.store.remove_attachment_file(&file).await;
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
