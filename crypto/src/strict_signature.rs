//! Strict Ed25519 verification: exactly the signatures ed25519-dalek's
//! `verify_strict` accepts, at the cost of its RFC 8032 `verify`.
//!
//! `verify_strict` decompresses the signature's `R` to refuse small-order
//! points, a square root that costs about a sixth of a verification. The
//! same refusal needs no decompression once the RFC 8032 check has passed:
//! that check compares `R` byte for byte with the canonical encoding of
//! `[s]B - [k]A`, so `R` is then the canonical encoding of a curve point,
//! and a point has small order exactly when its canonical encoding is one
//! of the eight encodings of the 8-torsion subgroup. libsodium refuses
//! small-order `R` the same way, by encoding ("Taming the many EdDSAs",
//! Chalkias et al., 2020, compares the libraries). SPEC.md §1.4 states the
//! acceptance rule; the tests below check it against `verify_strict`.
//!
//! Only the verification rule lives here: keys, contexts and what is signed
//! belong to the callers (`keys`, `group`).

use std::sync::OnceLock;

use curve25519_dalek::constants::EIGHT_TORSION;
use ed25519_dalek::{Signature, SignatureError, Verifier, VerifyingKey};

/// The canonical encodings of the eight points of small order, computed
/// once from the curve library's 8-torsion subgroup.
fn small_order_encodings() -> &'static [[u8; 32]; 8] {
    static ENCODINGS: OnceLock<[[u8; 32]; 8]> = OnceLock::new();
    ENCODINGS.get_or_init(|| EIGHT_TORSION.map(|point| point.compress().to_bytes()))
}

