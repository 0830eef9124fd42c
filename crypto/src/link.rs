//! Cross-signed device links (SPEC.md §2.5): a device that links a new
//! device of its account vouches for the new device's identity key, so
//! that contacts who verified the account keep it verified.
//!
//! The link code a person carries from the old device to the new one holds
//! a short secret the server never sees. Both devices derive a one-time
//! Ed25519 *link key* from it. The old device signs the link key's public
//! half with its identity (the [`LinkGrant`], handed to the server with the
//! code); the new device signs its own identity key with the link key (the
//! endorsement). The two signatures and the signer's device id make the
//! [`DeviceCertificate`] the server serves beside the new device's keys. A
//! server that does not hold the secret cannot make an endorsement, so it
//! cannot pass a key of its own off as one the account's device vouched
//! for.

use ed25519_dalek::SigningKey;
use hkdf::Hkdf;
use rand_core::CryptoRngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{DecodeError, fixed};
use crate::keys::{
    IdentityKey, IdentityKeyPair, SignatureError, sign_with, verify_with, verifying_key,
};

/// Signature context of a link grant (the linking device's identity over
/// the link key).
pub(crate) const CONTEXT_LINK_GRANT: &[u8] = b"Starling_DeviceLinkGrant_v1";
/// Signature context of an endorsement (the link key over the new device's
/// identity).
pub(crate) const CONTEXT_LINKED_DEVICE: &[u8] = b"Starling_LinkedDevice_v1";
/// HKDF info deriving the link key from the link secret.
const INFO_LINK_KEY: &[u8] = b"Starling_LinkKey_v1";
/// Bytes of a link secret.
pub const LINK_SECRET_LEN: usize = 16;
/// Bytes of an encoded [`LinkGrant`].
pub const GRANT_LEN: usize = 32 + 64;
/// Version byte of an encoded [`DeviceCertificate`].
const CERTIFICATE_VERSION: u8 = 1;
/// Bytes of an encoded [`DeviceCertificate`].
pub const CERTIFICATE_LEN: usize = 1 + 4 + GRANT_LEN + 64;

/// The secret in a link code: 16 random bytes, never sent to the server.
pub struct LinkSecret(Zeroizing<[u8; LINK_SECRET_LEN]>);

impl LinkSecret {
    /// A fresh secret.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut bytes = Zeroizing::new([0u8; LINK_SECRET_LEN]);
        rng.fill_bytes(bytes.as_mut());
        Self(bytes)
    }

    /// The secret from its bytes (as carried in a link code).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        Ok(Self(Zeroizing::new(fixed("link secret", bytes)?)))
    }

    /// The secret's bytes, to put in a link code.
    pub fn as_bytes(&self) -> &[u8; LINK_SECRET_LEN] {
        &self.0
    }

    /// The one-time link key: HKDF-SHA-256 of the secret.
    fn key(&self) -> SigningKey {
        let mut seed = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA-256's output limit.
        let _ = Hkdf::<Sha256>::new(None, self.0.as_ref()).expand(INFO_LINK_KEY, seed.as_mut());
        SigningKey::from_bytes(&seed)
    }
}

impl core::fmt::Debug for LinkSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("LinkSecret(..)")
    }
}

/// `BE16(len(username)) || username || key`: what the grant signs.
fn bound(username: &str, key: &[u8]) -> Vec<u8> {
    let name = username.as_bytes();
    let len = u16::try_from(name.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(2 + name.len() + key.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&name[..usize::from(len).min(name.len())]);
    out.extend_from_slice(key);
    out
}

/// The linking device's signature over the link key: "the device that
/// proves it holds this link's secret is `username`'s".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkGrant {
    link_key: [u8; 32],
    signature: [u8; 64],
}

impl LinkGrant {
    /// Signs the link key of `secret` for `username` with `identity`.
    pub fn sign(identity: &IdentityKeyPair, username: &str, secret: &LinkSecret) -> Self {
        let link_key = secret.key().verifying_key().to_bytes();
        let signature = identity
            .sign(CONTEXT_LINK_GRANT, &bound(username, &link_key))
            .to_bytes();
        Self {
            link_key,
            signature,
        }
    }

