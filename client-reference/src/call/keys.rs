//! Call media keys: SFrame (RFC 9605) encryption of whole media frames under
//! the epoch keys the caller distributes inside the end-to-end encrypted
//! sessions. Pure: no I/O, no clock. The relay never holds any of this.
//!
//! Key ids are `epoch << 8 | index` (the participant's index in the epoch),
//! and every participant's SFrame base key in an epoch is the epoch secret:
//! RFC 9605 §4.4.2 derives a distinct key and salt per key id from it.

use std::collections::{BTreeMap, HashMap};

use sframe::CipherSuite;
use sframe::frame::{EncryptedFrameView, MediaFrameView, MonotonicCounter};
use sframe::header::KeyId;
use sframe::key::{DecryptionKey, EncryptionKey};
use zeroize::Zeroizing;

use crate::error::Result;

/// The SFrame cipher suite of every call.
pub const CIPHER_SUITE: CipherSuite = CipherSuite::AesGcm256Sha512;
/// Epochs whose keys a receiver keeps: the current one and the one before
/// (frames sent just before a participant switched).
pub const EPOCHS_KEPT: usize = 2;
/// Length of an epoch secret.
pub const SECRET_LEN: usize = 32;

/// The SFrame key id of participant `index` in `epoch`.
pub fn key_id(epoch: u32, index: u8) -> KeyId {
    (u64::from(epoch) << 8) | u64::from(index)
}

/// The epoch and participant index of a key id.
pub fn split_key_id(key_id: KeyId) -> (u64, u8) {
    (key_id >> 8, key_id.to_le_bytes()[0])
}

/// Encrypts our outgoing frames under the current epoch.
pub struct FrameEncryptor {
    key: EncryptionKey,
    counter: MonotonicCounter,
    epoch: u32,
}

impl std::fmt::Debug for FrameEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameEncryptor")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl FrameEncryptor {
    /// Our key as participant `index` of `epoch`.
    pub fn new(epoch: u32, index: u8, secret: &[u8]) -> Result<Self> {
        Ok(Self {
            key: EncryptionKey::derive_from(CIPHER_SUITE, key_id(epoch, index), secret)?,
            counter: MonotonicCounter::default(),
            epoch,
        })
    }

    /// The epoch these frames are sent under.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// One SFrame ciphertext (header, ciphertext and tag) of `frame`.
    pub fn encrypt(&mut self, frame: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(frame.len() + 32);
        MediaFrameView::try_new(&mut self.counter, &frame)?.encrypt_into(&self.key, &mut out)?;
        Ok(out)
    }
}

/// Why a frame did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Under a key we were not given: sent before we joined, after we
    /// left, or before the epoch's key reached us.
    NoKey,
    /// Malformed, or its tag does not verify: damaged or forged.
    Corrupt,
}

/// Decrypts the frames of every participant of the epochs we were given.
#[derive(Default)]
pub struct FrameDecryptor {
    keys: HashMap<KeyId, DecryptionKey>,
    epochs: BTreeMap<u32, Vec<KeyId>>,
    buffer: Vec<u8>,
}

impl std::fmt::Debug for FrameDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameDecryptor")
            .field("epochs", &self.epochs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl FrameDecryptor {
    /// Learns the keys of `epoch` for the participants `indices`, and
    /// forgets epochs beyond the last [`EPOCHS_KEPT`].
    pub fn add_epoch(&mut self, epoch: u32, secret: &[u8], indices: &[u8]) -> Result<()> {
        let mut ids = Vec::with_capacity(indices.len());
        for index in indices {
            let id = key_id(epoch, *index);
            let key = DecryptionKey::derive_from(CIPHER_SUITE, id, secret)?;
            self.keys.insert(id, key);
            ids.push(id);
        }
        self.epochs.insert(epoch, ids);
        while self.epochs.len() > EPOCHS_KEPT {
            if let Some((_, old)) = self.epochs.pop_first() {
                for id in old {
                    self.keys.remove(&id);
                }
            }
        }
        Ok(())
    }

    /// The newest epoch known.
    pub fn latest_epoch(&self) -> Option<u32> {
        self.epochs.keys().next_back().copied()
    }

    /// Decrypts one SFrame ciphertext; returns the sender's index and the
    /// frame. A frame under a key we do not hold (an epoch before we
    /// joined, or after we left) is an error.
    pub fn decrypt(
        &mut self,
        ciphertext: &[u8],
    ) -> std::result::Result<(u8, Zeroizing<Vec<u8>>), OpenError> {
        let view = EncryptedFrameView::try_new(&ciphertext).map_err(|_| OpenError::Corrupt)?;
        let key_id = view.header().key_id();
        if !self.keys.contains_key(&key_id) {
            return Err(OpenError::NoKey);
        }
        let (_, index) = split_key_id(key_id);
        let frame = view
            .decrypt_into(&self.keys, &mut self.buffer)
            .map_err(|_| OpenError::Corrupt)?;
        Ok((index, Zeroizing::new(frame.payload().to_vec())))
    }
}

/// A fresh epoch secret.
pub fn new_secret(rng: &mut impl rand::RngCore) -> Zeroizing<Vec<u8>> {
    let mut secret = Zeroizing::new(vec![0u8; SECRET_LEN]);
    rng.fill_bytes(&mut secret);
    secret
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn frames_decrypt_under_the_senders_epoch_key_only() {
        let mut rng = rand::rngs::OsRng;
        let first = new_secret(&mut rng);
        let second = new_secret(&mut rng);
        let mut alice = FrameEncryptor::new(1, 0, &first).unwrap();
        let before = alice.encrypt(b"before bob joined").unwrap();
        let mut bob = FrameDecryptor::default();
        bob.add_epoch(2, &second, &[0, 1]).unwrap();
        // Bob was given epoch 2 only: what came before stays closed to him.
        assert_eq!(bob.decrypt(&before).unwrap_err(), OpenError::NoKey);
        let mut alice = FrameEncryptor::new(2, 0, &second).unwrap();
        let frame = alice.encrypt(b"hello bob").unwrap();
        assert!(!frame.windows(9).any(|w| w == b"hello bob"));
        let (index, plain) = bob.decrypt(&frame).unwrap();
        assert_eq!((index, plain.as_slice()), (0, &b"hello bob"[..]));
        // Tampering is caught.
        let mut tampered = frame.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(bob.decrypt(&tampered).unwrap_err(), OpenError::Corrupt);
    }

    #[test]
    fn only_the_last_epochs_are_kept() {
        let mut rng = rand::rngs::OsRng;
        let secrets: Vec<_> = (0..3).map(|_| new_secret(&mut rng)).collect();
        let mut receiver = FrameDecryptor::default();
        for (epoch, secret) in secrets.iter().enumerate() {
            receiver
                .add_epoch(u32::try_from(epoch).unwrap(), secret, &[3])
                .unwrap();
        }
        assert_eq!(receiver.latest_epoch(), Some(2));
        let old = FrameEncryptor::new(0, 3, &secrets[0])
            .unwrap()
            .encrypt(b"x")
            .unwrap();
        assert!(receiver.decrypt(&old).is_err());
        let previous = FrameEncryptor::new(1, 3, &secrets[1])
            .unwrap()
            .encrypt(b"y")
            .unwrap();
        assert_eq!(receiver.decrypt(&previous).unwrap().0, 3);
    }
}