/// Verifies `signature` over `message` with the acceptance rule of
/// `VerifyingKey::verify_strict`: canonical `s`, `R` the canonical encoding
/// of `[s]B - [k]A` (cofactorless), and neither `R` nor the key of small
/// order.
pub(crate) fn verify_strict(
    key: &VerifyingKey,
    message: &[u8],
    signature: &Signature,
) -> Result<(), SignatureError> {
    if key.is_weak() {
        return Err(SignatureError::new());
    }
    key.verify(message, signature)?;
    if small_order_encodings().contains(signature.r_bytes()) {
        return Err(SignatureError::new());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
    use curve25519_dalek::edwards::CompressedEdwardsY;
    use curve25519_dalek::scalar::Scalar;
    use ed25519_dalek::{Signer, SigningKey};
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;
    use sha2::{Digest, Sha512};

    use super::*;

    /// `k = SHA-512(R || A || M) mod l`, as RFC 8032 §5.1.7 computes it.
    fn challenge(r: &[u8; 32], key: &[u8; 32], message: &[u8]) -> Scalar {
        let hash = Sha512::new()
            .chain_update(r)
            .chain_update(key)
            .chain_update(message)
            .finalize();
        Scalar::from_bytes_mod_order_wide(&hash.into())
    }

    /// A signer holding a mixed-order key `A = aB + T` (T of order 8): what
    /// a malicious group member could publish. Its signatures with nonce
    /// `R = rB + T'` pass the cofactorless RFC 8032 equation whenever
    /// `T' = -kT`, one time in eight over random messages.
    struct MixedOrderSigner {
        secret: Scalar,
        key: VerifyingKey,
    }

    impl MixedOrderSigner {
        fn new(seed: u64, torsion_index: usize) -> Self {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let mut wide = [0u8; 64];
            rand_core::RngCore::fill_bytes(&mut rng, &mut wide);
            let secret = Scalar::from_bytes_mod_order_wide(&wide);
            let point = ED25519_BASEPOINT_POINT * secret + EIGHT_TORSION[torsion_index];
            let key = VerifyingKey::from_bytes(&point.compress().to_bytes()).unwrap();
            Self { secret, key }
        }

        /// A signature with nonce `R = rB + EIGHT_TORSION[nonce_torsion]`.
        fn sign(&self, message: &[u8], r: Scalar, nonce_torsion: usize) -> Signature {
            let point_r = ED25519_BASEPOINT_POINT * r + EIGHT_TORSION[nonce_torsion];
            let r_bytes = point_r.compress().to_bytes();
            let k = challenge(&r_bytes, self.key.as_bytes(), message);
            let s = r + k * self.secret;
            let mut bytes = [0u8; 64];
            bytes[..32].copy_from_slice(&r_bytes);
            bytes[32..].copy_from_slice(s.as_bytes());
            Signature::from_bytes(&bytes)
        }
    }

    #[test]
    fn the_encodings_are_exactly_those_of_the_small_order_points() {
        let encodings = small_order_encodings();
        for (i, encoding) in encodings.iter().enumerate() {
            assert!(!encodings[..i].contains(encoding), "duplicate encoding");
            let point = CompressedEdwardsY(*encoding).decompress().unwrap();
            assert!(point.is_small_order());
            assert_eq!(point.compress().to_bytes(), *encoding, "not canonical");
        }
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for _ in 0..64 {
            let mut wide = [0u8; 64];
            rand_core::RngCore::fill_bytes(&mut rng, &mut wide);
            let point = ED25519_BASEPOINT_POINT * Scalar::from_bytes_mod_order_wide(&wide);
            for torsion in EIGHT_TORSION {
                let mixed = (point + torsion).compress().to_bytes();
                assert!(!encodings.contains(&mixed));
            }
        }
    }

    #[test]
    fn honest_signatures_verify_and_altered_ones_do_not() {
        let key = SigningKey::generate(&mut ChaCha20Rng::seed_from_u64(1));
        let signature = key.sign(b"message");
        let public = key.verifying_key();
        assert!(verify_strict(&public, b"message", &signature).is_ok());
        assert!(verify_strict(&public, b"messagf", &signature).is_err());
        let mut bytes = signature.to_bytes();
        bytes[40] ^= 1;
        assert!(verify_strict(&public, b"message", &Signature::from_bytes(&bytes)).is_err());
    }

    #[test]
    fn a_small_order_nonce_that_rfc_8032_accepts_is_refused() {
        // R = -kT exactly (r = 0): the signature passes the cofactorless
        // equation with a small-order R. Search messages until k fits.
        let signer = MixedOrderSigner::new(3, 1);
        let (message, signature) = (0u32..)
            .find_map(|n| {
                let message = n.to_be_bytes();
                (0..8).find_map(|t| {
                    let signature = signer.sign(&message, Scalar::ZERO, t);
                    signer
                        .key
                        .verify(&message, &signature)
                        .is_ok()
                        .then_some((message, signature))
                })
            })
            .unwrap();
        let r = CompressedEdwardsY(*signature.r_bytes())
            .decompress()
            .unwrap();
        assert!(r.is_small_order());
        assert!(signer.key.verify(&message, &signature).is_ok());
        assert!(signer.key.verify_strict(&message, &signature).is_err());
        assert!(verify_strict(&signer.key, &message, &signature).is_err());
    }

    #[test]
    fn small_order_keys_are_refused() {
        for torsion in EIGHT_TORSION {
            let key = VerifyingKey::from_bytes(&torsion.compress().to_bytes()).unwrap();
            let mut bytes = [0u8; 64];
            bytes[..32].copy_from_slice(&torsion.compress().to_bytes());
            let signature = Signature::from_bytes(&bytes);
            assert!(verify_strict(&key, b"any message", &signature).is_err());
        }
    }

    proptest! {
        /// On honest, altered and mixed-order signatures alike, the rule
        /// accepts exactly what `verify_strict` accepts.
        #[test]
        fn agrees_with_verify_strict(
            seed in any::<u64>(),
            key_torsion in 0usize..8,
            nonce_torsion in 0usize..8,
            r_seed in any::<[u8; 32]>(),
            message in proptest::collection::vec(any::<u8>(), 0..64),
            flip in proptest::option::of((0usize..64, 0u8..8)),
        ) {
            let signer = MixedOrderSigner::new(seed, key_torsion);
            // One case in four has r = 0, so R = EIGHT_TORSION[nonce_torsion]
            // has small order.
            let r = if r_seed[0] < 64 {
                Scalar::ZERO
            } else {
                Scalar::from_bytes_mod_order(r_seed)
            };
            let mut bytes = signer.sign(&message, r, nonce_torsion).to_bytes();
            if let Some((index, bit)) = flip {
                bytes[index] ^= 1 << bit;
            }
            let signature = Signature::from_bytes(&bytes);
            prop_assert_eq!(
                verify_strict(&signer.key, &message, &signature).is_ok(),
                signer.key.verify_strict(&message, &signature).is_ok()
            );
        }
    }
}
