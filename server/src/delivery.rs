//! Delivery fan-out: what the group-commit writer hands on once envelopes
//! are committed, and the interface through which it wakes their devices.
//!
//! The writer (`store`) stores a batch, then calls
//! [`Notifier::envelope_committed`] for each envelope, in queue order. On
//! one node the notifier is the local `registry` (with `push` for devices
//! not connected here); a multi-node deployment swaps in one that also
//! tells the other nodes (NATS, say), behind the same trait.
//!
//! This module is a leaf: it names the types both sides share and imports
//! neither the store nor the registry.

use std::sync::Arc;

/// Wakes devices when something arrives for them.
pub trait Notifier: Send + Sync + 'static {
    /// This process committed an envelope for a device. Called in queue
    /// order.
    fn envelope_committed(&self, envelope: CommittedEnvelope);
    /// The device should upload prekeys.
    fn prekeys_low(&self, account_id: i64, device_id: u32, one_time: u32, kem: u32);
}

/// A queued envelope as a reader of the queue sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEnvelope {
    /// Queue position (increasing per database).
    pub seq: i64,
    /// The id the device acknowledges.
    pub envelope_id: Vec<u8>,
    /// Sender username (empty when sealed).
    pub sender: Option<String>,
    /// Sender device.
    pub sender_device: Option<u32>,
    /// When the server accepted it.
    pub created_at: i64,
    /// Opaque ciphertext.
    pub content: Vec<u8>,
}

/// An envelope a batch committed, with its destination.
#[derive(Debug, Clone)]
pub struct CommittedEnvelope {
    /// Destination account.
    pub account_id: i64,
    /// Destination device.
    pub device_id: u32,
    /// The envelope as a reader of the queue would see it.
    pub envelope: Arc<StoredEnvelope>,
}
