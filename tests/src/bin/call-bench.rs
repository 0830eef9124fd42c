//! The latency the media relay adds to a call, measured side by side in one
//! run: two media engines (`MediaSession`) connected directly to each other
//! on 127.0.0.1, then the same two engines joined to a real `starling-relay`
//! (started with a real server, as the end-to-end tests do). On each path,
//! synthetic frames (audio at 50/s, video at 30/s), SFrame-encrypted, go one
//! way for N seconds, then both ways for N seconds; each frame's latency is
//! from the sender's stamp (taken before encryption) to the receiver's
//! verified frame (reassembled, decrypted, checked byte for byte).
//!
//! `cargo build --release -p starling-server -p starling-media-relay -p starling-e2e && target/release/call-bench 10`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use starling_client::call::frames::{MediaKind, synthetic_frame, verify_frame};
use starling_client::call::keys::{FrameDecryptor, FrameEncryptor, new_secret};
use starling_client::call::media::{MediaSession, ReceivedFrame};
use starling_client::call::stats::CallStats;
use starling_e2e::{DbKind, TestRelay};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// The one key epoch of the benchmark.
const EPOCH: u32 = 1;
/// Both ways, not reported: the first frames after connecting.
const WARM_UP: Duration = Duration::from_secs(1);
/// How long receivers keep listening after the senders stop.
const DRAIN: Duration = Duration::from_millis(500);
/// The media kinds sent.
const KINDS: [MediaKind; 2] = [MediaKind::Audio, MediaKind::Video];

/// Microseconds since the Unix epoch (frames carry their send time).
fn now_micros() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros(),
    )
    .unwrap()
}

/// The index of `kind` in per-kind arrays.
fn slot(kind: MediaKind) -> usize {
    usize::from(kind == MediaKind::Video)
}

/// One engine of the pair, with its keys.
struct Peer {
    session: Arc<MediaSession>,
    frames: Option<mpsc::Receiver<ReceivedFrame>>,
    encryptor: Option<FrameEncryptor>,
    decryptor: Option<FrameDecryptor>,
}

/// Both engines keyed for one epoch, each with its own sending key and
/// able to read the other.
fn peers(sessions: [(MediaSession, mpsc::Receiver<ReceivedFrame>); 2]) -> [Peer; 2] {
    let secrets = [0, 1].map(|_| new_secret(&mut rand::rngs::OsRng));
    let mut index = 0u8;
    sessions.map(|(session, frames)| {
        let mut decryptor = FrameDecryptor::default();
        decryptor.add_epoch(EPOCH);
        for (sender, secret) in (0u8..).zip(&secrets) {
            decryptor.add_sender(EPOCH, sender, secret).unwrap();
        }
        let peer = Peer {
            session: Arc::new(session),
            frames: Some(frames),
            encryptor: Some(
                FrameEncryptor::new(EPOCH, index, &secrets[usize::from(index)]).unwrap(),
            ),
            decryptor: Some(decryptor),
        };
        index += 1;
        peer
    })
}

/// Publishes audio and video for `duration`; returns the frames sent of
/// each kind.
async fn send(
    session: Arc<MediaSession>,
    mut encryptor: FrameEncryptor,
    sequences: [u32; 2],
    duration: Duration,
) -> (FrameEncryptor, [u32; 2]) {
    let deadline = Instant::now() + duration;
    let mut ticks = KINDS.map(|kind| {
        let mut tick = tokio::time::interval(kind.interval());
        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        tick
    });
    let [audio_tick, video_tick] = &mut ticks;
    let mut next = sequences;
    loop {
        let kind = tokio::select! {
            _ = audio_tick.tick() => MediaKind::Audio,
            _ = video_tick.tick() => MediaKind::Video,
            // The send window is what is measured: it ends on the clock.
            () = tokio::time::sleep_until(deadline) => break,
        };
        let sequence = &mut next[slot(kind)];
        let frame = synthetic_frame(kind, *sequence, now_micros());
        let ciphertext = encryptor.encrypt(&frame).unwrap();
        session.send(kind, ciphertext).await.unwrap();
        *sequence += 1;
    }
    (encryptor, next)
}

