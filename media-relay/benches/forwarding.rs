//! Forwarding cost of the engine, on simulated time with in-process str0m
//! clients and no sockets: forwarded packets per second at saturation
//! (criterion), then CPU time per forwarded packet and the time from
//! `handle_input` of one RTP datagram until its forwarded copies are out of
//! `poll_output` (p50/p99), printed as a report.
//!
//! Each scenario is one call; the clients connect (ICE, DTLS) through the
//! engine first. Publishers then write batches of RTP packets at one
//! instant (one "round": one audio packet and, when they publish video,
//! three video packets each); the batch is taken off the simulated wire
//! and fed to the engine back to back, which is what is timed. The
//! forwarded copies are counted and dropped. Between batches the world
//! runs for 20 ms of simulated time, untimed, so ICE, RTCP and the
//! engine's timers go on as in a live call.
//!
//! `cargo bench -p starling-media-relay --bench forwarding`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(missing_docs, unreachable_pub)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::{Captured, Sim, Spec};
use criterion::{Criterion, Throughput};

/// Rounds per batch fed to the engine without a break.
const CHUNK: u64 = 100;
/// Opus at 64 kbit/s, 20 ms frames, SFrame overhead included.
const AUDIO_PAYLOAD: usize = 180;
/// A full video packet under the usual 1200-byte WebRTC MTU.
const VIDEO_PAYLOAD: usize = 1_000;
/// Video packets per publisher per round (≈ 150 packets/s at 50 rounds/s).
const VIDEO_PER_ROUND: usize = 3;
/// Engine work timed per scenario for the CPU and latency report.
const REPORT_ENGINE_TIME: Duration = Duration::from_secs(2);

/// One call shape.
struct Scenario {
    name: &'static str,
    /// Publishers; each also receives every other publisher.
    publishers: usize,
    /// Receive-only participants.
    subscribers: usize,
    /// Whether publishers send video as well as audio.
    video: bool,
}

const SCENARIOS: [Scenario; 3] = [
    Scenario {
        name: "1x50_av",
        publishers: 1,
        subscribers: 50,
        video: true,
    },
    Scenario {
        name: "6x6_av",
        publishers: 6,
        subscribers: 0,
        video: true,
    },
    Scenario {
        name: "40x40_audio",
        publishers: 40,
        subscribers: 0,
        video: false,
    },
];

impl Scenario {
    fn packets_per_round(&self) -> u64 {
        let per_publisher = 1 + if self.video { VIDEO_PER_ROUND } else { 0 };
        (self.publishers * per_publisher) as u64
    }

    /// Forwarded copies per round: every packet to every other member.
    fn forwards_per_round(&self) -> u64 {
        self.packets_per_round() * (self.publishers + self.subscribers - 1) as u64
    }

    /// A connected call with every slot already fed.
    fn build(&self) -> Sim {
        let mut sim = Sim::with(|c| {
            c.limits.max_participants_per_call = 64;
        });
        let peers = self.publishers - 1;
        let video_in = |n| if self.video { n } else { 0 };
        let publisher = Spec {
            audio_out: true,
            video_out: self.video,
            audio_in: peers,
            video_in: video_in(peers),
        };
        let subscriber = Spec {
            audio_out: false,
            video_out: false,
            audio_in: self.publishers,
            video_in: video_in(self.publishers),
        };
        let mut all = Vec::new();
        for i in 0..self.publishers {
            all.push(sim.join("bench", &format!("pub{i}"), publisher));
        }
        for i in 0..self.subscribers {
            all.push(sim.join("bench", &format!("sub{i}"), subscriber));
        }
        sim.connect(&all);
        // Deliver one round so that every stream has its slots and the
        // first keyframe requests are behind us.
        for i in 0..self.publishers {
            let now = sim.now;
            let audio = sim.clients[i].audio_out.unwrap();
            sim.clients[i].send(audio, &[0; AUDIO_PAYLOAD], now, &mut sim.net);
            if let Some(video) = sim.clients[i].video_out {
                sim.clients[i].send(video, &[0; VIDEO_PAYLOAD], now, &mut sim.net);
            }
        }
        sim.run(Duration::from_millis(300));
        sim
    }

