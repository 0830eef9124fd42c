//! Sender certificates, server key chains and their stored forms on
//! arbitrary bytes: decoding never panics, whatever decodes re-encodes to
//! the same value, and nothing verifies unless the fixture's server signed
//! it.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use starling_crypto::sealed::{
    SenderCertificate, ServerKeyChain, ServerSigningKey, TrustedServerKeys,
};
use starling_crypto_fuzz::fixture::{SEALED_EXPIRY, Sealed};

static FIXTURE: OnceLock<Sealed> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let fixture = FIXTURE.get_or_init(Sealed::build);
    if let Ok(certificate) = SenderCertificate::from_bytes(data) {
        let again = SenderCertificate::from_bytes(&certificate.to_bytes()).expect("re-encoded");
        assert_eq!(again, certificate);
        if fixture
            .verifier()
            .verify(&certificate, SEALED_EXPIRY)
            .is_ok()
        {
            assert_eq!(
                certificate, fixture.certificate,
                "only the issued certificate verifies"
            );
        }
    }
    if let Ok(chain) = ServerKeyChain::from_bytes(data) {
        let again = ServerKeyChain::from_bytes(&chain.to_bytes()).expect("re-encoded");
        assert_eq!(again, chain);
        let mut trust = fixture.verifier().trust().clone();
        let _ = trust.advance(&chain, 0);
    }
    if let Ok(trust) = TrustedServerKeys::from_bytes(data) {
        assert_eq!(TrustedServerKeys::from_bytes(&trust.to_bytes()), Ok(trust));
    }
    if let Ok(key) = ServerSigningKey::from_bytes(data) {
        let again = ServerSigningKey::from_bytes(&key.to_bytes()).expect("re-encoded");
        assert_eq!(again.public(), key.public());
    }
});
