//! Device credentials: a random 32-byte secret per device, shown once at
//! registration and stored only as its SHA-256. Requests carry
//! `Authorization: Bearer <username>:<device id>:<credential>`; the hash is
//! compared in constant time.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::AppError;

/// A new credential: the secret for the device, the hash for the database.
pub struct Credential {
    /// Base64url secret, returned once to the device.
    pub secret: String,
    /// SHA-256 of the secret.
    pub hash: [u8; 32],
}

impl Credential {
    /// A fresh random credential.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let secret = URL_SAFE_NO_PAD.encode(bytes);
        let hash = hash_secret(&secret);
        Self { secret, hash }
    }
}

/// SHA-256 of a credential or invite code, as stored.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// An authenticated device.
#[derive(Debug, Clone)]
pub struct AuthedDevice {
    /// Its username.
    pub username: String,
    /// Its account.
    pub account_id: i64,
    /// Its device id.
    pub device_id: u32,
    /// Whether it may link and remove the account's devices.
    pub manager: bool,
}

/// Splits a bearer value into username, device id and secret.
fn parse_bearer(value: &str) -> Option<(&str, u32, &str)> {
    let token = value.strip_prefix("Bearer ")?;
    let mut parts = token.splitn(3, ':');
    let username = parts.next()?;
    let device = parts.next()?.parse().ok()?;
    let secret = parts.next()?;
    Some((username, device, secret))
}

impl AuthedDevice {
    /// Checks an `Authorization` header value against the database.
    pub async fn verify(state: &AppState, header: Option<&str>) -> Result<Self, AppError> {
        let (username, device_id, secret) = header
            .and_then(parse_bearer)
            .ok_or(AppError::Unauthorized)?;
        let presented = hash_secret(secret);
        let Some(record) = state.store.device_for_auth(username, device_id).await? else {
            // A removed device, and only it (it holds the old credential),
            // is told why.
            let removed = state.store.removed_credential(username, device_id).await?;
            if removed.is_some_and(|hash| bool::from(presented.ct_eq(&hash[..]))) {
                return Err(AppError::DeviceRemoved);
            }
            return Err(AppError::Unauthorized);
        };
        if !bool::from(presented.ct_eq(&record.credential_hash[..])) {
            return Err(AppError::Unauthorized);
        }
        if record.disabled {
            return Err(AppError::Forbidden("account disabled"));
        }
        Ok(Self {
            username: username.to_string(),
            account_id: record.account_id,
            device_id: record.device_id,
            manager: record.manager,
        })
    }
}

impl AuthedDevice {
    /// The device as rate limits and the writer key it.
    pub fn key(&self) -> (i64, u32) {
        (self.account_id, self.device_id)
    }
}

/// A device when the request carries credentials, `None` when it carries
/// none (an unidentified send); wrong credentials are refused as always.
#[derive(Debug, Clone)]
pub struct MaybeAuthed(pub Option<AuthedDevice>);

impl FromRequestParts<AppState> for MaybeAuthed {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match parts.headers.get(axum::http::header::AUTHORIZATION) {
            None => Ok(Self(None)),
            Some(value) => AuthedDevice::verify(state, value.to_str().ok())
                .await
                .map(|device| Self(Some(device))),
        }
    }
}

/// The address the request came from, when the server was started with
/// it (`ConnectInfo`); behind a reverse proxy it is the proxy's.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0.ip()),
        ))
    }
}

impl FromRequestParts<AppState> for AuthedDevice {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        Self::verify(state, header).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(
            parse_bearer("Bearer alice:2:abc:d"),
            Some(("alice", 2, "abc:d"))
        );
        assert_eq!(parse_bearer("Bearer alice:x:abc"), None);
        assert_eq!(parse_bearer("Basic alice:1:abc"), None);
        assert_eq!(parse_bearer("Bearer alice"), None);
    }

    #[test]
    fn credentials_are_random_and_hashed() {
        let a = Credential::generate();
        let b = Credential::generate();
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.hash, hash_secret(&a.secret));
        assert_eq!(a.secret.len(), 43);
    }
}
