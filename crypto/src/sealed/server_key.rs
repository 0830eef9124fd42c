//! The server's sender-certificate keys: a chain in which each key is
//! endorsed by the one before, and the set of keys a client trusts
//! (SPEC §15.2).
//!
//! A client pins one key when it registers or links, and from then on
//! accepts a new key only when the newest key it trusts endorsed it. A
//! server that loses or replaces its chain cannot make clients accept a
//! key that did not come from the pinned one.

use ed25519_dalek::{SigningKey, VerifyingKey};
use rand_core::CryptoRngCore;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::error::{DecodeError, MAX_ENCODED_LEN, check_version, decode_proto, fixed};
use crate::keys::{sign_with, verify_with, verifying_key};
use crate::proto::{state, wire};

use super::CONTEXT_SERVER_KEY;

/// Format version of [`ServerKeyChain`] and of the state encodings here.
const VERSION: u32 = 1;
/// Most keys in one encoded chain.
pub const MAX_CHAIN_KEYS: usize = 16;
/// Most keys a client keeps trusting at once (the newest and older ones
/// whose certificates may still be valid).
pub const MAX_TRUSTED_KEYS: usize = 4;
/// Longest validity of a sender certificate, in milliseconds (7 days).
pub const MAX_CERTIFICATE_TTL_MS: u64 = 7 * 24 * 3_600_000;
/// Slack on top of [`MAX_CERTIFICATE_TTL_MS`] in an older key's validity
/// (one hour: certificate checks use the hour an envelope arrived).
const RETIRE_SLACK_MS: u64 = 3_600_000;
/// How long after its validity an older key is still kept, so that
/// envelopes queued while a device was offline still verify: longer than
/// any server keeps an envelope (90 days).
pub const QUEUE_RETENTION_MS: u64 = 90 * 24 * 3_600_000;

/// Why a key chain was refused. Nothing is trusted from a refused chain.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainError {
    /// The bytes are not a chain.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Ids are not ascending and consecutive, or the chain is empty.
    #[error("key ids are not consecutive")]
    NotConsecutive,
    /// A key is not endorsed by its predecessor.
    #[error("server key {0} is not endorsed by key {prev}", prev = .0 - 1)]
    BadEndorsement(u32),
    /// The chain holds a different key under an id already trusted.
    #[error("server key {0} differs from the trusted key with that id")]
    Fork(u32),
    /// The chain starts after the newest trusted key, so nothing links it.
    #[error("the chain does not reach back to trusted key {0}")]
    Gap(u32),
}

/// One public key of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerKey {
    id: u32,
    key: VerifyingKey,
    created_at: u64,
    endorsement: Option<[u8; 64]>,
}

impl ServerKey {
    /// The key's id (the first key of a chain is 1).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// When the key was made, milliseconds since the Unix epoch.
    pub fn created_at(&self) -> u64 {
        self.created_at
    }

    fn endorsed_bytes(id: u32, key: &VerifyingKey, created_at: u64) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(48);
        bytes.extend_from_slice(&id.saturating_sub(1).to_be_bytes());
        bytes.extend_from_slice(&id.to_be_bytes());
        bytes.extend_from_slice(key.as_bytes());
        bytes.extend_from_slice(&created_at.to_be_bytes());
        bytes
    }

    /// Checks that `predecessor` endorsed this key.
    fn check_endorsement(&self, predecessor: &VerifyingKey) -> Result<(), ChainError> {
        let endorsement = self
            .endorsement
            .ok_or(ChainError::BadEndorsement(self.id))?;
        let message = Self::endorsed_bytes(self.id, &self.key, self.created_at);
        verify_with(
            predecessor,
            "server key",
            CONTEXT_SERVER_KEY,
            &message,
            &endorsement,
        )
        .map_err(|_| ChainError::BadEndorsement(self.id))
    }

    fn to_proto(&self) -> wire::ServerKey {
        wire::ServerKey {
            id: self.id,
            public_key: self.key.to_bytes().to_vec(),
            created_at: self.created_at,
            endorsement: self.endorsement.map(|e| e.to_vec()).unwrap_or_default(),
        }
    }

    fn from_proto(proto: &wire::ServerKey) -> Result<Self, DecodeError> {
        if proto.id == 0 {
            return Err(DecodeError::InvalidValue("server_key.id"));
        }
        let endorsement = match proto.endorsement.len() {
            0 => None,
            _ => Some(fixed::<64>("server_key.endorsement", &proto.endorsement)?),
        };
        Ok(Self {
            id: proto.id,
            key: verifying_key("server_key.public_key", &proto.public_key)?,
            created_at: proto.created_at,
            endorsement,
        })
    }
}

