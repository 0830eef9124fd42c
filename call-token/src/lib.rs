//! Join tokens for the media relay.
//!
//! The server signs a short-lived token for one device and one call; the
//! relay verifies it offline with the server's public key, and refuses a
//! missing, malformed, forged, expired or replayed one with a reason. Pure
//! and sans-IO: callers pass the time and the randomness.
//!
//! Format (base64url, no padding) of `payload || signature`:
//! `payload = version (1) || issued_at (8, BE, Unix s) || expires_at (8) ||
//! nonce (16) || device_id (4, BE) || len (1) || call_id || len (1) ||
//! username`, and the signature is Ed25519 (RFC 8032) over
//! `"starling-call-token-v1" || payload`.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::CryptoRngCore;
use thiserror::Error;
use zeroize::Zeroizing;

/// The format version this crate writes and reads.
pub const TOKEN_VERSION: u8 = 1;
/// Longest lifetime a token may have.
pub const MAX_TOKEN_TTL_SECS: u64 = 300;
/// Tolerated clock difference between server and relay.
pub const CLOCK_SKEW_SECS: u64 = 30;
/// Longest call id and username, in bytes.
pub const MAX_FIELD_LEN: usize = 64;
/// Tokens a relay remembers to refuse replays (each is kept until it expires).
pub const MAX_REMEMBERED_TOKENS: usize = 1_000_000;

const CONTEXT: &[u8] = b"starling-call-token-v1";
const FIXED_LEN: usize = 1 + 8 + 8 + 16 + 4;

/// Why a token was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a token of this format.
    #[error("malformed token")]
    Malformed,
    /// A version this relay does not know.
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
    /// A call id or username that cannot be put in a token.
    #[error("call id and username must be 1 to {MAX_FIELD_LEN} bytes")]
    BadField,
}

/// What a valid token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinClaims {
    /// The call.
    pub call_id: String,
    /// The account joining.
    pub username: String,
    /// Its device.
    pub device_id: u32,
    /// Issued, Unix seconds.
    pub issued_at: u64,
    /// Expires, Unix seconds.
    pub expires_at: u64,
    /// Unique per token.
    pub nonce: [u8; 16],
}

