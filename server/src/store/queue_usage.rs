//! Per-device queue caps: how many envelopes, and how many bytes, wait for
//! each device, as the group-commit writer knows it. A device that has not
//! fetched its messages for a long time stops being sent more once it
//! reaches either cap; a sender is told which devices it could not reach
//! (`queue_full`), and the rest of its send is stored.
//!
//! The writer keeps the figures in memory: it reads a device's figures
//! from the database in the transaction that first sends to it, then adds
//! what it inserts and subtracts what acknowledgements delete. Envelopes
//! others remove (expiry, a removed device, another server process's
//! writer) are seen when the figures are read again, at most
//! [`REFRESH`] later; a refusal is always decided on figures read in the
//! refusing transaction, so nobody is refused on a stale count. This type
//! is pure: the writer does the reading.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long figures read from the database are trusted.
pub(super) const REFRESH: Duration = Duration::from_secs(30);

/// Devices whose figures are kept before the oldest are forgotten.
const MAX_TRACKED: usize = 100_000;

/// A device: account id and device id.
pub(super) type DeviceKey = (i64, u32);

/// The caps, from `[messages]` of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueCaps {
    /// Most envelopes waiting for one device.
    pub max_envelopes: u64,
    /// Most bytes of content waiting for one device.
    pub max_bytes: u64,
}

#[derive(Debug, Clone, Copy)]
struct Usage {
    envelopes: u64,
    bytes: u64,
    read_at: Instant,
}

/// The writer's figures per device.
#[derive(Debug)]
pub(super) struct QueueUsage {
    caps: QueueCaps,
    devices: HashMap<DeviceKey, Usage>,
}

impl QueueUsage {
    /// No figures known yet.
    pub(super) fn new(caps: QueueCaps) -> Self {
        Self {
            caps,
            devices: HashMap::new(),
        }
    }

    /// Of `devices`, those whose figures must be read before a batch
    /// sends to them: unknown, or read longer than [`REFRESH`] ago.
    pub(super) fn to_read(
        &self,
        devices: impl IntoIterator<Item = DeviceKey>,
        now: Instant,
    ) -> Vec<DeviceKey> {
        let mut wanted: Vec<DeviceKey> = devices
            .into_iter()
            .filter(|device| {
                self.devices
                    .get(device)
                    .is_none_or(|usage| now.duration_since(usage.read_at) >= REFRESH)
            })
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        wanted
    }

    /// Records figures read from the database.
    pub(super) fn read(&mut self, device: DeviceKey, envelopes: u64, bytes: u64, now: Instant) {
        if self.devices.len() >= MAX_TRACKED && !self.devices.contains_key(&device) {
            self.devices
                .retain(|_, usage| now.duration_since(usage.read_at) < REFRESH);
        }
        self.devices.insert(
            device,
            Usage {
                envelopes,
                bytes,
                read_at: now,
            },
        );
    }

    /// Whether one more envelope of `bytes` fits the device's queue; if it
    /// does, counts it. A device whose figures are unknown (not read in
    /// this batch) is admitted.
    pub(super) fn admit(&mut self, device: DeviceKey, bytes: u64) -> bool {
        let Some(usage) = self.devices.get_mut(&device) else {
            return true;
        };
        let fits = usage.envelopes < self.caps.max_envelopes
            && usage.bytes.saturating_add(bytes) <= self.caps.max_bytes;
        if fits {
            usage.envelopes += 1;
            usage.bytes = usage.bytes.saturating_add(bytes);
        }
        fits
    }

    /// Subtracts an envelope an acknowledgement deleted.
    pub(super) fn deleted(&mut self, device: DeviceKey, bytes: u64) {
        if let Some(usage) = self.devices.get_mut(&device) {
            usage.envelopes = usage.envelopes.saturating_sub(1);
            usage.bytes = usage.bytes.saturating_sub(bytes);
        }
    }

    /// Forgets every figure: after a failed transaction, whose counting
    /// did not happen in the database.
    pub(super) fn forget(&mut self) {
        self.devices.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: QueueCaps = QueueCaps {
        max_envelopes: 3,
        max_bytes: 100,
    };

    #[test]
    fn a_device_is_refused_at_either_cap_and_admitted_after_acknowledging() {
        let now = Instant::now();
        let mut usage = QueueUsage::new(CAPS);
        usage.read((1, 1), 2, 10, now);
        assert!(usage.admit((1, 1), 10));
        assert!(!usage.admit((1, 1), 10), "count cap");
        usage.deleted((1, 1), 10);
        assert!(!usage.admit((1, 1), 91), "byte cap");
        assert!(usage.admit((1, 1), 90));
    }

    #[test]
    fn unknown_or_old_figures_are_read_again_and_unknown_devices_admitted() {
        let now = Instant::now();
        let mut usage = QueueUsage::new(CAPS);
        assert!(usage.admit((9, 9), 1_000));
        usage.read((1, 1), 0, 0, now);
        assert_eq!(usage.to_read([(1, 1), (2, 1), (2, 1)], now), vec![(2, 1)]);
        let later = now + REFRESH;
        assert_eq!(usage.to_read([(1, 1)], later), vec![(1, 1)]);
        usage.forget();
        assert_eq!(usage.to_read([(1, 1)], now), vec![(1, 1)]);
    }
}
