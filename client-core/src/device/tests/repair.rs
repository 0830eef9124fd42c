//! Downgrades refused and repairs only on purpose: a server that withholds
//! ML-KEM prekeys, replays envelopes under new ids or lies about device
//! lists cannot make a device start a session, let alone a classical one;
//! a person's reset and a peer's authenticated request can, the latter at
//! most once an hour.

use starling_crypto::ratchet::{PeerSessions, SessionSetupError};

use super::*;
use crate::error::DeviceError;
use crate::outgoing::OutgoingError;
use crate::prekeys::PREKEY_BATCH;

/// Whether an error is the refusal of a bundle without an ML-KEM prekey.
fn is_missing_kem<S: std::fmt::Debug, T: std::fmt::Debug>(error: &DeviceError<S, T>) -> bool {
    matches!(
        error,
        DeviceError::Outgoing(OutgoingError::Session(SessionSetupError::MissingKemPreKey))
    )
}

/// Alice and bob after alice's first message reached bob.
fn talking(world: &mut World) -> (TestDevice, TestDevice) {
    let mut alice = world.device("alice", 1);
    let mut bob = world.device("bob", 1);
    say(&mut alice, &direct("bob"), "one");
    receive(&mut bob);
    (alice, bob)
}

#[test]
fn a_bundle_without_a_kem_prekey_is_refused_with_a_clear_error() {
    let mut world = World::new();
    let mut alice = world.device("alice", 1);
    let bob = world.device("bob", 1);
    world.server.set_withhold_kem(true);

    let refused = run(alice.send(&direct("bob"), text("hello"), None)).unwrap_err();
    assert!(is_missing_kem(&refused), "{refused:?}");
    assert!(refused.to_string().contains("downgrade"), "{refused}");
    assert!(alice.storage().sessions.borrow().is_empty());
    assert!(take(&bob).is_empty());

    // Once the server serves whole bundles again, the send works.
    world.server.set_withhold_kem(false);
    say(&mut alice, &direct("bob"), "hello");
    let mut bob = bob;
    assert_eq!(summary(&receive(&mut bob)), ["message alice: hello"]);
}

#[test]
fn an_old_envelope_replayed_under_a_new_id_changes_nothing() {
    let mut world = World::new();
    let mut alice = world.device("alice", 1);
    let mut bob = world.device("bob", 1);
    say(&mut alice, &direct("bob"), "one");
    let original = take(&bob).remove(0);
    assert_eq!(
        summary(&process(&mut bob, &original)),
        ["message alice: one"]
    );
    let sessions = bob.storage().sessions.borrow().clone();

    let mut replayed = original.clone();
    replayed.id = vec![0xab; 16];
    assert_eq!(
        summary(&process(&mut bob, &replayed)),
        ["unreadable from alice.1"]
    );
    // No bundle fetched, no reset sent, the sessions as they were.
    assert_eq!(world.server.one_time_left("alice", 1), PREKEY_BATCH);
    assert_eq!(world.server.waiting("alice", 1), 0);
    assert_eq!(*bob.storage().sessions.borrow(), sessions);
    say(&mut alice, &direct("bob"), "two");
    assert_eq!(summary(&receive(&mut bob)), ["message alice: two"]);
}

#[test]
fn a_person_resets_a_session_and_the_peer_follows() {
    let mut world = World::new();
    let (mut alice, mut bob) = talking(&mut world);
    let stock = world.server.one_time_left("alice", 1);

    run(bob.reset_session("alice")).unwrap();
    // A fresh session from alice's bundle, announced with a reset.
    assert_eq!(world.server.one_time_left("alice", 1), stock - 1);
    assert!(receive(&mut alice).is_empty());
    say(&mut alice, &direct("bob"), "two");
    assert_eq!(summary(&receive(&mut bob)), ["message alice: two"]);
    say(&mut bob, &direct("alice"), "three");
    assert_eq!(summary(&receive(&mut alice)), ["message bob: three"]);
}

