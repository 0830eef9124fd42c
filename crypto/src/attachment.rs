//! Attachment encryption: a fresh key per file and the STREAM construction
//! (Hoang, Reyhanitabar, Rogaway, Vizár 2015) over ChaCha20-Poly1305, as
//! implemented by `aead::stream` (`StreamBE32`: 7-byte nonce prefix, 32-bit
//! big-endian chunk counter, last-chunk flag). Constant memory for any size.
//!
//! Format: a header `version (1) || nonce prefix (7)`, then chunks of
//! [`CHUNK_SIZE`] plaintext bytes plus a 16-byte tag; the last chunk holds
//! 1 to [`CHUNK_SIZE`] bytes (0 only for an empty file) and is flagged. The header is every chunk's
//! associated data. The SHA-256 digest of the whole ciphertext and the
//! plaintext length travel, with the key, in the message that shares the
//! file. Reordering, truncation, extension and tampering are all detected;
//! output of [`AttachmentDecryptor::update`] is authenticated chunk by chunk,
//! but the file is complete only when [`AttachmentDecryptor::finish`]
//! returns `Ok`.

use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::aead::{KeyInit, generic_array::GenericArray};
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Plaintext bytes per chunk (64 KiB).
pub const CHUNK_SIZE: usize = 64 * 1024;
/// Authentication tag per chunk.
pub const TAG_SIZE: usize = 16;
/// Format version, the first header byte.
pub const ATTACHMENT_VERSION: u8 = 1;
/// Header length: version and nonce prefix.
pub const HEADER_SIZE: usize = 8;
const SEALED_CHUNK: usize = CHUNK_SIZE + TAG_SIZE;

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
    /// More than 2^32 chunks (256 TiB).
    #[error("attachment too large")]
    TooLarge,
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

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(GenericArray::from_slice(&self.0[..]))
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
    /// SHA-256 of the whole ciphertext, header included.
    pub digest: [u8; 32],
    /// Plaintext length in bytes.
    pub plaintext_len: u64,
}

/// The ciphertext length of a plaintext of `plaintext_len` bytes.
pub fn ciphertext_len(plaintext_len: u64) -> u64 {
    let chunk = CHUNK_SIZE as u64;
    let chunks = plaintext_len.div_ceil(chunk).max(1);
    HEADER_SIZE as u64 + plaintext_len + chunks * TAG_SIZE as u64
}

/// Encrypts a stream; feed it with [`Self::update`], close with [`Self::finish`].
pub struct AttachmentEncryptor {
    key: AttachmentKey,
    stream: EncryptorBE32<ChaCha20Poly1305>,
    header: [u8; HEADER_SIZE],
    header_sent: bool,
    buffer: Vec<u8>,
    digest: Sha256,
    plaintext_len: u64,
    chunks: u64,
}

impl core::fmt::Debug for AttachmentEncryptor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AttachmentEncryptor")
            .field("plaintext_len", &self.plaintext_len)
            .finish_non_exhaustive()
    }
}

impl AttachmentEncryptor {
    /// Starts a stream under a fresh key and nonce prefix.
    pub fn new(rng: &mut impl CryptoRngCore) -> Self {
        let key = AttachmentKey::generate(rng);
        let mut header = [0u8; HEADER_SIZE];
        header[0] = ATTACHMENT_VERSION;
        rng.fill_bytes(&mut header[1..]);
        let stream = EncryptorBE32::from_aead(key.cipher(), GenericArray::from_slice(&header[1..]));
        Self {
            key,
            stream,
            header,
            header_sent: false,
            buffer: Vec::with_capacity(SEALED_CHUNK),
            digest: Sha256::new(),
            plaintext_len: 0,
            chunks: 0,
        }
    }

    fn emit(&mut self, bytes_from_buffer: bool, out: &mut Vec<u8>) {
        let bytes: &[u8] = if bytes_from_buffer {
            &self.buffer
        } else {
            &self.header
        };
        self.digest.update(bytes);
        out.extend_from_slice(bytes);
    }

