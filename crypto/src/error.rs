//! Errors shared by every decoder of the crate.
//!
//! Each operation has its own error enum in its own module; this file holds
//! only [`DecodeError`], which all of them wrap when bytes fail to parse.
//! Messages are lowercase and never contain key bytes or plaintext.

use thiserror::Error;

/// Bytes that are not a valid encoding of the expected type.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is larger than the format allows.
    #[error("input of {actual} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size of the input.
        actual: usize,
        /// Largest accepted size.
        limit: usize,
    },
    /// The protobuf encoding is malformed.
    #[error("malformed protobuf encoding")]
    Protobuf,
    /// The format version is not one this library speaks.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u32),
    /// A required field is absent.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A field has the wrong length.
    #[error("field `{field}` has {actual} bytes, expected {expected}")]
    BadLength {
        /// Name of the field.
        field: &'static str,
        /// Length found.
        actual: usize,
        /// Length required.
        expected: usize,
    },
    /// A field holds a value that is not a valid key or is out of range.
    #[error("field `{0}` holds an invalid value")]
    InvalidValue(&'static str),
}

/// Largest encoded message or bundle this crate decodes (1 MiB).
///
/// Ratchet and group messages carry client payloads; attachments travel
/// separately (see [`crate::attachment`]), so a megabyte is ample.
pub const MAX_ENCODED_LEN: usize = 1 << 20;

/// Largest encoded local state this crate decodes (16 MiB): a session with
/// every skipped key stored stays far below this.
pub const MAX_STATE_LEN: usize = 16 << 20;

/// Decodes a prost message after checking the input size.
pub(crate) fn decode_proto<M: prost::Message + Default>(
    bytes: &[u8],
    limit: usize,
) -> Result<M, DecodeError> {
    if bytes.len() > limit {
        return Err(DecodeError::TooLarge {
            actual: bytes.len(),
            limit,
        });
    }
    M::decode(bytes).map_err(|_| DecodeError::Protobuf)
}

/// Checks a format version field.
pub(crate) fn check_version(version: u32, supported: u32) -> Result<(), DecodeError> {
    if version == supported {
        Ok(())
    } else {
        Err(DecodeError::UnsupportedVersion(version))
    }
}

/// Copies a fixed-length field out of a byte slice.
pub(crate) fn fixed<const N: usize>(
    field: &'static str,
    bytes: &[u8],
) -> Result<[u8; N], DecodeError> {
    bytes.try_into().map_err(|_| DecodeError::BadLength {
        field,
        actual: bytes.len(),
        expected: N,
    })
}
