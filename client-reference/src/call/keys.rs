//! Call media keys: SFrame (RFC 9605) encryption of whole media frames, each
//! participant under its own sending key. Pure: no I/O, no clock. The relay
//! never holds any of this.
//!
//! Key ids are `epoch << 8 | index` (the participant's index in the epoch).
//! Every participant draws its own 32-byte sending secret for each epoch and
//! sends it, inside the end-to-end encrypted sessions, to the devices in the
//! call only (version 2 of the call keys; version 1 derived everyone's key
//! from one epoch secret, so anyone could compute anyone's key). A receiver
//! takes a secret for key id `(epoch, i)` only from the device that is
//! participant `i` of `epoch`, and keeps a replay window per key id (RFC
//! 9605 §9.3).

use std::collections::{BTreeMap, HashMap};

use sframe::CipherSuite;
use sframe::frame::validation::{ReplayAttackProtectionStore, Tolerance};
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
/// Length of a sending secret.
pub const SECRET_LEN: usize = 32;
/// Frames a counter may lag behind the newest of its key id and still be
/// taken (once): reordering on the way, not a replay (RFC 9605 §9.3).
pub const REPLAY_WINDOW: usize = 1_024;

/// The SFrame key id of participant `index` in `epoch`.
pub fn key_id(epoch: u32, index: u8) -> KeyId {
    (u64::from(epoch) << 8) | u64::from(index)
}

/// The epoch and participant index of a key id.
pub fn split_key_id(key_id: KeyId) -> (u64, u8) {
    (key_id >> 8, key_id.to_le_bytes()[0])
}

/// The key id in a frame's header (not yet authenticated), if it parses.
pub fn frame_key_id(ciphertext: &[u8]) -> Option<KeyId> {
    EncryptedFrameView::try_new(&ciphertext)
        .ok()
        .map(|view| view.header().key_id())
}

/// Encrypts our outgoing frames under our own key of the current epoch.
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
    /// Our key as participant `index` of `epoch`, from our own sending
    /// `secret` of that epoch.
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
    /// left, or before the sender's key reached us.
    NoKey,
    /// Malformed, or its tag does not verify: damaged or forged.
    Corrupt,
    /// A counter of its key id already taken, or too far behind the newest:
    /// a replay.
    Replayed,
}

/// Decrypts the frames of the senders whose keys we were given, in the
/// epochs we keep.
pub struct FrameDecryptor {
    keys: HashMap<KeyId, DecryptionKey>,
    epochs: BTreeMap<u32, Vec<KeyId>>,
    replay: ReplayAttackProtectionStore,
    buffer: Vec<u8>,
}

impl Default for FrameDecryptor {
    fn default() -> Self {
        let tolerance = Tolerance::try_new(REPLAY_WINDOW).unwrap_or(Tolerance::new(Tolerance::MIN));
        Self {
            keys: HashMap::new(),
            epochs: BTreeMap::new(),
            replay: ReplayAttackProtectionStore::new(tolerance),
            buffer: Vec::new(),
        }
    }
}

