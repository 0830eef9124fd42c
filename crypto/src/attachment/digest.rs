//! The attachment digest: BLAKE3 of the whole ciphertext, header included,
//! fed in whatever slices the stream produces. Nothing else lives here.

/// The digest is fed in runs that start at multiples of this many bytes of
/// the stream: BLAKE3 hashes up to 16 of its 1 KiB chunks in parallel, but
/// only from a position that is a multiple of the run.
const DIGEST_RUN: usize = 16 * 1024;

/// BLAKE3 of everything passed to [`Self::update`], as if hashed in one
/// call. The hasher only ever receives runs that start at a multiple of
/// [`DIGEST_RUN`] bytes, whatever the slicing: a header of 8 bytes and
/// sealed chunks of 64 KiB + 16 would otherwise leave every run misaligned
/// and BLAKE3 at about three quarters of its speed. The rest waits in
/// `carry` (at most [`DIGEST_RUN`] bytes).
pub(super) struct StreamDigest {
    hasher: blake3::Hasher,
    carry: Vec<u8>,
}

impl StreamDigest {
    pub(super) fn new() -> Self {
        Self {
            hasher: blake3::Hasher::new(),
            carry: Vec::with_capacity(DIGEST_RUN),
        }
    }

    pub(super) fn update(&mut self, mut data: &[u8]) {
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

    pub(super) fn finalize(mut self) -> [u8; 32] {
        self.hasher.update(&self.carry);
        *self.hasher.finalize().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_slicing_gives_the_one_shot_hash() {
        let data: Vec<u8> = (0..100_000u32)
            .map(|i| (i * 7 + i / 251).to_le_bytes()[0])
            .collect();
        for slice in [
            1,
            8,
            1000,
            DIGEST_RUN - 1,
            DIGEST_RUN,
            DIGEST_RUN + 8,
            65_552,
        ] {
            let mut digest = StreamDigest::new();
            for piece in data.chunks(slice) {
                digest.update(piece);
            }
            assert_eq!(
                digest.finalize(),
                *blake3::hash(&data).as_bytes(),
                "slice {slice}"
            );
        }
    }
}
