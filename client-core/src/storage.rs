//! [`Storage`]: the local state the protocol logic reads and writes. The
//! shell implements it over its encrypted database; the core only says
//! what to load and what to keep, never how.

use std::collections::BTreeSet;

use starling_crypto::group::{InboundGroupSession, OutboundGroupSession};
use starling_crypto::ratchet::PeerSessions;
use starling_crypto::{IdentityKey, PreKeyStore};

use crate::conversation::Conversation;
use crate::records::{GroupRecord, HeldGroupMessage, InboxItem, NewMessage};
use crate::sealed::SealedRecord;
use crate::tofu::TrustChange;
use crate::transparency::{LogRecord, OwnLogState};

/// A contact's trust state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactRecord {
    /// Safety number compared and confirmed.
    pub verified: bool,
    /// Keys changed since trust was established.
    pub identity_changed: bool,
    /// Disappearing-message timer of the conversation, 0 = off.
    pub expire_seconds: u32,
}

/// The device's local state, as the protocol logic needs it.
///
/// Each call is one durable step: when it returns `Ok`, what it wrote
/// survives a crash. Errors are the shell's own ([`Storage::Error`]); the
/// core hands them back unchanged. The core never runs two calls at once
/// on one device (its operations take `&mut self`), so an implementation
/// need not order concurrent writes to one peer's state.
#[allow(async_fn_in_trait)]
pub trait Storage {
    /// What a storage call fails with.
    type Error: std::error::Error + 'static;

    /// The stored prekey secrets (what the last committed change left).
    async fn load_prekeys(&self) -> Result<PreKeyStore, Self::Error>;

    /// Replaces the stored prekey secrets.
    async fn save_prekeys(&self, prekeys: &PreKeyStore) -> Result<(), Self::Error>;

    /// The identity keys known for an account, by device, in device order.
    async fn identity_keys(&self, username: &str) -> Result<Vec<(u32, IdentityKey)>, Self::Error>;

    /// A contact's trust state (the default when unknown).
    async fn contact(&self, username: &str) -> Result<ContactRecord, Self::Error>;

    /// Marks a contact verified (their current keys) and clears their
    /// warnings.
    async fn set_verified(&self, username: &str) -> Result<(), Self::Error>;

    /// Records a device's identity key as seen, deciding what it means
    /// ([`crate::tofu::observe`]) and carrying out the outcome in one
    /// durable step. `seen` holds this device's id when `username` is our
    /// own account, and the device of the account whose held key vouched
    /// for this one ([`crate::trust::vouched_by`]).
    async fn observe_identity(
        &self,
        username: &str,
        device_id: u32,
        key: &IdentityKey,
        seen: (Option<u32>, Option<u32>),
    ) -> Result<TrustChange, Self::Error>;

    /// The identity key held for `username`'s `device_id` when it may
    /// vouch for a new device of its account (`crypto/SPEC.md` §2.5): it
    /// was taken without a warning, or its contact was verified since.
    async fn vouching_key(
        &self,
        username: &str,
        device_id: u32,
    ) -> Result<Option<IdentityKey>, Self::Error>;

    /// Forgets a device of an account: its identity key (and with it the
    /// device's place in the lists we send to).
    async fn forget_device(&self, username: &str, device_id: u32) -> Result<(), Self::Error>;

    /// The sessions with one device (none when it is new to us).
    async fn sessions(&self, username: &str, device_id: u32) -> Result<PeerSessions, Self::Error>;

    /// Replaces the sessions with one device.
    async fn save_sessions(
        &self,
        username: &str,
        device_id: u32,
        sessions: &PeerSessions,
    ) -> Result<(), Self::Error>;

    // The inbox: decrypted envelopes staged until applied, and the ids of
    // envelopes already processed (a redelivery is shown once).

    /// Whether the envelope was already processed.
    async fn envelope_seen(&self, envelope_id: &[u8]) -> Result<bool, Self::Error>;

    /// The staged item of an envelope decrypted but not yet applied.
    async fn inbox_item(&self, envelope_id: &[u8]) -> Result<Option<InboxItem>, Self::Error>;

    /// Every staged item, in the order staged.
    async fn pending_inbox(&self) -> Result<Vec<InboxItem>, Self::Error>;

    /// Marks an envelope processed and drops its staged item.
    async fn finish_envelope(&self, envelope_id: &[u8]) -> Result<(), Self::Error>;

