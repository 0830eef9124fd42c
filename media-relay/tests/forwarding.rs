//! Forwarding on simulated time: streams reach the other participants of
//! the same call, byte for byte, and nobody else.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Sim, Spec};

fn tagged(sim: &Sim, client: usize, tag: u8) -> Vec<Vec<u8>> {
    sim.clients[client]
        .payloads()
        .into_iter()
        .filter(|p| p.first() == Some(&tag))
        .collect()
}

#[test]
fn two_participants_hear_each_other() {
    let mut sim = Sim::new();
    let a = sim.join("call-1", "alice", Spec::av(1));
    let b = sim.join("call-1", "bob", Spec::av(1));
    sim.connect(&[a, b]);

    sim.talk(a, 0xA1, 10);
    sim.talk(b, 0xB1, 10);

    let expected: Vec<Vec<u8>> = (0..10).map(|i| vec![0xA1, i, 0xAA, 0x55]).collect();
    assert_eq!(
        tagged(&sim, b, 0xA1),
        expected,
        "bob gets alice's payloads unchanged"
    );
    assert_eq!(tagged(&sim, a, 0xB1).len(), 10, "alice gets bob's");
    assert!(
        tagged(&sim, a, 0xA1).is_empty(),
        "nobody gets their own stream back"
    );
    assert!(sim.engine.metrics().forwarded_packets.get() >= 20);
}

#[test]
fn another_call_receives_nothing() {
    let mut sim = Sim::new();
    let a = sim.join("call-1", "alice", Spec::av(2));
    let b = sim.join("call-1", "bob", Spec::av(2));
    let c = sim.join("call-2", "carol", Spec::av(2));
    sim.connect(&[a, b, c]);

    sim.talk(a, 0xA1, 10);

    assert_eq!(tagged(&sim, b, 0xA1).len(), 10);
    assert!(sim.clients[c].got.is_empty(), "carol is in another call");
    assert_eq!(sim.engine.call_count(), 2);
}

#[test]
fn three_participants_each_get_both_others_on_separate_slots() {
    let mut sim = Sim::new();
    let ids: Vec<usize> = ["alice", "bob", "carol"]
        .iter()
        .map(|u| sim.join("call-3", u, Spec::av(2)))
        .collect();
    sim.connect(&ids);

    sim.talk(ids[0], 0xA1, 5);
    sim.talk(ids[1], 0xB1, 5);

    let carol = &sim.clients[ids[2]];
    let from_a: Vec<_> = carol.got.iter().filter(|g| g.payload[0] == 0xA1).collect();
    let from_b: Vec<_> = carol.got.iter().filter(|g| g.payload[0] == 0xB1).collect();
    assert_eq!((from_a.len(), from_b.len()), (5, 5));
    assert_ne!(
        from_a[0].mid, from_b[0].mid,
        "each publisher has its own slot"
    );
}

#[test]
fn a_receiver_learns_who_publishes_each_stream_it_gets() {
    let mut sim = Sim::new();
    let ids: Vec<usize> = ["alice", "bob", "carol"]
        .iter()
        .map(|u| sim.join("call-4", u, Spec::av(2)))
        .collect();
    sim.connect(&ids);

    sim.talk(ids[0], 0xA1, 5);
    sim.talk(ids[1], 0xB1, 5);

    let carol = &sim.clients[ids[2]];
    let key = carol.key.clone().unwrap();
    let streams = sim.engine.streams("call-4", &key).unwrap();
    for (tag, publisher) in [(0xA1, ids[0]), (0xB1, ids[1])] {
        let got = carol.got.iter().find(|g| g.payload[0] == tag).unwrap();
        let source = streams.iter().find(|s| s.ssrc == got.ssrc).unwrap();
        let number = sim.clients[publisher].key.as_ref().unwrap().id().0;
        assert_eq!(source.participant, number);
    }
    // Only the participant itself may ask, and only in its own call.
    assert!(sim.engine.streams("call-5", &key).is_err());
    let bob = sim.clients[ids[1]].key.clone().unwrap();
    assert!(sim.engine.streams("call-4", &bob).is_ok());
    sim.leave(ids[2], "call-4");
    assert!(sim.engine.streams("call-4", &key).is_err());
}
