//! TLS to the server: either the usual web PKI roots, or a certificate
//! pinned by its SHA-256 fingerprint (what `starling-server` prints on
//! first start for its self-signed certificate).
//!
//! A certificate that does not match the pin fails the handshake with a
//! [`PinMismatch`], which [`is_pin_mismatch`] finds again by type in
//! whatever error chain the HTTP or WebSocket stack wraps it in.

use std::error::Error as StdError;
use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{ClientError, Result};

/// Parses a fingerprint as printed by the server (hex, colons allowed).
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32]> {
    let cleaned: String = text
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect();
    let bytes = hex::decode(&cleaned).map_err(|_| ClientError::FingerprintNotHex)?;
    bytes.try_into().map_err(|_| ClientError::FingerprintLength)
}

/// The TLS configuration for a server, pinned when `fingerprint` is given.
pub fn client_config(fingerprint: Option<&str>) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = match fingerprint {
        Some(text) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCertificate {
                fingerprint: parse_fingerprint(text)?,
                provider,
            }))
            .with_no_client_auth(),
        None => {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(config)
}

/// The server's certificate is not the pinned one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("certificate does not match the pinned fingerprint")]
pub struct PinMismatch;

/// Whether `error`, or any error it was caused by, is a [`PinMismatch`].
///
/// Follows `source()`, and also looks inside the two wrappers that do not
/// lead there: an `io::Error` holding another error (`get_ref`), and
/// rustls' `Error::Other`.
pub fn is_pin_mismatch(error: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.is::<PinMismatch>() {
            return true;
        }
        if let Some(rustls::Error::Other(other)) = error.downcast_ref::<rustls::Error>()
            && is_pin_mismatch(other.0.as_ref())
        {
            return true;
        }
        if let Some(inner) = error
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            && is_pin_mismatch(inner)
        {
            return true;
        }
        next = error.source();
    }
    false
}

/// Accepts exactly one certificate, named by its SHA-256 fingerprint; the
/// handshake signatures are still verified against it.
#[derive(Debug)]
struct PinnedCertificate {
    fingerprint: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if bool::from(seen.ct_eq(&self.fingerprint)) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::Other(rustls::OtherError(Arc::new(
                PinMismatch,
            ))))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let hex64 = "ab".repeat(32);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(parse_fingerprint(&hex64).unwrap(), [0xab; 32]);
        assert_eq!(parse_fingerprint(&colons).unwrap(), [0xab; 32]);
        assert!(parse_fingerprint("abcd").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn a_pin_mismatch_is_found_through_its_wrappers() {
        let rustls_error = rustls::Error::Other(rustls::OtherError(Arc::new(PinMismatch)));
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls_error);
        assert!(is_pin_mismatch(&io));
        let general = rustls::Error::General(PinMismatch.to_string());
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, general);
        assert!(!is_pin_mismatch(&io), "text alone is not a pin mismatch");
    }

    #[test]
    fn the_verifier_refuses_another_certificate_with_a_pin_mismatch() {
        let verifier = PinnedCertificate {
            fingerprint: [0xab; 32],
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        };
        let name = ServerName::try_from("localhost").unwrap();
        let refused = verifier
            .verify_server_cert(
                &CertificateDer::from(vec![1, 2, 3]),
                &[],
                &name,
                &[],
                UnixTime::now(),
            )
            .unwrap_err();
        assert!(is_pin_mismatch(&refused));
    }
}
