//! Resident memory across join/leave cycles of the engine: a publisher
//! stays in a call while guests join, connect (ICE, DTLS), receive a few
//! packets and leave, 10,000 times after a warm-up. Prints the process RSS
//! (`/proc/self/statm`) before and after, and along the way. The simulated
//! world drops each guest's client after its leave, so what remains is
//! the engine's (and the allocator's).
//!
//! The warm-up outlasts the join tokens' lifetime in simulated time: the
//! relay remembers each token until it expires (replay protection), so
//! that set grows until the first tokens expire and is steady after.
//! `RSS_CYCLES` and `RSS_WARM_UP` change the counts.
//!
//! `cargo bench -p starling-media-relay --bench join_leave_rss`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(missing_docs, unreachable_pub)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Sim, Spec};

const WARM_UP: usize = 3_000;
const CYCLES: usize = 10_000;
/// How long the relay remembers a guest's join token: its lifetime
/// (`Sim::token`) plus the verifier's clock-skew allowance, in seconds.
const TOKEN_MEMORY_SECS: u64 = 60 + 30;
const CALL: &str = "rss";
/// `getconf PAGESIZE` on x86_64 Linux.
const PAGE: u64 = 4_096;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * PAGE
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// One guest joins, connects, gets two packets from the host and leaves.
fn cycle(sim: &mut Sim, n: usize) {
    let guest = sim.join(CALL, &format!("guest{n}"), Spec::av(1));
    sim.connect(&[guest]);
    let now = sim.now;
    let host = &mut sim.clients[0];
    let (audio, video) = (host.audio_out.unwrap(), host.video_out.unwrap());
    host.send(audio, &[0xA0; 160], now, &mut sim.net);
    host.send(video, &[0xB0; 1_000], now, &mut sim.net);
    sim.run(Duration::from_millis(30));
    sim.leave(guest, CALL);
    sim.clients.truncate(1);
    sim.clients[0].got.clear();
    sim.events.clear();
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let count = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (warm_up, cycles) = (count("RSS_WARM_UP", WARM_UP), count("RSS_CYCLES", CYCLES));
    let mut sim = Sim::new();
    let host = sim.join(CALL, "host", Spec::av(1));
    sim.connect(&[host]);
    for n in 0..warm_up {
        cycle(&mut sim, n);
    }
    let simulated = (sim.now - sim.start).as_secs();
    if simulated < TOKEN_MEMORY_SECS {
        println!("warning: the warm-up ended before the first tokens were forgotten");
    }
    let before = rss_bytes();
    let start = Instant::now();
    println!(
        "after {warm_up} warm-up cycles ({simulated} s simulated): RSS {:.2} MiB",
        mib(before)
    );
    for n in 0..cycles {
        cycle(&mut sim, warm_up + n);
        if (n + 1) % (cycles / 5).max(1) == 0 {
            println!("after {:>5} cycles: RSS {:.2} MiB", n + 1, mib(rss_bytes()));
        }
    }
    let after = rss_bytes();
    let engine = &sim.engine;
    println!(
        "{cycles} cycles in {:.1} s: RSS {:.2} → {:.2} MiB ({:+} KiB, {:+.1} bytes per cycle); \
         engine now holds {} call(s), {} participant(s), {} route(s); {} joins in all",
        start.elapsed().as_secs_f64(),
        mib(before),
        mib(after),
        (after as i64 - before as i64) / 1024,
        (after as f64 - before as f64) / cycles as f64,
        engine.call_count(),
        engine.participant_count(),
        engine.route_count(),
        engine.metrics().joins.get(),
    );
}