#[test]
fn a_peers_repair_request_is_honoured_once_an_hour() {
    let mut world = World::new();
    let (mut alice, mut bob) = talking(&mut world);
    let stock = world.server.one_time_left("alice", 1);

    // Alice cannot read bob: she asks, inside the working session.
    run(alice.request_repair("bob")).unwrap();
    assert!(receive(&mut bob).is_empty());
    assert_eq!(world.server.one_time_left("alice", 1), stock - 1);
    assert_eq!(
        bob.storage().repairs.borrow().get(&("alice".to_owned(), 1)),
        Some(&NOW)
    );
    assert!(receive(&mut alice).is_empty());

    // Asked again within the hour: nothing.
    run(alice.request_repair("bob")).unwrap();
    assert!(receive(&mut bob).is_empty());
    assert_eq!(world.server.one_time_left("alice", 1), stock - 1);
    assert_eq!(world.server.waiting("alice", 1), 0);

    // Both directions work on whatever sessions are active now.
    say(&mut bob, &direct("alice"), "two");
    assert_eq!(summary(&receive(&mut alice)), ["message bob: two"]);
    say(&mut alice, &direct("bob"), "three");
    assert_eq!(summary(&receive(&mut bob)), ["message alice: three"]);
}

#[test]
fn a_repair_request_that_would_downgrade_is_refused_and_reported() {
    let mut world = World::new();
    let (mut alice, mut bob) = talking(&mut world);
    run(alice.request_repair("bob")).unwrap();

    world.server.set_withhold_kem(true);
    assert_eq!(summary(&receive(&mut bob)), ["repair refused alice.1"]);
    assert_eq!(world.server.waiting("alice", 1), 0);
    // The old session still carries messages.
    world.server.set_withhold_kem(false);
    say(&mut bob, &direct("alice"), "two");
    assert_eq!(summary(&receive(&mut alice)), ["message bob: two"]);
}

#[test]
fn a_repair_request_that_failed_on_our_side_is_honoured_when_redelivered() {
    let mut world = World::new();
    let (mut alice, mut bob) = talking(&mut world);
    run(alice.request_repair("bob")).unwrap();
    let request = take(&bob).remove(0);

    world.server.set_offline(true);
    assert!(run(bob.process_envelope(&request)).is_err());
    world.server.set_offline(false);
    assert!(bob.storage().repairs.borrow().is_empty());
    // Not acknowledged, so delivered again: the staged request applies.
    assert!(process(&mut bob, &request).is_empty());
    assert_eq!(bob.storage().repairs.borrow().len(), 1);
    assert_eq!(world.server.waiting("alice", 1), 1);
}

#[test]
fn a_server_calling_a_held_device_missing_restarts_no_session() {
    held_session_survives(&[1], &[]);
}

#[test]
fn a_server_calling_a_device_both_gone_and_missing_restarts_no_session() {
    held_session_survives(&[1], &[1]);
}

fn held_session_survives(missing: &[u32], extra: &[u32]) {
    let mut world = World::new();
    let (mut alice, mut bob) = talking(&mut world);
    let sessions = alice.storage().sessions.borrow().clone();
    let stock = world.server.one_time_left("bob", 1);

    world.server.claim_stale_once("bob", missing, extra);
    say(&mut alice, &direct("bob"), "two");
    // No bundle fetched: the session alice holds with bob.1 stays.
    assert_eq!(world.server.one_time_left("bob", 1), stock);
    let now = alice.storage().sessions.borrow().clone();
    let key = ("bob".to_owned(), 1);
    assert_eq!(
        PeerSessions::from_bytes(&now[&key])
            .unwrap()
            .active()
            .map(|s| s.id()),
        PeerSessions::from_bytes(&sessions[&key])
            .unwrap()
            .active()
            .map(|s| s.id())
    );
    assert_eq!(summary(&receive(&mut bob)), ["message alice: two"]);
}

#[test]
fn a_repair_request_under_a_changed_identity_is_ignored() {
    let mut world = World::new();
    let (alice, mut bob) = talking(&mut world);
    // Someone registers new keys as alice's device 1 (the server can) and
    // asks bob for a fresh session from the bundle it serves.
    drop(alice);
    let mut impostor = world.device("alice", 1);
    let stock = world.server.one_time_left("alice", 1);
    run(impostor.request_repair("bob")).unwrap();
    assert_eq!(summary(&receive(&mut bob)), ["identity changed alice"]);
    assert_eq!(world.server.one_time_left("alice", 1), stock);
    assert!(bob.storage().repairs.borrow().is_empty());
}