/// The server's public keys, oldest first, as served to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerKeyChain {
    keys: Vec<ServerKey>,
}

impl ServerKeyChain {
    /// A chain of `keys`: ascending, consecutive ids, each endorsed by the
    /// one before it, at most [`MAX_CHAIN_KEYS`].
    pub fn new(keys: Vec<ServerKey>) -> Result<Self, ChainError> {
        if keys.len() > MAX_CHAIN_KEYS {
            return Err(DecodeError::InvalidValue("server_key_chain.keys").into());
        }
        if keys.is_empty() || keys.windows(2).any(|w| w[1].id != w[0].id.wrapping_add(1)) {
            return Err(ChainError::NotConsecutive);
        }
        for pair in keys.windows(2) {
            pair[1].check_endorsement(&pair[0].key)?;
        }
        Ok(Self { keys })
    }

    /// The keys, oldest first.
    pub fn keys(&self) -> &[ServerKey] {
        &self.keys
    }

    /// Encodes the chain (protobuf `ServerKeyChain`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let proto = wire::ServerKeyChain {
            version: VERSION,
            keys: self.keys.iter().map(ServerKey::to_proto).collect(),
        };
        prost::Message::encode_to_vec(&proto)
    }

    /// Decodes a chain and checks every endorsement within it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ChainError> {
        let proto: wire::ServerKeyChain = decode_proto(bytes, MAX_ENCODED_LEN)?;
        check_version(proto.version, VERSION)?;
        if proto.keys.len() > MAX_CHAIN_KEYS {
            return Err(DecodeError::InvalidValue("server_key_chain.keys").into());
        }
        let keys = proto
            .keys
            .iter()
            .map(ServerKey::from_proto)
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(keys)
    }
}

/// A server's secret sender-certificate key (kept by the server only).
pub struct ServerSigningKey {
    key: Box<SigningKey>,
    public: ServerKey,
}

impl ServerSigningKey {
    /// The first key of a new chain (id 1, no endorsement).
    pub fn generate(created_at: u64, rng: &mut impl CryptoRngCore) -> Self {
        let key = Box::new(SigningKey::generate(rng));
        let public = ServerKey {
            id: 1,
            key: key.verifying_key(),
            created_at,
            endorsement: None,
        };
        Self { key, public }
    }

    /// A new key with the next id, endorsed by this one. `None` once ids
    /// are exhausted.
    pub fn successor(&self, created_at: u64, rng: &mut impl CryptoRngCore) -> Option<Self> {
        let id = self.public.id.checked_add(1)?;
        let key = Box::new(SigningKey::generate(rng));
        let verifying = key.verifying_key();
        let message = ServerKey::endorsed_bytes(id, &verifying, created_at);
        let endorsement = sign_with(&self.key, CONTEXT_SERVER_KEY, &message).to_bytes();
        let public = ServerKey {
            id,
            key: verifying,
            created_at,
            endorsement: Some(endorsement),
        };
        Some(Self { key, public })
    }

    /// The public half, as it appears in the chain.
    pub fn public(&self) -> &ServerKey {
        &self.public
    }

    pub(crate) fn sign(&self, context: &[u8], message: &[u8]) -> [u8; 64] {
        sign_with(&self.key, context, message).to_bytes()
    }

    /// Encodes the secret key for storage.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let proto = state::ServerSigningKeyState {
            version: VERSION,
            id: self.public.id,
            signing_secret: self.key.to_bytes().to_vec(),
            created_at: self.public.created_at,
            endorsement: self
                .public
                .endorsement
                .map(|e| e.to_vec())
                .unwrap_or_default(),
        };
        Zeroizing::new(prost::Message::encode_to_vec(&proto))
    }

    /// Decodes a key written by [`Self::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let proto: state::ServerSigningKeyState = decode_proto(bytes, MAX_ENCODED_LEN)?;
        check_version(proto.version, VERSION)?;
        let secret = Zeroizing::new(fixed::<32>("signing_secret", &proto.signing_secret)?);
        let key = Box::new(SigningKey::from_bytes(&secret));
        let public = ServerKey::from_proto(&wire::ServerKey {
            id: proto.id,
            public_key: key.verifying_key().to_bytes().to_vec(),
            created_at: proto.created_at,
            endorsement: proto.endorsement.clone(),
        })?;
        Ok(Self { key, public })
    }
}

impl core::fmt::Debug for ServerSigningKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ServerSigningKey")
            .field("id", &self.public.id)
            .finish_non_exhaustive()
    }
}

/// A key a client trusts, and when it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TrustedKey {
    id: u32,
    key: VerifyingKey,
    created_at: u64,
}

