//! Media relay join tokens and TURN credentials.

use serde::{Deserialize, Serialize};

use super::Redacted;

/// `POST /v1/calls/tokens`: a join token (it names neither the call nor
/// the device).
#[derive(Clone, Serialize, Deserialize)]
pub struct JoinToken {
    /// The token (base64url): a secret until used.
    pub token: String,
    /// Expiry, Unix seconds.
    pub expires_at: u64,
    /// Where the relay is, if configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_url: Option<String>,
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            token: _,
            expires_at,
            relay_url,
        } = self;
        f.debug_struct("JoinToken")
            .field("token", &Redacted)
            .field("expires_at", expires_at)
            .field("relay_url", relay_url)
            .finish()
    }
}

/// `GET /v1/calls/token-key`: the relay's verification key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenKey {
    /// Ed25519 public key, base64url.
    pub public_key: String,
}

/// `GET /v1/calls/turn`: TURN credentials (coturn `use-auth-secret`).
#[derive(Clone, Serialize, Deserialize)]
pub struct TurnCredentials {
    /// `<expiry>:<username>`.
    pub username: String,
    /// base64(HMAC-SHA1(secret, username)): a secret.
    pub password: String,
    /// Seconds they stay valid.
    pub ttl: u64,
    /// TURN server URLs (`turn:host:port?transport=udp`, ...).
    pub urls: Vec<String>,
}

impl std::fmt::Debug for TurnCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            username: _,
            password: _,
            ttl,
            urls,
        } = self;
        f.debug_struct("TurnCredentials")
            .field("ttl", ttl)
            .field("urls", urls)
            .finish_non_exhaustive()
    }
}
