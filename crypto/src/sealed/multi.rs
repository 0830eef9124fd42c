//! Multi-recipient sealed envelopes, version `0x32` (SPEC §15.6): one
//! ciphertext for every recipient device, plus 48 bytes per device, after
//! Signal's sealed sender v2 (Barbosa, "Randomness Reuse", §4.1).
//!
//! Each device receives `0x32 ‖ C ‖ AT ‖ E ‖ ct`, the same length as a
//! single-recipient envelope of the same content.

use rand_core::CryptoRngCore;
use subtle::ConstantTimeEq;
use x25519_dalek::{PublicKey as DhPublic, StaticSecret};
use zeroize::Zeroizing;

use crate::error::fixed;
use crate::keys::{IdentityKey, IdentityKeyPair, dh};

use super::certificate::SenderCertificate;
use super::content::{padded_plaintext, parse_plaintext};
use super::errors::{SealError, UnsealError};
use super::{VERSION_MULTI, aead_open, aead_seal, hkdf};

const INFO_MULTI_R: &[u8] = b"Starling_SealedSender_Multi_r_v1";
const INFO_MULTI_K: &[u8] = b"Starling_SealedSender_Multi_K_v1";
const INFO_MULTI_DH: &[u8] = b"Starling_SealedSender_Multi_DH_v1";
const INFO_MULTI_DH_SENDER: &[u8] = b"Starling_SealedSender_Multi_DHSender_v1";

/// Version byte, `C`, `AT` and `E`.
const HEADER_LEN: usize = 1 + 32 + 16 + 32;

/// What one recipient device needs besides the shared part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientHeader {
    /// `C_i`: the message secret, encrypted to this device.
    pub c: [u8; 32],
    /// `AT_i`: proof that the sender's identity sealed it for this device.
    pub at: [u8; 16],
}

/// One multi-recipient seal: the shared ephemeral key and ciphertext, and
/// one header per recipient device, in the order the devices were given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiRecipientSeal {
    /// `E`, shared by every recipient.
    pub ephemeral: [u8; 32],
    /// The padded content, encrypted once.
    pub ciphertext: Vec<u8>,
    /// Per device, in order.
    pub recipients: Vec<RecipientHeader>,
}

impl MultiRecipientSeal {
    /// The envelope device `index` receives, or `None` past the end.
    pub fn envelope(&self, index: usize) -> Option<Vec<u8>> {
        let header = self.recipients.get(index)?;
        Some(assemble(
            &header.c,
            &header.at,
            &self.ephemeral,
            &self.ciphertext,
        ))
    }
}

/// `0x32 ‖ C ‖ AT ‖ E ‖ ct`: what the server stores for one device of a
/// multi-recipient send.
pub fn assemble(c: &[u8; 32], at: &[u8; 16], ephemeral: &[u8; 32], ciphertext: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + ciphertext.len());
    out.push(VERSION_MULTI);
    out.extend_from_slice(c);
    out.extend_from_slice(at);
    out.extend_from_slice(ephemeral);
    out.extend_from_slice(ciphertext);
    out
}

/// The ephemeral secret and the content key, both from the message secret.
fn derive(secret: &[u8; 32]) -> (StaticSecret, Zeroizing<[u8; 32]>) {
    let r = hkdf::<32>(None, secret, INFO_MULTI_R);
    (
        StaticSecret::from(*r),
        hkdf::<32>(None, secret, INFO_MULTI_K),
    )
}

/// `HKDF(DH(e, R) ‖ E ‖ R)`, the pad that encrypts the message secret.
fn secret_pad(
    shared: &[u8; 32],
    ephemeral: &[u8; 32],
    recipient: &[u8; 32],
) -> Zeroizing<[u8; 32]> {
    let mut ikm = Zeroizing::new([0u8; 96]);
    ikm[..32].copy_from_slice(shared);
    ikm[32..64].copy_from_slice(ephemeral);
    ikm[64..].copy_from_slice(recipient);
    hkdf::<32>(None, &ikm[..], INFO_MULTI_DH)
}

