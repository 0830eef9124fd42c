//! Sender certificates: the server's signed statement that a device of an
//! account holds an identity until a time (SPEC §15.3), and the
//! verifier clients run on every sealed envelope.
//!
//! A certificate says who sent a sealed envelope; the envelope's static-key
//! binding (`single`, `multi`) proves the holder of that identity sealed
//! it, and the caller must still check the identity against the session it
//! decrypts with before trusting the name.

use std::collections::VecDeque;

use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::error::{DecodeError, MAX_ENCODED_LEN, check_version, decode_proto, fixed};
use crate::keys::{IdentityKey, verify_with};
use crate::proto::wire;

use super::CONTEXT_SENDER_CERT;
use super::server_key::{ServerSigningKey, TrustedServerKeys};

/// Format version of [`SenderCertificate`].
const VERSION: u32 = 1;
/// Signatures a [`CertificateVerifier`] remembers having checked.
pub const VERIFIED_CACHE_LEN: usize = 64;
/// Shortest and longest username a certificate may name.
const USERNAME_LEN: core::ops::RangeInclusive<usize> = 3..=32;

/// Why a sender certificate was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertificateError {
    /// The bytes are not a certificate.
    #[error(transparent)]
    Malformed(#[from] DecodeError),
    /// Signed by a key the client does not trust.
    #[error("certificate signed by unknown server key {0}")]
    UnknownSigner(u32),
    /// The signature does not verify: the certificate was forged or altered.
    #[error("certificate signature does not verify")]
    BadSignature,
    /// Signed by an older server key after its successor had been in use
    /// for longer than any certificate of it can be valid.
    #[error("certificate signed by server key {0}, retired before the envelope was sent")]
    RetiredSigner(u32),
    /// The certificate had expired when the envelope reached the server.
    #[error("certificate expired at {expires_at} (envelope accepted at {at})")]
    Expired {
        /// Expiry, ms since the Unix epoch.
        expires_at: u64,
        /// The time checked against, ms since the Unix epoch.
        at: u64,
    },
}

/// A sender certificate, parsed but not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderCertificate {
    username: String,
    device_id: u32,
    expires_at: u64,
    identity: [u8; 64],
    signer_key_id: u32,
    signature: [u8; 64],
}

/// What a verified certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertifiedSender {
    /// The sending account.
    pub username: String,
    /// The sending device.
    pub device_id: u32,
    /// The sending device's identity, `IdentityKey::public_bytes`.
    pub identity: [u8; 64],
    /// When the certificate expires, ms since the Unix epoch.
    pub expires_at: u64,
}

impl SenderCertificate {
    /// Signs a certificate for `identity` of `device_id` of `username`,
    /// valid until `expires_at`. Refuses usernames outside 3 to 32 bytes.
    pub fn issue(
        signer: &ServerSigningKey,
        username: &str,
        device_id: u32,
        identity: &IdentityKey,
        expires_at: u64,
    ) -> Result<Self, DecodeError> {
        check_fields(username, device_id)?;
        let mut certificate = Self {
            username: username.to_owned(),
            device_id,
            expires_at,
            identity: identity.public_bytes(),
            signer_key_id: signer.public().id(),
            signature: [0; 64],
        };
        certificate.signature = signer.sign(CONTEXT_SENDER_CERT, &certificate.signed_bytes());
        Ok(certificate)
    }

    /// The sending account, as claimed (unverified).
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The sending device, as claimed (unverified).
    pub fn device_id(&self) -> u32 {
        self.device_id
    }

    /// The claimed identity, `IdentityKey::public_bytes`.
    pub fn identity(&self) -> &[u8; 64] {
        &self.identity
    }

    /// Expiry, ms since the Unix epoch.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Id of the server key that signed it.
    pub fn signer_key_id(&self) -> u32 {
        self.signer_key_id
    }

