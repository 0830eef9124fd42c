//! Incoming envelopes: a message is shown once however often it is
//! delivered, what was staged before a crash is applied once, and an
//! unreadable envelope is reported, changes no session and never blocks
//! the messages behind it.

use super::*;
use crate::error::DeviceError;
use crate::outgoing::OutgoingError;
use crate::prekeys::PREKEY_BATCH;
use crate::storage::Storage;
use crate::testing::Fake;
use crate::trust::TrustError;

#[test]
fn a_direct_text_is_shown_once_however_often_it_is_delivered() {
    let mut world = World::new();
    let mut alice = world.device("alice", 1);
    let mut bob = world.device("bob", 1);
    let id = say(&mut alice, &direct("bob"), "hello");

    let envelopes = take(&bob);
    assert_eq!(envelopes.len(), 1);
    let events = process(&mut bob, &envelopes[0]);
    let entry = only_message(&events);
    assert_eq!(entry.message_id, hex::encode(&id));
    assert_eq!(entry.conversation, direct("alice"));
    assert_eq!(entry.conversation_name, "alice");
    assert_eq!((entry.sender.as_str(), entry.sender_device), ("alice", 1));
    assert_eq!(
        (entry.body.as_str(), entry.kind.as_str()),
        ("hello", "text")
    );
    assert!(!entry.outgoing);

    // The server delivers it again (the acknowledgement was lost).
    assert!(process(&mut bob, &envelopes[0]).is_empty());
    assert_eq!(bob.storage().bodies(&direct("alice")), ["hello"]);
    // The sender's history has it too, as sent, and no copy went to an
    // own device she does not have.
    let sent = alice.storage().message(&id).unwrap();
    assert!(sent.message.outgoing);
    assert_eq!(sent.message.conversation, direct("bob"));
    assert!(take(&alice).is_empty());
}

#[test]
fn a_message_staged_before_a_crash_is_applied_once() {
    let mut world = World::new();
    let mut alice = world.device("alice", 1);
    let mut bob = world.device("bob", 1);
    say(&mut alice, &direct("bob"), "hello");
    let envelopes = take(&bob);

    // Decrypted and staged, then the history write fails: the device
    // stops there, as a crash would stop it.
    bob.storage().fail("insert_message");
    let failed = run(bob.process_envelope(&envelopes[0]));
    assert!(
        matches!(failed, Err(DeviceError::Storage(Fake))),
        "{failed:?}"
    );
    assert_eq!(bob.storage().inbox.borrow().len(), 1);
    assert!(bob.storage().seen.borrow().is_empty());
    assert!(bob.storage().messages.borrow().is_empty());
    // The one-time prekey the message used is gone from the store with it.
    let stored = run(bob.storage().load_prekeys()).unwrap();
    assert_eq!(stored.one_time_prekey_count(), PREKEY_BATCH - 1);

    bob.storage().recover();
    let events = run(bob.apply_pending()).unwrap();
    assert_eq!(summary(&events), ["message alice: hello"]);
    assert!(bob.storage().inbox.borrow().is_empty());
    assert!(run(bob.apply_pending()).unwrap().is_empty());
    // The envelope was never acknowledged, so it comes again: nothing new.
    assert!(process(&mut bob, &envelopes[0]).is_empty());
    assert_eq!(bob.storage().bodies(&direct("alice")), ["hello"]);
}

#[test]
fn a_redelivery_after_a_crash_applies_what_was_staged() {
    let mut world = World::new();
    let mut alice = world.device("alice", 1);
    let mut bob = world.device("bob", 1);
    say(&mut alice, &direct("bob"), "hello");
    let envelopes = take(&bob);
    bob.storage().fail("insert_message");
    assert!(run(bob.process_envelope(&envelopes[0])).is_err());
    bob.storage().recover();

    // Decrypting again would fail (the session moved on); the staged copy
    // is applied instead.
    let events = process(&mut bob, &envelopes[0]);
    assert_eq!(summary(&events), ["message alice: hello"]);
    assert!(process(&mut bob, &envelopes[0]).is_empty());
    say(&mut alice, &direct("bob"), "again");
    assert_eq!(summary(&receive(&mut bob)), ["message alice: again"]);
}

#[test]
fn a_failure_before_staging_leaves_the_envelope_as_it_was() {
    let mut world = World::new();
    let mut alice = world.device("alice", 1);
    let mut bob = world.device("bob", 1);
    say(&mut alice, &direct("bob"), "hello");
    let envelopes = take(&bob);

    bob.storage().fail("stage_pairwise");
    let failed = run(bob.process_envelope(&envelopes[0]));
    assert!(
        matches!(failed, Err(DeviceError::Storage(Fake))),
        "{failed:?}"
    );
    assert!(bob.storage().inbox.borrow().is_empty());
    assert!(bob.storage().sessions.borrow().is_empty());
    bob.storage().recover();

    // The one-time prekey it used is still there: the redelivery decrypts
    // as the first attempt would have.
    let events = process(&mut bob, &envelopes[0]);
    assert_eq!(summary(&events), ["message alice: hello"]);
}

