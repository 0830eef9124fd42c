//! Join tokens for the media relay.
//!
//! The server signs a short-lived token for one device of its own; the
//! relay verifies it offline with the server's public key, and refuses a
//! missing, malformed, forged, expired or replayed one with a reason. A
//! token names no call, account or device (version 2): the server issues
//! it without learning which call it is for, and the relay admits it
//! without learning who joins. Knowing the call id (16 random bytes the
//! caller shares end to end) is what lets a device into a call. Pure and
//! sans-IO: callers pass the time and the randomness.
//!
//! Format (base64url, no padding) of `payload || signature`:
//! `payload = version (1, = 2) || issued_at (8, BE, Unix s) || expires_at
//! (8) || nonce (16)`, and the signature is Ed25519 (RFC 8032) over
//! `"starling-call-token-v2" || payload`. Version 1 (which carried the
//! call id, username and device id) is refused.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::collections::{BTreeSet, HashSet};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::CryptoRngCore;
use thiserror::Error;
use zeroize::Zeroizing;

/// The format version this crate writes and reads.
pub const TOKEN_VERSION: u8 = 2;
/// Longest lifetime a token may have: long enough for a client to fetch
/// its tokens ahead of time, not when it calls.
pub const MAX_TOKEN_TTL_SECS: u64 = 3_600;
/// Tolerated clock difference between server and relay.
pub const CLOCK_SKEW_SECS: u64 = 30;
/// Tokens a relay remembers to refuse replays (each is kept until it expires).
pub const MAX_REMEMBERED_TOKENS: usize = 1_000_000;

const CONTEXT: &[u8] = b"starling-call-token-v2";
const PAYLOAD_LEN: usize = 1 + 8 + 8 + 16;
/// Length of a token as text: payload and signature, base64url unpadded.
const TOKEN_TEXT_LEN: usize = ((PAYLOAD_LEN + 64) * 4).div_ceil(3);

/// Why a token was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a token of this format.
    #[error("malformed token")]
    Malformed,
    /// A version this relay does not know (1: a token naming its holder).
    #[error("unsupported token version {0}")]
    UnsupportedVersion(u8),
    /// Not signed by the server's key.
    #[error("token signature is invalid")]
    BadSignature,
    /// Its time is over.
    #[error("token expired")]
    Expired,
    /// Issued in the future (clocks too far apart).
    #[error("token is not valid yet")]
    NotYetValid,
    /// Valid for longer than [`MAX_TOKEN_TTL_SECS`].
    #[error("token lifetime exceeds {MAX_TOKEN_TTL_SECS} s")]
    TooLongLived,
    /// Already used to join.
    #[error("token was already used")]
    Replayed,
    /// The relay remembers too many live tokens to accept another now.
    #[error("too many live tokens; retry shortly")]
    Busy,
}

/// What a valid token grants: one join, to any call, in its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinClaims {
    /// Issued, Unix seconds.
    pub issued_at: u64,
    /// Expires, Unix seconds.
    pub expires_at: u64,
    /// Unique per token.
    pub nonce: [u8; 16],
}

impl JoinClaims {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PAYLOAD_LEN);
        out.push(TOKEN_VERSION);
        out.extend_from_slice(&self.issued_at.to_be_bytes());
        out.extend_from_slice(&self.expires_at.to_be_bytes());
        out.extend_from_slice(&self.nonce);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, TokenError> {
        let (&version, rest) = bytes.split_first().ok_or(TokenError::Malformed)?;
        if version != TOKEN_VERSION {
            return Err(TokenError::UnsupportedVersion(version));
        }
        if rest.len() != PAYLOAD_LEN - 1 {
            return Err(TokenError::Malformed);
        }
        let (issued_at, rest) = rest.split_at(8);
        let (expires_at, nonce) = rest.split_at(8);
        let number = |b: &[u8]| b.try_into().map(u64::from_be_bytes);
        Ok(Self {
            issued_at: number(issued_at).map_err(|_| TokenError::Malformed)?,
            expires_at: number(expires_at).map_err(|_| TokenError::Malformed)?,
            nonce: nonce.try_into().map_err(|_| TokenError::Malformed)?,
        })
    }
}

