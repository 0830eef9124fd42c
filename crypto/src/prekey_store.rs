//! A device's private prekeys: generating them, finding the ones an incoming
//! initiation names, and retiring single-use ones once they have served.
//!
//! Pure state: the caller persists it with [`PreKeyStore::to_bytes`] after
//! every change. Session setup itself is in `ratchet::setup`.
//!
//! Medium-term keys rotate together: [`PreKeyStore::rotate`] makes a new
//! signed prekey and a new last-resort ML-KEM prekey; the keys they
//! supersede stay for [`PREKEY_GRACE_SECS`] (initiations from bundles
//! fetched before the rotation still arrive), then [`PreKeyStore::prune`]
//! deletes them. The base keys of initiations accepted without a one-time
//! prekey are kept per signed prekey for as long as it lives, up to
//! [`MAX_SEEN_BASE_KEYS_PER_SIGNED_PREKEY`]; a full list refuses further
//! such initiations (nothing is ever forgotten to make room), and the
//! device rotates before that happens ([`PreKeyStore::replay_list_filling`]).

use std::collections::{BTreeMap, BTreeSet};

use ml_kem::{EncodedSizeUser, KemCore, MlKem768};
use rand_core::CryptoRngCore;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::error::{DecodeError, MAX_STATE_LEN, check_version, decode_proto, fixed};
use crate::keys::{DhKeyPair, IdentityKeyPair};
use crate::prekeys::{
    CONTEXT_KEM_PREKEY, CONTEXT_SIGNED_PREKEY, KemDecapsulationKey, KemPreKey, OneTimePreKey,
    PreKeyBundle, SignedPreKey, kem_prekey_message, kem_public_key, signed_prekey_message,
};
use crate::proto::state;

/// How long a superseded signed or last-resort prekey is kept after its
/// successor was made (30 days): an initiation from a bundle fetched
/// before the rotation is still accepted for this long.
pub const PREKEY_GRACE_SECS: u64 = 30 * 24 * 3600;
/// Signed prekeys kept at most, current included. A weekly rotation with a
/// 30-day grace keeps five or six; extra rotations (a replay list filling)
/// retire the oldest early.
pub const MAX_SIGNED_PREKEYS: usize = 8;
/// One-time prekeys (X25519 and ML-KEM each) a store holds at most.
pub const MAX_ONE_TIME_PREKEYS: usize = 2_000;
/// Last-resort ML-KEM prekeys kept at most, current included (rotated with
/// the signed prekeys, under the same grace).
pub const MAX_LAST_RESORT_KEM_PREKEYS: usize = MAX_SIGNED_PREKEYS;
/// Base keys remembered per signed prekey from initiations that used no
/// one-time prekey, to refuse their replay. Kept while the signed prekey
/// lives; when the list is full, such initiations are refused.
pub const MAX_SEEN_BASE_KEYS_PER_SIGNED_PREKEY: usize = 4_096;
/// Base keys a store remembers at most, over all its signed prekeys.
pub const MAX_SEEN_BASE_KEYS: usize = MAX_SIGNED_PREKEYS * MAX_SEEN_BASE_KEYS_PER_SIGNED_PREKEY;
const STORE_VERSION: u32 = 1;

/// A request to the prekey store that cannot be met.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PreKeyStoreError {
    /// Generating the keys would exceed [`MAX_ONE_TIME_PREKEYS`].
    #[error("the store would hold more than {limit} one-time prekeys")]
    TooManyOneTimePreKeys {
        /// The limit.
        limit: usize,
    },
    /// No signed prekey has been generated yet.
    #[error("no signed prekey")]
    NoSignedPreKey,
}

pub(crate) struct SignedPreKeyPrivate {
    pub(crate) public: SignedPreKey,
    pub(crate) key: DhKeyPair,
    created_at: u64,
}

pub(crate) struct KemPreKeyPrivate {
    pub(crate) public: KemPreKey,
    pub(crate) secret: Box<KemDecapsulationKey>,
    /// When it was made (seconds since the Unix epoch; 0 when unknown, in
    /// a store written before last-resort keys rotated).
    created_at: u64,
}

