//! Unidentified delivery (`crypto/SPEC.md` §15.8): an account's access
//! key, which contacts learn inside encrypted messages and present instead
//! of saying who they are, and the account's choice whether strangers may
//! send it sealed envelopes at all.
//!
//! The server stores only the key's SHA-256 and compares in constant time,
//! against a fixed value when no key is set, so that neither the answer's
//! content nor its timing says more than "admitted or not".

use sha2::{Digest, Sha256};
use starling_protocol::api::SetAccess;
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::auth::AuthedDevice;
use crate::encoding::decode_b64;
use crate::error::{AppError, ErrorCode};
use crate::services::access_cache::Cached;
use crate::store::AccessRecord;

/// Length of an access key.
pub const ACCESS_KEY_LEN: usize = 16;

/// Compared against when an account has no key: no key hashes to it
/// knowingly (it is not a SHA-256 output anyone has a preimage for).
const NO_KEY: [u8; 32] = [0xa5; 32];

/// Whether a sealed envelope for `record`'s account is admitted with the
/// access key `presented` (or none): a matching key, or an account open
/// to strangers (which accepts a wrong key too, as Signal does: the
/// sender could as well have presented none).
pub fn admits(record: &AccessRecord, presented: Option<&[u8; ACCESS_KEY_LEN]>) -> bool {
    let Some(key) = presented else {
        return record.sealed_from_strangers;
    };
    let hash: [u8; 32] = Sha256::digest(key).into();
    let stored = record.key_hash.unwrap_or(NO_KEY);
    let matches = bool::from(hash.ct_eq(&stored)) & record.key_hash.is_some();
    matches | record.sealed_from_strangers
}

/// Parses an access key from base64.
pub fn parse_key(field: &'static str, value: &str) -> Result<[u8; ACCESS_KEY_LEN], AppError> {
    let bytes = zeroize::Zeroizing::new(decode_b64(field, value)?);
    <[u8; ACCESS_KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
        AppError::bad_request(
            ErrorCode::BadJson,
            format!("`{field}` must be {ACCESS_KEY_LEN} bytes"),
        )
    })
}

/// The access record of an enabled account named `username`, from the
/// cache when it was read less than `access_cache::TTL` ago.
pub async fn lookup(state: &AppState, username: &str) -> Result<Option<AccessRecord>, AppError> {
    let now = std::time::Instant::now();
    match state.access_cache.get(username, now) {
        Some(Cached::Present(record)) => return Ok(Some(record)),
        Some(Cached::Absent) => return Ok(None),
        None => {}
    }
    let generation = state.access_cache.generation();
    let record = state.store.access(username).await?;
    state
        .access_cache
        .put(username, record.clone(), now, generation);
    Ok(record)
}

/// `PUT /v1/accounts/access` for the calling device's account.
pub async fn set(
    state: &AppState,
    device: &AuthedDevice,
    request: &SetAccess,
) -> Result<(), AppError> {
    let key = zeroize::Zeroizing::new(parse_key("access_key", &request.access_key)?);
    let hash: [u8; 32] = Sha256::digest(key.as_slice()).into();
    let written = state
        .store
        .set_access(
            device.account_id,
            &hash,
            request.sealed_from_strangers,
            request.if_absent,
        )
        .await?;
    if written {
        state.access_cache.forget(&device.username);
        Ok(())
    } else if request.if_absent {
        Err(AppError::Conflict {
            code: ErrorCode::AccessKeySet,
            reason: "the account already has an access key".into(),
        })
    } else {
        Err(AppError::NotFound("account"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: Option<&[u8; 16]>, strangers: bool) -> AccessRecord {
        AccessRecord {
            account_id: 1,
            key_hash: key.map(|k| Sha256::digest(k).into()),
            sealed_from_strangers: strangers,
        }
    }

    #[test]
    fn the_right_key_or_an_open_account_admits() {
        let key = [7u8; 16];
        let wrong = [8u8; 16];
        assert!(admits(&record(Some(&key), false), Some(&key)));
        assert!(!admits(&record(Some(&key), false), Some(&wrong)));
        assert!(!admits(&record(Some(&key), false), None));
        assert!(admits(&record(Some(&key), true), None));
        assert!(admits(&record(Some(&key), true), Some(&wrong)));
        // No key set: nothing matches, not even a preimage-free guess.
        assert!(!admits(&record(None, false), Some(&key)));
        assert!(admits(&record(None, true), None));
    }

    #[test]
    fn keys_must_be_sixteen_bytes_of_base64() {
        assert!(parse_key("k", "AAAAAAAAAAAAAAAAAAAAAA==").is_ok());
        assert!(parse_key("k", "AAAA").is_err());
        assert!(parse_key("k", "not base64!").is_err());
    }
}
