//! Sender Keys on arbitrary bytes: `InboundGroupSession::verify_and_decrypt`
//! (decode, verify, decrypt) against a fixed member session (see
//! `fixture::Group`), and `SenderKeyDistribution::from_bytes`. Never a
//! panic; the member must still decrypt the sender's next genuine message;
//! a decoded distribution must re-encode identically, and be usable when
//! bound to the fixture's sender.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use starling_crypto::group::{InboundGroupSession, SenderKeyDistribution};
use starling_crypto_fuzz::fixture::{Group, GroupSnapshot};

/// The group sessions, serialized once; every run restores its own copy.
static SNAPSHOT: OnceLock<GroupSnapshot> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let snapshot = SNAPSHOT.get_or_init(|| Group::build().0.snapshot());
    let mut group = snapshot.restore();
    let _ = group.inbound.verify_and_decrypt(data);
    if let Err(error) = group.check_still_works() {
        panic!("after this input, {error}");
    }

    let Ok(distribution) = SenderKeyDistribution::from_bytes(data) else {
        return;
    };
    let _ = (distribution.group_id(), distribution.chain_id());
    let encoded = distribution.to_bytes();
    let again =
        SenderKeyDistribution::from_bytes(&encoded).expect("re-encoded distribution decodes");
    assert_eq!(*again.to_bytes(), *encoded, "encoding is not canonical");

    let sender = group.sender.public().clone();
    let mut sessions = Vec::new();
    if let Ok(mut fresh) = InboundGroupSession::new(&distribution, &sender) {
        let _ = fresh.verify_and_decrypt(data);
        sessions.push(fresh);
    }
    let _ = group.inbound.add_distribution(&distribution, &sender);
    for session in sessions.iter().chain([&group.inbound]) {
        let state = session.to_bytes();
        let restored = InboundGroupSession::from_bytes(&state).expect("session state decodes");
        assert_eq!(
            *restored.to_bytes(),
            *state,
            "state encoding is not canonical"
        );
    }
});
