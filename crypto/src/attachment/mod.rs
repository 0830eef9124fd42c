//! Attachment encryption: a fresh key per file and the STREAM construction
//! (Hoang, Reyhanitabar, Rogaway, Vizár 2015) over ChaCha20-Poly1305, as
//! specified by `aead-stream` (`StreamBE32`: 7-byte nonce prefix, 32-bit
//! big-endian chunk counter, last-chunk flag). Constant memory for any size.
//!
//! Format (version 4): a header `version (1) || nonce prefix (7)`, then
//! chunks of [`CHUNK_SIZE`] plaintext bytes plus a 16-byte tag; the flagged
//! last chunk holds 0 to `CHUNK_SIZE - 1` bytes, so a full chunk is never
//! the last one and is sealed (or opened) as soon as it is complete. The
//! nonce prefix is in every chunk's nonce; chunks carry no associated data
//! (version 2, still read, had the header as every chunk's associated
//! data). The plaintext stream is the file followed by zeros up to its
//! Padmé length (SPEC §14.1), so that the stored size tells little about
//! the file's (version 3, still read, had no padding). The BLAKE3 digest of
//! the whole
//! ciphertext and the plaintext length travel, with the key, in the message
//! that shares the file. Reordering, truncation, extension and tampering
//! are all detected; output of [`AttachmentDecryptor::update`] is
//! authenticated chunk by chunk, but the file is complete only when
//! [`AttachmentDecryptor::finish`] returns `Ok`.
//!
//! Chunks are sealed and opened out of place, from the caller's input
//! straight into the caller's output (`update_into`), or appended to a
//! `Vec` (`update`); only a chunk split across calls is gathered in an
//! internal buffer.
//!
//! This file holds the types and constants; the chunk cipher, the digest,
//! the encryptor and the decryptor each have a file of their own.

mod chunk;
mod decrypt;
mod digest;
mod encrypt;
mod pending;

use rand_core::CryptoRngCore;
use thiserror::Error;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

pub use chunk::INFO_ATTACHMENT_V4;
pub use decrypt::AttachmentDecryptor;
pub use encrypt::AttachmentEncryptor;

/// Plaintext bytes per chunk (64 KiB).
pub const CHUNK_SIZE: usize = 64 * 1024;
/// Authentication tag per chunk.
pub const TAG_SIZE: usize = 16;
/// Format version, the first header byte, of the streams this crate
/// writes: the current version, 4, which pads the file with zeros to its
/// Padmé length and seals every chunk without associated data.
/// [`UNPADDED_ATTACHMENT_VERSION`] and [`LEGACY_ATTACHMENT_VERSION`] are
/// still read; version 1 is refused.
pub const ATTACHMENT_VERSION: u8 = 4;
/// Version 3, still decrypted but never written: as version 4 without
/// padding, so its length is the file's.
pub const UNPADDED_ATTACHMENT_VERSION: u8 = 3;
/// The legacy format version, 2, that is still decrypted but never written:
/// the header is every chunk's associated data (SPEC §9.5).
pub const LEGACY_ATTACHMENT_VERSION: u8 = 2;
/// Header length: version and nonce prefix.
pub const HEADER_SIZE: usize = 8;
/// A full chunk once sealed: ciphertext and tag.
pub const SEALED_CHUNK: usize = CHUNK_SIZE + TAG_SIZE;

/// An attachment stream could not be processed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttachmentError {
    /// The stream ended before its header.
    #[error("attachment too short")]
    TooShort,
    /// Unknown format version.
    #[error("unsupported attachment version {0}")]
    UnsupportedVersion(u8),
    /// A chunk failed authentication: tampered, reordered, or truncated.
    #[error("attachment chunk {0} failed authentication")]
    Authentication(u64),
    /// The ciphertext's digest differs from the one in the message.
    #[error("attachment digest mismatch")]
    DigestMismatch,
    /// The plaintext is longer or shorter than the message said.
    #[error("attachment length differs from the announced length")]
    LengthMismatch,
    /// The bytes after the file in a padded stream are not all zero.
    #[error("attachment padding is not zero")]
    BadPadding,
    /// More than 2^32 chunks (256 TiB).
    #[error("attachment too large")]
    TooLarge,
    /// The output buffer given to `update_into` is shorter than the bytes
    /// this call writes; nothing was processed.
    #[error("output buffer too small: {needed} bytes needed")]
    OutputTooSmall {
        /// The bytes this call needs.
        needed: usize,
    },
}

/// The key of one attachment.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct AttachmentKey(Box<[u8; 32]>);

impl AttachmentKey {
    /// A fresh random key.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut key = Box::new([0u8; 32]);
        rng.fill_bytes(&mut key[..]);
        Self(key)
    }

    /// The key bytes, to put in the (encrypted) message.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(*self.0)
    }

    /// A key received in a message.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(Box::new(*bytes))
    }

    fn as_array(&self) -> &[u8; 32] {
        &self.0
    }
}

impl core::fmt::Debug for AttachmentKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("AttachmentKey(..)")
    }
}

/// What the recipient needs besides the ciphertext.
#[derive(Debug, Clone)]
pub struct AttachmentInfo {
    /// The key.
    pub key: AttachmentKey,
    /// BLAKE3 (32 bytes) of the whole ciphertext, header included.
    pub digest: [u8; 32],
    /// Plaintext length in bytes.
    pub plaintext_len: u64,
}

/// The ciphertext length of a plaintext of `plaintext_len` bytes: every
/// full chunk, then a last chunk of the rest (possibly empty).
pub fn ciphertext_len(plaintext_len: u64) -> u64 {
    let chunks = plaintext_len / CHUNK_SIZE as u64 + 1;
    HEADER_SIZE as u64 + plaintext_len + chunks * TAG_SIZE as u64
}

/// The stream length the server stores for a file of `file_len` bytes
/// (version 4): the file padded to its Padmé length, then encrypted.
/// `None` past what a stream can hold.
pub fn stored_len(file_len: u64) -> Option<u64> {
    let padded = crate::padding::padme(file_len)?;
    let chunks = padded / CHUNK_SIZE as u64 + 1;
    (HEADER_SIZE as u64)
        .checked_add(padded)?
        .checked_add(chunks.checked_mul(TAG_SIZE as u64)?)
}

/// The plaintext stream length of a version 4 stream of `stored` bytes, if
/// `stored` is a length such a stream can have (the inverse of
/// [`stored_len`] on padded lengths): what a server checks an upload's
/// announced size with.
pub fn padded_plaintext_len_of(stored: u64) -> Option<u64> {
    let body = stored.checked_sub((HEADER_SIZE + TAG_SIZE) as u64)?;
    let full_chunks = body / SEALED_CHUNK as u64;
    let last = body % SEALED_CHUNK as u64;
    if last >= CHUNK_SIZE as u64 {
        return None;
    }
    let plaintext = full_chunks
        .checked_mul(CHUNK_SIZE as u64)?
        .checked_add(last)?;
    (crate::padding::padme(plaintext) == Some(plaintext)).then_some(plaintext)
}
