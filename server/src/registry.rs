//! Live connections of this process: the local half of delivery fan-out.
//!
//! The [`Registry`] is the single-node [`Notifier`]: for each envelope the
//! group-commit writer committed, it puts the envelope in the device's
//! [`Mailbox`] if the device is connected here, so the connection sends it
//! without reading it back from the database. A mailbox holds at most
//! [`MAILBOX_ENVELOPES`] envelopes and [`MAILBOX_BYTES`] of content; past
//! that it only records that the connection must read the queue itself. A
//! multi-node deployment swaps in a notifier that also tells the other
//! nodes, which call [`Registry::wake`]: a data-less wake-up after which the
//! connection reads the device's whole queue (an envelope committed by
//! another process may sit before what this one has already sent).
//!
//! Nothing here touches the database.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use crate::delivery::{CommittedEnvelope, Notifier, StoredEnvelope};

/// Envelopes a mailbox holds before it falls back to "read the queue".
pub const MAILBOX_ENVELOPES: usize = 64;
/// Content bytes a mailbox holds before it falls back to "read the queue".
pub const MAILBOX_BYTES: usize = 256 * 1024;

/// What a connection has to act on, gathered since it last looked.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Inbox {
    /// Envelopes this process committed for the device, in queue order.
    pub envelopes: Vec<Arc<StoredEnvelope>>,
    /// Bytes of content in `envelopes`.
    bytes: usize,
    /// Envelopes were committed that `envelopes` lacks (the mailbox was
    /// full): read the queue past what was sent.
    pub overflowed: bool,
    /// Envelopes may have been queued out of this process's order (by
    /// another node): read the whole queue.
    pub rescan: bool,
    /// The device's one-time prekeys run low: X25519 and ML-KEM left.
    pub prekeys_low: Option<(u32, u32)>,
    /// Another connection of the same device replaced this one.
    pub replaced: bool,
    /// The device was removed or its account disabled: close at once.
    pub revoked: bool,
}

impl Inbox {
    fn is_empty(&self) -> bool {
        self.envelopes.is_empty()
            && !self.overflowed
            && !self.rescan
            && self.prekeys_low.is_none()
            && !self.replaced
            && !self.revoked
    }
}

/// One connection's inbox and the signal that it changed.
#[derive(Debug, Default)]
pub struct Mailbox {
    inbox: Mutex<Inbox>,
    changed: Notify,
}

impl Mailbox {
    fn post(&self, change: impl FnOnce(&mut Inbox)) {
        change(&mut self.inbox.lock().unwrap_or_else(PoisonError::into_inner));
        self.changed.notify_one();
    }

    fn post_envelope(&self, envelope: Arc<StoredEnvelope>) {
        self.post(|inbox| {
            let bytes = inbox.bytes.saturating_add(envelope.content.len());
            if inbox.overflowed
                || inbox.envelopes.len() >= MAILBOX_ENVELOPES
                || bytes > MAILBOX_BYTES
            {
                inbox.overflowed = true;
            } else {
                inbox.bytes = bytes;
                inbox.envelopes.push(envelope);
            }
        });
    }

    /// Waits until something was posted, and takes it all. Cancel-safe:
    /// nothing is taken unless this returns.
    pub async fn next(&self) -> Inbox {
        loop {
            self.changed.notified().await;
            let inbox =
                std::mem::take(&mut *self.inbox.lock().unwrap_or_else(PoisonError::into_inner));
            if !inbox.is_empty() {
                return inbox;
            }
        }
    }
}

struct Entry {
    connection: u64,
    mailbox: Arc<Mailbox>,
}

/// The connections of this process, one per device.
#[derive(Default)]
pub struct Registry {
    next: AtomicU64,
    connections: Mutex<HashMap<(i64, u32), Entry>>,
}

/// A registered connection; unregisters itself on drop.
pub struct Registration<'a> {
    registry: &'a Registry,
    key: (i64, u32),
    connection: u64,
    /// What arrives for this connection.
    pub mailbox: Arc<Mailbox>,
}