impl JoinClaims {
    fn encode(&self) -> Result<Vec<u8>, TokenError> {
        let call = self.call_id.as_bytes();
        let user = self.username.as_bytes();
        for field in [call, user] {
            if field.is_empty() || field.len() > MAX_FIELD_LEN {
                return Err(TokenError::BadField);
            }
        }
        let mut out = Vec::with_capacity(FIXED_LEN + 2 + call.len() + user.len());
        out.push(TOKEN_VERSION);
        out.extend_from_slice(&self.issued_at.to_be_bytes());
        out.extend_from_slice(&self.expires_at.to_be_bytes());
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.device_id.to_be_bytes());
        for field in [call, user] {
            out.push(u8::try_from(field.len()).map_err(|_| TokenError::BadField)?);
            out.extend_from_slice(field);
        }
        Ok(out)
    }

    fn decode(bytes: &[u8]) -> Result<Self, TokenError> {
        let (&version, rest) = bytes.split_first().ok_or(TokenError::Malformed)?;
        if version != TOKEN_VERSION {
            return Err(TokenError::UnsupportedVersion(version));
        }
        let take = |rest: &[u8], n: usize| -> Result<(Vec<u8>, usize), TokenError> {
            rest.get(..n)
                .map(|b| (b.to_vec(), n))
                .ok_or(TokenError::Malformed)
        };
        let mut at = 0;
        let mut next = |n: usize| -> Result<Vec<u8>, TokenError> {
            let (b, used) = take(rest.get(at..).ok_or(TokenError::Malformed)?, n)?;
            at += used;
            Ok(b)
        };
        let issued_at = u64::from_be_bytes(next(8)?.try_into().map_err(|_| TokenError::Malformed)?);
        let expires_at =
            u64::from_be_bytes(next(8)?.try_into().map_err(|_| TokenError::Malformed)?);
        let nonce: [u8; 16] = next(16)?.try_into().map_err(|_| TokenError::Malformed)?;
        let device_id = u32::from_be_bytes(next(4)?.try_into().map_err(|_| TokenError::Malformed)?);
        let mut text = || -> Result<String, TokenError> {
            let len = usize::from(*next(1)?.first().ok_or(TokenError::Malformed)?);
            if len == 0 || len > MAX_FIELD_LEN {
                return Err(TokenError::Malformed);
            }
            String::from_utf8(next(len)?).map_err(|_| TokenError::Malformed)
        };
        let call_id = text()?;
        let username = text()?;
        if at != rest.len() {
            return Err(TokenError::Malformed);
        }
        Ok(Self {
            call_id,
            username,
            device_id,
            issued_at,
            expires_at,
            nonce,
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

    /// A token for `username`'s `device_id` to join `call_id`, valid for
    /// `ttl_secs` from `now` (Unix seconds).
    pub fn issue(
        &self,
        call_id: &str,
        username: &str,
        device_id: u32,
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
            call_id: call_id.to_owned(),
            username: username.to_owned(),
            device_id,
            issued_at: now,
            expires_at: now.saturating_add(ttl_secs),
            nonce,
        };
        let mut token = claims.encode()?;
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
    used: HashMap<[u8; 16], u64>,
}

impl TokenVerifier {
    /// A verifier for the server's public key.
    pub fn new(public_key: &[u8; 32]) -> Result<Self, TokenError> {
        Ok(Self {
            key: VerifyingKey::from_bytes(public_key).map_err(|_| TokenError::BadSignature)?,
            used: HashMap::new(),
        })
    }

    /// Checks a token at `now` (Unix seconds) and marks it used.
    pub fn verify(&mut self, token: &str, now: u64) -> Result<JoinClaims, TokenError> {
        if token.len() > 4 * MAX_FIELD_LEN + 256 {
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
        self.used
            .retain(|_, expires| expires.saturating_add(CLOCK_SKEW_SECS) >= now);
        if self.used.contains_key(&claims.nonce) {
            return Err(TokenError::Replayed);
        }
        if self.used.len() >= MAX_REMEMBERED_TOKENS {
            return Err(TokenError::Busy);
        }
        self.used.insert(claims.nonce, claims.expires_at);
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
    fn a_token_grants_its_call_once() {
        let (signer, mut verifier) = setup();
        let token = signer
            .issue("call-1", "alice", 2, NOW, 60, &mut OsRng)
            .unwrap();
        let claims = verifier.verify(&token, NOW + 5).unwrap();
        assert_eq!(
            (
                claims.call_id.as_str(),
                claims.username.as_str(),
                claims.device_id
            ),
            ("call-1", "alice", 2)
        );
        assert_eq!(verifier.verify(&token, NOW + 6), Err(TokenError::Replayed));
    }

    #[test]
    fn expired_early_forged_and_foreign_tokens_are_refused() {
        let (signer, mut verifier) = setup();
        let token = signer.issue("c", "alice", 1, NOW, 60, &mut OsRng).unwrap();
        assert_eq!(
            verifier.verify(&token, NOW + 60 + CLOCK_SKEW_SECS + 1),
            Err(TokenError::Expired)
        );
        let early = signer
            .issue("c", "alice", 1, NOW + 120, 60, &mut OsRng)
            .unwrap();
        assert_eq!(verifier.verify(&early, NOW), Err(TokenError::NotYetValid));
        let other = TokenSigner::generate(&mut OsRng);
        let foreign = other.issue("c", "alice", 1, NOW, 60, &mut OsRng).unwrap();
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
            signer.issue("c", "alice", 1, NOW, MAX_TOKEN_TTL_SECS + 1, &mut OsRng),
            Err(TokenError::TooLongLived)
        );
        assert_eq!(
            signer.issue("", "alice", 1, NOW, 60, &mut OsRng),
            Err(TokenError::BadField)
        );
    }

    #[test]
    fn used_tokens_are_forgotten_once_expired() {
        let (signer, mut verifier) = setup();
        for i in 0..10 {
            let token = signer.issue("c", "alice", i, NOW, 10, &mut OsRng).unwrap();
            verifier.verify(&token, NOW).unwrap();
        }
        assert_eq!(verifier.remembered(), 10);
        let later = signer
            .issue("c", "bob", 1, NOW + 100, 10, &mut OsRng)
            .unwrap();
        verifier.verify(&later, NOW + 100).unwrap();
        assert_eq!(verifier.remembered(), 1);
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
