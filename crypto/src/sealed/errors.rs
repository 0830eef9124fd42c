//! Errors of sealing and unsealing. Messages never contain key bytes,
//! names or plaintext.

use thiserror::Error;

use crate::DecodeError;

use super::certificate::CertificateError;

/// Why an envelope could not be sealed. Nothing was sent.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealError {
    /// The padded envelope would exceed the largest accepted encoding.
    #[error("a sealed envelope of {len} bytes is too large")]
    TooLarge {
        /// Unpadded length of the envelope.
        len: usize,
    },
    /// A recipient's identity key has small order.
    #[error("a recipient's key is not contributory")]
    NonContributoryKey,
    /// No recipients were given.
    #[error("no recipients")]
    NoRecipients,
}

/// Why a sealed envelope was refused. Nothing about its sender may be
/// believed, and no session state has changed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnsealError {
    /// The first byte is not a sealed envelope version this library reads.
    #[error("not a sealed envelope (version byte {0:#04x})")]
    UnknownVersion(u8),
    /// The length is not an envelope bucket (SPEC §14.2).
    #[error("a sealed envelope of {0} bytes is not padded to a bucket")]
    NotABucket(usize),
    /// An outer layer did not authenticate: not for this device, or
    /// altered.
    #[error("the sealed envelope does not decrypt")]
    Decrypt,
    /// A key in the envelope has small order.
    #[error("a key in the sealed envelope is not contributory")]
    NonContributoryKey,
    /// The decrypted content has no `0x80` padding marker.
    #[error("the sealed content is not correctly padded")]
    BadPadding,
    /// The decrypted content does not decode, or a field is malformed.
    #[error(transparent)]
    Malformed(#[from] DecodeError),
    /// The key that sealed the envelope is not the certificate's: the
    /// certificate was copied from someone else's envelope.
    #[error("the envelope was not sealed by the key its certificate names")]
    StaticKeyMismatch,
    /// The certificate is not trusted.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
}

impl From<crate::keys::NonContributoryKey> for UnsealError {
    fn from(_: crate::keys::NonContributoryKey) -> Self {
        Self::NonContributoryKey
    }
}

impl From<crate::keys::NonContributoryKey> for SealError {
    fn from(_: crate::keys::NonContributoryKey) -> Self {
        Self::NonContributoryKey
    }
}