/// The server keys a client accepts sender certificates from: the pinned
/// key and its endorsed successors, older ones only while certificates
/// they signed may still be valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedServerKeys {
    keys: Vec<TrustedKey>,
}

impl TrustedServerKeys {
    /// Trust in one key, as learned when registering or linking (over the
    /// TLS connection the account was made on).
    pub fn pin(id: u32, public_key: &[u8], created_at: u64) -> Result<Self, DecodeError> {
        if id == 0 {
            return Err(DecodeError::InvalidValue("server_key.id"));
        }
        let key = verifying_key("server_key.public_key", public_key)?;
        Ok(Self {
            keys: vec![TrustedKey {
                id,
                key,
                created_at,
            }],
        })
    }

    /// Id of the newest trusted key.
    pub fn newest_id(&self) -> u32 {
        self.keys.last().map_or(0, |k| k.id)
    }

    /// The trusted key with `id`, if any, and the last envelope time its
    /// certificates are good for (`None` for the newest key): a successor
    /// made at `t` means no certificate of the older key outlives
    /// `t + MAX_CERTIFICATE_TTL_MS` (plus an hour's slack).
    pub(crate) fn key(&self, id: u32) -> Option<(&VerifyingKey, Option<u64>)> {
        let index = self.keys.iter().position(|k| k.id == id)?;
        let valid_until = self.keys.get(index + 1).map(|successor| {
            successor
                .created_at
                .saturating_add(MAX_CERTIFICATE_TTL_MS)
                .saturating_add(RETIRE_SLACK_MS)
        });
        Some((&self.keys[index].key, valid_until))
    }

    /// Accepts every key of `chain` endorsed, link by link, by the newest
    /// trusted key, then forgets older keys no envelope signed under which
    /// can still be queued at `now_ms` ([`QUEUE_RETENTION_MS`] past their
    /// validity). Returns how many keys were added. On error nothing
    /// changes.
    pub fn advance(&mut self, chain: &ServerKeyChain, now_ms: u64) -> Result<usize, ChainError> {
        let mut next = self.clone();
        let mut added = 0;
        for key in chain.keys() {
            let newest = next.keys.last().ok_or(ChainError::Gap(0))?;
            if key.id <= newest.id {
                match next.keys.iter().find(|k| k.id == key.id) {
                    Some(trusted) if trusted.key != key.key => {
                        return Err(ChainError::Fork(key.id));
                    }
                    _ => continue,
                }
            }
            if Some(key.id) != newest.id.checked_add(1) {
                return Err(ChainError::Gap(newest.id));
            }
            key.check_endorsement(&newest.key)?;
            next.keys.push(TrustedKey {
                id: key.id,
                key: key.key,
                created_at: key.created_at,
            });
            added += 1;
        }
        next.retire(now_ms);
        *self = next;
        Ok(added)
    }

    /// Drops the oldest keys while no envelope they certified can still be
    /// queued, and keeps at most [`MAX_TRUSTED_KEYS`].
    fn retire(&mut self, now_ms: u64) {
        let mut keep_from = 0;
        for (index, pair) in self.keys.windows(2).enumerate() {
            let last_queued = pair[1]
                .created_at
                .saturating_add(MAX_CERTIFICATE_TTL_MS)
                .saturating_add(RETIRE_SLACK_MS)
                .saturating_add(QUEUE_RETENTION_MS);
            if last_queued >= now_ms {
                break;
            }
            keep_from = index + 1;
        }
        keep_from = keep_from.max(self.keys.len().saturating_sub(MAX_TRUSTED_KEYS));
        self.keys.drain(..keep_from);
    }

    /// Encodes the trusted keys for the client's store.
    pub fn to_bytes(&self) -> Vec<u8> {
        let proto = state::TrustedServerKeysState {
            version: VERSION,
            keys: self
                .keys
                .iter()
                .map(|k| state::TrustedServerKeyState {
                    id: k.id,
                    public_key: k.key.to_bytes().to_vec(),
                    created_at: k.created_at,
                })
                .collect(),
        };
        prost::Message::encode_to_vec(&proto)
    }

    /// Decodes what [`Self::to_bytes`] wrote.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let proto: state::TrustedServerKeysState = decode_proto(bytes, MAX_ENCODED_LEN)?;
        check_version(proto.version, VERSION)?;
        if proto.keys.is_empty() || proto.keys.len() > MAX_TRUSTED_KEYS {
            return Err(DecodeError::InvalidValue("trusted_server_keys.keys"));
        }
        let keys = proto
            .keys
            .iter()
            .map(|k| {
                Ok(TrustedKey {
                    id: k.id,
                    key: verifying_key("server_key.public_key", &k.public_key)?,
                    created_at: k.created_at,
                })
            })
            .collect::<Result<Vec<_>, DecodeError>>()?;
        if keys.iter().any(|k| k.id == 0) || keys.windows(2).any(|w| w[1].id <= w[0].id) {
            return Err(DecodeError::InvalidValue("trusted_server_keys.keys"));
        }
        Ok(Self { keys })
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    const DAY: u64 = 24 * 3_600_000;

