//! The client's error type: one enum, each variant saying what went wrong
//! and, where a person can act on it, what to do next. Nothing here carries
//! message content, keys or credentials.

use thiserror::Error;

/// Everything a client operation can fail with.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The passphrase does not open the local store.
    #[error("the passphrase does not open this store (wrong passphrase, or not a Starling home)")]
    WrongPassphrase,
    /// No account in this home yet.
    #[error("this home has no account yet: run `starling register` or `starling link` first")]
    NotRegistered,
    /// The home already holds an account.
    #[error("this home already has an account ({0}); use another --home")]
    AlreadyRegistered(String),
    /// Another process (or another open store in this one) uses the home.
    #[error("another starling process is using this home; close it (or wait for it) and try again")]
    HomeInUse,
    /// The server refused a request.
    #[error("server refused ({status} {code}): {reason}")]
    Server {
        /// HTTP status.
        status: u16,
        /// The server's error code.
        code: String,
        /// The server's reason.
        reason: String,
    },
    /// The server could not be reached or the connection broke.
    #[error("cannot reach the server: {0}")]
    Network(String),
    /// The server's TLS certificate does not match the pinned fingerprint.
    #[error(
        "the server's certificate does not match the pinned fingerprint (check --ca-fingerprint against what the server printed)"
    )]
    CertificateMismatch,
    /// The server sent something that is not valid protocol.
    #[error("the server sent an invalid response: {0}")]
    Protocol(String),
    /// No such account, or it has no devices.
    #[error("unknown user `{0}`")]
    UnknownUser(String),
    /// No such group in this home.
    #[error("unknown group `{0}` (see `starling group list`)")]
    UnknownGroup(String),
    /// A verified contact's keys changed: sending is blocked until the
    /// safety number is compared again.
    #[error(
        "{0}'s safety number changed since you verified it; compare it again (`starling safety-number {0}`) and run `starling verify {0}`"
    )]
    UntrustedIdentity(String),
    /// A cryptographic operation failed.
    #[error("crypto: {0}")]
    Crypto(String),
    /// The local store failed.
    #[error("local store: {0}")]
    Store(#[from] sqlx::Error),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// An argument is not acceptable.
    #[error("{0}")]
    Invalid(String),
}

impl ClientError {
    pub(crate) fn crypto(error: impl std::fmt::Display) -> Self {
        Self::Crypto(error.to_string())
    }

    pub(crate) fn protocol(error: impl std::fmt::Display) -> Self {
        Self::Protocol(error.to_string())
    }
}

impl From<reqwest::Error> for ClientError {
    fn from(error: reqwest::Error) -> Self {
        if crate::tls::is_pin_mismatch(&error) {
            return Self::CertificateMismatch;
        }
        // Name the root cause (refused, timed out, certificate); reqwest's
        // messages never include headers or bodies.
        let mut cause: &dyn std::error::Error = &error;
        while let Some(source) = cause.source() {
            cause = source;
        }
        let root = cause.to_string();
        Self::Network(format!("{} ({root})", error.without_url()))
    }
}

impl From<prost::DecodeError> for ClientError {
    fn from(error: prost::DecodeError) -> Self {
        Self::Protocol(error.to_string())
    }
}

/// Shorthand.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;
