//! Sending one forwarded packet's copies to 50 receivers, each at its own
//! address on loopback: one `send_to` per copy against one `sendmmsg` per
//! batch (`net::udp_batch`, what the relay's socket loop does), in the
//! same run. A thread drains the receivers so their buffers never fill.
//!
//! `cargo bench -p starling-media-relay --bench udp_send`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(missing_docs, unreachable_pub)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use criterion::{Criterion, Throughput};
use starling_media_relay::net::udp_batch;

/// Receivers of each forwarded packet (the 1 × 50 call shape).
const RECEIVERS: usize = 50;
/// An audio packet with SRTP and SFrame overhead.
const PAYLOAD: usize = 200;

fn main() {
    let receivers: Vec<UdpSocket> = (0..RECEIVERS)
        .map(|_| {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            socket.set_nonblocking(true).unwrap();
            socket
        })
        .collect();
    let addrs: Vec<SocketAddr> = receivers.iter().map(|r| r.local_addr().unwrap()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let drainer = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let mut idle = true;
                for r in &receivers {
                    while r.recv(&mut buf).is_ok() {
                        idle = false;
                    }
                }
                if idle {
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
        })
    };

    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    sender.set_nonblocking(true).unwrap();
    let payload = [0x5A; PAYLOAD];
    let datagrams: Vec<(SocketAddr, &[u8])> = addrs.iter().map(|a| (*a, &payload[..])).collect();

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("udp_send_50_destinations");
    group.throughput(Throughput::Elements(RECEIVERS as u64));
    group.bench_function("send_to each", |b| {
        b.iter(|| {
            udp_batch::send_all(
                |rest| {
                    let (to, bytes) = rest[0];
                    sender.send_to(bytes, to).map(|_| 1)
                },
                &datagrams,
            )
        });
    });
    #[cfg(target_os = "linux")]
    group.bench_function("sendmmsg batch", |b| {
        b.iter(|| udp_batch::send_all(|rest| udp_batch::sendmmsg_some(&sender, rest), &datagrams));
    });
    group.finish();
    c.final_summary();
    stop.store(true, Ordering::Relaxed);
    drainer.join().unwrap();
}
