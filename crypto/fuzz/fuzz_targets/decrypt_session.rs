//! The responder's `PeerSessions::decrypt` on arbitrary bytes, against a
//! fixed, established session (see `fixture::Pair`): it must never panic,
//! and whatever the input did, the session must still decrypt the next
//! genuine message from the initiator.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use starling_crypto_fuzz::fixture::PairSnapshot;

/// The pair, built and serialized once; every run restores its own copy
/// of the sessions and prekeys (the identities never change).
static SNAPSHOT: OnceLock<PairSnapshot> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let snapshot = SNAPSHOT.get_or_init(|| PairSnapshot::build().0);
    let mut pair = snapshot.restore();
    let _ = pair.bob_receives(data);
    if let Err(error) = pair.check_still_works() {
        panic!("after this input, {error}");
    }
});
