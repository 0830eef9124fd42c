//! Prekey bundles and their parts, as a server or a peer hands them over:
//! decoding must never panic, and whatever decodes must re-encode to bytes
//! that decode to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use starling_crypto::prekeys::{KemPreKey, OneTimePreKey, SignedPreKey};
use starling_crypto::{IdentityKey, PreKeyBundle};

fuzz_target!(|data: &[u8]| {
    if let Ok(bundle) = PreKeyBundle::from_bytes(data) {
        let again =
            PreKeyBundle::from_bytes(&bundle.to_bytes()).expect("re-encoded bundle decodes");
        assert_eq!(again, bundle);
        let _ = bundle.is_post_quantum();
        let _ = bundle.identity().public_bytes();
    }
    let identity = IdentityKey::from_bytes(data).ok();
    if let Some(identity) = &identity {
        let again =
            IdentityKey::from_bytes(&identity.to_bytes()).expect("re-encoded identity decodes");
        assert_eq!(&again, identity);
    }
    if let Ok(signed) = SignedPreKey::from_bytes(data) {
        let again =
            SignedPreKey::from_bytes(&signed.to_bytes()).expect("re-encoded prekey decodes");
        assert_eq!(again, signed);
        if let Some(identity) = &identity {
            let _ = signed.verify(identity);
        }
    }
    if let Ok(one_time) = OneTimePreKey::from_bytes(data) {
        let again =
            OneTimePreKey::from_bytes(&one_time.to_bytes()).expect("re-encoded prekey decodes");
        assert_eq!(again, one_time);
    }
    if let Ok(kem) = KemPreKey::from_bytes(data) {
        let again = KemPreKey::from_bytes(&kem.to_bytes()).expect("re-encoded kem prekey decodes");
        assert_eq!(again, kem);
        if let Some(identity) = &identity {
            let _ = kem.verify(identity);
        }
    }
});