    /// `link_key || signature` (96 bytes).
    pub fn to_bytes(&self) -> [u8; GRANT_LEN] {
        let mut out = [0u8; GRANT_LEN];
        out[..32].copy_from_slice(&self.link_key);
        out[32..].copy_from_slice(&self.signature);
        out
    }

    /// Decodes a grant (length and key checked; the signature is checked
    /// by [`LinkGrant::verify`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let bytes: [u8; GRANT_LEN] = fixed("link grant", bytes)?;
        let mut link_key = [0u8; 32];
        link_key.copy_from_slice(&bytes[..32]);
        verifying_key("link key", &link_key)?;
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&bytes[32..]);
        Ok(Self {
            link_key,
            signature,
        })
    }

    /// Checks the grant is `signer`'s, for `username`.
    pub fn verify(&self, username: &str, signer: &IdentityKey) -> Result<(), SignatureError> {
        signer.verify(
            "link grant",
            CONTEXT_LINK_GRANT,
            &bound(username, &self.link_key),
            &self.signature,
        )
    }

    /// Checks `endorsement` is the link key's signature over `device`'s
    /// identity.
    pub fn verify_endorsement(
        &self,
        device: &IdentityKey,
        endorsement: &[u8],
    ) -> Result<(), SignatureError> {
        let key = verifying_key("link key", &self.link_key)?;
        verify_with(
            &key,
            "linked device",
            CONTEXT_LINKED_DEVICE,
            &device.public_bytes(),
            endorsement,
        )
    }
}

/// The new device's side: the link key of `secret` signs `identity` (64
/// bytes). The account is named by the grant; the new device does not
/// know it until the server answers the link.
pub fn endorse(secret: &LinkSecret, identity: &IdentityKey) -> [u8; 64] {
    sign_with(
        &secret.key(),
        CONTEXT_LINKED_DEVICE,
        &identity.public_bytes(),
    )
    .to_bytes()
}

/// A device's proof that another device of its account linked it: the
/// signer's device id, its grant and the new device's endorsement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCertificate {
    signer_device: u32,
    grant: LinkGrant,
    endorsement: [u8; 64],
}

impl DeviceCertificate {
    /// Assembles a certificate (nothing is checked here).
    pub fn new(signer_device: u32, grant: LinkGrant, endorsement: [u8; 64]) -> Self {
        Self {
            signer_device,
            grant,
            endorsement,
        }
    }

    /// The device that vouched.
    pub fn signer_device(&self) -> u32 {
        self.signer_device
    }

