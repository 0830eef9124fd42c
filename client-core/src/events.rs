//! What arriving envelopes produce: [`Event`]s for the app to show. Their
//! `Debug` shows ids, usernames and kinds, never message text or group
//! names, so an event can go to a log.

use std::fmt;

use crate::conversation::Conversation;
use crate::history::HistoryEntry;

/// What happened to an earlier message. Serialized (and shown) as
/// "edited", "deleted", "reaction" or "read".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateKind {
    /// Its author changed the text.
    Edited,
    /// Its author deleted it for everyone.
    Deleted,
    /// Someone reacted to it, or took a reaction back.
    Reaction,
    /// Its recipient read it.
    Read,
}

impl UpdateKind {
    /// The word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Edited => "edited",
            Self::Deleted => "deleted",
            Self::Reaction => "reaction",
            Self::Read => "read",
        }
    }
}

impl fmt::Display for UpdateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which call signal arrived. Serialized (and shown) as "offer",
/// "answer", "leave", "hangup", "busy", "key", "media_key" or "unknown".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallSignalKind {
    /// A call rings.
    Offer,
    /// A callee joins.
    Answer,
    /// A participant leaves.
    Leave,
    /// The caller ends the call for everyone.
    Hangup,
    /// A callee is in another call.
    Busy,
    /// The caller's new epoch (and its own media key of it).
    Key,
    /// A participant's own media key of an epoch.
    MediaKey,
    /// A signal this client does not know.
    Unknown,
}

impl CallSignalKind {
    /// The word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offer => "offer",
            Self::Answer => "answer",
            Self::Leave => "leave",
            Self::Hangup => "hangup",
            Self::Busy => "busy",
            Self::Key => "key",
            Self::MediaKey => "media_key",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for CallSignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
        conversation: Conversation,
        /// Its id (hex).
        message_id: String,
        /// What happened to it.
        change: UpdateKind,
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
        /// Which signal.
        signal: CallSignalKind,
    },
    /// A call key message was refused, not used: from a device that may
    /// not send it, for an epoch that is not newer, or of an old version.
    CallKeyRefused {
        /// Who sent it.
        sender: String,
        /// From which device.
        device: u32,
        /// The call (hex).
        call_id: String,
        /// The epoch it named.
        epoch: u32,
        /// Why it was refused.
        reason: crate::device::KeyRefusal,
    },
    /// A member device's sender key was refused
    /// ([`crate::error::SenderKeyRefusal`]): its group messages stay
    /// unreadable until it sends one bound to itself.
    SenderKeyRefused {
        /// Who sent it.
        sender: String,
        /// From which device.
        device: u32,
        /// The group (hex).
        group_id: String,
        /// Why.
        reason: String,
    },
    /// A group message came before its sender device's key (this device
    /// was linked after the group was made, or the key was lost): it is
    /// kept, and read when the key comes; the sender was asked for it.
    WaitingForSenderKey {
        /// Who sent it.
        sender: String,
        /// From which device.
        device: u32,
        /// The group (hex).
        group_id: String,
    },
    /// A message could not be decrypted. No session changes because of it
    /// (it is unauthenticated); when it keeps happening, a person resets
    /// the session or asks the sender to.
    DecryptionFailed {
        /// Who the server says sent it (empty if unknown; not verified).
        sender: String,
        /// From which device.
        device: u32,
        /// Why.
        reason: String,
    },
    /// A sealed envelope opened, but its sender certificate was refused
    /// (forged, expired, signed by a key we do not trust, or naming an
    /// identity other than the one the message decrypts with). Nothing it
    /// carried was applied and no session changed.
    SealedSenderRejected {
        /// Who the certificate claims sent it (empty when unreadable; not
        /// verified).
        claimed_sender: String,
        /// From which device (not verified).
        claimed_device: u32,
        /// Why it was refused.
        reason: crate::sealed::Rejection,
    },
    /// A peer device asked for a fresh session, and starting one was
    /// refused (its keys on the server changed from the ones we trust, or
    /// they are not post-quantum).
    RepairRefused {
        /// The peer account.
        sender: String,
        /// Its device.
        device: u32,
        /// Why.
        reason: String,
    },
    /// A contact's device was shown another transparency log than this
    /// device: the server shows the two of them different logs, so the
    /// keys it serves each may not be the ones it shows the other.
    SplitView {
        /// The contact.
        sender: String,
        /// Its device.
        device: u32,
        /// The epoch with two roots (`None`: another log key or log).
        epoch: Option<u64>,
    },
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
            Self::WaitingForSenderKey {
                sender,
                device,
                group_id,
            } => f
                .debug_struct("WaitingForSenderKey")
                .field("sender", sender)
                .field("device", device)
                .field("group_id", group_id)
                .finish(),
            Self::CallKeyRefused {
                sender,
                device,
                call_id,
                epoch,
                reason,
            } => f
                .debug_struct("CallKeyRefused")
                .field("sender", sender)
                .field("device", device)
                .field("call_id", call_id)
                .field("epoch", epoch)
                .field("reason", reason)
                .finish(),
            Self::RepairRefused {
                sender,
                device,
                reason,
            } => f
                .debug_struct("RepairRefused")
                .field("sender", sender)
                .field("device", device)
                .field("reason", reason)
                .finish(),
            Self::SplitView {
                sender,
                device,
                epoch,
            } => f
                .debug_struct("SplitView")
                .field("sender", sender)
                .field("device", device)
                .field("epoch", epoch)
                .finish(),
            Self::SenderKeyRefused {
                sender,
                device,
                group_id,
                reason,
            } => f
                .debug_struct("SenderKeyRefused")
                .field("sender", sender)
                .field("device", device)
                .field("group_id", group_id)
                .field("reason", reason)
                .finish(),
            Self::SealedSenderRejected {
                claimed_sender,
                claimed_device,
                reason,
            } => f
                .debug_struct("SealedSenderRejected")
                .field("claimed_sender", claimed_sender)
                .field("claimed_device", claimed_device)
                .field("reason", reason)
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
            conversation: Conversation::parse_key("@alice").unwrap(),
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

    #[test]
    fn kinds_serialize_to_the_same_words_as_before() {
        let updated = Event::Updated {
            conversation: Conversation::parse_key("#00ff").unwrap(),
            message_id: "0123".into(),
            change: UpdateKind::Reaction,
        };
        assert_eq!(
            serde_json::to_string(&updated).unwrap(),
            r##"{"event":"updated","conversation":"#00ff","message_id":"0123","change":"reaction"}"##
        );
        for kind in [
            UpdateKind::Edited,
            UpdateKind::Deleted,
            UpdateKind::Reaction,
            UpdateKind::Read,
        ] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
        }
        let call = Event::Call {
            sender: "alice".into(),
            device: 1,
            call_id: "ab".into(),
            signal: CallSignalKind::Hangup,
        };
        assert_eq!(
            serde_json::to_string(&call).unwrap(),
            r#"{"event":"call","sender":"alice","device":1,"call_id":"ab","signal":"hangup"}"#
        );
        for kind in [
            CallSignalKind::Offer,
            CallSignalKind::Answer,
            CallSignalKind::Leave,
            CallSignalKind::Hangup,
            CallSignalKind::Busy,
            CallSignalKind::Key,
            CallSignalKind::MediaKey,
            CallSignalKind::Unknown,
        ] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
        }
    }
}
