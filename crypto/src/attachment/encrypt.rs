//! The attachment encryptor: cuts plaintext into chunks, seals each one
//! from the caller's input straight into the caller's output, and digests
//! the ciphertext as it goes. Only a chunk that arrives over several calls
//! is gathered in an internal buffer first.

use rand_core::CryptoRngCore;

use super::chunk::ChunkCipher;
use super::digest::StreamDigest;
use super::pending::PendingChunk;
use super::{
    ATTACHMENT_VERSION, AttachmentError, AttachmentInfo, AttachmentKey, CHUNK_SIZE, HEADER_SIZE,
    SEALED_CHUNK, TAG_SIZE, stored_len,
};
use crate::padding::padme;

/// Encrypts a stream. Feed it with [`Self::update`] (appends to a `Vec`) or
/// [`Self::update_into`] (writes into the caller's buffer, no copy), close
/// it with [`Self::finish`]. After an error, drop it.
pub struct AttachmentEncryptor {
    key: AttachmentKey,
    cipher: ChunkCipher,
    header: [u8; HEADER_SIZE],
    header_sent: bool,
    /// The start of a chunk whose plaintext arrived over several calls.
    pending: PendingChunk,
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
        let mut digest = StreamDigest::new();
        digest.update(&header);
        Self {
            cipher: ChunkCipher::new(&key, header),
            key,
            header,
            header_sent: false,
            pending: PendingChunk::new(CHUNK_SIZE),
            digest,
            plaintext_len: 0,
        }
    }

    /// The most bytes one [`Self::update_into`] call can write for
    /// `data_len` bytes of plaintext, whatever came before: size the
    /// output buffer with it.
    pub const fn max_update_len(data_len: usize) -> usize {
        HEADER_SIZE.saturating_add((data_len / CHUNK_SIZE + 1).saturating_mul(SEALED_CHUNK))
    }

    /// The exact bytes the next `update_into(data)` writes, with
    /// `data.len() == data_len`.
    pub fn update_len(&self, data_len: usize) -> usize {
        let header = if self.header_sent { 0 } else { HEADER_SIZE };
        let chunks = self.pending.len().saturating_add(data_len) / CHUNK_SIZE;
        header.saturating_add(chunks.saturating_mul(SEALED_CHUNK))
    }

    /// Encrypts `data` into `out` and returns how many bytes of `out` now
    /// hold ciphertext, to be written after the ones before. `out` must
    /// hold at least [`Self::update_len`] bytes (else `OutputTooSmall`,
    /// and nothing happened).
    pub fn update_into(
        &mut self,
        mut data: &[u8],
        out: &mut [u8],
    ) -> Result<usize, AttachmentError> {
        let needed = self.update_len(data.len());
        if out.len() < needed {
            return Err(AttachmentError::OutputTooSmall { needed });
        }
        let mut written = 0;
        if !self.header_sent {
            out[..HEADER_SIZE].copy_from_slice(&self.header);
            self.header_sent = true;
            written = HEADER_SIZE;
        }
        self.plaintext_len = self.plaintext_len.saturating_add(data.len() as u64);
        if let Some(chunk) = self.pending.complete(&mut data) {
            // A full chunk is never the last: seal it now.
            let sealed = self.seal_full(&chunk, &mut out[written..]);
            self.pending.recycle(chunk);
            written += sealed?;
        }
        while data.len() >= CHUNK_SIZE {
            let (chunk, rest) = data.split_at(CHUNK_SIZE);
            written += self.seal_full(chunk, &mut out[written..])?;
            data = rest;
        }
        self.pending.start(data);
        Ok(written)
    }

    /// Seals a full chunk, never the last, at the start of `out`.
    fn seal_full(&mut self, chunk: &[u8], out: &mut [u8]) -> Result<usize, AttachmentError> {
        let sealed = out
            .get_mut(..SEALED_CHUNK)
            .ok_or(AttachmentError::OutputTooSmall {
                needed: SEALED_CHUNK,
            })?;
        self.cipher.seal(chunk, sealed, false)?;
        self.digest.update(sealed);
        Ok(SEALED_CHUNK)
    }

    /// Encrypts `data`, appending finished ciphertext to `out`.
    pub fn update(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), AttachmentError> {
        let start = out.len();
        out.resize(start.saturating_add(self.update_len(data.len())), 0);
        let written = self.update_into(data, out.get_mut(start..).unwrap_or_default());
        out.truncate(start.saturating_add(*written.as_ref().unwrap_or(&0)));
        written.map(drop)
    }

    /// Appends zeros to the plaintext up to its Padmé length, encrypting
    /// every chunk they complete.
    fn pad(&mut self, out: &mut Vec<u8>) -> Result<(), AttachmentError> {
        let file_len = self.plaintext_len;
        let padded = padme(file_len).ok_or(AttachmentError::TooLarge)?;
        let mut remaining = padded - file_len;
        let zeros = vec![
            0u8;
            usize::try_from(remaining)
                .unwrap_or(CHUNK_SIZE)
                .min(CHUNK_SIZE)
        ];
        while remaining > 0 {
            let take = zeros
                .len()
                .min(usize::try_from(remaining).unwrap_or(usize::MAX));
            self.update(&zeros[..take], out)?;
            remaining -= take as u64;
        }
        self.plaintext_len = file_len;
        Ok(())
    }

    /// Pads the file (SPEC §9.1), encrypts the last chunk, appending it
    /// (and the header, if no chunk was written yet) to `out`, and returns
    /// what the recipient needs.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<AttachmentInfo, AttachmentError> {
        let start = out.len();
        if let Err(error) = self.pad(out) {
            out.truncate(start);
            return Err(error);
        }
        if !self.header_sent {
            out.extend_from_slice(&self.header);
        }
        let sealed_start = out.len();
        out.resize(sealed_start + self.pending.len() + TAG_SIZE, 0);
        let sealed = out.get_mut(sealed_start..).unwrap_or_default();
        if let Err(error) = self.cipher.seal(self.pending.bytes(), sealed, true) {
            out.truncate(start);
            return Err(error);
        }
        self.digest.update(sealed);
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
        let len = stored_len(plaintext.len() as u64)
            .and_then(|len| usize::try_from(len).ok())
            .ok_or(AttachmentError::TooLarge)?;
        let mut out = vec![0u8; len];
        let mut encryptor = Self::new(rng);
        let written = encryptor.update_into(plaintext, &mut out)?;
        out.truncate(written);
        let info = encryptor.finish(&mut out)?;
        Ok((out, info))
    }
}
