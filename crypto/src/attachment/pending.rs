//! The start of a chunk that arrived over several calls, gathered until it
//! is whole. Shared by the encryptor (plaintext chunks) and the decryptor
//! (sealed chunks); sealing, opening and digesting live elsewhere.

/// A chunk gathered across calls, up to `size` bytes.
pub(super) struct PendingChunk {
    bytes: Vec<u8>,
    size: usize,
}

impl PendingChunk {
    pub(super) fn new(size: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(size),
            size,
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
    pub(super) fn complete(&mut self, data: &mut &[u8]) -> Option<Vec<u8>> {
        if self.bytes.is_empty() {
            return None;
        }
        let take = (self.size - self.bytes.len()).min(data.len());
        self.bytes.extend_from_slice(&data[..take]);
        *data = &data[take..];
        (self.bytes.len() == self.size).then(|| core::mem::take(&mut self.bytes))
    }

    /// Takes back the buffer [`Self::complete`] returned, emptied, to
    /// gather the next chunk in.
    pub(super) fn recycle(&mut self, mut bytes: Vec<u8>) {
        bytes.clear();
        self.bytes = bytes;
    }

    /// Starts the next chunk with `data` (less than a whole chunk).
    pub(super) fn start(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
    }
}