impl std::fmt::Debug for FrameDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameDecryptor")
            .field("epochs", &self.epochs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl FrameDecryptor {
    /// Starts keeping `epoch` (its senders' keys come with
    /// [`Self::add_sender`]), and forgets epochs beyond the last
    /// [`EPOCHS_KEPT`] with their keys and replay windows.
    pub fn add_epoch(&mut self, epoch: u32) {
        self.epochs.entry(epoch).or_default();
        while self.epochs.len() > EPOCHS_KEPT {
            if let Some((_, old)) = self.epochs.pop_first() {
                for id in old {
                    self.keys.remove(&id);
                    self.replay.remove(id);
                }
            }
        }
    }

    /// Learns participant `index`'s key of `epoch` from its own sending
    /// `secret`. Returns false (and learns nothing) for an epoch not kept,
    /// a key id that already has a key (the first key stays), or a secret
    /// that is not 32 bytes.
    pub fn add_sender(&mut self, epoch: u32, index: u8, secret: &[u8]) -> Result<bool> {
        if secret.len() != SECRET_LEN {
            return Ok(false);
        }
        let id = key_id(epoch, index);
        let Some(ids) = self.epochs.get_mut(&epoch) else {
            return Ok(false);
        };
        if self.keys.contains_key(&id) {
            return Ok(false);
        }
        let key = DecryptionKey::derive_from(CIPHER_SUITE, id, secret)?;
        self.keys.insert(id, key);
        ids.push(id);
        Ok(true)
    }

    /// The newest epoch known.
    pub fn latest_epoch(&self) -> Option<u32> {
        self.epochs.keys().next_back().copied()
    }

    /// Whether we hold the key of `key_id`.
    pub fn has_key(&self, key_id: KeyId) -> bool {
        self.keys.contains_key(&key_id)
    }

    /// Decrypts one SFrame ciphertext; returns the sender's epoch and
    /// index, and the frame. A frame under a key we do not hold, one that
    /// does not verify, and one whose counter was taken before (or lags
    /// more than [`REPLAY_WINDOW`] behind) are errors.
    pub fn decrypt(
        &mut self,
        ciphertext: &[u8],
    ) -> std::result::Result<(u32, u8, Zeroizing<Vec<u8>>), OpenError> {
        let view = EncryptedFrameView::try_new(&ciphertext).map_err(|_| OpenError::Corrupt)?;
        let key_id = view.header().key_id();
        if !self.keys.contains_key(&key_id) {
            return Err(OpenError::NoKey);
        }
        let (epoch, index) = split_key_id(key_id);
        let epoch = u32::try_from(epoch).map_err(|_| OpenError::NoKey)?;
        let frame = view
            .validated_decrypt_into(&self.keys, &mut self.buffer, &mut self.replay)
            .map_err(|e| match e {
                sframe::error::SframeError::FrameValidationFailed(_) => OpenError::Replayed,
                _ => OpenError::Corrupt,
            })?;
        Ok((epoch, index, Zeroizing::new(frame.payload().to_vec())))
    }
}

/// A fresh sending secret.
pub fn new_secret(rng: &mut impl rand::RngCore) -> Zeroizing<Vec<u8>> {
    let mut secret = Zeroizing::new(vec![0u8; SECRET_LEN]);
    rng.fill_bytes(&mut secret);
    secret
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn receiver(epoch: u32, senders: &[(u8, &[u8])]) -> FrameDecryptor {
        let mut receiver = FrameDecryptor::default();
        receiver.add_epoch(epoch);
        for (index, secret) in senders {
            assert!(receiver.add_sender(epoch, *index, secret).unwrap());
        }
        receiver
    }

    #[test]
    fn frames_decrypt_under_the_senders_epoch_key_only() {
        let mut rng = rand::rngs::OsRng;
        let first = new_secret(&mut rng);
        let second = new_secret(&mut rng);
        let mut alice = FrameEncryptor::new(1, 0, &first).unwrap();
        let before = alice.encrypt(b"before bob joined").unwrap();
        let mut bob = receiver(2, &[(0, &second)]);
        // Bob was given epoch 2 only: what came before stays closed to him.
        assert_eq!(bob.decrypt(&before).unwrap_err(), OpenError::NoKey);
        let mut alice = FrameEncryptor::new(2, 0, &second).unwrap();
        let frame = alice.encrypt(b"hello bob").unwrap();
        assert!(!frame.windows(9).any(|w| w == b"hello bob"));
        let (epoch, index, plain) = bob.decrypt(&frame).unwrap();
        assert_eq!((epoch, index, plain.as_slice()), (2, 0, &b"hello bob"[..]));
        // Tampering is caught (and the frame, once taken, is a replay).
        let mut tampered = alice.encrypt(b"hello again").unwrap();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(bob.decrypt(&tampered).unwrap_err(), OpenError::Corrupt);
        tampered[last] ^= 1;
        assert!(bob.decrypt(&tampered).is_ok());
        assert_eq!(bob.decrypt(&frame).unwrap_err(), OpenError::Replayed);
    }

    #[test]
    fn a_participants_own_secret_makes_no_frame_under_another_key_id() {
        let mut rng = rand::rngs::OsRng;
        let (alice, carol) = (new_secret(&mut rng), new_secret(&mut rng));
        let mut bob = receiver(4, &[(0, &alice), (2, &carol)]);
        // Carol's own sending secret derives nothing of Alice's key: a
        // frame she makes under Alice's key id with it fails. (As a
        // receiver she also holds Alice's key; what stops her from using
        // it is the stream check, `call::streams`.)
        let mut forged = FrameEncryptor::new(4, 0, &carol).unwrap();
        let frame = forged.encrypt(b"i am alice").unwrap();
        assert_eq!(frame_key_id(&frame), Some(key_id(4, 0)));
        assert_eq!(bob.decrypt(&frame).unwrap_err(), OpenError::Corrupt);
        // Version 1 gave Carol the one epoch secret every key came from;
        // under per-sender secrets that secret opens nothing of Alice's.
        let mut real = FrameEncryptor::new(4, 0, &alice).unwrap();
        assert_eq!(bob.decrypt(&real.encrypt(b"x").unwrap()).unwrap().1, 0);
        let mut own = FrameEncryptor::new(4, 2, &carol).unwrap();
        assert_eq!(bob.decrypt(&own.encrypt(b"y").unwrap()).unwrap().1, 2);
        // A second key offered for Alice's key id is not taken.
        assert!(!bob.add_sender(4, 0, &carol).unwrap());
        let frame = forged.encrypt(b"i am alice").unwrap();
        assert_eq!(bob.decrypt(&frame).unwrap_err(), OpenError::Corrupt);
    }

    #[test]
    fn a_replayed_frame_is_refused_and_a_late_one_taken_once() {
        let secret = new_secret(&mut rand::rngs::OsRng);
        let mut alice = FrameEncryptor::new(1, 0, &secret).unwrap();
        let frames: Vec<_> = (0..3u8).map(|i| alice.encrypt(&[i]).unwrap()).collect();
        let mut bob = receiver(1, &[(0, &secret)]);
        assert!(bob.decrypt(&frames[0]).is_ok());
        assert!(bob.decrypt(&frames[2]).is_ok());
        // The relay plays frame 0 and 2 again: refused.
        assert_eq!(bob.decrypt(&frames[0]).unwrap_err(), OpenError::Replayed);
        assert_eq!(bob.decrypt(&frames[2]).unwrap_err(), OpenError::Replayed);
        // Frame 1, late but within the window, is taken, once.
        assert!(bob.decrypt(&frames[1]).is_ok());
        assert_eq!(bob.decrypt(&frames[1]).unwrap_err(), OpenError::Replayed);
        // A frame further behind than the window is refused too.
        let old = alice.encrypt(b"old").unwrap();
        for i in 0..=REPLAY_WINDOW {
            let _ = bob.decrypt(&alice.encrypt(&i.to_be_bytes()).unwrap());
        }
        assert_eq!(bob.decrypt(&old).unwrap_err(), OpenError::Replayed);
    }

    #[test]
    fn only_the_last_epochs_are_kept() {
        let mut rng = rand::rngs::OsRng;
        let secrets: Vec<_> = (0..3).map(|_| new_secret(&mut rng)).collect();
        let mut receiver = FrameDecryptor::default();
        for (epoch, secret) in secrets.iter().enumerate() {
            let epoch = u32::try_from(epoch).unwrap();
            receiver.add_epoch(epoch);
            assert!(receiver.add_sender(epoch, 3, secret).unwrap());
        }
        assert_eq!(receiver.latest_epoch(), Some(2));
        // A key for a forgotten epoch is not taken.
        assert!(!receiver.add_sender(0, 3, &secrets[0]).unwrap());
        let old = FrameEncryptor::new(0, 3, &secrets[0])
            .unwrap()
            .encrypt(b"x")
            .unwrap();
        assert_eq!(receiver.decrypt(&old).unwrap_err(), OpenError::NoKey);
        let previous = FrameEncryptor::new(1, 3, &secrets[1])
            .unwrap()
            .encrypt(b"y")
            .unwrap();
        assert_eq!(receiver.decrypt(&previous).unwrap().1, 3);
    }
}