#[test]
fn an_unreadable_envelope_is_reported_and_the_next_message_still_decrypts() {
    let mut world = World::new();
    let mut alice = world.device("alice", 1);
    let mut bob = world.device("bob", 1);
    say(&mut alice, &direct("bob"), "one");
    assert_eq!(summary(&receive(&mut bob)), ["message alice: one"]);

    let events = process(&mut bob, &garbage(1, "alice", 1));
    assert_eq!(summary(&events), ["unreadable from alice.1"]);
    // Done with it: a redelivery is not reported again.
    assert!(process(&mut bob, &garbage(1, "alice", 1)).is_empty());
    // Nothing went out: an unauthenticated envelope starts no session.
    assert_eq!(world.server.waiting("alice", 1), 0);
    assert_eq!(world.server.one_time_left("alice", 1), PREKEY_BATCH);

    // The session still works both ways.
    say(&mut alice, &direct("bob"), "two");
    assert_eq!(summary(&receive(&mut bob)), ["message alice: two"]);
    say(&mut alice, &direct("bob"), "three");
    assert_eq!(summary(&receive(&mut bob)), ["message alice: three"]);
    say(&mut bob, &direct("alice"), "four");
    assert_eq!(summary(&receive(&mut alice)), ["message bob: four"]);
}

#[test]
fn a_tampered_copy_does_not_spoil_the_real_message() {
    let mut world = World::new();
    let mut alice = world.device("alice", 1);
    let mut bob = world.device("bob", 1);
    say(&mut alice, &direct("bob"), "one");
    receive(&mut bob);
    say(&mut alice, &direct("bob"), "two");
    let real = take(&bob).remove(0);

    let mut forged = real.clone();
    forged.id = vec![0xdd; 16];
    let last = forged.content.len() - 1;
    forged.content[last] ^= 1;
    assert_eq!(
        summary(&process(&mut bob, &forged)),
        ["unreadable from .0"],
        "a sealed envelope that does not open names no sender"
    );
    assert_eq!(summary(&process(&mut bob, &real)), ["message alice: two"]);
}

#[test]
fn a_burst_of_unreadable_envelopes_starts_no_session() {
    let mut world = World::new();
    let _alice = world.device("alice", 1);
    let mut bob = world.device("bob", 1);
    for n in 1..=3 {
        let events = process(&mut bob, &garbage(n, "alice", 1));
        assert_eq!(summary(&events), ["unreadable from alice.1"]);
    }
    // No bundle fetched, no reset sent.
    assert_eq!(world.server.one_time_left("alice", 1), PREKEY_BATCH);
    assert_eq!(world.server.waiting("alice", 1), 0);
    assert!(bob.storage().sessions.borrow().is_empty());
}

#[test]
fn an_unsealed_envelope_without_a_sender_is_reported_without_a_repair() {
    let mut world = World::new();
    let _alice = world.device("alice", 1);
    let mut bob = world.device("bob", 1);
    let events = process(&mut bob, &garbage(1, "", 0));
    assert_eq!(summary(&events), ["unreadable from .0"]);
    assert!(bob.storage().seen.borrow().contains(&garbage(1, "", 0).id));
    assert_eq!(world.server.waiting("alice", 1), 0);
    assert_eq!(world.server.one_time_left("alice", 1), PREKEY_BATCH);
}

#[test]
fn our_other_device_records_the_copy_as_sent() {
    let mut world = World::new();
    let mut alice = world.device("alice", 1);
    let mut alice2 = world.device("alice", 2);
    let mut bob = world.device("bob", 1);
    let id = say(&mut alice, &direct("bob"), "hello");

    assert_eq!(summary(&receive(&mut bob)), ["message alice: hello"]);
    let events = receive(&mut alice2);
    let entry = only_message(&events);
    assert_eq!(entry.message_id, hex::encode(&id));
    assert_eq!(entry.conversation, direct("bob"));
    assert!(entry.outgoing);
    assert_eq!((entry.sender.as_str(), entry.sender_device), ("alice", 1));
}

#[test]
fn a_contacts_new_key_is_announced_and_blocks_sending_once_verified() {
    let mut world = World::new();
    let mut alice = world.device("alice", 1);
    let mut bob = world.device("bob", 1);
    say(&mut alice, &direct("bob"), "hi");
    receive(&mut bob);
    run(alice.verify("bob", None)).unwrap();

    // Bob reinstalls: the same device, new keys.
    drop(bob);
    let mut bob = world.device("bob", 1);
    say(&mut bob, &direct("alice"), "it's me");
    let events = receive(&mut alice);
    assert_eq!(
        summary(&events),
        ["identity changed bob", "message bob: it's me"]
    );
    assert!(alice.storage().contacts.borrow()["bob"].identity_changed);

    let refused = run(alice.send(&direct("bob"), text("who are you?"), None));
    assert!(
        matches!(
            refused,
            Err(DeviceError::Outgoing(OutgoingError::Trust(
                TrustError::UntrustedIdentity(ref user)
            ))) if user == "bob"
        ),
        "{refused:?}"
    );
    assert_eq!(world.server.waiting("bob", 1), 0);
}
