//! [`HistoryEntry`]: a message of the history as an app shows it. Plain
//! data: the shell's store reads it from its rows, and [`crate::Event`]
//! carries new ones to the app.

use std::collections::BTreeMap;

use crate::conversation::Conversation;

/// A message of the history. `Debug` shows ids, names and kinds, never
/// the text, reactions or the group's name.
#[derive(Clone, PartialEq, serde::Serialize)]
pub struct HistoryEntry {
    /// Hex message id.
    pub message_id: String,
    /// Its conversation (serialized as `@user` or `#<group id hex>`).
    pub conversation: Conversation,
    /// What a person calls the conversation: the username, or the group's
    /// current name.
    pub conversation_name: String,
    /// Author.
    pub sender: String,
    /// Author's device.
    pub sender_device: u32,
    /// Sent by this account.
    pub outgoing: bool,
    /// Content kind.
    pub kind: String,
    /// Readable text.
    pub body: String,
    /// Sender's clock, ms.
    pub sent_at: i64,
    /// Edited after sending.
    pub edited: bool,
    /// A read receipt arrived.
    pub read: bool,
    /// Reactions by username.
    pub reactions: BTreeMap<String, String>,
    /// Encrypted attachment blob, if any.
    pub attachment_file: Option<String>,
}

impl std::fmt::Debug for HistoryEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            message_id,
            conversation,
            conversation_name: _,
            sender,
            sender_device,
            outgoing,
            kind,
            body: _,
            sent_at,
            edited,
            read,
            reactions,
            attachment_file,
        } = self;
        f.debug_struct("HistoryEntry")
            .field("message_id", message_id)
            .field("conversation", conversation)
            .field("sender", sender)
            .field("sender_device", sender_device)
            .field("outgoing", outgoing)
            .field("kind", kind)
            .field("sent_at", sent_at)
            .field("edited", edited)
            .field("read", read)
            .field("reactions", &reactions.len())
            .field("has_attachment_file", &attachment_file.is_some())
            .finish_non_exhaustive()
    }
}