    /// The bytes the server signs (after the context string).
    fn signed_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(81 + self.username.len());
        bytes.extend_from_slice(&self.signer_key_id.to_be_bytes());
        bytes.extend_from_slice(&self.expires_at.to_be_bytes());
        bytes.extend_from_slice(&self.device_id.to_be_bytes());
        bytes.extend_from_slice(&self.identity);
        // The username is at most 32 bytes (checked on issue and decode).
        bytes.push(u8::try_from(self.username.len()).unwrap_or(u8::MAX));
        bytes.extend_from_slice(self.username.as_bytes());
        bytes
    }

    /// What the verifier remembers: the certificate and the key it was
    /// verified with, so that a re-pinned key with the same id verifies
    /// afresh.
    fn digest(&self, key: &VerifyingKey) -> [u8; 32] {
        Sha256::new()
            .chain_update(key.as_bytes())
            .chain_update(CONTEXT_SENDER_CERT)
            .chain_update(self.signed_bytes())
            .chain_update(self.signature)
            .finalize()
            .into()
    }

    /// Checks signer, signature and expiry against `trust` at `at_ms` (the
    /// time the envelope reached the server).
    pub fn verify(
        &self,
        trust: &TrustedServerKeys,
        at_ms: u64,
    ) -> Result<CertifiedSender, CertificateError> {
        CertificateVerifier::new(trust.clone()).verify(self, at_ms)
    }

    pub(crate) fn to_proto(&self) -> wire::SenderCertificate {
        wire::SenderCertificate {
            version: VERSION,
            username: self.username.clone(),
            device_id: self.device_id,
            expires_at: self.expires_at,
            identity: self.identity.to_vec(),
            signer_key_id: self.signer_key_id,
            signature: self.signature.to_vec(),
        }
    }

    pub(crate) fn from_proto(proto: &wire::SenderCertificate) -> Result<Self, DecodeError> {
        check_version(proto.version, VERSION)?;
        check_fields(&proto.username, proto.device_id)?;
        Ok(Self {
            username: proto.username.clone(),
            device_id: proto.device_id,
            expires_at: proto.expires_at,
            identity: fixed("certificate.identity", &proto.identity)?,
            signer_key_id: proto.signer_key_id,
            signature: fixed("certificate.signature", &proto.signature)?,
        })
    }

    /// Encodes the certificate (protobuf `SenderCertificate`).
    pub fn to_bytes(&self) -> Vec<u8> {
        prost::Message::encode_to_vec(&self.to_proto())
    }

    /// Decodes a certificate; nothing about it is verified yet.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let proto: wire::SenderCertificate = decode_proto(bytes, MAX_ENCODED_LEN)?;
        Self::from_proto(&proto)
    }

    fn certified(&self) -> CertifiedSender {
        CertifiedSender {
            username: self.username.clone(),
            device_id: self.device_id,
            identity: self.identity,
            expires_at: self.expires_at,
        }
    }
}

fn check_fields(username: &str, device_id: u32) -> Result<(), DecodeError> {
    let name_ok = USERNAME_LEN.contains(&username.len())
        && username
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !name_ok {
        return Err(DecodeError::InvalidValue("certificate.username"));
    }
    if device_id == 0 {
        return Err(DecodeError::InvalidValue("certificate.device_id"));
    }
    Ok(())
}

/// Verifies sender certificates against the trusted server keys,
/// remembering the last [`VERIFIED_CACHE_LEN`] signatures it checked so
/// that a conversation pays for one Ed25519 verification per certificate,
/// not per message. Signer and expiry are checked every time.
#[derive(Debug, Clone)]
pub struct CertificateVerifier {
    trust: TrustedServerKeys,
    verified: VecDeque<[u8; 32]>,
}

impl CertificateVerifier {
    /// A verifier trusting `trust`.
    pub fn new(trust: TrustedServerKeys) -> Self {
        Self {
            trust,
            verified: VecDeque::with_capacity(VERIFIED_CACHE_LEN),
        }
    }

    /// The keys trusted.
    pub fn trust(&self) -> &TrustedServerKeys {
        &self.trust
    }

    /// Replaces the trusted keys (after [`TrustedServerKeys::advance`]).
    pub fn set_trust(&mut self, trust: TrustedServerKeys) {
        self.trust = trust;
    }