/// The server's token signing key. Wiped on drop, never printed.
pub struct TokenSigner {
    key: SigningKey,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("public_key", &URL_SAFE_NO_PAD.encode(self.public_key()))
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// A new random key.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        Self {
            key: SigningKey::generate(rng),
        }
    }

    /// A stored key.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(bytes),
        }
    }

    /// The secret, for storage.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.key.to_bytes())
    }

    /// The public key the relay is configured with.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// A token for one join, valid for `ttl_secs` from `now` (Unix
    /// seconds).
    pub fn issue(
        &self,
        now: u64,
        ttl_secs: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<String, TokenError> {
        if ttl_secs == 0 || ttl_secs > MAX_TOKEN_TTL_SECS {
            return Err(TokenError::TooLongLived);
        }
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        let claims = JoinClaims {
            issued_at: now,
            expires_at: now.saturating_add(ttl_secs),
            nonce,
        };
        let mut token = claims.encode();
        let signature = self.key.sign(&[CONTEXT, &token].concat());
        token.extend_from_slice(&signature.to_bytes());
        Ok(URL_SAFE_NO_PAD.encode(token))
    }
}

/// The relay's side: checks tokens and remembers used ones until they
/// expire.
#[derive(Debug)]
pub struct TokenVerifier {
    key: VerifyingKey,
    used: HashSet<[u8; 16]>,
    /// The used tokens by expiry, to forget them in order (each prune
    /// costs what it forgets, not what is remembered).
    expiries: BTreeSet<(u64, [u8; 16])>,
    /// The latest time seen: a clock set back forgets nothing early.
    latest: u64,
}

impl TokenVerifier {
    /// A verifier for the server's public key.
    pub fn new(public_key: &[u8; 32]) -> Result<Self, TokenError> {
        Ok(Self {
            key: VerifyingKey::from_bytes(public_key).map_err(|_| TokenError::BadSignature)?,
            used: HashSet::new(),
            expiries: BTreeSet::new(),
            latest: 0,
        })
    }

    /// Checks a token at `now` (Unix seconds) and marks it used.
    pub fn verify(&mut self, token: &str, now: u64) -> Result<JoinClaims, TokenError> {
        // A version 1 token is longer: read far enough to name it.
        if token.len() > TOKEN_TEXT_LEN + 4 * 2 * 64 + 8 {
            return Err(TokenError::Malformed);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| TokenError::Malformed)?;
        let split = bytes.len().checked_sub(64).ok_or(TokenError::Malformed)?;
        let (payload, signature) = bytes.split_at(split);
        let signature = Signature::from_slice(signature).map_err(|_| TokenError::Malformed)?;
        self.key
            .verify_strict(&[CONTEXT, payload].concat(), &signature)
            .map_err(|_| TokenError::BadSignature)?;
        let claims = JoinClaims::decode(payload)?;
        if claims.expires_at.saturating_sub(claims.issued_at) > MAX_TOKEN_TTL_SECS {
            return Err(TokenError::TooLongLived);
        }
        if claims.issued_at > now.saturating_add(CLOCK_SKEW_SECS) {
            return Err(TokenError::NotYetValid);
        }
        if claims.expires_at.saturating_add(CLOCK_SKEW_SECS) < now {
            return Err(TokenError::Expired);
        }
        if self.used.contains(&claims.nonce) {
            return Err(TokenError::Replayed);
        }
        // Forget only what expired by the latest time ever seen: a token
        // forgotten must stay expired even if the clock is set back.
        self.latest = self.latest.max(now);
        if claims.expires_at.saturating_add(CLOCK_SKEW_SECS) < self.latest {
            return Err(TokenError::Expired);
        }
        while let Some(&(expires, nonce)) = self.expiries.first() {
            if expires.saturating_add(CLOCK_SKEW_SECS) >= self.latest {
                break;
            }
            self.expiries.pop_first();
            self.used.remove(&nonce);
        }
        if self.used.len() >= MAX_REMEMBERED_TOKENS {
            return Err(TokenError::Busy);
        }
        self.used.insert(claims.nonce);
        self.expiries.insert((claims.expires_at, claims.nonce));
        Ok(claims)
    }

