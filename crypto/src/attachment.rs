//! Attachment encryption: a fresh key per file and the STREAM construction
//! (Hoang, Reyhanitabar, Rogaway, Vizár 2015) over ChaCha20-Poly1305, as
//! implemented by `aead::stream` (`StreamBE32`: 7-byte nonce prefix, 32-bit
//! big-endian chunk counter, last-chunk flag). Constant memory for any size.
//!
//! Format (version 2): a header `version (1) || nonce prefix (7)`, then
//! chunks of [`CHUNK_SIZE`] plaintext bytes plus a 16-byte tag; the flagged
//! last chunk holds 0 to `CHUNK_SIZE - 1` bytes, so a full chunk is never
//! the last one and is sealed (or opened) as soon as it is complete. The
//! header is every chunk's associated data. The BLAKE3 digest of the whole
//! ciphertext and the plaintext length travel, with the key, in the message
//! that shares the file. Reordering, truncation, extension and tampering
//! are all detected; output of [`AttachmentDecryptor::update`] is
//! authenticated chunk by chunk, but the file is complete only when
//! [`AttachmentDecryptor::finish`] returns `Ok`.
//!
//! Each chunk is copied once into the caller's output and sealed or opened
//! there; only a chunk split across calls goes through an internal buffer.

use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::aead::{Buffer, KeyInit, generic_array::GenericArray};
use rand_core::CryptoRngCore;
use subtle::ConstantTimeEq;
use thiserror::Error;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Plaintext bytes per chunk (64 KiB).
pub const CHUNK_SIZE: usize = 64 * 1024;
/// Authentication tag per chunk.
pub const TAG_SIZE: usize = 16;
/// Format version, the first header byte. Version 2 (BLAKE3 digest, last
/// chunk shorter than a full one) replaced version 1, which is refused.
pub const ATTACHMENT_VERSION: u8 = 2;
/// Header length: version and nonce prefix.
pub const HEADER_SIZE: usize = 8;
const SEALED_CHUNK: usize = CHUNK_SIZE + TAG_SIZE;
/// The digest is fed in runs that start at multiples of this many bytes of
/// the stream: BLAKE3 hashes up to 16 of its 1 KiB chunks in parallel, but
/// only from a position that is a multiple of the run (see [`StreamDigest`]).
const DIGEST_RUN: usize = 16 * 1024;

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

/// BLAKE3 of everything passed to [`Self::update`], as if hashed in one
/// call. The hasher only ever receives runs that start at a multiple of
/// [`DIGEST_RUN`] bytes, whatever the slicing: a header of 8 bytes and
/// sealed chunks of 64 KiB + 16 would otherwise leave every run misaligned
/// and BLAKE3 at about three quarters of its speed. The rest waits in
/// `carry` (at most [`DIGEST_RUN`] bytes).
struct StreamDigest {
    hasher: blake3::Hasher,
    carry: Vec<u8>,
}

impl StreamDigest {
    fn new() -> Self {
        Self {
            hasher: blake3::Hasher::new(),
            carry: Vec::with_capacity(DIGEST_RUN),
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        if !self.carry.is_empty() {
            let take = (DIGEST_RUN - self.carry.len()).min(data.len());
            self.carry.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.carry.len() < DIGEST_RUN {
                return;
            }
            self.hasher.update(&self.carry);
            self.carry.clear();
        }
        let (runs, rest) = data.split_at(data.len() - data.len() % DIGEST_RUN);
        self.hasher.update(runs);
        self.carry.extend_from_slice(rest);
    }

    fn finalize(mut self) -> [u8; 32] {
        self.hasher.update(&self.carry);
        *self.hasher.finalize().as_bytes()
    }
}

/// The end of a caller's output from `start` on, as an AEAD buffer: a chunk
/// is copied once, to where it stays, and sealed or opened there.
struct Tail<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
}

impl AsRef<[u8]> for Tail<'_> {
    fn as_ref(&self) -> &[u8] {
        self.out.get(self.start..).unwrap_or_default()
    }
}

impl AsMut<[u8]> for Tail<'_> {
    fn as_mut(&mut self) -> &mut [u8] {
        self.out.get_mut(self.start..).unwrap_or_default()
    }
}

impl Buffer for Tail<'_> {
    fn extend_from_slice(&mut self, other: &[u8]) -> chacha20poly1305::aead::Result<()> {
        self.out.extend_from_slice(other);
        Ok(())
    }

    fn truncate(&mut self, len: usize) {
        self.out.truncate(self.start.saturating_add(len));
    }
}

