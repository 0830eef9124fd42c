//! The client's error type: one enum, each variant saying what went wrong
//! and, where a person can act on it, what to do next. Errors of the
//! libraries underneath are kept whole as sources ([`ClientError::Session`]
//! and the other crypto variants, [`ClientError::CallMedia`], ...), so a
//! caller can tell them apart by type. Nothing here carries message
//! content, keys or credentials.

use std::path::PathBuf;

use starling_crypto::attachment::AttachmentError;
use starling_crypto::group::GroupEncryptError;
use starling_crypto::keys::SignatureError;
use starling_crypto::prekeys::BundleError;
use starling_crypto::ratchet::{EncryptError, SessionSetupError};
use starling_crypto::{DecodeError, PreKeyStoreError};
use thiserror::Error;

pub use crate::call::media::MediaError;
pub use crate::conversation::ConversationKeyError;

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
    /// The server says this device was removed from its account (by
    /// another device of it): its credentials no longer work.
    #[error(
        "the server says this device was removed from the account; to use it again, link it anew (`starling devices link-code` on a device of the account, then `starling link` with another --home)"
    )]
    DeviceRemoved,
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
    /// The server URL cannot be used.
    #[error(transparent)]
    ServerUrl(#[from] ServerUrlError),
    /// The stored credential cannot be sent as a header.
    #[error("{0}")]
    Credential(#[from] tokio_tungstenite::tungstenite::http::header::InvalidHeaderValue),
    /// The `--ca-fingerprint` is not hex.
    #[error("the CA fingerprint must be 64 hex digits")]
    FingerprintNotHex,
    /// The `--ca-fingerprint` is hex of the wrong length.
    #[error("the CA fingerprint must be 64 hex digits (SHA-256)")]
    FingerprintLength,
    /// TLS could not be set up.
    #[error("{0}")]
    Tls(#[from] rustls::Error),
    /// No such account, or it has no devices.
    #[error("unknown user `{0}`")]
    UnknownUser(String),
    /// The keys the server sent are not the ones in the transparency log,
    /// or its log is not one this device can follow: nothing was sent.
    #[error("{0}")]
    Transparency(String),
    /// `@name` where `name` cannot be a username.
    #[error("`{name}` is not a username: {source}")]
    BadUsername {
        /// What was written after `@`.
        name: String,
        /// The rule it breaks.
        source: starling_protocol::IdError,
    },
    /// No such group in this home.
    #[error("unknown group `{0}` (see `starling group list`)")]
    UnknownGroup(String),
    /// A bare name is both a possible username and a group's name.
    #[error(
        "`{0}` names both a person and a group; write @{0} for the person or #{0} for the group"
    )]
    AmbiguousName(String),
    /// Several groups (none or several of them active) share a name.
    #[error("several groups are called `{0}`; use the id from `starling group list`")]
    AmbiguousGroup(String),
    /// We left the group or were removed from it.
    #[error("you are no longer a member of `{0}`")]
    NotAMember(String),
    /// A verified contact's keys changed: sending is blocked until the
    /// safety number is compared again.
    #[error(
        "{0}'s safety number changed since you verified it; compare it again (`starling safety-number {0}`) and run `starling verify {0}`"
    )]
    UntrustedIdentity(String),
    /// The digits given to `verify` are not the safety number.
    #[error("those digits are not the safety number with {0}: do not mark them verified")]
    SafetyNumberMismatch(String),
    /// A device cannot remove itself.
    #[error("this is the device you are using; remove it from another device")]
    RemovingThisDevice,
    /// A link code's secret (after the dot) does not decode.
    #[error(
        "the link code is damaged (its part after the dot is not the 22 characters `starling devices link-code` printed); copy it again"
    )]
    DamagedLinkCode,
    /// No message with that id in the history (or it was deleted).
    #[error("no such message")]
    UnknownMessage,
    /// The message carries no attachment.
    #[error("that message has no attachment")]
    NoAttachment,
    /// The path to send names no file.
    #[error("{} is not a file", .0.display())]
    NotAFile(PathBuf),
    /// The path to save to ends in no file name.
    #[error("{} is not a file name", .0.display())]
    NotAFileName(PathBuf),
    /// The file to send cannot be opened.
    #[error("cannot read {}: {source}", path.display())]
    CannotRead {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Every numbered variant of a file name to save to is taken.
    #[error("{} and its numbered variants already exist; save it elsewhere", .0.display())]
    NamesTaken(PathBuf),
    /// A call needs at least one other participant and has a limit.
    #[error("a call has 2 to {max} participants")]
    CallSize {
        /// Most participants, ourselves included.
        max: usize,
    },
    /// Nobody called while we waited.
    #[error("no call came in time")]
    NoCall,
    /// The server offers no media relay.
    #[error("this server has no media relay configured (calls.relay_url)")]
    NoMediaRelay,
    /// The media connection of a call failed.
    #[error("call media: {0}")]
    CallMedia(#[from] MediaError),
    /// SFrame media encryption failed.
    #[error("media encryption: {0}")]
    MediaEncryption(#[from] sframe::error::SframeError),
    /// Stored bytes of a key or session do not decode.
    #[error("crypto: {0}")]
    Decode(#[from] DecodeError),
    /// A stored identity key pair does not verify.
    #[error("crypto: {0}")]
    Signature(#[from] SignatureError),
    /// A prekey bundle from the server does not decode or verify.
    #[error("crypto: {0}")]
    Bundle(#[from] BundleError),
    /// Prekeys could not be generated.
    #[error("crypto: {0}")]
    PreKeys(#[from] PreKeyStoreError),
    /// A session could not be started from a bundle.
    #[error("crypto: {0}")]
    Session(#[from] SessionSetupError),
    /// A pairwise message could not be encrypted.
    #[error("crypto: {0}")]
    Encrypt(#[from] EncryptError),
    /// A group message could not be encrypted.
    #[error("crypto: {0}")]
    GroupEncrypt(#[from] GroupEncryptError),
    /// An attachment failed to encrypt, decrypt or verify.
    #[error("crypto: {0}")]
    Attachment(#[from] AttachmentError),
    /// The store key could not be derived from the passphrase.
    #[error("crypto: {0}")]
    KeyDerivation(argon2::Error),
    /// The salt beside the store is damaged.
    #[error("{} is damaged", .0.display())]
    DamagedSalt(PathBuf),
    /// A conversation key read from the store does not parse.
    #[error("local store: {0}")]
    ConversationKey(#[from] ConversationKeyError),
    /// The local store failed.
    #[error("local store: {0}")]
    Store(#[from] sqlx::Error),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Why the server URL cannot be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServerUrlError {
    /// It does not parse.
    #[error("server URL `{url}`: {source}")]
    Parse {
        /// The URL as given.
        url: String,
        /// Why.
        source: url::ParseError,
    },
    /// Neither `https://` nor `http://`.
    #[error("the server URL must start with https://")]
    Scheme,
    /// It names no host.
    #[error("server URL has no host")]
    NoHost,
    /// An API path cannot be joined to it.
    #[error("{0}")]
    Join(#[source] url::ParseError),
    /// Its WebSocket URL cannot be formed.
    #[error("bad server URL")]
    WebSocket,
    /// Its host is no valid TLS server name.
    #[error("{0}")]
    ServerName(#[from] rustls::pki_types::InvalidDnsNameError),
    /// No WebSocket request can be made for it.
    #[error("{0}")]
    Request(#[source] Box<tokio_tungstenite::tungstenite::Error>),
}

impl ClientError {
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

/// `argon2::Error` is no `std::error::Error` without argon2's `std`
/// feature, so it is kept as a value rather than a source.
impl From<argon2::Error> for ClientError {
    fn from(error: argon2::Error) -> Self {
        Self::KeyDerivation(error)
    }
}

impl From<prost::DecodeError> for ClientError {
    fn from(error: prost::DecodeError) -> Self {
        Self::Protocol(error.to_string())
    }
}

/// Shorthand.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;
