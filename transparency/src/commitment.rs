//! What the log holds for each account (`crypto/SPEC.md` §16.2).
//!
//! The **label** is the username under a version prefix; akd turns it into
//! a VRF output, so the tree names no account. The **value** commits to
//! the account's device list, every device's id and 64-byte identity key
//! in ascending id order:
//!
//! ```text
//! devices = count: u32 BE ‖ (device_id: u32 BE ‖ identity: [u8; 64]) × count
//! value   = 0x01 ‖ SHA-256("Starling_KtDevices_v1" ‖ devices)
//! deleted = 0x00 ‖ [0; 32]
//! ```
//!
//! A digest rather than the list keeps each proof small (the value is in
//! every one); the server serves the list beside the proof, and the client
//! recomputes the value from it. akd reads an empty value as a tombstone,
//! so no value here is empty.

use akd_core::{AkdLabel, AkdValue};
use sha2::{Digest, Sha256};
use starling_protocol::Username;

use crate::TransparencyError;

/// The prefix of every label: a new label scheme is a new prefix.
pub const LABEL_PREFIX: &[u8] = b"u1:";
/// The domain of the device-list digest.
const DEVICES_DOMAIN: &[u8] = b"Starling_KtDevices_v1";
/// The first byte of a device-list value.
const VALUE_DEVICES: u8 = 0x01;
/// The first byte of a deleted account's value.
const VALUE_DELETED: u8 = 0x00;
/// Devices a list may hold: far above any server's per-account limit, so
/// that a decoder refuses garbage without refusing a real account.
pub const MAX_DEVICES: usize = 256;
/// Bytes of one encoded device.
const ENTRY_LEN: usize = 4 + 64;

/// The label of `username` in the log.
pub fn label(username: &Username) -> AkdLabel {
    AkdLabel([LABEL_PREFIX, username.as_str().as_bytes()].concat())
}

/// The value of a deleted account.
pub fn deleted_value() -> AkdValue {
    let mut value = vec![VALUE_DELETED];
    value.extend_from_slice(&[0; 32]);
    AkdValue(value)
}

/// One device of an account: its id and its identity key
/// (`IdentityKey::public_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceEntry {
    /// The device's id.
    pub device_id: u32,
    /// The device's identity key, as `IdentityKey::public_bytes` gives it.
    pub identity: [u8; 64],
}

/// An account's devices in canonical order: at least one, at most
/// [`MAX_DEVICES`], ascending ids from 1, none twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceList(Vec<DeviceEntry>);

impl DeviceList {
    /// Sorts `entries` by id; refuses an empty list, a too long one, and a
    /// device id given twice.
    pub fn new(mut entries: Vec<DeviceEntry>) -> Result<Self, TransparencyError> {
        entries.sort_by_key(|e| e.device_id);
        Self::check(&entries)?;
        Ok(Self(entries))
    }

    fn check(entries: &[DeviceEntry]) -> Result<(), TransparencyError> {
        if entries.is_empty() {
            return Err(TransparencyError::MalformedDevices("no device"));
        }
        if entries.len() > MAX_DEVICES {
            return Err(TransparencyError::MalformedDevices("too many devices"));
        }
        if entries.first().is_some_and(|e| e.device_id == 0) {
            return Err(TransparencyError::MalformedDevices("device id 0"));
        }
        if entries.windows(2).any(|w| w[0].device_id >= w[1].device_id) {
            return Err(TransparencyError::MalformedDevices(
                "device ids not strictly ascending",
            ));
        }
        Ok(())
    }

    /// The devices, ascending by id.
    pub fn entries(&self) -> &[DeviceEntry] {
        &self.0
    }

    /// The identity key of `device_id`, if the list holds it.
    pub fn identity(&self, device_id: u32) -> Option<&[u8; 64]> {
        self.0
            .binary_search_by_key(&device_id, |e| e.device_id)
            .ok()
            .map(|i| &self.0[i].identity)
    }

