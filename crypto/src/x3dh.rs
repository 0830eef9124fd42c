//! The X25519 half of PQXDH (Signal's X3DH DHs) and PQXDH's shared-secret
//! KDF. A session is never set up from the DHs alone: the ML-KEM shared
//! secret (from `pqxdh`) is always part of the KDF input.
//!
//! Both sides compute the same DH values in the same order:
//! DH1 = DH(IK_A, SPK_B), DH2 = DH(EK_A, IK_B), DH3 = DH(EK_A, SPK_B),
//! DH4 = DH(EK_A, OPK_B) when a one-time prekey is used. Every DH must be
//! contributory. The ML-KEM part of PQXDH lives in `pqxdh`.

use hkdf::Hkdf;
use sha2::Sha256;
use x25519_dalek::PublicKey as DhPublic;
use zeroize::Zeroizing;

use crate::keys::{DhKeyPair, IdentityKey, IdentityKeyPair, NonContributoryKey, dh};

/// HKDF info for a session set up with PQXDH.
pub const INFO_PQXDH: &[u8] = b"Starling_PQXDH_v1_X25519_SHA-256_ML-KEM-768";

/// The DH outputs of one agreement, in order.
pub(crate) struct DhOutputs(Vec<Zeroizing<[u8; 32]>>);

/// The initiator's DHs: IK_A and EK_A against the bundle's keys.
pub(crate) fn initiator_dhs(
    identity: &IdentityKeyPair,
    ephemeral: &DhKeyPair,
    responder: &IdentityKey,
    signed_prekey: &DhPublic,
    one_time_prekey: Option<&DhPublic>,
) -> Result<DhOutputs, NonContributoryKey> {
    let mut outputs = vec![
        identity.dh(signed_prekey)?,
        dh(&ephemeral.secret, responder.dh_public())?,
        dh(&ephemeral.secret, signed_prekey)?,
    ];
    if let Some(one_time) = one_time_prekey {
        outputs.push(dh(&ephemeral.secret, one_time)?);
    }
    Ok(DhOutputs(outputs))
}

/// The responder's DHs, mirroring [`initiator_dhs`].
pub(crate) fn responder_dhs(
    identity: &IdentityKeyPair,
    signed_prekey: &DhKeyPair,
    one_time_prekey: Option<&DhKeyPair>,
    initiator: &IdentityKey,
    base_key: &DhPublic,
) -> Result<DhOutputs, NonContributoryKey> {
    let mut outputs = vec![
        dh(&signed_prekey.secret, initiator.dh_public())?,
        identity.dh(base_key)?,
        dh(&signed_prekey.secret, base_key)?,
    ];
    if let Some(one_time) = one_time_prekey {
        outputs.push(dh(&one_time.secret, base_key)?);
    }
    Ok(DhOutputs(outputs))
}

/// SK = HKDF-SHA256(salt = 0^32, ikm = 0xFF^32 || DH1 || .. || DH4 || SS,
/// info = [`INFO_PQXDH`], L = 32): PQXDH's KDF.
pub(crate) fn shared_secret(dhs: &DhOutputs, kem_secret: &[u8; 32]) -> Box<[u8; 32]> {
    let mut ikm = Zeroizing::new(Vec::with_capacity(32 * 6));
    ikm.extend_from_slice(&[0xFF; 32]);
    for output in &dhs.0 {
        ikm.extend_from_slice(&output[..]);
    }
    ikm.extend_from_slice(kem_secret);
    let hkdf = Hkdf::<Sha256>::new(Some(&[0u8; 32]), &ikm);
    let mut secret = Box::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's output limit.
    let _ = hkdf.expand(INFO_PQXDH, &mut secret[..]);
    secret
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs() -> DhOutputs {
        DhOutputs((1..=4u8).map(|i| Zeroizing::new([i; 32])).collect())
    }

    #[test]
    fn kem_secret_changes_the_session_key() {
        let post_quantum = shared_secret(&outputs(), &[9; 32]);
        let other_kem = shared_secret(&outputs(), &[8; 32]);
        assert_ne!(post_quantum, other_kem);
        assert_eq!(post_quantum, shared_secret(&outputs(), &[9; 32]));
    }

    #[test]
    fn every_dh_output_matters() {
        let base = shared_secret(&outputs(), &[9; 32]);
        for i in 0..4 {
            let mut changed = outputs();
            changed.0[i][0] ^= 1;
            assert_ne!(shared_secret(&changed, &[9; 32]), base);
        }
    }
}
