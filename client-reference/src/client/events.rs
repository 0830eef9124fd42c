//! What arriving envelopes produce: [`Event`]s for the app to show. Their
//! `Debug` shows ids, usernames and kinds, never message text or group
//! names, so an event can go to a log.

use crate::store::HistoryEntry;

/// What arrived. `Debug` shows ids, usernames and kinds, never message
/// text or group names.
#[derive(Clone, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A new message in a conversation.
    Message(HistoryEntry),
    /// An earlier message was edited, deleted, reacted to or read.
    Updated {
        /// Its conversation.
        conversation: String,
        /// Its id (hex).
        message_id: String,
        /// "edited", "deleted", "reaction" or "read".
        change: &'static str,
    },
    /// A group's name or members changed.
    GroupChanged {
        /// Group id (hex).
        group_id: String,
        /// Name.
        name: String,
        /// Members.
        members: Vec<String>,
        /// Whether we are still a member.
        active: bool,
    },
    /// A contact's keys changed: compare the safety number again.
    IdentityChanged {
        /// The contact.
        username: String,
    },
    /// A call signal (an offer rings; see `Client::answer_call`).
    Call {
        /// Who sent it.
        sender: String,
        /// From which device.
        device: u32,
        /// The call (hex).
        call_id: String,
        /// "offer", "answer", "leave", "hangup", "busy" or "key".
        signal: &'static str,
    },
    /// A message could not be decrypted; a fresh session was requested.
    DecryptionFailed {
        /// Who sent it (empty if unknown).
        sender: String,
        /// From which device.
        device: u32,
        /// Why.
        reason: String,
    },
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Message(entry) => f.debug_tuple("Message").field(entry).finish(),
            Self::Updated {
                conversation,
                message_id,
                change,
            } => f
                .debug_struct("Updated")
                .field("conversation", conversation)
                .field("message_id", message_id)
                .field("change", change)
                .finish(),
            Self::GroupChanged {
                group_id,
                name: _,
                members,
                active,
            } => f
                .debug_struct("GroupChanged")
                .field("group_id", group_id)
                .field("members", members)
                .field("active", active)
                .finish_non_exhaustive(),
            Self::IdentityChanged { username } => f
                .debug_struct("IdentityChanged")
                .field("username", username)
                .finish(),
            Self::Call {
                sender,
                device,
                call_id,
                signal,
            } => f
                .debug_struct("Call")
                .field("sender", sender)
                .field("device", device)
                .field("call_id", call_id)
                .field("signal", signal)
                .finish(),
            Self::DecryptionFailed {
                sender,
                device,
                reason,
            } => f
                .debug_struct("DecryptionFailed")
                .field("sender", sender)
                .field("device", device)
                .field("reason", reason)
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_leaves_out_text_and_group_names() {
        let entry = HistoryEntry {
            message_id: "0123abcd".into(),
            conversation: "@alice".into(),
            conversation_name: "alice".into(),
            sender: "alice".into(),
            sender_device: 2,
            outgoing: false,
            kind: "text".into(),
            body: "zq-marker-body".into(),
            sent_at: 0,
            edited: false,
            read: false,
            reactions: std::collections::BTreeMap::new(),
            attachment_file: None,
        };
        let events = [
            Event::Message(entry),
            Event::GroupChanged {
                group_id: "00ff".into(),
                name: "zq-marker-name".into(),
                members: vec!["alice".into(), "bob".into()],
                active: true,
            },
        ];
        let shown = format!("{events:?} {events:#?}");
        assert!(!shown.contains("zq-marker"), "{shown}");
        for visible in ["0123abcd", "alice", "bob", "text", "00ff", "Message"] {
            assert!(shown.contains(visible), "{visible} missing from {shown}");
        }
    }
}
