//! Device certificates and link grants (`SPEC.md` §2.5) on arbitrary
//! bytes: decoding never panics, whatever decodes re-encodes to the same
//! bytes, and a decoded certificate never verifies for identities that
//! did not make it.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use starling_crypto::IdentityKeyPair;
use starling_crypto::link::{DeviceCertificate, LinkGrant};

static KEYS: OnceLock<(IdentityKeyPair, IdentityKeyPair)> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let (signer, device) = KEYS.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        (
            IdentityKeyPair::generate(&mut rng),
            IdentityKeyPair::generate(&mut rng),
        )
    });
    if let Ok(certificate) = DeviceCertificate::from_bytes(data) {
        assert_eq!(certificate.to_bytes(), data, "re-encoded");
        assert!(
            certificate
                .verify("alice", signer.public(), device.public())
                .is_err(),
            "nobody here signed it"
        );
    }
    if let Ok(grant) = LinkGrant::from_bytes(data) {
        assert_eq!(grant.to_bytes().as_slice(), data, "re-encoded");
        assert!(grant.verify("alice", signer.public()).is_err());
    }
});
