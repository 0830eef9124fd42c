//! Sealed envelopes on arbitrary bytes, as a server could deliver them:
//! `sealed::open` then certificate verification, as the fixture's
//! recipient. Never a panic; anything that opens must have been sealed by
//! the fixture's sender (the only identity a valid certificate names).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use starling_crypto_fuzz::fixture::Sealed;

static FIXTURE: OnceLock<Sealed> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let fixture = FIXTURE.get_or_init(Sealed::build);
    let mut verifier = fixture.verifier();
    if let Err(error) = fixture.bob_opens(&mut verifier, data) {
        assert_ne!(
            error, "certified a different sender",
            "a forged sender passed"
        );
    }
});
