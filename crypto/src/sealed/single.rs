//! Single-recipient sealed envelopes, version `0x31` (SPEC §15.5): an
//! ephemeral layer that hides the sender's key, then a static layer that
//! only the holder of that key could have made.

use subtle::ConstantTimeEq;
use x25519_dalek::PublicKey as DhPublic;
use zeroize::Zeroizing;

use crate::error::fixed;
use crate::keys::{DhKeyPair, IdentityKey, IdentityKeyPair, dh};
use rand_core::CryptoRngCore;

use super::certificate::SenderCertificate;
use super::content::{padded_plaintext, parse_plaintext};
use super::errors::{SealError, UnsealError};
use super::{
    INFO_SEALED_EPHEMERAL, INFO_SEALED_STATIC, VERSION_SINGLE, aead_open, aead_seal, hkdf,
};

/// Version byte, ephemeral key and encrypted static key.
const HEADER_LEN: usize = 1 + 32 + 48;

/// The ephemeral layer's chain value and key, from `DH(e, R)`.
fn ephemeral_keys(
    recipient: &[u8; 32],
    ephemeral: &[u8; 32],
    shared: &[u8; 32],
) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(recipient);
    salt[32..].copy_from_slice(ephemeral);
    let okm = hkdf::<64>(Some(&salt), shared, INFO_SEALED_EPHEMERAL);
    let mut chain = Zeroizing::new([0u8; 32]);
    let mut key = Zeroizing::new([0u8; 32]);
    chain.copy_from_slice(&okm[..32]);
    key.copy_from_slice(&okm[32..]);
    (chain, key)
}

/// The static layer's key, from `DH(s, R)` and the ephemeral layer.
fn static_key(chain: &[u8; 32], static_ct: &[u8], shared: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut salt = Zeroizing::new(Vec::with_capacity(32 + static_ct.len()));
    salt.extend_from_slice(chain);
    salt.extend_from_slice(static_ct);
    hkdf::<32>(Some(&salt), shared, INFO_SEALED_STATIC)
}

/// Seals `inner` with `certificate` for one recipient device:
/// `0x31 ‖ E ‖ static_ct ‖ msg_ct`, a bucket long.
pub fn seal_single(
    sender: &IdentityKeyPair,
    recipient: &IdentityKey,
    certificate: &SenderCertificate,
    inner: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, SealError> {
    let plaintext = padded_plaintext(certificate, inner)?;
    let ephemeral = DhKeyPair::generate(rng);
    let ephemeral_public = ephemeral.public.to_bytes();
    let recipient_dh = recipient.dh_public();
    let shared = dh(&ephemeral.secret, recipient_dh)?;
    let (chain, ephemeral_key) =
        ephemeral_keys(recipient_dh.as_bytes(), &ephemeral_public, &shared);

    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + 16);
    out.push(VERSION_SINGLE);
    out.extend_from_slice(&ephemeral_public);
    let static_ct = aead_seal(&ephemeral_key, &out, &sender.public().dh_key_bytes())?;
    let static_shared = sender.dh(recipient_dh)?;
    let key = static_key(&chain, &static_ct, &static_shared);
    out.extend_from_slice(&static_ct);
    let message_ct = aead_seal(&key, &out, &plaintext)?;
    out.extend_from_slice(&message_ct);
    Ok(out)
}

/// Removes both layers of a `0x31` envelope whose length was checked, and
/// requires the certificate to name the key that sealed it.
pub(super) fn open_single(
    recipient: &IdentityKeyPair,
    envelope: &[u8],
) -> Result<(SenderCertificate, Zeroizing<Vec<u8>>), UnsealError> {
    let (header, message_ct) = envelope.split_at(HEADER_LEN);
    let ephemeral_public: [u8; 32] = fixed("ephemeral", &header[1..33])?;
    let static_ct = &header[33..];
    let shared = recipient.dh(&DhPublic::from(ephemeral_public))?;
    let recipient_dh = recipient.public().dh_key_bytes();
    let (chain, ephemeral_key) = ephemeral_keys(&recipient_dh, &ephemeral_public, &shared);
    let sender_static = aead_open(&ephemeral_key, &header[..33], static_ct)?;
    let sender_static: [u8; 32] = fixed("static", &sender_static)?;
    let static_shared = recipient.dh(&DhPublic::from(sender_static))?;
    let key = static_key(&chain, static_ct, &static_shared);
    let plaintext = aead_open(&key, header, message_ct)?;
    let (certificate, inner) = parse_plaintext(&plaintext)?;
    if !bool::from(certificate.identity()[32..].ct_eq(&sender_static)) {
        return Err(UnsealError::StaticKeyMismatch);
    }
    Ok((certificate, inner))
}
