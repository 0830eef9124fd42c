//! Safety numbers after Signal's numeric fingerprint (iterated SHA-512, 60
//! digits; SPEC.md §8 states where the hash input differs) over both
//! parties' identities, and the scannable payload for a
//! QR code. Every comparison is constant-time.
//!
//! An account's identity is the set of its devices' identity keys: the keys
//! are sorted and concatenated, so the number changes when a device is added
//! or removed, whatever order the devices are listed in.

use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::error::{DecodeError, MAX_ENCODED_LEN, check_version, decode_proto, fixed};
use crate::keys::IdentityKey;
use crate::proto::wire;

/// Version mixed into the hash (as in Signal's `NumericFingerprintGenerator`).
pub const FINGERPRINT_HASH_VERSION: u16 = 0;
/// SHA-512 iterations per side (Signal's figure).
pub const FINGERPRINT_ITERATIONS: usize = 5_200;
/// Version of the scannable payload.
pub const SCANNABLE_VERSION: u32 = 1;

/// A scanned payload could not be compared.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FingerprintError {
    /// The bytes do not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// The safety number of a conversation between two accounts.
#[derive(Clone)]
pub struct SafetyNumber {
    digits: String,
    local: [u8; 32],
    remote: [u8; 32],
}

impl core::fmt::Debug for SafetyNumber {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SafetyNumber")
            .field("digits", &self.digits)
            .finish_non_exhaustive()
    }
}

impl SafetyNumber {
    /// Computes the safety number between the local account (its stable id,
    /// such as a username, and its device identities) and a remote one.
    pub fn new(
        local_id: &[u8],
        local_keys: &[IdentityKey],
        remote_id: &[u8],
        remote_keys: &[IdentityKey],
    ) -> Self {
        let local = fingerprint(local_id, local_keys);
        let remote = fingerprint(remote_id, remote_keys);
        let local_digits = digits(&local);
        let remote_digits = digits(&remote);
        let digits = if local_digits <= remote_digits {
            local_digits + &remote_digits
        } else {
            remote_digits + &local_digits
        };
        let mut local_half = [0u8; 32];
        let mut remote_half = [0u8; 32];
        local_half.copy_from_slice(&local[..32]);
        remote_half.copy_from_slice(&remote[..32]);
        Self {
            digits,
            local: local_half,
            remote: remote_half,
        }
    }

    /// The 60 digits, identical on both sides.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// The digits in twelve groups of five, as shown to people.
    pub fn display(&self) -> String {
        let groups: Vec<&str> = (0..12)
            .filter_map(|i| self.digits.get(i * 5..i * 5 + 5))
            .collect();
        groups.join(" ")
    }

    /// Whether `other` (typed or read out by a person; spaces ignored) is
    /// the same safety number. Constant-time in the digits.
    pub fn matches_digits(&self, other: &str) -> bool {
        let cleaned: String = other.chars().filter(|c| !c.is_whitespace()).collect();
        self.digits.as_bytes().ct_eq(cleaned.as_bytes()).into()
    }

    /// The payload to show as a QR code.
    pub fn scannable(&self) -> Vec<u8> {
        prost::Message::encode_to_vec(&wire::ScannableFingerprint {
            version: SCANNABLE_VERSION,
            local_fingerprint: self.local.to_vec(),
            remote_fingerprint: self.remote.to_vec(),
        })
    }

    /// Compares a payload scanned from the peer's screen: its "local" side
    /// must be our remote one and vice versa. Constant-time.
    pub fn matches_scanned(&self, scanned: &[u8]) -> Result<bool, FingerprintError> {
        let proto: wire::ScannableFingerprint = decode_proto(scanned, MAX_ENCODED_LEN)?;
        check_version(proto.version, SCANNABLE_VERSION)?;
        let their_local: [u8; 32] = fixed("local_fingerprint", &proto.local_fingerprint)?;
        let their_remote: [u8; 32] = fixed("remote_fingerprint", &proto.remote_fingerprint)?;
        let same = their_local.ct_eq(&self.remote) & their_remote.ct_eq(&self.local);
        Ok(same.into())
    }
}

/// hash_0 = SHA-512(version || keys || stable id);
/// hash_i = SHA-512(hash_{i-1} || keys), 5,200 times.
fn fingerprint(stable_id: &[u8], keys: &[IdentityKey]) -> [u8; 64] {
    let mut sorted: Vec<[u8; 64]> = keys.iter().map(IdentityKey::public_bytes).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let key_material = sorted.concat();
    let mut hasher = Sha512::new();
    hasher.update(FINGERPRINT_HASH_VERSION.to_be_bytes());
    hasher.update(&key_material);
    hasher.update(stable_id);
    let mut hash = hasher.finalize();
    for _ in 0..FINGERPRINT_ITERATIONS {
        let mut hasher = Sha512::new();
        hasher.update(hash);
        hasher.update(&key_material);
        hash = hasher.finalize();
    }
    hash.into()
}

/// Six 5-byte big-endian chunks of the hash, each mod 100,000, as 5 digits.
fn digits(hash: &[u8; 64]) -> String {
    hash[..30]
        .chunks_exact(5)
        .map(|chunk| {
            let value = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            format!("{:05}", value % 100_000)
        })
        .collect()
}
