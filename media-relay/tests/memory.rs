//! Nothing stays behind: a thousand joins and leaves return every table
//! and gauge of the engine to empty, and a 40-participant audio call
//! forwards every packet to all 39 others.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Sim, Spec};
use starling_media_relay::metrics::LeaveReason;

const ROUNDS: usize = 50;
const CALLS_PER_ROUND: usize = 4;
const PER_CALL: usize = 5;

fn assert_empty(sim: &Sim, when: &str) {
    let engine = &sim.engine;
    assert_eq!(
        (
            engine.call_count(),
            engine.participant_count(),
            engine.route_count()
        ),
        (0, 0, 0),
        "calls, participants, routes {when}"
    );
    let metrics = engine.metrics();
    assert_eq!(
        (metrics.calls.get(), metrics.participants.get()),
        (0, 0),
        "gauges {when}"
    );
}

#[test]
fn a_thousand_joins_and_leaves_leave_nothing_behind() {
    let mut sim = Sim::new();
    for round in 0..ROUNDS {
        let mut joined = Vec::new();
        for call in 0..CALLS_PER_ROUND {
            let call_id = format!("call-{round}-{call}");
            for user in 0..PER_CALL {
                let client = sim.join(&call_id, &format!("u{user}"), Spec::av(PER_CALL - 1));
                joined.push((client, call_id.clone()));
            }
        }
        let clients: Vec<usize> = joined.iter().map(|(c, _)| *c).collect();
        sim.connect(&clients);
        // The first of each call publishes, so slots and routes are in use.
        for (client, _) in joined.iter().step_by(PER_CALL) {
            let now = sim.now;
            let audio = sim.clients[*client].audio_out.unwrap();
            sim.clients[*client].send(audio, &[1, 2, 3], now, &mut sim.net);
        }
        sim.run(Duration::from_millis(50));
        assert_eq!(sim.engine.route_count(), clients.len(), "round {round}");
        // Leave in an order that differs between rounds.
        let shift = round % joined.len();
        joined.rotate_left(shift);
        for (client, call_id) in &joined {
            sim.leave(*client, call_id);
        }
        sim.run(Duration::from_millis(50));
        assert_empty(&sim, &format!("after round {round}"));
        sim.clients.clear();
    }
    let total = (ROUNDS * CALLS_PER_ROUND * PER_CALL) as u64;
    assert_eq!(total, 1_000);
    let metrics = sim.engine.metrics();
    assert_eq!(metrics.joins.get(), total);
    assert_eq!(metrics.left(LeaveReason::Left), total);
    assert!(metrics.forwarded_packets.get() > 0);
    assert_empty(&sim, "at the end");
}

#[test]
fn forty_participants_hear_each_other_without_loss() {
    const N: usize = 40;
    const PACKETS: u8 = 10;
    let mut sim = Sim::with(|c| c.limits.max_participants_per_call = N);
    let spec = Spec {
        audio_out: true,
        video_out: false,
        audio_in: N - 1,
        video_in: 0,
    };
    let all: Vec<usize> = (0..N)
        .map(|i| sim.join("big", &format!("user{i}"), spec))
        .collect();
    sim.connect(&all);

    for i in 0..PACKETS {
        for &client in &all {
            let now = sim.now;
            let tag = u8::try_from(client).unwrap();
            let audio = sim.clients[client].audio_out.unwrap();
            sim.clients[client].send(audio, &[tag, i, 0xAA], now, &mut sim.net);
        }
        sim.run(Duration::from_millis(20));
    }
    sim.run(Duration::from_millis(200));

    for &receiver in &all {
        let got = &sim.clients[receiver].got;
        for &sender in all.iter().filter(|s| **s != receiver) {
            let tag = u8::try_from(sender).unwrap();
            let from: Vec<u8> = got
                .iter()
                .filter(|g| g.payload[0] == tag)
                .map(|g| g.payload[1])
                .collect();
            assert_eq!(
                from,
                (0..PACKETS).collect::<Vec<_>>(),
                "{receiver} from {sender}"
            );
        }
        assert_eq!(got.len(), (N - 1) * usize::from(PACKETS), "{receiver}");
    }
    let forwarded = sim.engine.metrics().forwarded_packets.get();
    assert_eq!(forwarded, (N * (N - 1) * usize::from(PACKETS)) as u64);
}
