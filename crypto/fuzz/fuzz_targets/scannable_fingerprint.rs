//! Safety-number comparison with a scanned (attacker-chosen) QR payload,
//! and with typed digits when the input is text: never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use starling_crypto::fingerprint::SafetyNumber;
use starling_crypto_fuzz::fixture;

/// Alice's view of the fixture's safety number, computed once.
static NUMBER: OnceLock<SafetyNumber> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let number = NUMBER.get_or_init(|| fixture::safety_numbers().0);
    let _ = number.matches_scanned(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = number.matches_digits(text);
    }
});
