//! Call signalling: every signal is an event, the call inbox queues only
//! what the call loop is waiting for (offers while ringing, the signals of
//! the call it is in), and offers and missed calls go in the history.

use super::*;
use crate::content::{CallSignal, call_signal::Kind};
use crate::device::call_signal;

fn offer() -> Kind {
    Kind::Offer(content::CallOffer {
        video: false,
        max_participants: 2,
    })
}

/// Sends a call signal pairwise, as the shell's call loop does.
fn signal(from: &mut TestDevice, to: &str, call_id: u8, kind: Kind) {
    let content = from.new_content(call_signal(&[call_id; 16], kind));
    run(from.send_pairwise(&[to.to_owned()], &content)).unwrap();
}

#[test]
fn an_offer_is_queued_only_while_ringing() {
    let mut world = World::new();
    let mut alice = world.device("alice", 1);
    let mut bob = world.device("bob", 1);

    signal(&mut alice, "bob", 1, offer());
    let events = receive(&mut bob);
    assert_eq!(summary(&events), ["call offer from alice.1"]);
    assert!(matches!(&events[0], Event::Call { call_id, .. } if *call_id == hex::encode([1; 16])));
    assert!(bob.calls().next_signal().is_none(), "idle: nothing queued");
    assert_eq!(bob.storage().bodies(&direct("alice")), ["incoming call"]);

    bob.calls().ring();
    signal(&mut alice, "bob", 2, Kind::Answer(content::CallAnswer {}));
    assert_eq!(summary(&receive(&mut bob)), ["call answer from alice.1"]);
    assert!(bob.calls().next_signal().is_none(), "ringing: only offers");

    signal(&mut alice, "bob", 3, offer());
    assert_eq!(summary(&receive(&mut bob)), ["call offer from alice.1"]);
    let queued = bob.calls().take_signals();
    let expected = CallSignal {
        call_id: vec![3; 16],
        kind: Some(offer()),
    };
    assert_eq!(queued, [("alice".to_owned(), 1, expected)]);
}

#[test]
fn in_a_call_only_its_signals_are_queued() {
    let mut world = World::new();
    let mut alice = world.device("alice", 1);
    let mut bob = world.device("bob", 1);
    bob.calls().join(&[5; 16]);

    signal(&mut alice, "bob", 5, Kind::Leave(content::CallLeave {}));
    signal(&mut alice, "bob", 6, Kind::Leave(content::CallLeave {}));
    assert_eq!(
        summary(&receive(&mut bob)),
        ["call leave from alice.1", "call leave from alice.1"]
    );
    let queued = bob.calls().take_signals();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].2.call_id, [5; 16]);
    // Leaves are call state, never history.
    assert!(bob.storage().messages.borrow().is_empty());

    bob.calls().idle();
    signal(&mut alice, "bob", 5, Kind::Busy(content::CallBusy {}));
    receive(&mut bob);
    assert!(bob.calls().next_signal().is_none());
}

#[test]
fn a_hangup_is_a_missed_call_unless_we_answered() {
    let mut world = World::new();
    let mut alice = world.device("alice", 1);
    let mut bob = world.device("bob", 1);

    signal(&mut alice, "bob", 7, offer());
    signal(&mut alice, "bob", 7, Kind::Hangup(content::CallHangup {}));
    assert_eq!(
        summary(&receive(&mut bob)),
        ["call offer from alice.1", "call hangup from alice.1"]
    );
    assert_eq!(
        bob.storage().bodies(&direct("alice")),
        ["incoming call", "missed call"]
    );

    signal(&mut alice, "bob", 8, offer());
    receive(&mut bob);
    bob.calls().answer(&[8; 16]);
    bob.calls().idle();
    signal(&mut alice, "bob", 8, Kind::Hangup(content::CallHangup {}));
    receive(&mut bob);
    assert_eq!(
        bob.storage().bodies(&direct("alice")),
        ["incoming call", "missed call", "incoming call"]
    );
}

#[test]
fn a_call_signal_through_a_group_is_ignored() {
    let mut world = World::new();
    let mut alice = world.device("alice", 1);
    let mut bob = world.device("bob", 1);
    let group = run(alice.create_group("pair", &["bob".to_owned()])).unwrap();
    receive(&mut bob);
    bob.calls().ring();

    let convo = group.conversation();
    run(alice.send(&convo, call_signal(&[9; 16], offer()), None)).unwrap();
    assert!(receive(&mut bob).is_empty());
    assert!(bob.calls().next_signal().is_none());
    assert!(
        !bob.storage()
            .bodies(&convo)
            .contains(&"incoming call".to_owned())
    );
}
