//! Safety numbers: agreement between the two sides, sensitivity to every
//! key, and the scannable comparison.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::rng;
use starling_crypto::IdentityKeyPair;
use starling_crypto::fingerprint::SafetyNumber;

#[test]
fn safety_numbers_match_on_both_sides_and_change_with_keys() {
    let mut rng = rng(1);
    let alice: Vec<_> = (0..2)
        .map(|_| IdentityKeyPair::generate(&mut rng))
        .collect();
    let bob = IdentityKeyPair::generate(&mut rng);
    let alice_keys: Vec<_> = alice.iter().map(|k| k.public().clone()).collect();
    let bob_keys = vec![bob.public().clone()];

    let at_alice = SafetyNumber::new(b"alice", &alice_keys, b"bob", &bob_keys);
    let at_bob = SafetyNumber::new(b"bob", &bob_keys, b"alice", &alice_keys);
    assert_eq!(at_alice.digits(), at_bob.digits());
    assert_eq!(at_alice.digits().len(), 60);
    assert!(at_alice.digits().bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(at_alice.display().split(' ').count(), 12);
    assert!(at_alice.matches_digits(&at_bob.display()));

    // Device order does not matter; a device more or less does.
    let reversed: Vec<_> = alice_keys.iter().rev().cloned().collect();
    assert_eq!(
        SafetyNumber::new(b"alice", &reversed, b"bob", &bob_keys).digits(),
        at_alice.digits()
    );
    let one_device = SafetyNumber::new(b"alice", &alice_keys[..1], b"bob", &bob_keys);
    assert_ne!(one_device.digits(), at_alice.digits());
    // A swapped key for Bob changes it.
    let mallory = IdentityKeyPair::generate(&mut rng);
    let swapped = SafetyNumber::new(b"alice", &alice_keys, b"bob", &[mallory.public().clone()]);
    assert_ne!(swapped.digits(), at_alice.digits());
    assert!(!swapped.matches_digits(at_alice.digits()));
    // So does the stable id.
    let renamed = SafetyNumber::new(b"alice", &alice_keys, b"bobby", &bob_keys);
    assert_ne!(renamed.digits(), at_alice.digits());
}

#[test]
fn scanned_payload_matches_only_the_peer() {
    let mut rng = rng(2);
    let alice = [IdentityKeyPair::generate(&mut rng).public().clone()];
    let bob = [IdentityKeyPair::generate(&mut rng).public().clone()];
    let mallory = [IdentityKeyPair::generate(&mut rng).public().clone()];
    let at_alice = SafetyNumber::new(b"alice", &alice, b"bob", &bob);
    let at_bob = SafetyNumber::new(b"bob", &bob, b"alice", &alice);
    assert!(at_alice.matches_scanned(&at_bob.scannable()).unwrap());
    assert!(at_bob.matches_scanned(&at_alice.scannable()).unwrap());
    // Scanning one's own screen is not a match.
    assert!(!at_alice.matches_scanned(&at_alice.scannable()).unwrap());
    let at_bob_fooled = SafetyNumber::new(b"bob", &bob, b"alice", &mallory);
    assert!(
        !at_alice
            .matches_scanned(&at_bob_fooled.scannable())
            .unwrap()
    );
    assert!(at_alice.matches_scanned(b"\xff\xff").is_err());
    assert!(at_alice.matches_scanned(&[]).is_err());
}