/// What one receiver got, per kind.
struct Received {
    stats: [CallStats; 2],
    corrupt: u64,
}

/// Decrypts and counts frames until told to stop; hands back the
/// receiver and decryptor for the next phase.
async fn receive(
    mut frames: mpsc::Receiver<ReceivedFrame>,
    mut decryptor: FrameDecryptor,
    mut stop: watch::Receiver<bool>,
) -> (mpsc::Receiver<ReceivedFrame>, FrameDecryptor, Received) {
    let mut received = Received {
        stats: Default::default(),
        corrupt: 0,
    };
    loop {
        let frame = tokio::select! {
            frame = frames.recv() => frame.expect("the engine stopped"),
            _ = stop.changed() => break,
        };
        let opened = decryptor.decrypt(&frame.ciphertext).ok();
        match opened.and_then(|(_, index, plain)| Some((index, verify_frame(&plain)?))) {
            Some((index, verified)) => {
                received.stats[slot(verified.kind)].received(index, verified, now_micros());
            }
            None => received.corrupt += 1,
        }
    }
    (frames, decryptor, received)
}

/// One row of the results: one direction and kind of one phase.
struct Row {
    path: &'static str,
    mode: &'static str,
    direction: &'static str,
    kind: MediaKind,
    sent: u32,
    received: u64,
    corrupt: u64,
    p50_ms: f64,
    p99_ms: f64,
    seconds: f64,
}

impl Row {
    /// The share of frames sent that never arrived.
    fn loss(&self) -> f64 {
        1.0 - self.received as f64 / f64::from(self.sent.max(1))
    }
}

/// Runs one phase: peer 0 sends (and peer 1 too if `both_ways`) for
/// `duration`; returns a row per direction and kind.
async fn phase(
    peers: &mut [Peer; 2],
    sequences: &mut [[u32; 2]; 2],
    (path, mode, both_ways): (&'static str, &'static str, bool),
    duration: Duration,
) -> Vec<Row> {
    let (stop, stopped) = watch::channel(false);
    let receivers: Vec<JoinHandle<_>> = peers
        .iter_mut()
        .map(|peer| {
            tokio::spawn(receive(
                peer.frames.take().unwrap(),
                peer.decryptor.take().unwrap(),
                stopped.clone(),
            ))
        })
        .collect();
    let senders: Vec<(usize, JoinHandle<_>)> = peers
        .iter_mut()
        .enumerate()
        .take(if both_ways { 2 } else { 1 })
        .map(|(index, peer)| {
            let task = send(
                Arc::clone(&peer.session),
                peer.encryptor.take().unwrap(),
                sequences[index],
                duration,
            );
            (index, tokio::spawn(task))
        })
        .collect();
    let mut rows = Vec::new();
    let mut sent = [[0u32; 2]; 2];
    for (index, task) in senders {
        let (encryptor, next) = task.await.unwrap();
        peers[index].encryptor = Some(encryptor);
        for kind in KINDS {
            sent[index][slot(kind)] = next[slot(kind)] - sequences[index][slot(kind)];
        }
        sequences[index] = next;
    }
    // A bounded wait is the measurement: frames that have not arrived
    // DRAIN after the senders stopped count as lost.
    tokio::time::sleep(DRAIN).await;
    stop.send(true).unwrap();
    for (receiver, task) in receivers.into_iter().enumerate() {
        let (frames, decryptor, received) = task.await.unwrap();
        peers[receiver].frames = Some(frames);
        peers[receiver].decryptor = Some(decryptor);
        let sender = 1 - receiver;
        if sender == 1 && !both_ways {
            continue;
        }
        for kind in KINDS {
            let stats = &received.stats[slot(kind)];
            rows.push(Row {
                path,
                mode,
                direction: if sender == 0 { "A → B" } else { "B → A" },
                kind,
                sent: sent[sender][slot(kind)],
                received: stats.frames_received,
                corrupt: received.corrupt,
                p50_ms: stats.latency_ms(500),
                p99_ms: stats.latency_ms(990),
                seconds: duration.as_secs_f64(),
            });
        }
    }
    rows.sort_by_key(|row| (row.direction, row.kind));
    rows
}

