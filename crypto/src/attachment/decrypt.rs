//! The attachment decryptor: reads the header, opens each sealed chunk from
//! the caller's input straight into the caller's output, digests the
//! ciphertext as it goes, and checks digest and length at the end. Only a
//! sealed chunk that arrives over several calls is gathered first.

use subtle::ConstantTimeEq;

use super::chunk::ChunkCipher;
use super::digest::StreamDigest;
use super::pending::PendingChunk;
use super::{
    ATTACHMENT_VERSION, AttachmentError, AttachmentInfo, AttachmentKey, CHUNK_SIZE, HEADER_SIZE,
    LEGACY_ATTACHMENT_VERSION, SEALED_CHUNK, TAG_SIZE, UNPADDED_ATTACHMENT_VERSION,
};
use crate::padding::padme;

/// Decrypts a stream and checks it against the digest and length from the
/// message. Feed it with [`Self::update`] or [`Self::update_into`], close
/// it with [`Self::finish`]; the file is genuine only when `finish` returns
/// `Ok`. After an error, drop it.
pub struct AttachmentDecryptor {
    key: AttachmentKey,
    expected_digest: [u8; 32],
    expected_len: u64,
    /// The plaintext stream's length: the file's, padded in version 4.
    stream_len: u64,
    header: Vec<u8>,
    cipher: Option<ChunkCipher>,
    /// The start of a sealed chunk that arrived over several calls.
    pending: PendingChunk,
    digest: StreamDigest,
    plaintext_len: u64,
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
            stream_len: info.plaintext_len,
            header: Vec::with_capacity(HEADER_SIZE),
            cipher: None,
            pending: PendingChunk::sealed(SEALED_CHUNK),
            digest: StreamDigest::new(),
            plaintext_len: 0,
        }
    }

    /// The most bytes one [`Self::update_into`] call can write for
    /// `data_len` bytes of ciphertext, whatever came before: size the
    /// output buffer with it.
    pub const fn max_update_len(data_len: usize) -> usize {
        (data_len / SEALED_CHUNK + 1).saturating_mul(CHUNK_SIZE)
    }

    /// The most bytes the next `update_into(data)` writes, with
    /// `data.len() == data_len` (exact unless a chunk fails).
    pub fn update_len(&self, data_len: usize) -> usize {
        let header = HEADER_SIZE - self.header.len().min(HEADER_SIZE);
        let body = data_len.saturating_sub(header);
        (self.pending.len().saturating_add(body) / SEALED_CHUNK).saturating_mul(CHUNK_SIZE)
    }

    /// Decrypts `data` into `out` and returns how many bytes of `out` now
    /// hold plaintext, authenticated chunk by chunk. `out` must hold at
    /// least [`Self::update_len`] bytes (else `OutputTooSmall`, and nothing
    /// happened). On any other error the stream is not genuine: discard
    /// everything written for it (this call does not say how much it wrote
    /// before failing; [`Self::update`] keeps the chunks before the failing
    /// one).
    pub fn update_into(&mut self, data: &[u8], out: &mut [u8]) -> Result<usize, AttachmentError> {
        let mut written = 0;
        self.decrypt_into(data, out, &mut written).map(|()| written)
    }

    /// Decrypts `data`, appending authenticated plaintext to `out`; on
    /// error, `out` keeps the chunks before the failing one.
    pub fn update(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), AttachmentError> {
        let start = out.len();
        out.resize(start.saturating_add(self.update_len(data.len())), 0);
        let mut written = 0;
        let result =
            self.decrypt_into(data, out.get_mut(start..).unwrap_or_default(), &mut written);
        out.truncate(start.saturating_add(written));
        result
    }

    /// [`Self::update_into`], counting the bytes written even on failure.
    fn decrypt_into(
        &mut self,
        mut data: &[u8],
        out: &mut [u8],
        written: &mut usize,
    ) -> Result<(), AttachmentError> {
        let needed = self.update_len(data.len());
        if out.len() < needed {
            return Err(AttachmentError::OutputTooSmall { needed });
        }
        if self.cipher.is_none() {
            let take = (HEADER_SIZE - self.header.len()).min(data.len());
            self.header.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.header.len() < HEADER_SIZE {
                return Ok(());
            }
            self.start_stream()?;
        }
        if let Some(chunk) = self.pending.complete(&mut data) {
            // A full sealed chunk is never the last: open it now.
            let opened = self.open(&chunk, &mut out[*written..], false);
            self.pending.recycle(chunk);
            *written += opened?;
        }
        while data.len() >= SEALED_CHUNK {
            let (chunk, rest) = data.split_at(SEALED_CHUNK);
            *written += self.open(chunk, &mut out[*written..], false)?;
            data = rest;
        }
        self.pending.start(data);
        Ok(())
    }

    /// Checks the version of the complete header and starts the digest and
    /// the chunk cipher.
    fn start_stream(&mut self) -> Result<(), AttachmentError> {
        let mut header = [0u8; HEADER_SIZE];
        header.copy_from_slice(&self.header);
        self.stream_len = match header[0] {
            ATTACHMENT_VERSION => {
                padme(self.expected_len).ok_or(AttachmentError::LengthMismatch)?
            }
            UNPADDED_ATTACHMENT_VERSION | LEGACY_ATTACHMENT_VERSION => self.expected_len,
            version => return Err(AttachmentError::UnsupportedVersion(version)),
        };
        self.digest.update(&header);
        self.cipher = Some(ChunkCipher::new(&self.key, header));
        Ok(())
    }

    /// Digests `sealed` and opens it into the start of `out`; returns how
    /// many bytes of the file it holds (padding after the file must be
    /// zero and is not counted), or an error if it fails or goes past the
    /// announced length (then it counts as not written).
    fn open(
        &mut self,
        sealed: &[u8],
        out: &mut [u8],
        last: bool,
    ) -> Result<usize, AttachmentError> {
        self.digest.update(sealed);
        let cipher = self.cipher.as_mut().ok_or(AttachmentError::TooShort)?;
        let len = sealed.len().saturating_sub(TAG_SIZE);
        let plaintext = out
            .get_mut(..len)
            .ok_or(AttachmentError::OutputTooSmall { needed: len })?;
        cipher.open(sealed, plaintext, last)?;
        let before = self.plaintext_len;
        self.plaintext_len = before.saturating_add(len as u64);
        if self.plaintext_len > self.stream_len {
            return Err(AttachmentError::LengthMismatch);
        }
        let file_bytes = self.expected_len.saturating_sub(before);
        let kept = usize::try_from(file_bytes).map_or(len, |file| file.min(len));
        if plaintext[kept..].iter().any(|&byte| byte != 0) {
            return Err(AttachmentError::BadPadding);
        }
        Ok(kept)
    }

    /// Decrypts the last chunk, appending it to `out`, and checks digest
    /// and length. On any error nothing of the last chunk stays in `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), AttachmentError> {
        if self.cipher.is_none() {
            return Err(AttachmentError::TooShort);
        }
        let pending = core::mem::replace(&mut self.pending, PendingChunk::sealed(0));
        let start = out.len();
        out.resize(start + pending.len().saturating_sub(TAG_SIZE), 0);
        let checked = self
            .open(
                pending.bytes(),
                out.get_mut(start..).unwrap_or_default(),
                true,
            )
            .and_then(|kept| self.check_whole_stream().map(|()| kept));
        match checked {
            Ok(kept) => {
                out.truncate(start + kept);
                Ok(())
            }
            Err(error) => {
                out.truncate(start);
                Err(error)
            }
        }
    }

    /// The checks that need the whole stream: digest, then length.
    fn check_whole_stream(&mut self) -> Result<(), AttachmentError> {
        let digest = core::mem::replace(&mut self.digest, StreamDigest::new()).finalize();
        if !bool::from(digest.ct_eq(&self.expected_digest)) {
            return Err(AttachmentError::DigestMismatch);
        }
        if self.plaintext_len != self.stream_len {
            return Err(AttachmentError::LengthMismatch);
        }
        Ok(())
    }

    /// Decrypts a whole buffer at once.
    pub fn decrypt_all(
        ciphertext: &[u8],
        info: &AttachmentInfo,
    ) -> Result<Vec<u8>, AttachmentError> {
        let mut out = Vec::new();
        let mut decryptor = Self::new(info);
        decryptor.update(ciphertext, &mut out)?;
        decryptor.finish(&mut out)?;
        Ok(out)
    }
}
