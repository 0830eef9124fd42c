//! Live connections and the notifier interface that wakes them.
//!
//! A send stores envelopes, then calls [`Notifier::envelopes_queued`] for
//! each destination device. The in-process [`Registry`] wakes the device's
//! WebSocket if it is connected here; a multi-node deployment swaps in a
//! notifier that also publishes the wake-up to the other nodes. A wake-up
//! carries no data: the connection reads the queue from the database.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

/// Something a connection must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionEvent {
    /// New envelopes are queued.
    Wake,
    /// The device's one-time prekeys run low.
    PrekeysLow {
        /// X25519 one-time prekeys left.
        one_time: u32,
        /// ML-KEM one-time prekeys left.
        kem: u32,
    },
    /// Another connection of the same device replaced this one.
    Replaced,
}

/// Wakes devices when something arrives for them.
pub trait Notifier: Send + Sync + 'static {
    /// Envelopes were stored for the device.
    fn envelopes_queued(&self, account_id: i64, device_id: u32);
    /// The device should upload prekeys.
    fn prekeys_low(&self, account_id: i64, device_id: u32, one_time: u32, kem: u32);
}

/// Queue depth per connection; wake-ups beyond it coalesce.
const EVENT_QUEUE: usize = 8;

struct Entry {
    connection: u64,
    events: mpsc::Sender<ConnectionEvent>,
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
    /// Events for this connection.
    pub events: mpsc::Receiver<ConnectionEvent>,
}

impl Registry {
    /// Registers a device's connection, replacing (and notifying) an older
    /// one of the same device.
    pub fn register(&self, account_id: i64, device_id: u32) -> Registration<'_> {
        let connection = self.next.fetch_add(1, Ordering::Relaxed);
        let (sender, events) = mpsc::channel(EVENT_QUEUE);
        let key = (account_id, device_id);
        let previous = self.lock().insert(
            key,
            Entry {
                connection,
                events: sender,
            },
        );
        if let Some(previous) = previous {
            let _ = previous.events.try_send(ConnectionEvent::Replaced);
        }
        Registration {
            registry: self,
            key,
            connection,
            events,
        }
    }

    /// Whether a device has a connection to this process.
    pub fn is_connected(&self, account_id: i64, device_id: u32) -> bool {
        self.lock().contains_key(&(account_id, device_id))
    }

    /// Connected devices.
    pub fn connected(&self) -> usize {
        self.lock().len()
    }

    fn send(&self, key: (i64, u32), event: ConnectionEvent) {
        if let Some(entry) = self.lock().get(&key) {
            // A full queue already holds a pending wake-up: dropping is safe.
            let _ = entry.events.try_send(event);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(i64, u32), Entry>> {
        self.connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
    fn envelopes_queued(&self, account_id: i64, device_id: u32) {
        self.send((account_id, device_id), ConnectionEvent::Wake);
    }

    fn prekeys_low(&self, account_id: i64, device_id: u32, one_time: u32, kem: u32) {
        self.send(
            (account_id, device_id),
            ConnectionEvent::PrekeysLow { one_time, kem },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_the_registered_connection_and_replaces_old_ones() {
        let registry = Registry::default();
        let mut first = registry.register(1, 1);
        registry.envelopes_queued(1, 1);
        assert_eq!(first.events.recv().await, Some(ConnectionEvent::Wake));
        let mut second = registry.register(1, 1);
        assert_eq!(first.events.recv().await, Some(ConnectionEvent::Replaced));
        drop(first);
        assert_eq!(registry.connected(), 1);
        registry.envelopes_queued(1, 1);
        assert_eq!(second.events.recv().await, Some(ConnectionEvent::Wake));
        drop(second);
        assert_eq!(registry.connected(), 0);
        registry.envelopes_queued(1, 1); // nobody connected: no effect
    }
}
