//! The post-quantum part of PQXDH (Signal's PQXDH specification): ML-KEM-768
//! encapsulation to the responder's signed KEM prekey. Its shared secret is
//! appended to the X3DH DH outputs (see `x3dh::shared_secret`), so the
//! session key stays secret if either X25519 or ML-KEM holds.

use ml_kem::kem::{Decapsulate, Encapsulate};
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::prekeys::{KEM_CIPHERTEXT_LEN, KemDecapsulationKey, KemEncapsulationKey};

/// The initiator's side: a ciphertext for the responder and the secret.
pub(crate) fn encapsulate(
    key: &KemEncapsulationKey,
    rng: &mut impl CryptoRngCore,
) -> Option<(Vec<u8>, Zeroizing<[u8; 32]>)> {
    // ML-KEM encapsulation cannot fail for a well-formed key; the library's
    // signature still returns a Result, surfaced as None.
    let (ciphertext, shared) = key.encapsulate(rng).ok()?;
    let mut secret = Zeroizing::new([0u8; 32]);
    secret.copy_from_slice(&shared);
    Some((ciphertext.to_vec(), secret))
}

/// The responder's side. ML-KEM rejects implicitly: a wrong ciphertext
/// yields an unrelated secret, and the first message then fails to decrypt.
pub(crate) fn decapsulate(
    key: &KemDecapsulationKey,
    ciphertext: &[u8],
) -> Option<Zeroizing<[u8; 32]>> {
    if ciphertext.len() != KEM_CIPHERTEXT_LEN {
        return None;
    }
    let ciphertext = ml_kem::Ciphertext::<ml_kem::MlKem768>::try_from(ciphertext).ok()?;
    let shared = key.decapsulate(&ciphertext).ok()?;
    let mut secret = Zeroizing::new([0u8; 32]);
    secret.copy_from_slice(&shared);
    Some(secret)
}