/// The medium-term keys a rotation made, for upload.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The new signed prekey.
    pub signed_prekey: SignedPreKey,
    /// The new last-resort ML-KEM prekey.
    pub last_resort_kem_prekey: KemPreKey,
}

/// The private halves of a device's prekeys.
#[derive(Default)]
pub struct PreKeyStore {
    signed: Vec<SignedPreKeyPrivate>,
    one_time: BTreeMap<u32, DhKeyPair>,
    kem: BTreeMap<u32, KemPreKeyPrivate>,
    next_id: u32,
    /// Base keys of initiations accepted without a one-time prekey, by the
    /// signed prekey they used.
    seen_base_keys: BTreeMap<u32, BTreeSet<[u8; 32]>>,
}

impl core::fmt::Debug for PreKeyStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let Self {
            signed,
            one_time,
            kem,
            ..
        } = self;
        f.debug_struct("PreKeyStore")
            .field("signed_prekeys", &signed.len())
            .field("one_time_prekeys", &one_time.len())
            .field("kem_prekeys", &kem.len())
            .finish_non_exhaustive()
    }
}

impl PreKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn allocate_id(&mut self) -> u32 {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.next_id
    }

    /// Generates a new signed prekey and makes it current. `now` (seconds
    /// since the Unix epoch) is recorded so the caller can rotate on a
    /// schedule. The oldest beyond [`MAX_SIGNED_PREKEYS`] is retired at
    /// once; [`Self::prune`] retires the others after the grace period.
    pub fn generate_signed_prekey(
        &mut self,
        identity: &IdentityKeyPair,
        now: u64,
        rng: &mut impl CryptoRngCore,
    ) -> SignedPreKey {
        let id = self.allocate_id();
        let key = DhKeyPair::generate(rng);
        let signature = identity
            .sign(
                CONTEXT_SIGNED_PREKEY,
                &signed_prekey_message(id, &key.public),
            )
            .to_bytes();
        let public = SignedPreKey {
            id,
            public: key.public,
            signature,
        };
        self.signed.push(SignedPreKeyPrivate {
            public: public.clone(),
            key,
            created_at: now,
        });
        while self.signed.len() > MAX_SIGNED_PREKEYS {
            self.retire_oldest_signed_prekey();
        }
        public
    }

    /// Makes a new signed prekey and a new last-resort ML-KEM prekey
    /// (both current from now on), then prunes what the grace period no
    /// longer covers. The schedule is the caller's.
    pub fn rotate(
        &mut self,
        identity: &IdentityKeyPair,
        now: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Rotation {
        let signed_prekey = self.generate_signed_prekey(identity, now, rng);
        let last_resort_kem_prekey = self.generate_last_resort_kem_prekey(identity, now, rng);
        self.prune(now);
        Rotation {
            signed_prekey,
            last_resort_kem_prekey,
        }
    }

    /// Deletes superseded signed and last-resort prekeys whose successor
    /// was made more than [`PREKEY_GRACE_SECS`] before `now`, with the
    /// replay list of each deleted signed prekey. The current ones always
    /// stay. Returns how many keys were deleted.
    pub fn prune(&mut self, now: u64) -> usize {
        let expired = |successor_made: u64| now.saturating_sub(successor_made) > PREKEY_GRACE_SECS;
        let mut deleted = 0;
        while self.signed.len() > 1 && self.signed.get(1).is_some_and(|k| expired(k.created_at)) {
            self.retire_oldest_signed_prekey();
            deleted += 1;
        }
        let last_resort: Vec<(u32, u64)> = self
            .kem
            .values()
            .filter(|k| k.public.last_resort)
            .map(|k| (k.public.id, k.created_at))
            .collect();
        for pair in last_resort.windows(2) {
            if let [(id, _), (_, successor_made)] = pair
                && expired(*successor_made)
            {
                self.kem.remove(id);
                deleted += 1;
            }
        }
        deleted
    }

    fn retire_oldest_signed_prekey(&mut self) {
        if !self.signed.is_empty() {
            let retired = self.signed.remove(0);
            self.seen_base_keys.remove(&retired.public.id);
        }
    }

    /// Whether the current signed prekey's replay list is half full or
    /// more: time to rotate, before initiations without a one-time prekey
    /// start being refused.
    pub fn replay_list_filling(&self) -> bool {
        self.signed.last().is_some_and(|current| {
            self.seen_base_keys
                .get(&current.public.id)
                .is_some_and(|seen| seen.len() >= MAX_SEEN_BASE_KEYS_PER_SIGNED_PREKEY / 2)
        })
    }

    /// The current signed prekey, if any.
    pub fn current_signed_prekey(&self) -> Option<&SignedPreKey> {
        self.signed.last().map(|k| &k.public)
    }

    /// When the current signed prekey was generated (the `now` given then).
    pub fn signed_prekey_created_at(&self) -> Option<u64> {
        self.signed.last().map(|k| k.created_at)
    }

    /// Generates `count` one-time X25519 prekeys and returns their public
    /// halves for upload.
    pub fn generate_one_time_prekeys(
        &mut self,
        count: usize,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<OneTimePreKey>, PreKeyStoreError> {
        if self.one_time.len().saturating_add(count) > MAX_ONE_TIME_PREKEYS {
            return Err(PreKeyStoreError::TooManyOneTimePreKeys {
                limit: MAX_ONE_TIME_PREKEYS,
            });
        }
        Ok((0..count)
            .map(|_| {
                let id = self.allocate_id();
                let key = DhKeyPair::generate(rng);
                let public = OneTimePreKey {
                    id,
                    public: key.public,
                };
                self.one_time.insert(id, key);
                public
            })
            .collect())
    }

    /// Generates `count` one-time ML-KEM-768 prekeys, signed, for upload.
    pub fn generate_kem_prekeys(
        &mut self,
        identity: &IdentityKeyPair,
        count: usize,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<KemPreKey>, PreKeyStoreError> {
        let one_time = self.kem.values().filter(|k| !k.public.last_resort).count();
        if one_time.saturating_add(count) > MAX_ONE_TIME_PREKEYS {
            return Err(PreKeyStoreError::TooManyOneTimePreKeys {
                limit: MAX_ONE_TIME_PREKEYS,
            });
        }
        Ok((0..count)
            .map(|_| self.generate_kem(identity, false, 0, rng))
            .collect())
    }

    /// Generates a new last-resort ML-KEM-768 prekey and makes it current;
    /// the oldest beyond [`MAX_LAST_RESORT_KEM_PREKEYS`] is retired at once,
    /// the others by [`Self::prune`] after the grace period.
    pub fn generate_last_resort_kem_prekey(
        &mut self,
        identity: &IdentityKeyPair,
        now: u64,
        rng: &mut impl CryptoRngCore,
    ) -> KemPreKey {
        let key = self.generate_kem(identity, true, now, rng);
        let last_resort: Vec<u32> = self
            .kem
            .iter()
            .filter(|(_, k)| k.public.last_resort)
            .map(|(id, _)| *id)
            .collect();
        let excess = last_resort
            .len()
            .saturating_sub(MAX_LAST_RESORT_KEM_PREKEYS);
        for id in last_resort.iter().filter(|id| **id != key.id).take(excess) {
            self.kem.remove(id);
        }
        key
    }

    fn generate_kem(
        &mut self,
        identity: &IdentityKeyPair,
        last_resort: bool,
        now: u64,
        rng: &mut impl CryptoRngCore,
    ) -> KemPreKey {
        let id = self.allocate_id();
        let (secret, public) = MlKem768::generate(rng);
        let message = kem_prekey_message(id, last_resort, &public.as_bytes());
        let public = KemPreKey {
            id,
            public: Box::new(public),
            signature: identity.sign(CONTEXT_KEM_PREKEY, &message).to_bytes(),
            last_resort,
        };
        self.kem.insert(
            id,
            KemPreKeyPrivate {
                public: public.clone(),
                secret: Box::new(secret),
                created_at: now,
            },
        );
        public
    }

    /// How many one-time X25519 prekeys remain.
    pub fn one_time_prekey_count(&self) -> usize {
        self.one_time.len()
    }

    /// How many one-time ML-KEM prekeys remain.
    pub fn kem_one_time_prekey_count(&self) -> usize {
        self.kem.values().filter(|k| !k.public.last_resort).count()
    }

    /// Retires the oldest one-time prekeys of each kind so that `count` new
    /// ones fit under [`MAX_ONE_TIME_PREKEYS`], and returns how many were
    /// retired. Keys the server handed out but nobody used would otherwise
    /// fill the store for good; an initiation that still names a retired
    /// key fails (its recipient sees the failure and can reset the session).
    /// Last-resort keys are never retired here.
    pub fn make_room_for_one_time_prekeys(&mut self, count: usize) -> usize {
        let keep = MAX_ONE_TIME_PREKEYS.saturating_sub(count);
        let mut retired = 0;
        while self.one_time.len() > keep {
            if self.one_time.pop_first().is_none() {
                break;
            }
            retired += 1;
        }
        let one_time_kem: Vec<u32> = self
            .kem
            .iter()
            .filter(|(_, k)| !k.public.last_resort)
            .map(|(id, _)| *id)
            .collect();
        for id in one_time_kem
            .iter()
            .take(one_time_kem.len().saturating_sub(keep))
        {
            self.kem.remove(id);
            retired += 1;
        }
        retired
    }

    /// A bundle as a server would serve it (current signed prekey, the oldest
    /// one-time prekeys, the oldest one-time ML-KEM prekey or else the
    /// last-resort one), without claiming anything. For tests and for a
    /// device that hands out its bundle directly.
    pub fn bundle(&self, identity: &IdentityKeyPair) -> Result<PreKeyBundle, PreKeyStoreError> {
        let signed = self.signed.last().ok_or(PreKeyStoreError::NoSignedPreKey)?;
        let one_time = self.one_time.iter().next().map(|(id, key)| OneTimePreKey {
            id: *id,
            public: key.public,
        });
        let kem = self
            .kem
            .values()
            .find(|k| !k.public.last_resort)
            .or_else(|| self.kem.values().rev().find(|k| k.public.last_resort))
            .map(|k| k.public.clone());
        Ok(PreKeyBundle {
            identity: identity.public().clone(),
            signed_prekey: signed.public.clone(),
            one_time_prekey: one_time,
            kem_prekey: kem,
        })
    }

    pub(crate) fn signed_prekey(&self, id: u32) -> Option<&SignedPreKeyPrivate> {
        self.signed.iter().find(|k| k.public.id == id)
    }

    pub(crate) fn one_time_prekey(&self, id: u32) -> Option<&DhKeyPair> {
        self.one_time.get(&id)
    }

    pub(crate) fn kem_prekey(&self, id: u32) -> Option<&KemPreKeyPrivate> {
        self.kem.get(&id)
    }

    pub(crate) fn has_seen_base_key(&self, signed_prekey_id: u32, base_key: &[u8; 32]) -> bool {
        self.seen_base_keys
            .get(&signed_prekey_id)
            .is_some_and(|seen| seen.contains(base_key))
    }

    /// Whether the replay list of a signed prekey has no room left: an
    /// initiation under it without a one-time prekey must be refused.
    pub(crate) fn replay_list_full(&self, signed_prekey_id: u32) -> bool {
        self.seen_base_keys
            .get(&signed_prekey_id)
            .is_some_and(|seen| seen.len() >= MAX_SEEN_BASE_KEYS_PER_SIGNED_PREKEY)
    }

    /// Retires what an accepted initiation used: its one-time prekeys, or,
    /// when it used none, remembers its base key so a replay is refused
    /// (the caller checked [`Self::replay_list_full`] first).
    pub(crate) fn consume(
        &mut self,
        signed_prekey_id: u32,
        base_key: [u8; 32],
        one_time_id: Option<u32>,
        kem_id: Option<u32>,
    ) {
        if let Some(id) = one_time_id {
            self.one_time.remove(&id);
        }
        if let Some(id) = kem_id
            && self.kem.get(&id).is_some_and(|k| !k.public.last_resort)
        {
            self.kem.remove(&id);
        }
        if one_time_id.is_none() {
            self.seen_base_keys
                .entry(signed_prekey_id)
                .or_default()
                .insert(base_key);
        }
    }

    /// Encodes the store for persistence (encrypt it at rest).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let proto = state::PreKeyStoreState {
            version: STORE_VERSION,
            signed_prekeys: self
                .signed
                .iter()
                .map(|k| state::SignedPreKeyState {
                    id: k.public.id,
                    key: Some(k.key.to_state()),
                    signature: k.public.signature.to_vec(),
                    created_at: k.created_at,
                })
                .collect(),
            one_time_prekeys: self
                .one_time
                .iter()
                .map(|(id, key)| state::OneTimePreKeyState {
                    id: *id,
                    key: Some(key.to_state()),
                })
                .collect(),
            kem_prekeys: self
                .kem
                .values()
                .map(|k| state::KemPreKeyState {
                    id: k.public.id,
                    public_key: k.public.public_bytes(),
                    secret_key: k.secret.as_bytes().to_vec(),
                    signature: k.public.signature.to_vec(),
                    last_resort: k.public.last_resort,
                    created_at: k.created_at,
                })
                .collect(),
            next_id: self.next_id,
            seen_base_keys: self
                .seen_base_keys
                .iter()
                .flat_map(|(spk, keys)| {
                    keys.iter().map(|key| state::SeenBaseKey {
                        signed_prekey_id: *spk,
                        base_key: key.to_vec(),
                    })
                })
                .collect(),
        };
        Zeroizing::new(prost::Message::encode_to_vec(&proto))
    }

    /// Decodes a store written by [`Self::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let proto: state::PreKeyStoreState = decode_proto(bytes, MAX_STATE_LEN)?;
        check_version(proto.version, STORE_VERSION)?;
        if proto.signed_prekeys.len() > MAX_SIGNED_PREKEYS
            || proto.one_time_prekeys.len() > MAX_ONE_TIME_PREKEYS
            || proto.kem_prekeys.len() > MAX_ONE_TIME_PREKEYS + MAX_LAST_RESORT_KEM_PREKEYS
            || proto.seen_base_keys.len() > MAX_SEEN_BASE_KEYS
        {
            return Err(DecodeError::InvalidValue("prekey store limits"));
        }
        let mut store = Self {
            next_id: proto.next_id,
            ..Self::default()
        };
        for k in &proto.signed_prekeys {
            let key = DhKeyPair::from_state(k.key.as_ref())?;
            store.signed.push(SignedPreKeyPrivate {
                public: SignedPreKey {
                    id: k.id,
                    public: key.public,
                    signature: fixed("signature", &k.signature)?,
                },
                key,
                created_at: k.created_at,
            });
        }
        for k in &proto.one_time_prekeys {
            store
                .one_time
                .insert(k.id, DhKeyPair::from_state(k.key.as_ref())?);
        }
        for k in &proto.kem_prekeys {
            let encoded = ml_kem::Encoded::<KemDecapsulationKey>::try_from(&k.secret_key[..])
                .map_err(|_| DecodeError::InvalidValue("kem secret_key"))?;
            let public = KemPreKey {
                id: k.id,
                public: Box::new(kem_public_key(&k.public_key)?),
                signature: fixed("signature", &k.signature)?,
                last_resort: k.last_resort,
            };
            let secret = Box::new(KemDecapsulationKey::from_bytes(&encoded));
            store.kem.insert(
                k.id,
                KemPreKeyPrivate {
                    public,
                    secret,
                    created_at: k.created_at,
                },
            );
        }
        for seen in &proto.seen_base_keys {
            // A store written before the per-key cap may hold more under one
            // signed prekey (up to 10,000): kept, and that list counts as
            // full until its signed prekey is deleted.
            store
                .seen_base_keys
                .entry(seen.signed_prekey_id)
                .or_default()
                .insert(fixed("base_key", &seen.base_key)?);
        }
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    #[test]
    fn a_full_store_makes_room_by_retiring_its_oldest_one_time_keys() {
        let rng = &mut ChaCha20Rng::seed_from_u64(7);
        let identity = IdentityKeyPair::generate(rng);
        let mut store = PreKeyStore::new();
        store.generate_last_resort_kem_prekey(&identity, 0, rng);
        let first = store.generate_one_time_prekeys(100, rng).unwrap();
        store
            .generate_one_time_prekeys(MAX_ONE_TIME_PREKEYS - 100, rng)
            .unwrap();
        store.generate_kem_prekeys(&identity, 3, rng).unwrap();
        assert!(store.generate_one_time_prekeys(1, rng).is_err());

        assert_eq!(store.make_room_for_one_time_prekeys(100), 100);
        assert!(first.iter().all(|k| store.one_time_prekey(k.id).is_none()));
        assert_eq!(store.one_time_prekey_count(), MAX_ONE_TIME_PREKEYS - 100);
        store.generate_one_time_prekeys(100, rng).unwrap();
        // Below the limit nothing is retired, and last-resort keys stay.
        assert_eq!(store.make_room_for_one_time_prekeys(3), 3);
        assert_eq!(store.make_room_for_one_time_prekeys(0), 0);
        assert_eq!(store.kem_one_time_prekey_count(), 3);
        assert_eq!(
            store.kem.values().filter(|k| k.public.last_resort).count(),
            1
        );
    }

    #[test]
    fn base_keys_stay_while_their_signed_prekey_lives() {
        let rng = &mut ChaCha20Rng::seed_from_u64(8);
        let identity = IdentityKeyPair::generate(rng);
        let mut store = PreKeyStore::new();
        let spk = store.rotate(&identity, 1_000, rng).signed_prekey.id;
        store.consume(spk, [1; 32], None, None);
        // However many initiations follow, the first is still remembered
        // (a FIFO of 10,000 forgot it).
        for n in 0..10_000u32 {
            let mut key = [0; 32];
            key[..4].copy_from_slice(&n.to_be_bytes());
            key[31] = 2;
            if !store.replay_list_full(spk) {
                store.consume(spk, key, None, None);
            }
        }
        assert!(store.has_seen_base_key(spk, &[1; 32]));
        assert!(store.replay_list_full(spk));
        assert!(store.replay_list_filling());
        // It survives the round trip through the stored form.
        let stored = PreKeyStore::from_bytes(&store.to_bytes()).unwrap();
        assert!(stored.has_seen_base_key(spk, &[1; 32]));
        assert!(stored.replay_list_full(spk));

        // A rotation starts an empty list; the old one lives as long as its
        // signed prekey: through the grace period, then gone with it.
        store.rotate(&identity, 2_000, rng);
        assert!(!store.replay_list_filling());
        assert!(store.has_seen_base_key(spk, &[1; 32]));
        store.prune(2_000 + PREKEY_GRACE_SECS);
        assert!(store.has_seen_base_key(spk, &[1; 32]));
        store.prune(2_001 + PREKEY_GRACE_SECS);
        assert!(store.signed_prekey(spk).is_none());
        assert!(!store.has_seen_base_key(spk, &[1; 32]));
    }

    #[test]
    fn last_resort_keys_rotate_and_expire_after_the_grace_period() {
        let rng = &mut ChaCha20Rng::seed_from_u64(9);
        let identity = IdentityKeyPair::generate(rng);
        let mut store = PreKeyStore::new();
        let first = store.rotate(&identity, 0, rng).last_resort_kem_prekey.id;
        let second = store.rotate(&identity, 7 * 86_400, rng);
        assert_ne!(second.last_resort_kem_prekey.id, first);
        assert!(second.last_resort_kem_prekey.is_last_resort());
        // The bundle serves the newest last-resort key.
        let bundle = store.bundle(&identity).unwrap();
        assert_eq!(
            bundle.kem_prekey.as_ref().map(KemPreKey::id),
            Some(second.last_resort_kem_prekey.id)
        );
        assert!(store.kem_prekey(first).is_some());
        assert_eq!(store.prune(7 * 86_400 + PREKEY_GRACE_SECS + 1), 2);
        assert!(store.kem_prekey(first).is_none());
        assert!(store.kem_prekey(second.last_resort_kem_prekey.id).is_some());
        assert_eq!(store.signed.len(), 1);
    }

    #[test]
    fn a_full_replay_list_refuses_initiations_without_a_one_time_prekey() {
        use crate::ratchet::{CiphertextMessage, PeerSessions, Session, SessionSetupError};
        let rng = &mut ChaCha20Rng::seed_from_u64(10);
        let bob = IdentityKeyPair::generate(rng);
        let mut store = PreKeyStore::new();
        let spk = store.rotate(&bob, 1_000, rng).signed_prekey.id;
        for n in 0..u32::try_from(MAX_SEEN_BASE_KEYS_PER_SIGNED_PREKEY).unwrap() {
            let mut key = [3; 32];
            key[..4].copy_from_slice(&n.to_be_bytes());
            store.consume(spk, key, None, None);
        }
        // Alice's initiation from the medium-term keys alone.
        let alice = IdentityKeyPair::generate(rng);
        let bundle = store.bundle(&bob).unwrap();
        let mut sessions = PeerSessions::new();
        sessions.initiate(&alice, &bundle, rng).unwrap();
        let bytes = sessions.encrypt(b"hi").unwrap().to_bytes();
        let Ok(CiphertextMessage::PreKey(initiation)) = CiphertextMessage::from_bytes(&bytes)
        else {
            panic!("expected an initiation");
        };
        assert_eq!(initiation.one_time_prekey_id, None);
        let before = store.to_bytes();
        let refused = Session::accept(&bob, &mut store, &initiation, rng).map(|_| ());
        assert_eq!(refused, Err(SessionSetupError::ReplayListFull(spk)));
        assert_eq!(store.to_bytes(), before);
        // After a rotation the new signed prekey takes initiations again.
        store.rotate(&bob, 2_000, rng);
        let bundle = store.bundle(&bob).unwrap();
        let mut sessions = PeerSessions::new();
        sessions.initiate(&alice, &bundle, rng).unwrap();
        let bytes = sessions.encrypt(b"hi").unwrap().to_bytes();
        let Ok(CiphertextMessage::PreKey(initiation)) = CiphertextMessage::from_bytes(&bytes)
        else {
            panic!("expected an initiation");
        };
        assert!(Session::accept(&bob, &mut store, &initiation, rng).is_ok());
    }

    #[test]
    fn a_store_from_before_the_per_key_cap_still_loads() {
        let rng = &mut ChaCha20Rng::seed_from_u64(11);
        let identity = IdentityKeyPair::generate(rng);
        let mut store = PreKeyStore::new();
        let spk = store.rotate(&identity, 1_000, rng).signed_prekey.id;
        // The previous release kept up to 10,000 under one signed prekey.
        for n in 0..10_000u32 {
            let mut key = [4; 32];
            key[..4].copy_from_slice(&n.to_be_bytes());
            store.consume(spk, key, None, None);
        }
        let loaded = PreKeyStore::from_bytes(&store.to_bytes()).unwrap();
        assert!(loaded.replay_list_full(spk));
        let mut first = [4; 32];
        first[..4].copy_from_slice(&0u32.to_be_bytes());
        assert!(loaded.has_seen_base_key(spk, &first));
    }
}