    /// `0x01 || BE32(signer_device) || grant || endorsement` (165 bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CERTIFICATE_LEN);
        out.push(CERTIFICATE_VERSION);
        out.extend_from_slice(&self.signer_device.to_be_bytes());
        out.extend_from_slice(&self.grant.to_bytes());
        out.extend_from_slice(&self.endorsement);
        out
    }

    /// Decodes a certificate: exactly [`CERTIFICATE_LEN`] bytes, version 1.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let bytes: [u8; CERTIFICATE_LEN] = fixed("device certificate", bytes)?;
        if bytes[0] != CERTIFICATE_VERSION {
            return Err(DecodeError::UnsupportedVersion(u32::from(bytes[0])));
        }
        let signer_device = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        let grant = LinkGrant::from_bytes(&bytes[5..5 + GRANT_LEN])?;
        let endorsement = fixed("endorsement", &bytes[5 + GRANT_LEN..])?;
        Ok(Self {
            signer_device,
            grant,
            endorsement,
        })
    }

    /// Checks that `signer` (the identity of [`Self::signer_device`], as
    /// the caller holds it) vouched for `device`, both of `username`.
    pub fn verify(
        &self,
        username: &str,
        signer: &IdentityKey,
        device: &IdentityKey,
    ) -> Result<(), SignatureError> {
        self.grant.verify(username, signer)?;
        self.grant.verify_endorsement(device, &self.endorsement)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    struct Link {
        phone: IdentityKeyPair,
        laptop: IdentityKeyPair,
        certificate: DeviceCertificate,
    }

    fn link(seed: u64) -> Link {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let phone = IdentityKeyPair::generate(&mut rng);
        let laptop = IdentityKeyPair::generate(&mut rng);
        let secret = LinkSecret::generate(&mut rng);
        let grant = LinkGrant::sign(&phone, "alice", &secret);
        // The code carries the secret's bytes to the new device.
        let carried = LinkSecret::from_bytes(secret.as_bytes()).unwrap();
        let endorsement = endorse(&carried, laptop.public());
        let grant = LinkGrant::from_bytes(&grant.to_bytes()).unwrap();
        Link {
            phone,
            laptop,
            certificate: DeviceCertificate::new(1, grant, endorsement),
        }
    }

    #[test]
    fn a_linked_device_is_vouched_for_by_the_linking_device() {
        let link = link(1);
        let decoded = DeviceCertificate::from_bytes(&link.certificate.to_bytes()).unwrap();
        assert_eq!(decoded, link.certificate);
        assert_eq!(decoded.signer_device(), 1);
        decoded
            .verify("alice", link.phone.public(), link.laptop.public())
            .unwrap();
    }

    #[test]
    fn another_key_another_signer_or_another_account_is_refused() {
        let link = link(2);
        let mut rng = ChaCha20Rng::seed_from_u64(99);
        let stranger = IdentityKeyPair::generate(&mut rng);
        let c = &link.certificate;
        // The server swaps the new device's key for its own.
        assert!(
            c.verify("alice", link.phone.public(), stranger.public())
                .is_err()
        );
        // A grant checked against another device's identity.
        assert!(
            c.verify("alice", stranger.public(), link.laptop.public())
                .is_err()
        );
        // The same certificate shown under another account.
        assert!(
            c.verify("bob", link.phone.public(), link.laptop.public())
                .is_err()
        );
    }

    #[test]
    fn an_endorsement_needs_the_secret() {
        let link = link(3);
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let stranger = IdentityKeyPair::generate(&mut rng);
        // A server without the secret endorses its own key with a link key
        // of its own choosing: the grant does not name that key.
        let guessed = LinkSecret::generate(&mut rng);
        let forged = DeviceCertificate::new(
            1,
            link.certificate.grant.clone(),
            endorse(&guessed, stranger.public()),
        );
        assert!(
            forged
                .verify("alice", link.phone.public(), stranger.public())
                .is_err()
        );
    }

    #[test]
    fn malformed_certificates_are_refused() {
        let bytes = link(4).certificate.to_bytes();
        assert_eq!(bytes.len(), CERTIFICATE_LEN);
        assert!(DeviceCertificate::from_bytes(&bytes[1..]).is_err());
        let mut version = bytes.clone();
        version[0] = 2;
        assert_eq!(
            DeviceCertificate::from_bytes(&version),
            Err(DecodeError::UnsupportedVersion(2))
        );
        // A small-order link key.
        let mut weak = bytes;
        weak[5..37].copy_from_slice(&[0u8; 32]);
        weak[5] = 1;
        assert!(DeviceCertificate::from_bytes(&weak).is_err());
    }

    proptest! {
        #[test]
        fn any_flipped_bit_fails_to_decode_or_verify(index in 0..CERTIFICATE_LEN, bit in 0u8..8) {
            let link = link(5);
            let mut bytes = link.certificate.to_bytes();
            bytes[index] ^= 1 << bit;
            if let Ok(certificate) = DeviceCertificate::from_bytes(&bytes) {
                // A changed signer id still verifies against the identity
                // the caller looks up for it; here that is a wrong one.
                let verified = certificate
                    .verify("alice", link.phone.public(), link.laptop.public());
                prop_assert!(index < 5 || verified.is_err());
            }
        }
    }
}
