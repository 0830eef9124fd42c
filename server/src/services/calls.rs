//! Calls: the media relay's join tokens and TURN credentials.
//!
//! A join token is short-lived and signed with the server's call-token key
//! (kept in the data folder, created on first start); it lets its holder
//! join one call on the relay, which verifies it offline
//! (`starling-call-token`). TURN credentials follow coturn's REST scheme,
//! when a TURN secret is configured.
//!
//! The server learns that a device fetched a token, not for which call:
//! the token names no call, and the relay learns no account from it. TURN
//! usernames are an expiry and random bytes. Call signalling and media
//! keys travel end to end.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use starling_call_token::{MAX_TOKEN_TTL_SECS, TokenSigner};
use starling_protocol::api::{JoinToken, TurnCredentials};

use crate::AppState;
use crate::auth::AuthedDevice;
use crate::error::AppError;

/// File of the call-token signing key in the data folder.
pub const KEY_FILE: &str = "call-token.key";

/// Shortest lifetime of TURN credentials, in seconds.
const MIN_TURN_TTL_SECS: u64 = 60;

/// Loads the signing key, or creates it (readable by the owner only).
pub fn load_or_create_signer(data_dir: &Path) -> std::io::Result<TokenSigner> {
    let secret = crate::keyfile::load_or_create(data_dir, KEY_FILE, || {
        TokenSigner::generate(&mut rand::rngs::OsRng).to_bytes()
    })?;
    Ok(TokenSigner::from_bytes(&secret))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A token that lets its holder join one call on the relay, limited per
/// device (the token itself names neither).
pub fn join_token(state: &AppState, device: &AuthedDevice) -> Result<JoinToken, AppError> {
    state.limits.call_token(device.key())?;
    let ttl = state
        .config
        .calls
        .token_ttl_seconds
        .clamp(1, MAX_TOKEN_TTL_SECS);
    let now = now_secs();
    let token = state
        .call_tokens
        .issue(now, ttl, &mut rand::rngs::OsRng)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(JoinToken {
        token,
        expires_at: now + ttl,
        relay_url: state.config.calls.relay_url.clone(),
    })
}

/// The public key the relay verifies join tokens with.
pub fn token_key(state: &AppState) -> [u8; 32] {
    state.call_tokens.public_key()
}

/// coturn's REST scheme: the password is HMAC-SHA1 of the username under
/// the shared secret.
pub fn turn_password(secret: &str, username: &str) -> Result<String, AppError> {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes())
        .map_err(|e| AppError::Internal(e.to_string()))?;
    mac.update(username.as_bytes());
    Ok(STANDARD.encode(mac.finalize().into_bytes()))
}

/// Time-limited TURN credentials, if a TURN secret is configured. The
/// username is the expiry and 16 random bytes: TURN learns no account.
pub fn turn_credentials(
    state: &AppState,
    _device: &AuthedDevice,
) -> Result<TurnCredentials, AppError> {
    let calls = &state.config.calls;
    let Some(secret) = &calls.turn_secret else {
        return Err(AppError::NotFound("TURN service (none configured)"));
    };
    let ttl = calls.turn_ttl_seconds.max(MIN_TURN_TTL_SECS);
    let mut pseudonym = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut pseudonym);
    let username = format!("{}:{}", now_secs() + ttl, URL_SAFE_NO_PAD.encode(pseudonym));
    Ok(TurnCredentials {
        password: turn_password(&secret.0, &username)?,
        username,
        ttl,
        urls: calls.turn_urls.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_password_is_base64_of_hmac_sha1() {
        // Known answer from an independent implementation (Python's hmac):
        // base64(HMAC-SHA1(b"north", b"1433133176:alice")).
        assert_eq!(
            turn_password("north", "1433133176:alice").unwrap(),
            "u4gNddj4IRK6vELk/fAjy7bO/4o="
        );
    }

    #[test]
    fn the_key_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_signer(dir.path()).unwrap();
        let second = load_or_create_signer(dir.path()).unwrap();
        assert_eq!(first.public_key(), second.public_key());
        std::fs::write(dir.path().join(KEY_FILE), b"short").unwrap();
        assert!(load_or_create_signer(dir.path()).is_err());
    }
}
