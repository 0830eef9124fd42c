//! The STREAM chunk cipher of an attachment: ChaCha20-Poly1305 under the
//! attachment key, no associated data (the header in version 2), and the
//! nonce schedule of `aead-stream`'s `StreamBE32` (7-byte prefix, 32-bit
//! big-endian chunk index, last-chunk flag; SPEC §9.2). Chunks are sealed
//! and opened out of place, from the caller's input straight into the
//! caller's output. Framing, digest and lengths live in the encryptor and
//! decryptor, not here.

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::aead::inout::InOutBuf;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{
    ATTACHMENT_VERSION, AttachmentError, AttachmentKey, HEADER_SIZE, LEGACY_ATTACHMENT_VERSION,
    TAG_SIZE,
};

/// HKDF info of the chunk key of a version 4 stream (SPEC §9.1): version 4
/// keeps version 3's nonce schedule and empty associated data, so it gets
/// its own key, and a stream relabelled from one to the other fails at its
/// first chunk.
pub const INFO_ATTACHMENT_V4: &[u8] = b"Starling_Attachment_v4";

/// The ChaCha20-Poly1305 key of a stream's chunks: the attachment key
/// itself up to version 3, `HKDF-SHA256(key, INFO_ATTACHMENT_V4)` from 4.
fn chunk_key(key: &AttachmentKey, version: u8) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new(*key.as_array());
    if version == ATTACHMENT_VERSION {
        // 32 bytes is far below HKDF-SHA256's output limit.
        let _ = Hkdf::<Sha256>::new(None, key.as_array()).expand(INFO_ATTACHMENT_V4, &mut out[..]);
    }
    out
}

/// The index of the last chunk a stream may have: `StreamBE32` refuses a
/// non-last chunk at `u32::MAX`, so a stream has at most 2^32 chunks.
const LAST_INDEX: u64 = u32::MAX as u64;

/// Seals or opens the chunks of one stream, in order.
pub(super) struct ChunkCipher {
    aead: ChaCha20Poly1305,
    header: [u8; HEADER_SIZE],
    /// The index of the next chunk.
    next: u64,
}

impl ChunkCipher {
    pub(super) fn new(key: &AttachmentKey, header: [u8; HEADER_SIZE]) -> Self {
        Self {
            aead: ChaCha20Poly1305::new((&*chunk_key(key, header[0])).into()),
            header,
            next: 0,
        }
    }

    /// Every chunk's associated data: the header in version 2, nothing in
    /// version 3. Associated data of one Poly1305 block leaves `poly1305`'s
    /// four-block parallel path unaligned for the whole chunk, which costs
    /// about a third more MAC time (decision 25).
    fn associated_data(&self) -> &[u8] {
        if self.header[0] == LEGACY_ATTACHMENT_VERSION {
            &self.header
        } else {
            &[]
        }
    }

    /// The nonce of the next chunk, if the stream may have it:
    /// `prefix (7) || BE32(index) || flag`.
    fn nonce(&self, last: bool) -> Option<Nonce> {
        let index = u32::try_from(self.next).ok()?;
        if !last && u64::from(index) == LAST_INDEX {
            return None;
        }
        let mut nonce = Nonce::default();
        nonce[..7].copy_from_slice(&self.header[1..]);
        nonce[7..11].copy_from_slice(&index.to_be_bytes());
        nonce[11] = u8::from(last);
        Some(nonce)
    }

    /// Seals `plaintext` as the next chunk into `sealed`, which must be
    /// exactly `plaintext.len() + TAG_SIZE` bytes: ciphertext, then tag.
    pub(super) fn seal(
        &mut self,
        plaintext: &[u8],
        sealed: &mut [u8],
        last: bool,
    ) -> Result<(), AttachmentError> {
        let needed = plaintext.len().saturating_add(TAG_SIZE);
        if sealed.len() != needed {
            return Err(AttachmentError::OutputTooSmall { needed });
        }
        let nonce = self.nonce(last).ok_or(AttachmentError::TooLarge)?;
        let (body, tag_out) = sealed.split_at_mut(plaintext.len());
        let buffer = InOutBuf::new(plaintext, body).map_err(|_| AttachmentError::TooLarge)?;
        let tag = self
            .aead
            .encrypt_inout_detached(&nonce, self.associated_data(), buffer)
            .map_err(|_| AttachmentError::TooLarge)?;
        tag_out.copy_from_slice(&tag);
        self.next += 1;
        Ok(())
    }

