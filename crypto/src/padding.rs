//! Length hiding: Padmé buckets and the `0x80 0x00…` padding rule
//! (SPEC §14).
//!
//! Stored and transmitted lengths are one of the server's best sources of
//! metadata: an envelope as long as its message, or an attachment whose
//! ciphertext size gives the file's exact size, tells the operator more than
//! it needs to know. Every sealed envelope is therefore padded to a bucket
//! (`envelope_bucket`), and every attachment plaintext to its Padmé length.
//!
//! Padmé (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files
//! and Communication with PURBs", PETS 2019) rounds a length `L` up so that
//! only its top `⌊log2 ⌊log2 L⌋⌋ + 1` bits may be non-zero: at most
//! `O(log log L)` bits of the length leak, and the overhead is at most about
//! 12 % (under 6.25 % from 256 bytes, less as `L` grows).

use thiserror::Error;

/// Smallest envelope bucket: every sealed envelope is at least this long, so
/// all ordinary texts have one length at rest.
pub const MIN_ENVELOPE_BUCKET: u64 = 1024;

/// The first byte of the padding appended to a plaintext.
const MARKER: u8 = 0x80;

/// Why [`pad`] or [`unpad`] refused.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PaddingError {
    /// The padded input has no `0x80` marker before its trailing zeros.
    #[error("padding has no 0x80 marker")]
    NoMarker,
    /// The content (plus its one-byte marker) is longer than the target.
    #[error("content of {content} bytes does not fit a padded length of {target}")]
    TooLong {
        /// Length of the content.
        content: usize,
        /// The padded length asked for.
        target: usize,
    },
}

/// The Padmé length of `len`: the smallest length `≥ len` whose bits below
/// the top `⌊log2 ⌊log2 len⌋⌋ + 1` are zero. `None` only when rounding
/// would overflow `u64`.
#[must_use]
pub fn padme(len: u64) -> Option<u64> {
    if len < 2 {
        return Some(len);
    }
    let exponent = u64::from(len.ilog2());
    let significant = u64::from(exponent.ilog2()) + 1;
    let low_bits = exponent - significant;
    let mask = (1u64 << low_bits) - 1;
    Some(len.checked_add(mask)? & !mask)
}

/// The stored length of a sealed envelope whose unpadded length would be
/// `len`: `padme(max(len, MIN_ENVELOPE_BUCKET))`.
#[must_use]
pub fn envelope_bucket(len: u64) -> Option<u64> {
    padme(len.max(MIN_ENVELOPE_BUCKET))
}

/// Whether `len` is a length a sealed envelope may have: at least
/// [`MIN_ENVELOPE_BUCKET`] and its own Padmé length.
#[must_use]
pub fn is_envelope_bucket(len: u64) -> bool {
    len >= MIN_ENVELOPE_BUCKET && padme(len) == Some(len)
}

/// `content ‖ 0x80 ‖ 0x00…`, exactly `target` bytes long (ISO/IEC 7816-4
/// padding). Refuses when `content.len() + 1 > target`.
pub fn pad(content: &[u8], target: usize) -> Result<Vec<u8>, PaddingError> {
    if content.len() >= target {
        return Err(PaddingError::TooLong {
            content: content.len(),
            target,
        });
    }
    let mut out = Vec::with_capacity(target);
    out.extend_from_slice(content);
    out.push(MARKER);
    out.resize(target, 0);
    Ok(out)
}

/// The content of a [`pad`]ded plaintext: trailing zeros stripped, then
/// exactly one `0x80` marker required and removed.
///
/// Only ever applied to authenticated plaintext, so the time it takes (which
/// depends on the padding length) reveals nothing an observer can choose.
pub fn unpad(padded: &[u8]) -> Result<&[u8], PaddingError> {
    let end = padded
        .iter()
        .rposition(|&byte| byte != 0)
        .ok_or(PaddingError::NoMarker)?;
    if padded[end] != MARKER {
        return Err(PaddingError::NoMarker);
    }
    Ok(&padded[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn padme_known_answers() {
        // Values from the PURBs paper's definition, checked by hand:
        // L = 1025 → E = 10, S = 4, 6 low bits cleared → 1088.
        let cases = [
            (0, 0),
            (1, 1),
            (2, 2),
            (3, 3),
            (9, 10),
            (100, 104),
            (1000, 1024),
            (1024, 1024),
            (1025, 1088),
            (1700, 1728),
            (5000, 5120),
            (256 * 1024, 256 * 1024),
            (256 * 1024 + 1, 256 * 1024 + 8192),
            (1_000_000, 1_015_808),
        ];
        for (len, padded) in cases {
            assert_eq!(padme(len), Some(padded), "padme({len})");
        }
        assert_eq!(padme(u64::MAX), None);
        assert_eq!(padme(1 << 63), Some(1 << 63));
    }

    #[test]
    fn envelope_buckets_start_at_one_kibibyte() {
        assert_eq!(envelope_bucket(0), Some(1024));
        assert_eq!(envelope_bucket(1023), Some(1024));
        assert_eq!(envelope_bucket(1025), Some(1088));
        assert!(is_envelope_bucket(1024));
        assert!(is_envelope_bucket(1088));
        assert!(!is_envelope_bucket(512));
        assert!(!is_envelope_bucket(1025));
        assert!(!is_envelope_bucket(0));
    }

    #[test]
    fn pad_and_unpad_known_answers() {
        assert_eq!(pad(b"ab", 5), Ok(vec![b'a', b'b', 0x80, 0, 0]));
        assert_eq!(pad(b"ab", 3), Ok(vec![b'a', b'b', 0x80]));
        assert_eq!(
            pad(b"ab", 2),
            Err(PaddingError::TooLong {
                content: 2,
                target: 2
            })
        );
        assert_eq!(unpad(&[b'a', 0x80, 0, 0]), Ok(&b"a"[..]));
        assert_eq!(unpad(&[0x80]), Ok(&b""[..]));
        assert_eq!(unpad(&[b'a', 0x81, 0]), Err(PaddingError::NoMarker));
        assert_eq!(unpad(&[0, 0]), Err(PaddingError::NoMarker));
        assert_eq!(unpad(&[]), Err(PaddingError::NoMarker));
    }

    proptest! {
        #[test]
        fn bucket_minimal_and_idempotent(len in 0u64..(1 << 40)) {
            let padded = padme(len).unwrap();
            prop_assert!(padded >= len);
            prop_assert_eq!(padme(padded), Some(padded));
            // Minimal: nothing between len and padded is a Padmé length.
            if padded > len {
                prop_assert_ne!(padme(padded - 1), Some(padded - 1));
            }
            // Overhead: at most 2^(E-S) - 1, below L / 16 once L ≥ 2^8.
            if len >= 256 {
                prop_assert!(padded - len < len / 16);
            }
            let bucket = envelope_bucket(len).unwrap();
            prop_assert!(is_envelope_bucket(bucket));
        }

        #[test]
        fn unpad_inverts_pad(
            content in proptest::collection::vec(any::<u8>(), 0..300),
            extra in 1usize..300,
        ) {
            let target = content.len() + extra;
            let padded = pad(&content, target).unwrap();
            prop_assert_eq!(padded.len(), target);
            prop_assert_eq!(unpad(&padded).unwrap(), &content[..]);
        }
    }
}