impl Registry {
    /// Registers a device's connection, replacing (and notifying) an older
    /// one of the same device.
    pub fn register(&self, account_id: i64, device_id: u32) -> Registration<'_> {
        let connection = self.next.fetch_add(1, Ordering::Relaxed);
        let mailbox = Arc::new(Mailbox::default());
        let key = (account_id, device_id);
        let previous = self.lock().insert(
            key,
            Entry {
                connection,
                mailbox: mailbox.clone(),
            },
        );
        if let Some(previous) = previous {
            previous.mailbox.post(|inbox| inbox.replaced = true);
        }
        Registration {
            registry: self,
            key,
            connection,
            mailbox,
        }
    }

    /// Connected devices.
    pub fn connected(&self) -> usize {
        self.lock().len()
    }

    /// Hands a committed envelope to the device's connection; `false` if
    /// the device is not connected here.
    pub fn post_envelope(&self, envelope: CommittedEnvelope) -> bool {
        let Some(mailbox) = self.mailbox((envelope.account_id, envelope.device_id)) else {
            return false;
        };
        mailbox.post_envelope(envelope.envelope);
        true
    }

    /// A data-less wake-up: something was queued for the device elsewhere
    /// (another node); its connection reads the whole queue.
    pub fn wake(&self, account_id: i64, device_id: u32) {
        if let Some(mailbox) = self.mailbox((account_id, device_id)) {
            mailbox.post(|inbox| inbox.rescan = true);
        }
    }

    /// Tells the connections of a removed device (with `None`, of every
    /// device of a disabled account) to close; returns how many there were.
    pub fn revoke(&self, account_id: i64, device_id: Option<u32>) -> usize {
        let mailboxes: Vec<Arc<Mailbox>> = self
            .lock()
            .iter()
            .filter(|((account, device), _)| {
                *account == account_id && device_id.is_none_or(|d| d == *device)
            })
            .map(|(_, entry)| entry.mailbox.clone())
            .collect();
        for mailbox in &mailboxes {
            mailbox.post(|inbox| inbox.revoked = true);
        }
        mailboxes.len()
    }

    fn mailbox(&self, key: (i64, u32)) -> Option<Arc<Mailbox>> {
        self.lock().get(&key).map(|entry| entry.mailbox.clone())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<(i64, u32), Entry>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut connections = self.registry.lock();
        if connections
            .get(&self.key)
            .is_some_and(|e| e.connection == self.connection)
        {
            connections.remove(&self.key);
        }
    }
}

impl Notifier for Registry {
    fn envelope_committed(&self, envelope: CommittedEnvelope) {
        self.post_envelope(envelope);
    }

    fn prekeys_low(&self, account_id: i64, device_id: u32, one_time: u32, kem: u32) {
        if let Some(mailbox) = self.mailbox((account_id, device_id)) {
            mailbox.post(|inbox| inbox.prekeys_low = Some((one_time, kem)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed(account_id: i64, device_id: u32, seq: i64, len: usize) -> CommittedEnvelope {
        CommittedEnvelope {
            account_id,
            device_id,
            envelope: Arc::new(StoredEnvelope {
                seq,
                envelope_id: seq.to_be_bytes().to_vec(),
                sender: None,
                sender_device: None,
                created_at: 0,
                content: vec![0; len],
            }),
        }
    }

    #[tokio::test]
    async fn delivers_to_the_registered_connection_and_replaces_old_ones() {
        let registry = Registry::default();
        let first = registry.register(1, 1);
        registry.envelope_committed(committed(1, 1, 7, 10));
        let inbox = first.mailbox.next().await;
        assert_eq!(inbox.envelopes.len(), 1);
        assert_eq!(inbox.envelopes[0].seq, 7);
        assert!(!inbox.overflowed && !inbox.rescan && !inbox.replaced);
        let second = registry.register(1, 1);
        assert!(first.mailbox.next().await.replaced);
        drop(first);
        assert_eq!(registry.connected(), 1);
        registry.prekeys_low(1, 1, 3, 4);
        registry.wake(1, 1);
        let inbox = second.mailbox.next().await;
        assert_eq!(inbox.prekeys_low, Some((3, 4)));
        assert!(inbox.rescan && !inbox.replaced);
        drop(second);
        assert_eq!(registry.connected(), 0);
        // Nobody connected: the caller learns it (and pushes instead).
        assert!(!registry.post_envelope(committed(1, 1, 8, 10)));
    }

    #[tokio::test]
    async fn a_full_mailbox_keeps_order_and_asks_for_a_read() {
        let registry = Registry::default();
        let connection = registry.register(1, 1);
        for seq in 0..MAILBOX_ENVELOPES as i64 + 3 {
            assert!(registry.post_envelope(committed(1, 1, seq, 10)));
        }
        let inbox = connection.mailbox.next().await;
        assert!(inbox.overflowed);
        let seqs: Vec<i64> = inbox.envelopes.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (0..MAILBOX_ENVELOPES as i64).collect::<Vec<_>>());
        // Taken: the next envelope fits again.
        registry.post_envelope(committed(1, 1, 100, 10));
        let inbox = connection.mailbox.next().await;
        assert!(!inbox.overflowed);
        assert_eq!(inbox.envelopes.len(), 1);
    }

    #[tokio::test]
    async fn once_overflowed_later_envelopes_are_not_held() {
        let registry = Registry::default();
        let connection = registry.register(1, 1);
        registry.post_envelope(committed(1, 1, 1, 100));
        // Too large for what is left: it and everything after it wait in
        // the database, so the connection never sends 3 before 2.
        registry.post_envelope(committed(1, 1, 2, MAILBOX_BYTES));
        registry.post_envelope(committed(1, 1, 3, 100));
        let inbox = connection.mailbox.next().await;
        assert!(inbox.overflowed);
        assert_eq!(
            inbox.envelopes.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![1]
        );
    }

    #[tokio::test]
    async fn other_devices_hear_nothing() {
        let registry = Registry::default();
        let one = registry.register(1, 1);
        let _two = registry.register(1, 2);
        registry.envelope_committed(committed(1, 2, 5, 10));
        registry.envelope_committed(committed(1, 1, 6, 10));
        let inbox = one.mailbox.next().await;
        assert_eq!(
            inbox.envelopes.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![6]
        );
    }
}