    /// Opens `sealed` (ciphertext, then tag) as the next chunk into
    /// `plaintext`, which must be exactly `sealed.len() - TAG_SIZE` bytes.
    /// The tag is checked first: on failure `plaintext` is left untouched.
    pub(super) fn open(
        &mut self,
        sealed: &[u8],
        plaintext: &mut [u8],
        last: bool,
    ) -> Result<(), AttachmentError> {
        let failed = AttachmentError::Authentication(self.next);
        let nonce = self.nonce(last).ok_or(failed.clone())?;
        let Some(body_len) = sealed.len().checked_sub(TAG_SIZE) else {
            return Err(failed);
        };
        let (body, tag) = sealed.split_at(body_len);
        let tag = Tag::try_from(tag).map_err(|_| failed.clone())?;
        let buffer = InOutBuf::new(body, plaintext).map_err(|_| failed.clone())?;
        self.aead
            .decrypt_inout_detached(&nonce, self.associated_data(), buffer, &tag)
            .map_err(|_| failed)?;
        self.next += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher_at(next: u64) -> ChunkCipher {
        let header = [3, 1, 2, 3, 4, 5, 6, 7];
        let mut cipher = ChunkCipher::new(&AttachmentKey::from_bytes(&[9; 32]), header);
        cipher.next = next;
        cipher
    }

    #[test]
    fn the_nonce_is_prefix_big_endian_index_and_flag() {
        let nonce = cipher_at(0x0102_0304).nonce(false).unwrap();
        assert_eq!(&nonce[..], &[1, 2, 3, 4, 5, 6, 7, 1, 2, 3, 4, 0]);
        let nonce = cipher_at(5).nonce(true).unwrap();
        assert_eq!(&nonce[..], &[1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 5, 1]);
    }

    #[test]
    fn a_stream_holds_at_most_two_to_the_32_chunks() {
        assert!(cipher_at(LAST_INDEX - 1).nonce(false).is_some());
        assert!(cipher_at(LAST_INDEX).nonce(false).is_none());
        assert!(cipher_at(LAST_INDEX).nonce(true).is_some());
        assert!(cipher_at(LAST_INDEX + 1).nonce(true).is_none());
        let mut sealed = [0u8; 3 + TAG_SIZE];
        assert_eq!(
            cipher_at(LAST_INDEX).seal(b"abc", &mut sealed, false),
            Err(AttachmentError::TooLarge)
        );
        let mut opened = [0u8; 3];
        assert_eq!(
            cipher_at(LAST_INDEX).open(&sealed, &mut opened, false),
            Err(AttachmentError::Authentication(LAST_INDEX))
        );
    }

    #[test]
    fn sealing_and_opening_move_the_index_on_only_when_they_succeed() {
        let mut sealer = cipher_at(0);
        let mut sealed = [0u8; 3 + TAG_SIZE];
        sealer.seal(b"abc", &mut sealed, false).unwrap();
        assert_eq!(sealer.next, 1);
        let mut opener = cipher_at(0);
        let mut opened = [0u8; 3];
        let mut tampered = sealed;
        tampered[0] ^= 1;
        assert!(opener.open(&tampered, &mut opened, false).is_err());
        assert_eq!((opener.next, opened), (0, [0; 3]));
        opener.open(&sealed, &mut opened, false).unwrap();
        assert_eq!((opener.next, &opened), (1, b"abc"));
        assert!(opener.open(&sealed[..TAG_SIZE - 1], &mut [], true).is_err());
    }
}