    /// Tokens remembered against replay.
    pub fn remembered(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand::rngs::OsRng;

    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn setup() -> (TokenSigner, TokenVerifier) {
        let signer = TokenSigner::generate(&mut OsRng);
        let verifier = TokenVerifier::new(&signer.public_key()).unwrap();
        (signer, verifier)
    }

    #[test]
    fn a_token_grants_one_join_and_names_nobody() {
        let (signer, mut verifier) = setup();
        let token = signer.issue(NOW, 60, &mut OsRng).unwrap();
        assert_eq!(token.len(), TOKEN_TEXT_LEN);
        let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        assert_eq!(bytes.len(), PAYLOAD_LEN + 64);
        assert_eq!(bytes[0], 2);
        let claims = verifier.verify(&token, NOW + 5).unwrap();
        assert_eq!((claims.issued_at, claims.expires_at), (NOW, NOW + 60));
        assert_eq!(verifier.verify(&token, NOW + 6), Err(TokenError::Replayed));
    }

    /// A version 1 token (call id, username, device id in the clear),
    /// validly signed under the version 1 context, is refused by version.
    #[test]
    fn version_one_is_refused() {
        let (signer, mut verifier) = setup();
        let mut payload = vec![1u8];
        payload.extend_from_slice(&NOW.to_be_bytes());
        payload.extend_from_slice(&(NOW + 60).to_be_bytes());
        payload.extend_from_slice(&[7; 16]);
        payload.extend_from_slice(&2u32.to_be_bytes());
        for field in [&b"call-1"[..], b"alice"] {
            payload.push(u8::try_from(field.len()).unwrap());
            payload.extend_from_slice(field);
        }
        for context in [&b"starling-call-token-v1"[..], CONTEXT] {
            let signature = signer.key.sign(&[context, &payload].concat());
            let token = URL_SAFE_NO_PAD.encode([&payload[..], &signature.to_bytes()].concat());
            let refused = verifier.verify(&token, NOW);
            assert!(
                matches!(
                    refused,
                    Err(TokenError::UnsupportedVersion(1) | TokenError::BadSignature)
                ),
                "{refused:?}"
            );
        }
        let signature = signer.key.sign(&[CONTEXT, &payload].concat());
        let token = URL_SAFE_NO_PAD.encode([&payload[..], &signature.to_bytes()].concat());
        assert_eq!(
            verifier.verify(&token, NOW),
            Err(TokenError::UnsupportedVersion(1))
        );
    }

    #[test]
    fn expired_early_forged_and_foreign_tokens_are_refused() {
        let (signer, mut verifier) = setup();
        let token = signer.issue(NOW, 60, &mut OsRng).unwrap();
        assert_eq!(
            verifier.verify(&token, NOW + 60 + CLOCK_SKEW_SECS + 1),
            Err(TokenError::Expired)
        );
        let early = signer.issue(NOW + 120, 60, &mut OsRng).unwrap();
        assert_eq!(verifier.verify(&early, NOW), Err(TokenError::NotYetValid));
        let other = TokenSigner::generate(&mut OsRng);
        let foreign = other.issue(NOW, 60, &mut OsRng).unwrap();
        assert_eq!(
            verifier.verify(&foreign, NOW),
            Err(TokenError::BadSignature)
        );
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        bytes[10] ^= 1;
        assert_eq!(
            verifier.verify(&URL_SAFE_NO_PAD.encode(&bytes), NOW),
            Err(TokenError::BadSignature)
        );
        assert_eq!(verifier.verify("", NOW), Err(TokenError::Malformed));
        assert_eq!(
            verifier.verify("not a token!", NOW),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            signer.issue(NOW, MAX_TOKEN_TTL_SECS + 1, &mut OsRng),
            Err(TokenError::TooLongLived)
        );
        assert_eq!(
            signer.issue(NOW, 0, &mut OsRng),
            Err(TokenError::TooLongLived)
        );
    }

    #[test]
    fn used_tokens_are_forgotten_once_expired() {
        let (signer, mut verifier) = setup();
        for _ in 0..10 {
            let token = signer.issue(NOW, 10, &mut OsRng).unwrap();
            verifier.verify(&token, NOW).unwrap();
        }
        assert_eq!(verifier.remembered(), 10);
        let later = signer.issue(NOW + 100, 10, &mut OsRng).unwrap();
        verifier.verify(&later, NOW + 100).unwrap();
        assert_eq!(verifier.remembered(), 1);
    }

    #[test]
    fn a_clock_set_back_does_not_bring_a_used_token_back() {
        let (signer, mut verifier) = setup();
        let token = signer.issue(NOW, 10, &mut OsRng).unwrap();
        verifier.verify(&token, NOW).unwrap();
        // Much later the used token is forgotten; then the clock goes back.
        let later = signer.issue(NOW + 1000, 10, &mut OsRng).unwrap();
        verifier.verify(&later, NOW + 1000).unwrap();
        assert_eq!(verifier.remembered(), 1);
        assert_eq!(verifier.verify(&token, NOW), Err(TokenError::Expired));
    }

    #[test]
    fn the_signer_never_prints_its_secret() {
        let (signer, _) = setup();
        let printed = format!("{signer:?}");
        assert!(!printed.contains(&URL_SAFE_NO_PAD.encode(*signer.to_bytes())));
        assert_eq!(
            TokenSigner::from_bytes(&signer.to_bytes()).public_key(),
            signer.public_key()
        );
    }

    proptest! {
        #[test]
        fn arbitrary_input_is_refused_without_panicking(text in ".{0,400}", bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let (_, mut verifier) = setup();
            prop_assert!(verifier.verify(&text, NOW).is_err());
            prop_assert!(verifier.verify(&URL_SAFE_NO_PAD.encode(&bytes), NOW).is_err());
            let _ = JoinClaims::decode(&bytes);
        }
    }
}
