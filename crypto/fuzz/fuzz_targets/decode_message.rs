//! Pairwise wire messages: decoding must never panic, and a decoded message
//! must re-encode to bytes that decode to the same message (and re-encode
//! identically).
#![no_main]

use libfuzzer_sys::fuzz_target;
use starling_crypto::ratchet::CiphertextMessage;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = CiphertextMessage::from_bytes(data) else {
        return;
    };
    let encoded = message.to_bytes();
    let again = CiphertextMessage::from_bytes(&encoded).expect("re-encoded message decodes");
    assert_eq!(again, message);
    assert_eq!(again.to_bytes(), encoded, "encoding is not canonical");
    match &message {
        CiphertextMessage::PreKey(prekey) => {
            let _ = prekey.initiator_identity().public_bytes();
            let _ = prekey.is_post_quantum();
            let _ = prekey.session_id();
            assert!(message.is_prekey());
        }
        CiphertextMessage::Ratchet(ratchet) => {
            let _ = ratchet.counter();
            assert!(!message.is_prekey());
        }
    }
});
