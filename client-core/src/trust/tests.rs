//! Safety numbers and verification against an in-memory store.

use starling_crypto::IdentityKeyPair;

use super::*;
use crate::storage::ContactRecord;
use crate::testing::{Memory, run};

fn key() -> IdentityKey {
    IdentityKeyPair::generate(&mut rand::rngs::OsRng)
        .public()
        .clone()
}

#[test]
fn both_sides_compute_the_same_number_and_digits_verify() {
    let (alice, bob) = (key(), key());
    let alices = Memory::default();
    alices
        .identities
        .borrow_mut()
        .insert("bob".into(), vec![(1, bob.clone())]);
    let bobs = Memory::default();
    bobs.identities
        .borrow_mut()
        .insert("alice".into(), vec![(1, alice.clone())]);
    let as_alice = OwnDevice {
        username: "alice",
        device_id: 1,
        identity: &alice,
    };
    let as_bob = OwnDevice {
        username: "bob",
        device_id: 1,
        identity: &bob,
    };
    let seen_by_alice = run(safety_number_view(&alices, as_alice, "bob")).unwrap();
    let seen_by_bob = run(safety_number_view(&bobs, as_bob, "alice")).unwrap();
    assert_eq!(seen_by_alice.display, seen_by_bob.display);
    assert!(!seen_by_alice.verified);

    let wrong = run(verify(&alices, as_alice, "bob", Some("12345")));
    assert!(matches!(wrong, Err(TrustError::SafetyNumberMismatch(u)) if u == "bob"));
    assert!(!run(alices.contact("bob")).unwrap().verified);
    run(verify(&alices, as_alice, "bob", Some(&seen_by_bob.display))).unwrap();
    assert!(run(alices.contact("bob")).unwrap().verified);
}

#[test]
fn no_known_key_is_an_unknown_user() {
    let own = key();
    let memory = Memory::default();
    let as_alice = OwnDevice {
        username: "alice",
        device_id: 1,
        identity: &own,
    };
    let result = run(safety_number(&memory, as_alice, "carol"));
    assert!(matches!(result, Err(TrustError::UnknownUser(u)) if u == "carol"));
}

#[test]
fn a_verified_contact_whose_keys_changed_is_not_sendable() {
    let memory = Memory::default();
    run(check_sendable(&memory, "bob")).unwrap();
    memory.contacts.borrow_mut().insert(
        "bob".into(),
        ContactRecord {
            verified: true,
            identity_changed: true,
            expire_seconds: 0,
        },
    );
    let result = run(check_sendable(&memory, "bob"));
    assert!(matches!(result, Err(TrustError::UntrustedIdentity(u)) if u == "bob"));
    memory.contacts.borrow_mut().insert(
        "bob".into(),
        ContactRecord {
            verified: false,
            identity_changed: true,
            expire_seconds: 0,
        },
    );
    run(check_sendable(&memory, "bob")).unwrap();
}
