//! Opening a sealed envelope, in the order SPEC §15.7 fixes: length,
//! outer layers and the sealing key, then the certificate. The type states
//! keep a caller from reading a sender it has not verified.

use zeroize::Zeroizing;

use crate::keys::IdentityKeyPair;
use crate::padding::is_envelope_bucket;
use crate::{DecodeError, MAX_ENCODED_LEN};

use super::certificate::{CertificateVerifier, CertifiedSender, SenderCertificate};
use super::errors::UnsealError;
use super::multi::open_multi;
use super::single::open_single;
use super::{VERSION_MULTI, VERSION_SINGLE};

/// An envelope with its outer layers removed: the certificate names the key
/// that sealed it, but the certificate itself is not yet trusted.
#[derive(Debug)]
pub struct Opened {
    certificate: SenderCertificate,
    inner: Zeroizing<Vec<u8>>,
}

/// An envelope whose certificate verified. The caller must still check
/// that `sender.identity` is the identity of the session or sender key it
/// decrypts `inner` with (SPEC §15.7 steps 5 and 7).
#[derive(Debug)]
pub struct Certified {
    /// Who the server certified, and the key that sealed the envelope.
    pub sender: CertifiedSender,
    /// The inner message, opaque to this layer.
    pub inner: Zeroizing<Vec<u8>>,
}

impl Opened {
    /// The certificate, unverified: for reporting a refusal only.
    pub fn certificate(&self) -> &SenderCertificate {
        &self.certificate
    }

    /// Verifies the certificate at `at_ms`, the time the envelope reached
    /// the server.
    pub fn verify(
        self,
        verifier: &mut CertificateVerifier,
        at_ms: u64,
    ) -> Result<Certified, UnsealError> {
        let sender = verifier.verify(&self.certificate, at_ms)?;
        Ok(Certified {
            sender,
            inner: self.inner,
        })
    }
}

/// Removes the outer layers of a sealed envelope addressed to `recipient`.
pub fn open(recipient: &IdentityKeyPair, envelope: &[u8]) -> Result<Opened, UnsealError> {
    let version = *envelope.first().ok_or(UnsealError::NotABucket(0))?;
    if version != VERSION_SINGLE && version != VERSION_MULTI {
        return Err(UnsealError::UnknownVersion(version));
    }
    if envelope.len() > MAX_ENCODED_LEN {
        return Err(DecodeError::TooLarge {
            actual: envelope.len(),
            limit: MAX_ENCODED_LEN,
        }
        .into());
    }
    if !is_envelope_bucket(envelope.len() as u64) {
        return Err(UnsealError::NotABucket(envelope.len()));
    }
    let (certificate, inner) = if version == VERSION_SINGLE {
        open_single(recipient, envelope)?
    } else {
        open_multi(recipient, envelope)?
    };
    Ok(Opened { certificate, inner })
}
