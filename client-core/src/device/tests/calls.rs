//! Call signalling: every signal is an event, the call inbox queues only
//! what the call loop is waiting for (offers while ringing, the signals of
//! the call it is in), and offers and missed calls go in the history.

use super::*;
use crate::content::{CallSignal, call_signal::Kind};
use crate::device::{CALL_KEY_VERSION, call_signal};

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
    signal(
        &mut alice,
        "bob",
        2,
        Kind::Answer(content::CallAnswer {
            relay_participant: 2,
        }),
    );
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
    bob.calls().answer(&[8; 16], "alice", 1);
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

fn epoch(n: u32, version: u32) -> Kind {
    Kind::Key(content::CallKey {
        version,
        epoch: n,
        secret: vec![9; 32],
        participants: vec![
            content::CallParticipant {
                username: "alice".into(),
                device_id: 1,
                index: 0,
                relay_participant: 0,
            },
            content::CallParticipant {
                username: "bob".into(),
                device_id: 1,
                index: 1,
                relay_participant: 0,
            },
        ],
    })
}

#[test]
fn a_callee_takes_epochs_only_newer_and_only_from_the_offering_device() {
    let mut world = World::new();
    let mut alice = world.device("alice", 1);
    let mut alice_laptop = world.device("alice", 2);
    let mut bob = world.device("bob", 1);
    bob.calls().answer(&[4; 16], "alice", 1);

    signal(&mut alice, "bob", 4, epoch(2, CALL_KEY_VERSION));
    assert_eq!(summary(&receive(&mut bob)), ["call key from alice.1"]);
    assert_eq!(bob.calls().take_signals().len(), 1);
    // A replay of the same epoch, an older one, one from Alice's other
    // device and one of version 1 are refused, loudly, and not queued.
    signal(&mut alice, "bob", 4, epoch(2, CALL_KEY_VERSION));
    signal(&mut alice, "bob", 4, epoch(1, CALL_KEY_VERSION));
    signal(&mut alice_laptop, "bob", 4, epoch(3, CALL_KEY_VERSION));
    signal(&mut alice, "bob", 4, epoch(3, 1));
    let refused: Vec<String> = summary(&receive(&mut bob))
        .into_iter()
        .filter(|s| s.starts_with("call"))
        .collect();
    assert_eq!(
        refused,
        [
            "call key 2 refused from alice.1: stale_epoch",
            "call key 1 refused from alice.1: stale_epoch",
            "call key 3 refused from alice.2: not_key_authority",
            "call key 3 refused from alice.1: version",
        ]
    );
    assert!(bob.calls().take_signals().is_empty());
    signal(&mut alice, "bob", 4, epoch(3, CALL_KEY_VERSION));
    assert_eq!(summary(&receive(&mut bob)), ["call key from alice.1"]);
    assert_eq!(bob.calls().take_signals().len(), 1);
}

#[test]
fn keys_reach_only_the_device_in_the_call() {
    let mut world = World::new();
    let mut alice = world.device("alice", 1);
    let mut alice_laptop = world.device("alice", 2);
    let mut bob = world.device("bob", 1);
    for device in [&mut alice, &mut alice_laptop] {
        device.calls().answer(&[6; 16], "bob", 1);
    }
    let key = bob.new_content(call_signal(&[6; 16], epoch(1, CALL_KEY_VERSION)));
    let Some(Body::Call(mut stripped)) = key.body.clone() else {
        panic!("not a call signal");
    };
    if let Some(Kind::Key(k)) = stripped.kind.as_mut() {
        k.secret.clear();
    }
    let elsewhere = bob.new_content(Body::Call(stripped));
    run(bob.send_pairwise_to(&[("alice".to_owned(), 1)], &key, &elsewhere)).unwrap();
    receive(&mut alice);
    receive(&mut alice_laptop);
    let secret_of = |device: &mut TestDevice| match device.calls().take_signals().pop() {
        Some((
            _,
            _,
            CallSignal {
                kind: Some(Kind::Key(k)),
                ..
            },
        )) => k.secret.clone(),
        other => panic!("no key: {other:?}"),
    };
    assert_eq!(secret_of(&mut alice), vec![9; 32]);
    // The laptop's copy carries no secret, and the gate keeps it from the
    // call loop altogether.
    assert!(alice_laptop.calls().take_signals().is_empty());
}