    fn chain_of(n: usize, rng: &mut ChaCha20Rng) -> (Vec<ServerSigningKey>, ServerKeyChain) {
        let mut secrets = vec![ServerSigningKey::generate(1_000, rng)];
        for i in 1..n {
            let next = secrets[i - 1]
                .successor(1_000 + i as u64 * DAY, rng)
                .unwrap();
            secrets.push(next);
        }
        let chain = ServerKeyChain::new(secrets.iter().map(|s| s.public().clone()).collect());
        (secrets, chain.unwrap())
    }

    fn pinned(key: &ServerSigningKey) -> TrustedServerKeys {
        let public = key.public();
        TrustedServerKeys::pin(public.id(), &public.public_key(), public.created_at()).unwrap()
    }

    #[test]
    fn rotation_is_accepted_from_the_pinned_key() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let (secrets, chain) = chain_of(3, &mut rng);
        let decoded = ServerKeyChain::from_bytes(&chain.to_bytes()).unwrap();
        assert_eq!(decoded, chain);
        let mut trust = pinned(&secrets[0]);
        assert_eq!(trust.advance(&chain, 2 * DAY), Ok(2));
        assert_eq!(trust.newest_id(), 3);
        assert!(
            trust.key(1).is_some(),
            "key 1 kept while its certificates live"
        );
        assert_eq!(trust.advance(&chain, 2 * DAY), Ok(0), "idempotent");
        let restored = TrustedServerKeys::from_bytes(&trust.to_bytes()).unwrap();
        assert_eq!(restored, trust);
    }

    #[test]
    fn old_keys_retire_once_their_certificates_expired() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let (secrets, chain) = chain_of(2, &mut rng);
        let mut trust = pinned(&secrets[0]);
        let successor_made = secrets[1].public().created_at();
        trust.advance(&chain, successor_made + 8 * DAY).unwrap();
        assert!(
            trust.key(1).is_some(),
            "kept while its envelopes may be queued"
        );
        trust
            .advance(&chain, successor_made + 98 * DAY + 1)
            .unwrap();
        assert!(trust.key(1).is_none());
        assert!(trust.key(2).is_some());
    }

    #[test]
    fn a_key_from_another_chain_is_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let (secrets, _) = chain_of(1, &mut rng);
        let (_, other) = chain_of(2, &mut rng);
        let mut trust = pinned(&secrets[0]);
        let before = trust.clone();
        assert_eq!(trust.advance(&other, 0), Err(ChainError::Fork(1)));
        // Without the forked key 1: key 2 is not endorsed by the trusted key 1.
        let tail = ServerKeyChain::new(other.keys()[1..].to_vec()).unwrap();
        assert_eq!(trust.advance(&tail, 0), Err(ChainError::BadEndorsement(2)));
        assert_eq!(trust, before, "nothing trusted from a refused chain");
    }

    #[test]
    fn a_chain_that_skips_a_key_is_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let (secrets, chain) = chain_of(3, &mut rng);
        let mut trust = pinned(&secrets[0]);
        let tail = ServerKeyChain::new(chain.keys()[2..].to_vec()).unwrap();
        assert_eq!(trust.advance(&tail, 0), Err(ChainError::Gap(1)));
    }

    #[test]
    fn a_tampered_endorsement_is_refused_on_decode() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let (_, chain) = chain_of(2, &mut rng);
        let mut keys = chain.keys().to_vec();
        keys[1].created_at += 1;
        assert_eq!(
            ServerKeyChain::new(keys),
            Err(ChainError::BadEndorsement(2))
        );
        let mut keys = chain.keys().to_vec();
        keys[1].id = 3;
        assert_eq!(ServerKeyChain::new(keys), Err(ChainError::NotConsecutive));
        assert_eq!(ServerKeyChain::new(vec![]), Err(ChainError::NotConsecutive));
    }

    #[test]
    fn signing_keys_survive_storage() {
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let (secrets, _) = chain_of(2, &mut rng);
        let restored = ServerSigningKey::from_bytes(&secrets[1].to_bytes()).unwrap();
        assert_eq!(restored.public(), secrets[1].public());
        assert!(!format!("{restored:?}").contains(&hex::encode(secrets[1].key.to_bytes())));
    }
}