/// `HKDF(DH(s, R) ‖ E ‖ C ‖ S ‖ R)`, truncated to 16 bytes.
fn authentication_tag(
    shared: &[u8; 32],
    ephemeral: &[u8; 32],
    c: &[u8; 32],
    sender: &[u8; 32],
    recipient: &[u8; 32],
) -> [u8; 16] {
    let mut ikm = Zeroizing::new([0u8; 160]);
    ikm[..32].copy_from_slice(shared);
    ikm[32..64].copy_from_slice(ephemeral);
    ikm[64..96].copy_from_slice(c);
    ikm[96..128].copy_from_slice(sender);
    ikm[128..].copy_from_slice(recipient);
    *hkdf::<16>(None, &ikm[..], INFO_MULTI_DH_SENDER)
}

/// Seals `inner` with `certificate` once for every device in `recipients`.
pub fn seal_multi(
    sender: &IdentityKeyPair,
    recipients: &[&IdentityKey],
    certificate: &SenderCertificate,
    inner: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<MultiRecipientSeal, SealError> {
    if recipients.is_empty() {
        return Err(SealError::NoRecipients);
    }
    let plaintext = padded_plaintext(certificate, inner)?;
    let mut secret = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(&mut secret[..]);
    let (ephemeral_secret, content_key) = derive(&secret);
    let ephemeral = DhPublic::from(&ephemeral_secret).to_bytes();
    let sender_static = sender.public().dh_key_bytes();
    let mut headers = Vec::with_capacity(recipients.len());
    for recipient in recipients {
        let recipient_dh = recipient.dh_public();
        let shared = dh(&ephemeral_secret, recipient_dh)?;
        let pad = secret_pad(&shared, &ephemeral, recipient_dh.as_bytes());
        let mut c = [0u8; 32];
        for (out, (s, p)) in c.iter_mut().zip(secret.iter().zip(pad.iter())) {
            *out = s ^ p;
        }
        let static_shared = sender.dh(recipient_dh)?;
        let at = authentication_tag(
            &static_shared,
            &ephemeral,
            &c,
            &sender_static,
            recipient_dh.as_bytes(),
        );
        headers.push(RecipientHeader { c, at });
    }
    let mut aad = [0u8; 33];
    aad[0] = VERSION_MULTI;
    aad[1..].copy_from_slice(&ephemeral);
    Ok(MultiRecipientSeal {
        ephemeral,
        ciphertext: aead_seal(&content_key, &aad, &plaintext),
        recipients: headers,
    })
}

/// Opens a `0x32` envelope whose length was checked: recovers the message
/// secret, requires the ephemeral key to be the one it derives, decrypts,
/// and requires the tag to prove the certificate's key sealed it.
pub(super) fn open_multi(
    recipient: &IdentityKeyPair,
    envelope: &[u8],
) -> Result<(SenderCertificate, Zeroizing<Vec<u8>>), UnsealError> {
    let (header, ciphertext) = envelope.split_at(HEADER_LEN);
    let c: [u8; 32] = fixed("c", &header[1..33])?;
    let at: [u8; 16] = fixed("at", &header[33..49])?;
    let ephemeral: [u8; 32] = fixed("ephemeral", &header[49..81])?;
    let recipient_dh = recipient.public().dh_key_bytes();
    let shared = recipient.dh(&DhPublic::from(ephemeral))?;
    let pad = secret_pad(&shared, &ephemeral, &recipient_dh);
    let mut secret = Zeroizing::new([0u8; 32]);
    for (out, (c, p)) in secret.iter_mut().zip(c.iter().zip(pad.iter())) {
        *out = c ^ p;
    }
    let (ephemeral_secret, content_key) = derive(&secret);
    if !bool::from(
        DhPublic::from(&ephemeral_secret)
            .as_bytes()
            .ct_eq(&ephemeral),
    ) {
        return Err(UnsealError::Decrypt);
    }
    let mut aad = [0u8; 33];
    aad[0] = VERSION_MULTI;
    aad[1..].copy_from_slice(&ephemeral);
    let plaintext = aead_open(&content_key, &aad, ciphertext)?;
    let (certificate, inner) = parse_plaintext(&plaintext)?;
    let sender_static: [u8; 32] = fixed("certificate.identity", &certificate.identity()[32..])?;
    let static_shared = recipient.dh(&DhPublic::from(sender_static))?;
    let expected = authentication_tag(
        &static_shared,
        &ephemeral,
        &c,
        &sender_static,
        &recipient_dh,
    );
    if !bool::from(expected.ct_eq(&at)) {
        return Err(UnsealError::StaticKeyMismatch);
    }
    Ok((certificate, inner))
}
