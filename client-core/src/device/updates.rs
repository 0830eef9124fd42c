//! Changes to messages already in the history: edits, deletions,
//! reactions and read receipts. Each applies only to a message of the
//! conversation it arrived in, and edits and deletions only to the
//! sender's own messages; what changed comes back as [`Event::Updated`].

use rand_core::CryptoRngCore;

use super::{Device, Result};
use crate::clock::Clock;
use crate::content::Body;
use crate::conversation::Conversation;
use crate::error::DeviceError;
use crate::events::{Event, UpdateKind};
use crate::storage::Storage;
use crate::transport::Transport;

impl<S, T, C, R> Device<S, T, C, R>
where
    S: Storage,
    T: Transport,
    C: Clock,
    R: CryptoRngCore,
{
    /// Applies an edit, deletion, reaction or read receipt from `sender`
    /// in `conversation`; any other body changes nothing.
    pub(super) async fn apply_update(
        &mut self,
        sender: &str,
        conversation: &Conversation,
        body: &Body,
    ) -> Result<Vec<Event>, S, T> {
        let updated = |id: &[u8], change| Event::Updated {
            conversation: conversation.clone(),
            message_id: hex::encode(id),
            change,
        };
        let store = &self.storage;
        let changed = match body {
            Body::Edit(edit) => store
                .edit_message(&edit.message_id, conversation, sender, &edit.body)
                .await
                .map_err(DeviceError::Storage)?
                .then(|| updated(&edit.message_id, UpdateKind::Edited)),
            Body::Delete(delete) => store
                .delete_message(&delete.message_id, conversation, sender)
                .await
                .map_err(DeviceError::Storage)?
                .then(|| updated(&delete.message_id, UpdateKind::Deleted)),
            Body::Reaction(reaction) => {
                let emoji = (!reaction.remove).then_some(reaction.emoji.as_str());
                store
                    .react(&reaction.message_id, conversation, sender, emoji)
                    .await
                    .map_err(DeviceError::Storage)?
                    .then(|| updated(&reaction.message_id, UpdateKind::Reaction))
            }
            Body::ReadReceipt(receipt) => {
                let read = store
                    .mark_read(conversation, &receipt.message_ids)
                    .await
                    .map_err(DeviceError::Storage)?;
                return Ok(read
                    .iter()
                    .map(|id| updated(id, UpdateKind::Read))
                    .collect());
            }
            _ => None,
        };
        Ok(changed.into_iter().collect())
    }
}
