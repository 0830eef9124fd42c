//! The records the protocol logic keeps through [`crate::Storage`]: a
//! group as this device knows it, a message to put in the history, and a
//! decrypted envelope staged until its content is applied. `Debug` leaves
//! out names, texts and content.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use crate::conversation::{Conversation, GroupId};

/// A group as this home knows it. `Debug` leaves out the name (chosen by
/// a member, like a message text).
#[derive(Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// 16 random bytes chosen by the creator.
    pub group_id: Vec<u8>,
    /// Display name.
    pub name: String,
    /// Members' usernames, this account included while it is a member.
    pub members: Vec<String>,
    /// Increases with every change.
    pub revision: u64,
    /// False once this account left or was removed.
    pub active: bool,
    /// Disappearing-message timer, 0 = off.
    pub expire_seconds: u32,
    /// The last explicit change of each member who was ever added to or
    /// removed from the group by an update (not by its creation).
    pub member_changes: BTreeMap<String, MemberChange>,
}

/// One member's last explicit change in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberChange {
    /// The revision of the update that made it.
    pub revision: u64,
    /// Removed (or left) rather than added.
    pub removed: bool,
}

impl GroupRecord {
    /// The group's id.
    pub fn id(&self) -> GroupId {
        GroupId::from_bytes(self.group_id.clone())
    }

    /// The group as a conversation.
    pub fn conversation(&self) -> Conversation {
        Conversation::Group(GroupId::from_bytes(self.group_id.clone()))
    }
}

impl std::fmt::Debug for GroupRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            group_id,
            name: _,
            members,
            revision,
            active,
            expire_seconds,
            member_changes,
        } = self;
        f.debug_struct("GroupRecord")
            .field("group_id", &hex::encode(group_id))
            .field("members", members)
            .field("revision", revision)
            .field("active", active)
            .field("expire_seconds", expire_seconds)
            .field("member_changes", member_changes)
            .finish_non_exhaustive()
    }
}

/// A message to record.
#[derive(Clone)]
pub struct NewMessage {
    /// The sender's 16-byte message id.
    pub message_id: Vec<u8>,
    /// Its conversation (stored as its key, `@user` or `#<group id hex>`).
    pub conversation: Conversation,
    /// Author's username.
    pub sender: String,
    /// Author's device.
    pub sender_device: u32,
    /// Sent by this account (from any of its devices).
    pub outgoing: bool,
    /// Content kind ("text", "file", "location", …, "unsupported").
    pub kind: String,
    /// What a person reads; indexed for search.
    pub body: String,
    /// The whole decrypted Content.
    pub content: Vec<u8>,
    /// Sender's clock, ms.
    pub sent_at: i64,
    /// Our clock, ms.
    pub received_at: i64,
    /// When both sides delete it, ms (disappearing messages).
    pub expires_at: Option<i64>,
    /// Encrypted blob in the attachments folder.
    pub attachment_file: Option<String>,
}

impl std::fmt::Debug for NewMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            message_id,
            conversation,
            sender,
            sender_device,
            outgoing,
            kind,
            body: _,
            content: _,
            sent_at,
            received_at,
            expires_at,
            attachment_file: _,
        } = self;
        f.debug_struct("NewMessage")
            .field("message_id", &hex::encode(message_id))
            .field("conversation", conversation)
            .field("sender", sender)
            .field("sender_device", sender_device)
            .field("outgoing", outgoing)
            .field("kind", kind)
            .field("sent_at", sent_at)
            .field("received_at", received_at)
            .field("expires_at", expires_at)
            .finish_non_exhaustive()
    }
}

/// A decrypted envelope staged until its content is applied.
#[derive(Clone)]
pub struct InboxItem {
    /// The server's envelope id.
    pub envelope_id: Vec<u8>,
    /// Sender account.
    pub sender: String,
    /// Sender device.
    pub sender_device: u32,
    /// Came through a pairwise session (not a group's sender key).
    pub pairwise: bool,
    /// The sender's keys changed when it was decrypted.
    pub identity_changed: bool,
    /// The decrypted Content.
    pub content: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for InboxItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboxItem")
            .field("sender", &self.sender)
            .field("sender_device", &self.sender_device)
            .finish_non_exhaustive()
    }
}

/// A group message that arrived before its sender's key: kept (and its
/// envelope acknowledged) until the key arrives, then decrypted as if it
/// had just come. Its ciphertext is as the server delivered it.
#[derive(Clone)]
pub struct HeldGroupMessage {
    /// The server's envelope id.
    pub envelope_id: Vec<u8>,
    /// The group it names (16 bytes).
    pub group_id: Vec<u8>,
    /// Sender account.
    pub sender: String,
    /// Sender device.
    pub sender_device: u32,
    /// The identity (`IdentityKey::public_bytes`) its sender certificate
    /// named, when it came sealed.
    pub certified: Option<[u8; 64]>,
    /// The Sender Key message.
    pub message: Vec<u8>,
    /// When it arrived ([`crate::clock::Clock`] milliseconds).
    pub received_at: i64,
}

impl std::fmt::Debug for HeldGroupMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldGroupMessage")
            .field("group_id", &hex::encode(&self.group_id))
            .field("sender", &self.sender)
            .field("sender_device", &self.sender_device)
            .field("received_at", &self.received_at)
            .finish_non_exhaustive()
    }
}
