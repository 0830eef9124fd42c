//! Participants come and go: leaves, vanished devices and faults free
//! everything they held, and keyframe requests reach the publisher
//! throttled.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Sim, Spec};
use starling_media_relay::engine::Event;
use starling_media_relay::metrics::{KeyframeOutcome, LeaveReason};

#[test]
fn a_vanished_participant_is_timed_out_and_freed() {
    let mut sim = Sim::new();
    let a = sim.join("call-1", "alice", Spec::av(1));
    let b = sim.join("call-1", "bob", Spec::av(1));
    sim.connect(&[a, b]);
    sim.clients[b].silent = true;

    sim.run(Duration::from_secs(12));

    assert_eq!(sim.engine.participant_count(), 1);
    let gone = sim
        .events
        .iter()
        .find_map(|e| match e {
            Event::Left(_, reason) => Some(*reason),
            _ => None,
        })
        .unwrap();
    assert!(
        matches!(gone, LeaveReason::IdleTimeout | LeaveReason::Disconnected),
        "{gone:?}"
    );
    sim.talk(a, 0xA1, 3);
    assert!(sim.engine.metrics().forwarded_packets.get() == 0);
}

#[test]
fn a_participant_that_never_connects_is_freed() {
    let mut sim = Sim::new();
    let a = sim.join("call-1", "alice", Spec::av(1));
    sim.clients[a].silent = true;
    sim.run(Duration::from_secs(16));
    assert_eq!(
        (sim.engine.participant_count(), sim.engine.call_count()),
        (0, 0)
    );
    assert_eq!(sim.engine.metrics().left(LeaveReason::ConnectTimeout), 1);
}

#[test]
fn state_returns_to_empty_after_many_joins_and_leaves() {
    let mut sim = Sim::new();
    for round in 0..5 {
        let call = format!("call-{round}");
        let a = sim.join(&call, "alice", Spec::av(2));
        let b = sim.join(&call, "bob", Spec::av(2));
        let c = sim.join("other", &format!("carol{round}"), Spec::av(2));
        sim.connect(&[a, b, c]);
        sim.talk(a, 0xA1, 3);
        sim.leave(a, &call);
        sim.leave(b, &call);
        sim.leave(c, "other");
        assert_eq!(sim.engine.participant_count(), 0, "round {round}");
    }
    assert_eq!(sim.engine.call_count(), 0);
    assert_eq!(sim.engine.route_count(), 0);
    assert_eq!(sim.engine.metrics().participants.get(), 0);
    assert_eq!(sim.engine.metrics().calls.get(), 0);
    assert_eq!(sim.engine.metrics().left(LeaveReason::Left), 15);
}

#[test]
fn leaving_needs_the_secret_key() {
    let mut sim = Sim::new();
    let a = sim.join("call-1", "alice", Spec::av(1));
    let key = sim.clients[a].key.clone().unwrap();
    let forged: starling_media_relay::engine::ParticipantKey =
        format!("{}-{}", key.id().0, "00".repeat(16))
            .parse()
            .unwrap();
    assert!(sim.engine.leave("call-1", &forged).is_err());
    assert!(sim.engine.leave("call-2", &key).is_err());
    sim.engine.leave("call-1", &key).unwrap();
    assert!(sim.engine.leave("call-1", &key).is_err());
}

#[test]
fn a_slot_freed_by_a_leave_carries_the_next_publisher() {
    let mut sim = Sim::new();
    let a = sim.join("call-1", "alice", Spec::av(1));
    let b = sim.join("call-1", "bob", Spec::av(1));
    sim.connect(&[a, b]);
    sim.talk(a, 0xA1, 3);
    sim.leave(a, "call-1");
    let c = sim.join("call-1", "carol", Spec::av(1));
    sim.connect(&[c]);
    sim.talk(c, 0xC1, 3);
    let got = &sim.clients[b].got;
    assert_eq!(got.iter().filter(|g| g.payload[0] == 0xC1).count(), 3);
    let seqs: Vec<u64> = got.iter().map(|g| g.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "no gap when the feed changes: {seqs:?}"
    );
}

#[test]
fn keyframe_requests_reach_the_publisher_throttled() {
    let mut sim = Sim::new();
    let a = sim.join("call-1", "alice", Spec::av(1));
    let b = sim.join("call-1", "bob", Spec::av(1));
    sim.connect(&[a, b]);
    let video = sim.clients[a].video_out.unwrap();
    let now = sim.now;
    sim.clients[a].send(video, &[0xF0, 1], now, &mut sim.net);
    sim.run(Duration::from_millis(100));
    let slot = sim.clients[b]
        .got
        .iter()
        .find(|g| g.payload[0] == 0xF0)
        .unwrap()
        .mid;
    for _ in 0..10 {
        let now = sim.now;
        sim.clients[b].request_keyframe(slot, now, &mut sim.net);
        sim.run(Duration::from_millis(50));
    }
    sim.run(Duration::from_millis(600));
    let metrics = sim.engine.metrics();
    let relayed = metrics.keyframes(KeyframeOutcome::Relayed);
    assert!((1..=3).contains(&relayed), "relayed {relayed}");
    assert!(metrics.keyframes(KeyframeOutcome::Throttled) >= 5);
    assert!(sim.clients[a].keyframe_requests >= 1);
    assert!(sim.clients[a].keyframe_requests <= 3);
}

#[test]
fn forwarding_survives_loss_and_reordering() {
    let mut sim = Sim::new();
    let a = sim.join("call-1", "alice", Spec::av(1));
    let b = sim.join("call-1", "bob", Spec::av(1));
    sim.connect(&[a, b]);
    sim.net.loss = 0.1;
    sim.net.jitter = Duration::from_millis(30);
    sim.talk(a, 0xA1, 50);
    let got = sim.clients[b]
        .got
        .iter()
        .filter(|g| g.payload[0] == 0xA1)
        .count();
    assert!((25..=50).contains(&got), "got {got} of 50");
}