/// Warm-up, then one way, then both ways, on one connected pair.
async fn measure(path: &'static str, mut peers: [Peer; 2], duration: Duration) -> Vec<Row> {
    let mut sequences = [[0u32; 2]; 2];
    phase(&mut peers, &mut sequences, (path, "warm-up", true), WARM_UP).await;
    let mut rows = Vec::new();
    for (mode, both_ways) in [("one way", false), ("both ways", true)] {
        let phase_rows = phase(
            &mut peers,
            &mut sequences,
            (path, mode, both_ways),
            duration,
        );
        rows.extend(phase_rows.await);
    }
    for peer in &peers {
        peer.session.leave().await;
    }
    rows
}

/// Both engines through a real relay; measures every phase.
async fn through_relay(duration: Duration) -> Vec<Row> {
    let (server, _relay) = TestRelay::start(DbKind::Sqlite).await;
    let alice = server.client("alice").await;
    let bob = server.client("bob").await;
    let call_id = hex::encode(rand::random::<[u8; 16]>());
    let mut sessions = Vec::new();
    for client in [&alice, &bob] {
        let token = client.client.api().call_token().await.unwrap();
        let relay_url = token.relay_url.as_deref().expect("the server has a relay");
        sessions.push(
            MediaSession::join(relay_url, &call_id, &token.token, 1, None)
                .await
                .unwrap(),
        );
    }
    let sessions: [_; 2] = sessions.try_into().unwrap();
    measure("relay", peers(sessions), duration).await
}

/// Prints the rows as a Markdown table.
fn print(rows: &[Row]) {
    println!("| path | mode | direction | kind | sent | received | loss | frames/s | p50 | p99 |");
    println!("|---|---|---|---|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        assert_eq!(row.corrupt, 0, "corrupt frames on {}", row.path);
        println!(
            "| {} | {} | {} | {:?} | {} | {} | {:.2}% | {:.1} | {:.2} ms | {:.2} ms |",
            row.path,
            row.mode,
            row.direction,
            row.kind,
            row.sent,
            row.received,
            row.loss() * 100.0,
            row.received as f64 / row.seconds,
            row.p50_ms,
            row.p99_ms
        );
    }
}

/// Prints the relay's figures against the direct ones.
fn print_ratios(direct: &[Row], relay: &[Row]) {
    println!();
    println!(
        "| mode | direction | kind | p50 relay / direct | p99 relay / direct | p50 added | p99 added |"
    );
    println!("|---|---|---|---:|---:|---:|---:|");
    for (d, r) in direct.iter().zip(relay) {
        assert_eq!((d.mode, d.direction, d.kind), (r.mode, r.direction, r.kind));
        println!(
            "| {} | {} | {:?} | {:.2}× | {:.2}× | {:+.2} ms | {:+.2} ms |",
            d.mode,
            d.direction,
            d.kind,
            r.p50_ms / d.p50_ms,
            r.p99_ms / d.p99_ms,
            r.p50_ms - d.p50_ms,
            r.p99_ms - d.p99_ms
        );
    }
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .map(|arg| arg.parse().expect("usage: call-bench [seconds]"))
        .unwrap_or(10);
    let duration = Duration::from_secs(seconds);
    let direct = MediaSession::direct_pair().await.unwrap();
    let direct = measure("direct", peers(direct), duration).await;
    let relay = through_relay(duration).await;
    let mut rows = direct;
    let split = rows.len();
    rows.extend(relay);
    print(&rows);
    let (direct, relay) = rows.split_at(split);
    print_ratios(direct, relay);
}
