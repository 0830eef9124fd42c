//! Multi-recipient sealed envelopes, version `0x32` (SPEC §15.6): one
//! ciphertext for every recipient device, plus 48 bytes per device, after
//! Signal's sealed sender v2 (Barbosa, "Randomness Reuse", §4.1).
//!
//! Each device receives `0x32 ‖ C ‖ AT ‖ E ‖ ct`, the same length as a
//! single-recipient envelope of the same content.

use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};
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
    /// `AT_i`: proof that the sender's identity sealed this ciphertext,
    /// with this `C_i`, for this device.
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

/// What the sender's tag covers besides the static DH: the ephemeral key,
/// this device's `C`, both identity keys, and the shared ciphertext.
struct Tagged<'a> {
    ephemeral: &'a [u8; 32],
    c: &'a [u8; 32],
    sender: &'a [u8; 32],
    recipient: &'a [u8; 32],
    ciphertext_hash: &'a [u8; 32],
}

/// `HKDF(DH(s, R) ‖ E ‖ C ‖ S ‖ R ‖ SHA-256(ct))`, truncated to 16 bytes.
/// The ciphertext hash keeps a recipient, who knows `M` and so `K`, from
/// putting other content under another device's header.
fn authentication_tag(shared: &[u8; 32], tagged: &Tagged<'_>) -> [u8; 16] {
    let mut ikm = Zeroizing::new([0u8; 192]);
    ikm[..32].copy_from_slice(shared);
    ikm[32..64].copy_from_slice(tagged.ephemeral);
    ikm[64..96].copy_from_slice(tagged.c);
    ikm[96..128].copy_from_slice(tagged.sender);
    ikm[128..160].copy_from_slice(tagged.recipient);
    ikm[160..].copy_from_slice(tagged.ciphertext_hash);
    *hkdf::<16>(None, &ikm[..], INFO_MULTI_DH_SENDER)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
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
    let mut aad = [0u8; 33];
    aad[0] = VERSION_MULTI;
    aad[1..].copy_from_slice(&ephemeral);
    let ciphertext = aead_seal(&content_key, &aad, &plaintext)?;
    let ciphertext_hash = sha256(&ciphertext);
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
        let tagged = Tagged {
            ephemeral: &ephemeral,
            c: &c,
            sender: &sender_static,
            recipient: recipient_dh.as_bytes(),
            ciphertext_hash: &ciphertext_hash,
        };
        let at = authentication_tag(&static_shared, &tagged);
        headers.push(RecipientHeader { c, at });
    }
    Ok(MultiRecipientSeal {
        ephemeral,
        ciphertext,
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
    let tagged = Tagged {
        ephemeral: &ephemeral,
        c: &c,
        sender: &sender_static,
        recipient: &recipient_dh,
        ciphertext_hash: &sha256(ciphertext),
    };
    let expected = authentication_tag(&static_shared, &tagged);
    if !bool::from(expected.ct_eq(&at)) {
        return Err(UnsealError::StaticKeyMismatch);
    }
    Ok((certificate, inner))
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::padding::pad;
    use crate::proto::wire;
    use crate::sealed::{ServerSigningKey, open};

    struct Scene {
        rng: ChaCha20Rng,
        alice: IdentityKeyPair,
        bob: IdentityKeyPair,
        carol: IdentityKeyPair,
        certificate: SenderCertificate,
    }

    fn scene() -> Scene {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let server = ServerSigningKey::generate(0, &mut rng);
        let alice = IdentityKeyPair::generate(&mut rng);
        let bob = IdentityKeyPair::generate(&mut rng);
        let carol = IdentityKeyPair::generate(&mut rng);
        let certificate =
            SenderCertificate::issue(&server, "alice", 1, alice.public(), u64::MAX).unwrap();
        Scene {
            rng,
            alice,
            bob,
            carol,
            certificate,
        }
    }

    /// What Bob learns from his own envelope: the message secret.
    fn bobs_secret(s: &Scene, envelope: &[u8]) -> Zeroizing<[u8; 32]> {
        let c: [u8; 32] = envelope[1..33].try_into().unwrap();
        let e: [u8; 32] = envelope[49..81].try_into().unwrap();
        let shared = s.bob.dh(&DhPublic::from(e)).unwrap();
        let pad = secret_pad(&shared, &e, &s.bob.public().dh_key_bytes());
        let mut secret = Zeroizing::new([0u8; 32]);
        for (out, (c, p)) in secret.iter_mut().zip(c.iter().zip(pad.iter())) {
            *out = c ^ p;
        }
        secret
    }

    #[test]
    fn a_recipient_cannot_put_other_content_under_anothers_header() {
        let mut s = scene();
        let recipients = [s.bob.public(), s.carol.public()];
        let seal = seal_multi(&s.alice, &recipients, &s.certificate, b"real", &mut s.rng).unwrap();
        let secret = bobs_secret(&s, &seal.envelope(0).unwrap());
        let (_, key) = derive(&secret);
        let forged_content = wire::SealedSenderContent {
            version: 1,
            certificate: Some(s.certificate.to_proto()),
            inner: b"forged".to_vec(),
        };
        let encoded = prost::Message::encode_to_vec(&forged_content);
        let plaintext = pad(&encoded, seal.ciphertext.len() - 16).unwrap();
        let mut aad = [VERSION_MULTI; 33];
        aad[1..].copy_from_slice(&seal.ephemeral);
        let forged_ct = aead_seal(&key, &aad, &plaintext).unwrap();
        let carols = &seal.recipients[1];
        let forged = assemble(&carols.c, &carols.at, &seal.ephemeral, &forged_ct);
        assert_eq!(
            open(&s.carol, &forged).unwrap_err(),
            UnsealError::StaticKeyMismatch
        );
        // The genuine envelope opens.
        assert!(open(&s.carol, &seal.envelope(1).unwrap()).is_ok());
    }

    #[test]
    fn a_recipient_cannot_readdress_an_envelope_to_another_device() {
        // Bob knows M, so r, so he can compute C for Carol under the same E;
        // only the tag, which needs DH(s_alice, R_carol), stops him.
        let mut s = scene();
        let seal = seal_multi(
            &s.alice,
            &[s.bob.public()],
            &s.certificate,
            b"x",
            &mut s.rng,
        )
        .unwrap();
        let bobs = seal.envelope(0).unwrap();
        let secret = bobs_secret(&s, &bobs);
        let (ephemeral_secret, _) = derive(&secret);
        let carol_dh = s.carol.public().dh_key_bytes();
        let shared = dh(&ephemeral_secret, &DhPublic::from(carol_dh)).unwrap();
        let pad = secret_pad(&shared, &seal.ephemeral, &carol_dh);
        let mut c = [0u8; 32];
        for (out, (m, p)) in c.iter_mut().zip(secret.iter().zip(pad.iter())) {
            *out = m ^ p;
        }
        let at: [u8; 16] = bobs[33..49].try_into().unwrap();
        let readdressed = assemble(&c, &at, &seal.ephemeral, &seal.ciphertext);
        assert_eq!(
            open(&s.carol, &readdressed).unwrap_err(),
            UnsealError::StaticKeyMismatch
        );
    }
}