    /// Encrypts `data`, appending finished ciphertext to `out`.
    pub fn update(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), AttachmentError> {
        if !self.header_sent {
            self.emit(false, out);
            self.header_sent = true;
        }
        self.plaintext_len = self.plaintext_len.saturating_add(data.len() as u64);
        while !data.is_empty() {
            if self.buffer.len() == CHUNK_SIZE {
                // More data follows, so this full chunk is not the last.
                self.stream
                    .encrypt_next_in_place(&self.header, &mut self.buffer)
                    .map_err(|_| AttachmentError::TooLarge)?;
                self.chunks += 1;
                self.emit(true, out);
                self.buffer.clear();
            }
            let take = (CHUNK_SIZE - self.buffer.len()).min(data.len());
            self.buffer.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// Encrypts the last chunk and returns what the recipient needs.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<AttachmentInfo, AttachmentError> {
        if !self.header_sent {
            self.emit(false, out);
        }
        let mut last = core::mem::take(&mut self.buffer);
        self.stream
            .encrypt_last_in_place(&self.header, &mut last)
            .map_err(|_| AttachmentError::TooLarge)?;
        self.digest.update(&last);
        out.extend_from_slice(&last);
        Ok(AttachmentInfo {
            key: self.key,
            digest: self.digest.finalize().into(),
            plaintext_len: self.plaintext_len,
        })
    }

    /// Encrypts a whole buffer at once.
    pub fn encrypt_all(
        plaintext: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Vec<u8>, AttachmentInfo), AttachmentError> {
        let mut out = Vec::with_capacity(
            usize::try_from(ciphertext_len(plaintext.len() as u64)).unwrap_or(0),
        );
        let mut encryptor = Self::new(rng);
        encryptor.update(plaintext, &mut out)?;
        let info = encryptor.finish(&mut out)?;
        Ok((out, info))
    }
}

/// Decrypts a stream and checks it against the digest and length from the
/// message.
pub struct AttachmentDecryptor {
    key: AttachmentKey,
    expected_digest: [u8; 32],
    expected_len: u64,
    header: Vec<u8>,
    stream: Option<DecryptorBE32<ChaCha20Poly1305>>,
    buffer: Vec<u8>,
    digest: Sha256,
    plaintext_len: u64,
    chunks: u64,
}

impl core::fmt::Debug for AttachmentDecryptor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AttachmentDecryptor")
            .field("plaintext_len", &self.plaintext_len)
            .finish_non_exhaustive()
    }
}

impl AttachmentDecryptor {
    /// Prepares to decrypt the attachment described by `info`.
    pub fn new(info: &AttachmentInfo) -> Self {
        Self {
            key: info.key.clone(),
            expected_digest: info.digest,
            expected_len: info.plaintext_len,
            header: Vec::with_capacity(HEADER_SIZE),
            stream: None,
            buffer: Vec::with_capacity(SEALED_CHUNK),
            digest: Sha256::new(),
            plaintext_len: 0,
            chunks: 0,
        }
    }

    /// Decrypts `data`, appending authenticated plaintext to `out`.
    pub fn update(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), AttachmentError> {
        self.digest.update(data);
        if self.stream.is_none() {
            let take = (HEADER_SIZE - self.header.len()).min(data.len());
            self.header.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.header.len() < HEADER_SIZE {
                return Ok(());
            }
            if self.header[0] != ATTACHMENT_VERSION {
                return Err(AttachmentError::UnsupportedVersion(self.header[0]));
            }
            let prefix = GenericArray::from_slice(&self.header[1..]);
            self.stream = Some(DecryptorBE32::from_aead(self.key.cipher(), prefix));
        }
        while !data.is_empty() {
            if self.buffer.len() == SEALED_CHUNK {
                self.open_chunk(out)?;
            }
            let take = (SEALED_CHUNK - self.buffer.len()).min(data.len());
            self.buffer.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    fn open_chunk(&mut self, out: &mut Vec<u8>) -> Result<(), AttachmentError> {
        let stream = self.stream.as_mut().ok_or(AttachmentError::TooShort)?;
        stream
            .decrypt_next_in_place(&self.header, &mut self.buffer)
            .map_err(|_| AttachmentError::Authentication(self.chunks))?;
        self.accept_plaintext(out)
    }

    fn accept_plaintext(&mut self, out: &mut Vec<u8>) -> Result<(), AttachmentError> {
        self.chunks += 1;
        self.plaintext_len = self.plaintext_len.saturating_add(self.buffer.len() as u64);
        if self.plaintext_len > self.expected_len {
            return Err(AttachmentError::LengthMismatch);
        }
        out.extend_from_slice(&self.buffer);
        self.buffer.clear();
        Ok(())
    }

    /// Decrypts the last chunk and checks digest and length.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), AttachmentError> {
        let stream = self.stream.take().ok_or(AttachmentError::TooShort)?;
        stream
            .decrypt_last_in_place(&self.header, &mut self.buffer)
            .map_err(|_| AttachmentError::Authentication(self.chunks))?;
        self.accept_plaintext(out)?;
        let digest: [u8; 32] = self.digest.finalize().into();
        if !bool::from(digest.ct_eq(&self.expected_digest)) {
            return Err(AttachmentError::DigestMismatch);
        }
        if self.plaintext_len != self.expected_len {
            return Err(AttachmentError::LengthMismatch);
        }
        Ok(())
    }

    /// Decrypts a whole buffer at once.
    pub fn decrypt_all(
        ciphertext: &[u8],
        info: &AttachmentInfo,
    ) -> Result<Vec<u8>, AttachmentError> {
        let mut out = Vec::with_capacity(ciphertext.len());
        let mut decryptor = Self::new(info);
        decryptor.update(ciphertext, &mut out)?;
        decryptor.finish(&mut out)?;
        Ok(out)
    }
}