    /// Checks, in order, the signer (trusted, and not retired at `at_ms`),
    /// the signature and the expiry of `certificate` at `at_ms`.
    pub fn verify(
        &mut self,
        certificate: &SenderCertificate,
        at_ms: u64,
    ) -> Result<CertifiedSender, CertificateError> {
        let signer = certificate.signer_key_id;
        let (key, valid_until) = self
            .trust
            .key(signer)
            .ok_or(CertificateError::UnknownSigner(signer))?;
        if valid_until.is_some_and(|last| at_ms > last) {
            return Err(CertificateError::RetiredSigner(signer));
        }
        let digest = certificate.digest(key);
        if !self.verified.contains(&digest) {
            verify_with(
                key,
                "sender certificate",
                CONTEXT_SENDER_CERT,
                &certificate.signed_bytes(),
                &certificate.signature,
            )
            .map_err(|_| CertificateError::BadSignature)?;
            if self.verified.len() == VERIFIED_CACHE_LEN {
                self.verified.pop_front();
            }
            self.verified.push_back(digest);
        }
        if at_ms > certificate.expires_at {
            return Err(CertificateError::Expired {
                expires_at: certificate.expires_at,
                at: at_ms,
            });
        }
        Ok(certificate.certified())
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::IdentityKeyPair;

    struct Fixture {
        server: ServerSigningKey,
        trust: TrustedServerKeys,
        alice: IdentityKeyPair,
    }

    fn fixture(seed: u64) -> Fixture {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let server = ServerSigningKey::generate(0, &mut rng);
        let public = server.public();
        let trust = TrustedServerKeys::pin(1, &public.public_key(), 0).unwrap();
        let alice = IdentityKeyPair::generate(&mut rng);
        Fixture {
            server,
            trust,
            alice,
        }
    }

    #[test]
    fn an_issued_certificate_verifies_and_survives_encoding() {
        let f = fixture(1);
        let cert = SenderCertificate::issue(&f.server, "alice", 2, f.alice.public(), 100).unwrap();
        let decoded = SenderCertificate::from_bytes(&cert.to_bytes()).unwrap();
        assert_eq!(decoded, cert);
        let sender = decoded.verify(&f.trust, 100).unwrap();
        assert_eq!(sender.username, "alice");
        assert_eq!(sender.device_id, 2);
        assert_eq!(sender.identity, f.alice.public().public_bytes());
    }

    #[test]
    fn a_forged_certificate_is_refused() {
        let f = fixture(2);
        let cert = SenderCertificate::issue(&f.server, "alice", 2, f.alice.public(), 100).unwrap();
        let mut forged = cert.clone();
        forged.signature[10] ^= 1;
        assert_eq!(
            forged.verify(&f.trust, 0),
            Err(CertificateError::BadSignature)
        );
        let mut renamed = cert;
        renamed.username = "mallory".into();
        assert_eq!(
            renamed.verify(&f.trust, 0),
            Err(CertificateError::BadSignature)
        );
    }

    #[test]
    fn an_expired_certificate_is_refused_even_when_cached() {
        let f = fixture(3);
        let cert = SenderCertificate::issue(&f.server, "alice", 2, f.alice.public(), 100).unwrap();
        let mut verifier = CertificateVerifier::new(f.trust);
        assert!(verifier.verify(&cert, 100).is_ok());
        assert_eq!(
            verifier.verify(&cert, 101),
            Err(CertificateError::Expired {
                expires_at: 100,
                at: 101
            })
        );
    }

    #[test]
    fn a_certificate_from_an_unknown_key_is_refused() {
        let f = fixture(4);
        let other = fixture(5);
        let cert =
            SenderCertificate::issue(&other.server, "alice", 2, f.alice.public(), 100).unwrap();
        // Same id (1), different key: the signature fails.
        assert_eq!(
            cert.verify(&f.trust, 0),
            Err(CertificateError::BadSignature)
        );
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let successor = f.server.successor(0, &mut rng).unwrap();
        let cert = SenderCertificate::issue(&successor, "alice", 2, f.alice.public(), 100).unwrap();
        assert_eq!(
            cert.verify(&f.trust, 0),
            Err(CertificateError::UnknownSigner(2))
        );
    }

    #[test]
    fn the_cache_never_accepts_a_different_signature() {
        let f = fixture(7);
        let cert = SenderCertificate::issue(&f.server, "alice", 2, f.alice.public(), 100).unwrap();
        let mut verifier = CertificateVerifier::new(f.trust);
        verifier.verify(&cert, 0).unwrap();
        let mut forged = cert;
        forged.device_id = 3;
        assert_eq!(
            verifier.verify(&forged, 0),
            Err(CertificateError::BadSignature)
        );
    }

    #[test]
    fn an_old_key_is_good_only_for_envelopes_sent_while_it_was_current() {
        let f = fixture(9);
        let mut rng = ChaCha20Rng::seed_from_u64(10);
        let hour = 3_600_000;
        let successor = f.server.successor(1_000 * hour, &mut rng).unwrap();
        let chain = crate::sealed::ServerKeyChain::new(vec![
            f.server.public().clone(),
            successor.public().clone(),
        ])
        .unwrap();
        let mut trust = f.trust.clone();
        trust.advance(&chain, 1_000 * hour).unwrap();
        let cert =
            SenderCertificate::issue(&f.server, "alice", 2, f.alice.public(), u64::MAX).unwrap();
        let last = 1_000 * hour + crate::sealed::MAX_CERTIFICATE_TTL_MS + hour;
        assert!(cert.verify(&trust, last).is_ok());
        assert_eq!(
            cert.verify(&trust, last + 1),
            Err(CertificateError::RetiredSigner(1))
        );
    }

    #[test]
    fn a_repinned_key_with_the_same_id_is_checked_afresh() {
        let f = fixture(11);
        let other = fixture(12);
        let cert = SenderCertificate::issue(&f.server, "alice", 2, f.alice.public(), 100).unwrap();
        let mut verifier = CertificateVerifier::new(f.trust);
        verifier.verify(&cert, 0).unwrap();
        verifier.set_trust(other.trust);
        assert_eq!(
            verifier.verify(&cert, 0),
            Err(CertificateError::BadSignature)
        );
    }

    #[test]
    fn malformed_fields_are_refused() {
        let f = fixture(8);
        for name in ["al", "Alice", &"a".repeat(33), "al ice"] {
            assert!(SenderCertificate::issue(&f.server, name, 1, f.alice.public(), 1).is_err());
        }
        assert!(SenderCertificate::issue(&f.server, "alice", 0, f.alice.public(), 1).is_err());
        let cert = SenderCertificate::issue(&f.server, "alice", 2, f.alice.public(), 100).unwrap();
        let mut proto = cert.to_proto();
        proto.identity.pop();
        let bytes = prost::Message::encode_to_vec(&proto);
        assert!(matches!(
            SenderCertificate::from_bytes(&bytes),
            Err(DecodeError::BadLength { .. })
        ));
    }
}
