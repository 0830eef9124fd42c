//! Memory across join/leave cycles of the engine: a publisher stays in a
//! call while guests join, connect (ICE, DTLS), receive a few packets and
//! leave, 10,000 times after a warm-up. Prints, before and after and along
//! the way, the process RSS (`/proc/self/statm`), its anonymous part
//! (`RssAnon` in `/proc/self/status`: heap and stacks, without the mapped
//! program) and the live heap: bytes allocated and not yet freed, counted
//! exactly by a global allocator wrapped around the system one. The
//! simulated world drops each guest's client after its leave, so what
//! remains is the engine's (and the allocator's).
//!
//! The live heap is the leak criterion: anything a cycle keeps shows there
//! byte for byte. RSS also moves with the allocator: the system allocator
//! keeps freed pages inside its heap until a fresh high-water mark or a
//! hole pattern settles, which a handshake's transient allocations reach
//! at random cycles.
//!
//! The warm-up (10,000 cycles, 2,920 s of simulated time) outlasts the join
//! tokens' lifetime: the relay remembers each token until it expires
//! (replay protection), so that set grows until the first tokens expire
//! and is steady after. It also lets the allocator settle: after 3,000
//! cycles the live heap is already flat, but RSS still rose by 0–96 KiB,
//! once, somewhere in the next 10,000. `RSS_CYCLES` and `RSS_WARM_UP`
//! change the counts.
//!
//! `cargo bench -p starling-media-relay --bench join_leave_rss`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(missing_docs, unreachable_pub)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::alloc::System;
use std::time::{Duration, Instant};

use common::{Sim, Spec};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[global_allocator]
static HEAP: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const WARM_UP: usize = 10_000;
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

/// `RssAnon` of `/proc/self/status`, in bytes.
fn rss_anon_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("RssAnon:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Bytes allocated and not freed since the process started.
fn live_heap_bytes() -> i64 {
    let stats = HEAP.stats();
    stats.bytes_allocated as i64 - stats.bytes_deallocated as i64
}

/// One reading of the three figures.
#[derive(Clone, Copy)]
struct Memory {
    rss: u64,
    anon: u64,
    live: i64,
}

impl Memory {
    fn now() -> Self {
        Self {
            rss: rss_bytes(),
            anon: rss_anon_bytes(),
            live: live_heap_bytes(),
        }
    }
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RSS {:.2} MiB, RssAnon {} KiB, live heap {} bytes",
            mib(self.rss),
            self.anon / 1024,
            self.live
        )
    }
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
    println!("host connected: {}", Memory::now());
    for n in 0..warm_up {
        cycle(&mut sim, n);
    }
    let simulated = (sim.now - sim.start).as_secs();
    if simulated < TOKEN_MEMORY_SECS {
        println!("warning: the warm-up ended before the first tokens were forgotten");
    }
    let before = Memory::now();
    let start = Instant::now();
    println!("after {warm_up} warm-up cycles ({simulated} s simulated): {before}");
    // The live heap after every cycle, smallest and largest per fifth:
    // a leak raises both from one fifth to the next.
    let (mut low, mut high) = (i64::MAX, i64::MIN);
    for n in 0..cycles {
        cycle(&mut sim, warm_up + n);
        let live = live_heap_bytes();
        (low, high) = (low.min(live), high.max(live));
        if (n + 1) % (cycles / 5).max(1) == 0 {
            println!(
                "after {:>5} cycles: {} (between cycles since the last line: {low}–{high})",
                n + 1,
                Memory::now()
            );
            (low, high) = (i64::MAX, i64::MIN);
        }
    }
    let after = Memory::now();
    let engine = &sim.engine;
    println!(
        "{cycles} cycles in {:.1} s: RSS {:+} KiB ({:+.1} bytes per cycle), RssAnon {:+} KiB, \
         live heap {:+} bytes; engine now holds {} call(s), {} participant(s), {} route(s); \
         {} joins in all",
        start.elapsed().as_secs_f64(),
        (after.rss as i64 - before.rss as i64) / 1024,
        (after.rss as f64 - before.rss as f64) / cycles as f64,
        (after.anon as i64 - before.anon as i64) / 1024,
        after.live - before.live,
        engine.call_count(),
        engine.participant_count(),
        engine.route_count(),
        engine.metrics().joins.get(),
    );
}