    /// Saves the sessions with a device together with what their
    /// decryption produced, in one durable step: the staged item and, when
    /// the message consumed a one-time prekey, the remaining prekeys.
    async fn stage_pairwise(
        &self,
        username: &str,
        device_id: u32,
        sessions: &PeerSessions,
        consumed: Option<&PreKeyStore>,
        item: &InboxItem,
    ) -> Result<(), Self::Error>;

    // Groups.

    /// A group by id.
    async fn group(&self, group_id: &[u8]) -> Result<Option<GroupRecord>, Self::Error>;

    /// Every group, active or not.
    async fn groups(&self) -> Result<Vec<GroupRecord>, Self::Error>;

    /// Inserts or replaces a group's state.
    async fn save_group(&self, group: &GroupRecord) -> Result<(), Self::Error>;

    /// Our outbound Sender Key session of a group and the member devices
    /// (`user.device`) holding it.
    async fn outbound_group_session(
        &self,
        group_id: &[u8],
    ) -> Result<Option<(OutboundGroupSession, BTreeSet<String>)>, Self::Error>;

    /// Saves our outbound session of a group and who holds it.
    async fn save_outbound_group_session(
        &self,
        group_id: &[u8],
        session: &OutboundGroupSession,
        holders: &BTreeSet<String>,
    ) -> Result<(), Self::Error>;

    /// Drops our outbound session of a group: the next send starts a new
    /// one.
    async fn reset_outbound_group_session(&self, group_id: &[u8]) -> Result<(), Self::Error>;

    /// A member device's inbound Sender Key session.
    async fn inbound_group_session(
        &self,
        group_id: &[u8],
        sender: &str,
        device_id: u32,
    ) -> Result<Option<InboundGroupSession>, Self::Error>;

    /// Saves a member device's inbound session, with the item its
    /// decryption staged (if any) in the same durable step; a message held
    /// under that item's envelope id ([`Self::hold_group_message`]) is
    /// dropped in that step too.
    async fn save_inbound_group_session(
        &self,
        group_id: &[u8],
        sender: &str,
        device_id: u32,
        session: &InboundGroupSession,
        item: Option<&InboxItem>,
    ) -> Result<(), Self::Error>;

    /// The member devices whose inbound session of a group holds the chain
    /// signing key `signing_key` ([`InboundGroupSession::signing_keys`]):
    /// a key is taken from one sender device only.
    async fn group_signing_key_holders(
        &self,
        group_id: &[u8],
        signing_key: &[u8; 32],
    ) -> Result<Vec<(String, u32)>, Self::Error>;

    /// Drops the inbound sessions of one member of a group (all members
    /// when `None`).
    async fn drop_inbound_group_sessions(
        &self,
        group_id: &[u8],
        member: Option<&str>,
    ) -> Result<(), Self::Error>;

    /// Records that our sender key of a group's current chain was given
    /// to `holders` (`user.device`) as `distribution` at `at_millis`; a
    /// holder given one of this chain before keeps the earlier.
    async fn record_given_key(
        &self,
        group_id: &[u8],
        holders: &[String],
        distribution: &[u8],
        at_millis: i64,
    ) -> Result<(), Self::Error>;

    /// The key of our current chain of a group first given to `holder`,
    /// and when.
    async fn given_key(
        &self,
        group_id: &[u8],
        holder: &str,
    ) -> Result<Option<(zeroize::Zeroizing<Vec<u8>>, i64)>, Self::Error>;

    /// Forgets the keys given of a group's chain (it rotated). Also done
    /// by [`Self::reset_outbound_group_session`].
    async fn forget_given_keys(&self, group_id: &[u8]) -> Result<(), Self::Error>;

    /// Keeps a group message that arrived before its sender key (replacing
    /// one held under the same envelope id), and marks its envelope
    /// processed ([`Self::finish_envelope`]) in the same durable step.
    async fn hold_group_message(&self, held: &HeldGroupMessage) -> Result<(), Self::Error>;

    /// The messages held for one member device's key in one group, oldest
    /// first.
    async fn held_group_messages(
        &self,
        group_id: &[u8],
        sender: &str,
        device_id: u32,
    ) -> Result<Vec<HeldGroupMessage>, Self::Error>;

    /// Held messages that arrived before `before_millis`, oldest first.
    async fn held_group_messages_before(
        &self,
        before_millis: i64,
    ) -> Result<Vec<HeldGroupMessage>, Self::Error>;

    /// How many messages are held, in all.
    async fn held_count(&self) -> Result<usize, Self::Error>;