    /// Runs the world for 20 ms, then has the publishers write `rounds`
    /// rounds at one instant; returns them undelivered.
    fn batch(&self, sim: &mut Sim, rounds: u64) -> Vec<Captured> {
        sim.run(Duration::from_millis(20));
        let mark = sim.net.mark();
        let now = sim.now;
        for _ in 0..rounds {
            for client in sim.clients.iter_mut().take(self.publishers) {
                let audio = client.audio_out.unwrap();
                client.send(audio, &[0x0A; AUDIO_PAYLOAD], now, &mut sim.net);
                if let Some(video) = client.video_out {
                    for _ in 0..VIDEO_PER_ROUND {
                        client.send(video, &[0x0B; VIDEO_PAYLOAD], now, &mut sim.net);
                    }
                }
            }
        }
        for client in &mut sim.clients {
            client.got.clear();
        }
        let relay = sim.relay;
        let mut batch = sim.net.take_since(mark);
        batch.retain(|d| d.to == relay);
        batch
    }
}

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("relay_forward");
    for scenario in &SCENARIOS {
        let mut sim = scenario.build();
        group.throughput(Throughput::Elements(scenario.forwards_per_round()));
        group.bench_function(scenario.name, |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let rounds = left.min(CHUNK);
                    left -= rounds;
                    let batch = scenario.batch(&mut sim, rounds);
                    let start = Instant::now();
                    for datagram in &batch {
                        black_box(sim.relay_input(datagram));
                    }
                    timed += start.elapsed();
                }
                timed
            });
        });
    }
    group.finish();
}

/// CPU time this thread has run, from the scheduler's own accounting
/// (`/proc/thread-self/schedstat`, nanoseconds).
fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    let ns: u64 = text.split_whitespace().next().unwrap().parse().unwrap();
    Duration::from_nanos(ns)
}

fn percentile(sorted: &[Duration], per_mille: usize) -> Duration {
    sorted[(sorted.len() - 1) * per_mille / 1000]
}

/// Feeds batches until the engine has worked for `REPORT_ENGINE_TIME`;
/// prints forwarded packets per CPU second and per-datagram latency.
fn report(scenario: &Scenario) {
    let mut sim = scenario.build();
    let forwarded_before = sim.engine.metrics().forwarded_packets.get();
    let (mut wall, mut cpu) = (Duration::ZERO, Duration::ZERO);
    let mut latencies = Vec::new();
    while wall < REPORT_ENGINE_TIME {
        let batch = scenario.batch(&mut sim, CHUNK);
        let cpu_start = thread_cpu();
        let wall_start = Instant::now();
        for datagram in &batch {
            let before = sim.engine.metrics().forwarded_packets.get();
            let start = Instant::now();
            sim.relay_input(datagram);
            let took = start.elapsed();
            if sim.engine.metrics().forwarded_packets.get() > before {
                latencies.push(took);
            }
        }
        wall += wall_start.elapsed();
        cpu += thread_cpu() - cpu_start;
    }
    let forwarded = sim.engine.metrics().forwarded_packets.get() - forwarded_before;
    let expected =
        latencies.len() as u64 / scenario.packets_per_round() * scenario.forwards_per_round();
    latencies.sort_unstable();
    let per_packet = cpu.as_nanos() as f64 / forwarded as f64;
    println!(
        "{:<12} forwarded {forwarded} (of {expected} expected) in {:.3} s CPU / {:.3} s wall: \
         {:.0} forwarded/s per core, {per_packet:.0} ns CPU per forwarded packet; \
         per incoming RTP datagram ({} samples, {} copies each): p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        scenario.name,
        cpu.as_secs_f64(),
        wall.as_secs_f64(),
        forwarded as f64 / cpu.as_secs_f64(),
        latencies.len(),
        scenario.publishers + scenario.subscribers - 1,
        percentile(&latencies, 500).as_secs_f64() * 1e6,
        percentile(&latencies, 990).as_secs_f64() * 1e6,
        latencies.last().unwrap().as_secs_f64() * 1e6,
    );
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    throughput(&mut criterion);
    criterion.final_summary();
    // `cargo bench` passes --bench; `cargo test --benches` does not.
    if std::env::args().any(|a| a == "--bench") {
        println!("\nCPU and latency report (engine work only):");
        for scenario in &SCENARIOS {
            report(scenario);
        }
    }
}