    /// The canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(4 + self.0.len() * ENTRY_LEN);
        let count = u32::try_from(self.0.len()).unwrap_or(u32::MAX);
        bytes.extend_from_slice(&count.to_be_bytes());
        for entry in &self.0 {
            bytes.extend_from_slice(&entry.device_id.to_be_bytes());
            bytes.extend_from_slice(&entry.identity);
        }
        bytes
    }

    /// Decodes the canonical encoding, and nothing else: the count must
    /// match the bytes, the ids ascend strictly, nothing follows.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TransparencyError> {
        let (count, mut rest) = bytes
            .split_first_chunk::<4>()
            .ok_or(TransparencyError::MalformedDevices("no count"))?;
        let count = usize::try_from(u32::from_be_bytes(*count))
            .map_err(|_| TransparencyError::MalformedDevices("too many devices"))?;
        if count > MAX_DEVICES {
            return Err(TransparencyError::MalformedDevices("too many devices"));
        }
        if rest.len() != count * ENTRY_LEN {
            return Err(TransparencyError::MalformedDevices(
                "length does not match the count",
            ));
        }
        let mut entries = Vec::with_capacity(count);
        while let Some((id, tail)) = rest.split_first_chunk::<4>() {
            let Some((identity, tail)) = tail.split_first_chunk::<64>() else {
                return Err(TransparencyError::MalformedDevices("truncated device"));
            };
            entries.push(DeviceEntry {
                device_id: u32::from_be_bytes(*id),
                identity: *identity,
            });
            rest = tail;
        }
        Self::check(&entries)?;
        Ok(Self(entries))
    }

    /// The value the log holds for an account with these devices.
    pub fn value(&self) -> AkdValue {
        let digest = Sha256::new()
            .chain_update(DEVICES_DOMAIN)
            .chain_update(self.to_bytes())
            .finalize();
        let mut value = Vec::with_capacity(33);
        value.push(VALUE_DEVICES);
        value.extend_from_slice(&digest);
        AkdValue(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(device_id: u32, fill: u8) -> DeviceEntry {
        DeviceEntry {
            device_id,
            identity: [fill; 64],
        }
    }

    #[test]
    fn a_list_is_sorted_and_refuses_repeats() {
        let list = DeviceList::new(vec![entry(3, 3), entry(1, 1)]).unwrap();
        assert_eq!(list.entries()[0].device_id, 1);
        assert_eq!(list.identity(3), Some(&[3; 64]));
        assert_eq!(list.identity(2), None);
        assert!(DeviceList::new(vec![entry(1, 1), entry(1, 2)]).is_err());
        assert!(DeviceList::new(Vec::new()).is_err());
        assert!(DeviceList::new(vec![entry(0, 1)]).is_err());
    }

    #[test]
    fn the_value_is_of_the_whole_list() {
        let one = DeviceList::new(vec![entry(1, 1)]).unwrap();
        let two = DeviceList::new(vec![entry(1, 1), entry(2, 2)]).unwrap();
        let other_key = DeviceList::new(vec![entry(1, 9)]).unwrap();
        assert_eq!(one.value().0.len(), 33);
        assert_eq!(one.value().0[0], 0x01);
        assert_ne!(one.value(), two.value());
        assert_ne!(one.value(), other_key.value());
        assert_ne!(one.value(), deleted_value());
    }

    #[test]
    fn the_decoder_takes_only_canonical_lists() {
        let list = DeviceList::new(vec![entry(1, 1), entry(2, 2)]).unwrap();
        let bytes = list.to_bytes();
        assert_eq!(DeviceList::from_bytes(&bytes).unwrap(), list);
        // Trailing bytes, a short list, a wrong count, a descending order.
        assert!(DeviceList::from_bytes(&[bytes.clone(), vec![0]].concat()).is_err());
        assert!(DeviceList::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        let mut wrong_count = bytes.clone();
        wrong_count[3] = 3;
        assert!(DeviceList::from_bytes(&wrong_count).is_err());
        let mut swapped = bytes[..4].to_vec();
        swapped.extend_from_slice(&bytes[4 + ENTRY_LEN..]);
        swapped.extend_from_slice(&bytes[4..4 + ENTRY_LEN]);
        assert!(DeviceList::from_bytes(&swapped).is_err());
        assert!(DeviceList::from_bytes(&[0, 0, 0, 0]).is_err());
        assert!(DeviceList::from_bytes(&[0xff; 4]).is_err());
    }

    #[test]
    fn labels_carry_the_prefix() {
        let alice = Username::parse("alice").unwrap();
        assert_eq!(label(&alice).0, b"u1:alice".to_vec());
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = DeviceList::from_bytes(&bytes);
        }

        #[test]
        fn every_list_round_trips(ids in proptest::collection::btree_set(1..u32::MAX, 1..20)) {
            let list = DeviceList::new(ids.iter().map(|&id| entry(id, id.to_be_bytes()[3])).collect()).unwrap();
            prop_assert_eq!(DeviceList::from_bytes(&list.to_bytes()).unwrap(), list);
        }
    }
}