    /// Drops a held message.
    async fn drop_held_group_message(&self, envelope_id: &[u8]) -> Result<(), Self::Error>;

    /// Forgets that a device holds any of our sender keys (its session was
    /// reset, so it must be given them again).
    async fn forget_distribution(&self, username: &str, device_id: u32) -> Result<(), Self::Error>;

    /// When a peer's repair request last made us start a fresh session
    /// with its device ([`crate::clock::Clock`] milliseconds), if ever.
    async fn last_repair(&self, username: &str, device_id: u32)
    -> Result<Option<i64>, Self::Error>;

    /// Records that a repair with the device started at `at_millis`.
    async fn record_repair(
        &self,
        username: &str,
        device_id: u32,
        at_millis: i64,
    ) -> Result<(), Self::Error>;

    // The history.

    /// Records a message; false when its id is already recorded.
    async fn insert_message(&self, message: &NewMessage) -> Result<bool, Self::Error>;

    /// The author and text of a message of a conversation, for a reply.
    async fn quoted_message(
        &self,
        message_id: &[u8],
        conversation: &Conversation,
    ) -> Result<Option<(String, String)>, Self::Error>;

    /// Replaces the text of `sender`'s message; false when there is no such
    /// message of theirs.
    async fn edit_message(
        &self,
        message_id: &[u8],
        conversation: &Conversation,
        sender: &str,
        body: &str,
    ) -> Result<bool, Self::Error>;

    /// Deletes `sender`'s message and its attachment file; false when there
    /// is no such message of theirs.
    async fn delete_message(
        &self,
        message_id: &[u8],
        conversation: &Conversation,
        sender: &str,
    ) -> Result<bool, Self::Error>;

    /// Sets (or with `None` removes) `username`'s reaction to a message;
    /// false when there is no such message.
    async fn react(
        &self,
        message_id: &[u8],
        conversation: &Conversation,
        username: &str,
        emoji: Option<&str>,
    ) -> Result<bool, Self::Error>;

    /// Marks our messages read; returns the ids that were not read before.
    async fn mark_read(
        &self,
        conversation: &Conversation,
        message_ids: &[Vec<u8>],
    ) -> Result<Vec<Vec<u8>>, Self::Error>;

    /// Sets a direct conversation's disappearing-message timer.
    async fn set_contact_timer(&self, username: &str, seconds: u32) -> Result<(), Self::Error>;

    // Sealed sender.

    /// The trusted server keys and our sender certificate (empty before
    /// the first pin).
    async fn sealed_record(&self) -> Result<SealedRecord, Self::Error>;

    /// Replaces the trusted server keys and our sender certificate.
    async fn save_sealed_record(&self, record: &SealedRecord) -> Result<(), Self::Error>;

    /// A contact's profile key, as they last sent it.
    async fn contact_profile_key(&self, username: &str) -> Result<Option<[u8; 32]>, Self::Error>;

    /// Records (or with `None` forgets, after the server refused its
    /// access key) a contact's profile key.
    async fn set_contact_profile_key(
        &self,
        username: &str,
        key: Option<&[u8; 32]>,
    ) -> Result<(), Self::Error>;

    /// The transparency log's pins and the newest root this device
    /// verified; `None` before the first pin.
    async fn log_record(&self) -> Result<Option<LogRecord>, Self::Error>;

    /// Stores the log record. The pins are written once and never replaced;
    /// a newest root no newer than the stored one leaves the stored one
    /// (two checks may race).
    async fn save_log_record(&self, record: &LogRecord) -> Result<(), Self::Error>;

    /// The newest version of `username`'s entry in the log this device
    /// verified a lookup proof of; `None` before the first.
    async fn log_version(&self, username: &str) -> Result<Option<u64>, Self::Error>;

    /// Records that a lookup proof of `username`'s entry at `version`
    /// verified; a version no newer than the stored one leaves it (two
    /// checks may race).
    async fn save_log_version(&self, username: &str, version: u64) -> Result<(), Self::Error>;

    /// How far this device has checked its own account's history in the
    /// log; `None` before the first check.
    async fn own_log_state(&self) -> Result<Option<OwnLogState>, Self::Error>;

    /// Replaces the own account's checked history state.
    async fn save_own_log_state(&self, state: &OwnLogState) -> Result<(), Self::Error>;

    /// Adds a warning for `username` that a person must see, unless the
    /// same one is outstanding; whether it was added.
    async fn add_warning(&self, username: &str, text: &str) -> Result<bool, Self::Error>;
}
