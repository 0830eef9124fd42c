//! [`Storage`]: the local state the protocol logic reads and writes. The
//! shell implements it over its encrypted database; the core only says
//! what to load and what to keep, never how.

use starling_crypto::ratchet::PeerSessions;
use starling_crypto::{IdentityKey, PreKeyStore};

use crate::tofu::TrustChange;

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
/// core hands them back unchanged.
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
    /// durable step. `own_device` is this device's id when `username` is
    /// our own account.
    async fn observe_identity(
        &self,
        username: &str,
        device_id: u32,
        key: &IdentityKey,
        own_device: Option<u32>,
    ) -> Result<TrustChange, Self::Error>;

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
}
