//! The start of a chunk that arrived over several calls, gathered until it
//! is whole. Shared by the encryptor (plaintext chunks) and the decryptor
//! (sealed chunks); sealing, opening and digesting live elsewhere.
//!
//! The encryptor gathers plaintext here (up to a whole 64 KiB chunk), so
//! its buffer is wiped whenever it is emptied or dropped. The decryptor
//! gathers sealed bytes, which are no secret: its buffer is only emptied
//! between chunks (a volatile wipe of 64 KiB per chunk would cost a
//! quarter of its time), and wiped on drop all the same.

use zeroize::{Zeroize, Zeroizing};

/// A chunk gathered across calls, up to `size` bytes; wiped on drop.
pub(super) struct PendingChunk {
    bytes: Zeroizing<Vec<u8>>,
    size: usize,
    /// Whether what is gathered is plaintext, to be wiped between chunks.
    secret: bool,
}

impl PendingChunk {
    /// Gathers plaintext: wiped between chunks and on drop.
    pub(super) fn new(size: usize) -> Self {
        Self {
            bytes: Zeroizing::new(Vec::with_capacity(size)),
            size,
            secret: true,
        }
    }

    /// Gathers sealed bytes (no secret): emptied between chunks.
    pub(super) fn sealed(size: usize) -> Self {
        Self {
            secret: false,
            ..Self::new(size)
        }
    }

    pub(super) fn len(&self) -> usize {
        self.bytes.len()
    }

    pub(super) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// If a chunk was started, moves what it lacks from the front of
    /// `data`; returns the chunk once that makes it whole. Give its buffer
    /// back with [`Self::recycle`].
    pub(super) fn complete(&mut self, data: &mut &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if self.bytes.is_empty() {
            return None;
        }
        let take = (self.size - self.bytes.len()).min(data.len());
        self.bytes.extend_from_slice(&data[..take]);
        *data = &data[take..];
        (self.bytes.len() == self.size).then(|| core::mem::take(&mut self.bytes))
    }

    /// Takes back the buffer [`Self::complete`] returned, wiped and
    /// emptied, to gather the next chunk in.
    pub(super) fn recycle(&mut self, mut bytes: Zeroizing<Vec<u8>>) {
        if self.secret {
            bytes.zeroize();
        } else {
            bytes.clear();
        }
        self.bytes = bytes;
    }

    /// Starts the next chunk with `data` (less than a whole chunk).
    pub(super) fn start(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
    }
}

/// Its buffer wipes itself on drop.
impl zeroize::ZeroizeOnDrop for PendingChunk {}

#[cfg(test)]
mod tests {
    use super::*;

    fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>() {}

    #[test]
    fn gathered_plaintext_is_wiped() {
        wiped_on_drop::<PendingChunk>();
        wiped_on_drop::<Zeroizing<Vec<u8>>>();
        let mut pending = PendingChunk::new(4);
        pending.start(b"se");
        let mut rest: &[u8] = b"cret!";
        let chunk = pending.complete(&mut rest).unwrap_or_default();
        assert_eq!((&chunk[..], rest), (&b"secr"[..], &b"et!"[..]));
        pending.recycle(chunk);
        assert_eq!(pending.len(), 0);
        assert!(pending.bytes.capacity() >= 4);
    }
}