/// Encrypts a stream; feed it with [`Self::update`], close with [`Self::finish`].
pub struct AttachmentEncryptor {
    key: AttachmentKey,
    stream: EncryptorBE32<ChaCha20Poly1305>,
    header: [u8; HEADER_SIZE],
    header_sent: bool,
    /// The start of a chunk whose plaintext arrived over several calls.
    pending: Vec<u8>,
    digest: StreamDigest,
    plaintext_len: u64,
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
            pending: Vec::with_capacity(CHUNK_SIZE),
            digest: StreamDigest::new(),
            plaintext_len: 0,
        }
    }

    fn send_header(&mut self, out: &mut Vec<u8>) {
        if !self.header_sent {
            self.digest.update(&self.header);
            out.extend_from_slice(&self.header);
            self.header_sent = true;
        }
    }

    /// Encrypts `data`, appending finished ciphertext to `out`.
    pub fn update(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), AttachmentError> {
        self.send_header(out);
        self.plaintext_len = self.plaintext_len.saturating_add(data.len() as u64);
        if !self.pending.is_empty() {
            let take = (CHUNK_SIZE - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() < CHUNK_SIZE {
                return Ok(());
            }
            // A full chunk is never the last: seal it now.
            let start = out.len();
            out.extend_from_slice(&self.pending);
            self.pending.clear();
            self.seal_next(out, start)?;
        }
        while data.len() >= CHUNK_SIZE {
            let (chunk, rest) = data.split_at(CHUNK_SIZE);
            let start = out.len();
            out.extend_from_slice(chunk);
            self.seal_next(out, start)?;
            data = rest;
        }
        self.pending.extend_from_slice(data);
        Ok(())
    }

    /// Seals the plaintext at `out[start..]` in place as a non-last chunk.
    fn seal_next(&mut self, out: &mut Vec<u8>, start: usize) -> Result<(), AttachmentError> {
        let sealed = self
            .stream
            .encrypt_next_in_place(&self.header, &mut Tail { out, start });
        if sealed.is_err() {
            out.truncate(start);
            return Err(AttachmentError::TooLarge);
        }
        self.digest.update(out.get(start..).unwrap_or_default());
        Ok(())
    }

    /// Encrypts the last chunk and returns what the recipient needs.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<AttachmentInfo, AttachmentError> {
        self.send_header(out);
        let start = out.len();
        out.extend_from_slice(&self.pending);
        let sealed = self
            .stream
            .encrypt_last_in_place(&self.header, &mut Tail { out, start });
        if sealed.is_err() {
            out.truncate(start);
            return Err(AttachmentError::TooLarge);
        }
        self.digest.update(out.get(start..).unwrap_or_default());
        Ok(AttachmentInfo {
            key: self.key,
            digest: self.digest.finalize(),
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
    /// The start of a sealed chunk that arrived over several calls.
    pending: Vec<u8>,
    digest: StreamDigest,
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
            pending: Vec::with_capacity(SEALED_CHUNK),
            digest: StreamDigest::new(),
            plaintext_len: 0,
            chunks: 0,
        }
    }

    /// Decrypts `data`, appending authenticated plaintext to `out`.
    pub fn update(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), AttachmentError> {
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
            self.digest.update(&self.header);
            let prefix = GenericArray::from_slice(&self.header[1..]);
            self.stream = Some(DecryptorBE32::from_aead(self.key.cipher(), prefix));
        }
        if !self.pending.is_empty() {
            let take = (SEALED_CHUNK - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() < SEALED_CHUNK {
                return Ok(());
            }
            // A full sealed chunk is never the last: open it now.
            let start = out.len();
            out.extend_from_slice(&self.pending);
            self.pending.clear();
            self.open_next(out, start)?;
        }
        while data.len() >= SEALED_CHUNK {
            let (chunk, rest) = data.split_at(SEALED_CHUNK);
            let start = out.len();
            out.extend_from_slice(chunk);
            self.open_next(out, start)?;
            data = rest;
        }
        self.pending.extend_from_slice(data);
        Ok(())
    }

    /// Digests and opens the sealed chunk at `out[start..]` in place as a
    /// non-last chunk; on failure nothing of it stays in `out`.
    fn open_next(&mut self, out: &mut Vec<u8>, start: usize) -> Result<(), AttachmentError> {
        self.digest.update(out.get(start..).unwrap_or_default());
        let stream = self.stream.as_mut().ok_or(AttachmentError::TooShort)?;
        let opened = stream.decrypt_next_in_place(&self.header, &mut Tail { out, start });
        self.accept_plaintext(opened.is_ok(), out, start)
    }

    /// Counts the chunk just opened at `out[start..]`; removes it from `out`
    /// if it failed or goes past the announced length.
    fn accept_plaintext(
        &mut self,
        opened: bool,
        out: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), AttachmentError> {
        if !opened {
            out.truncate(start);
            return Err(AttachmentError::Authentication(self.chunks));
        }
        self.chunks += 1;
        let len = out.len().saturating_sub(start);
        self.plaintext_len = self.plaintext_len.saturating_add(len as u64);
        if self.plaintext_len > self.expected_len {
            out.truncate(start);
            return Err(AttachmentError::LengthMismatch);
        }
        Ok(())
    }

    /// Decrypts the last chunk and checks digest and length.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), AttachmentError> {
        let stream = self.stream.take().ok_or(AttachmentError::TooShort)?;
        self.digest.update(&self.pending);
        let start = out.len();
        out.extend_from_slice(&self.pending);
        let opened = stream.decrypt_last_in_place(&self.header, &mut Tail { out, start });
        self.accept_plaintext(opened.is_ok(), out, start)?;
        let digest = self.digest.finalize();
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
