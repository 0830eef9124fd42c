//! `starling-load`: registers N devices on a running server (open
//! registration, plain HTTP), holds one WebSocket per device, and sends
//! envelopes of a chosen size to random peers at a chosen total rate. Every
//! receiver acknowledges what it gets. Reports delivered envelopes per
//! second, end-to-end latency (p50/p99/p99.9), sends refused as busy, its
//! own CPU time per delivered envelope and, given the server's pid, the
//! server's resident memory and CPU time per delivered envelope.
//!
//! ```text
//! STARLING_TLS_MODE=plain_http STARLING_OPEN_REGISTRATION=true starling-server &
//! starling-load --server http://127.0.0.1:8443 --devices 1000 --rate 20000 --size 256 --seconds 20 --server-pid $!
//! ```
//! `--idle` only connects the devices and reports memory, for measuring the
//! cost of idle connections. `--unidentified` gives every account an access
//! key and sends each envelope unidentified, on an anonymous WebSocket per
//! device (`/v1/ws/unidentified`), sealed-looking and of a padding bucket's
//! size; devices still receive on their own sockets.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use clap::Parser;
use futures_util::{FutureExt, SinkExt, StreamExt};
use hdrhistogram::Histogram;
use prost::Message as _;
use rand::{Rng, SeedableRng};
use starling_protocol::api::{RegisterRequest, RegisterResponse};
use starling_protocol::frames::{self, client_frame, server_frame};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[derive(Parser, Clone)]
#[command(name = "starling-load", about = "Load generator for starling-server")]
struct Args {
    /// Server base URL (plain HTTP).
    #[arg(long, default_value = "http://127.0.0.1:8443")]
    server: String,
    /// Devices (one account each) to register and connect.
    #[arg(long, default_value_t = 100)]
    devices: usize,
    /// Envelopes per second, in total.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Envelope content size in bytes (at least 16).
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// How long to send.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The server's process id, to report its memory and CPU time.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Only connect the devices and report memory per connection.
    #[arg(long)]
    idle: bool,
    /// Prefix for the generated usernames (use a fresh one per run).
    #[arg(long, default_value = "load")]
    prefix: String,
    /// Send without a credential, authorised by access keys, on anonymous
    /// WebSockets (`--size` must then be a padding bucket, e.g. 1024).
    #[arg(long)]
    unidentified: bool,
}

/// First byte of a sealed sender v1 envelope (`crypto/SPEC.md` §15).
const SEALED_V1: u8 = 0x31;
/// Where the send time (µs since the run's start, big-endian) sits in an
/// envelope: after the version byte.
const STAMP: std::ops::Range<usize> = 1..9;

/// The access key of account `index` in an `--unidentified` run.
fn access_key(index: usize) -> Vec<u8> {
    let mut key = vec![0xA5; 16];
    key[..8].copy_from_slice(&(index as u64).to_be_bytes());
    key
}

type Error = Box<dyn std::error::Error + Send + Sync>;
type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Stats {
    delivered: AtomicU64,
    sent: AtomicU64,
    /// Sends the server refused as busy (503), which a client would retry.
    busy: AtomicU64,
    /// Sends refused for any other reason.
    refused: AtomicU64,
    latency_us: Mutex<Histogram<u64>>,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = Args::parse();
    if args.unidentified && !starling_crypto::padding::is_envelope_bucket(args.size as u64) {
        return Err(format!(
            "--unidentified needs --size to be a padding bucket (1024, 2048, …), not {}",
            args.size
        )
        .into());
    }
    let start = Instant::now();
    let http = reqwest::Client::new();
    let mut auths = Vec::with_capacity(args.devices);
    for i in 0..args.devices {
        auths.push(register(&http, &args, i).await?);
    }
    let baseline = args.server_pid.map(server_usage);
    let mut sockets = Vec::with_capacity(args.devices);
    for (index, auth) in auths.iter().enumerate() {
        let anonymous = if args.unidentified {
            set_access(&http, &args.server, auth, index).await?;
            Some(connect(&args.server, "/v1/ws/unidentified", None).await?)
        } else {
            None
        };
        sockets.push((
            connect(&args.server, "/v1/ws", Some(auth)).await?,
            anonymous,
        ));
    }
    eprintln!(
        "{} devices registered and connected in {:.1} s",
        args.devices,
        start.elapsed().as_secs_f64()
    );
    if args.idle {
        tokio::time::sleep(Duration::from_secs(2)).await;
        report_memory(&args, baseline);
        return Ok(());
    }
    let stats = Arc::new(Stats {
        delivered: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        busy: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        latency_us: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3)?),
    });
    let epoch = Instant::now();
    let per_device_rate = (args.rate as f64 / args.devices as f64).max(0.001);
    let mut tasks = Vec::new();
    for (index, (socket, anonymous)) in sockets.into_iter().enumerate() {
        let stats = stats.clone();
        let args = args.clone();
        tasks.push(tokio::spawn(async move {
            let _ = device_loop(
                index,
                socket,
                anonymous,
                &args,
                per_device_rate,
                epoch,
                stats,
            )
            .await;
        }));
    }
    let cpu_before = args.server_pid.map(server_usage);
    let own_before = process_usage("self");
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let delivered_at_end = stats.delivered.load(Ordering::Relaxed);
    let cpu_after = args.server_pid.map(server_usage);
    let own_after = process_usage("self");
    let elapsed = epoch.elapsed().as_secs_f64();
    for task in &tasks {
        task.abort();
    }
    let histogram = stats
        .latency_us
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    println!(
        "devices: {}  envelope: {} B  target rate: {}/s  duration: {:.1} s  sends: {}",
        args.devices,
        args.size,
        args.rate,
        elapsed,
        if args.unidentified {
            "unidentified"
        } else {
            "authenticated"
        }
    );
    println!(
        "sent: {}  delivered: {}  refused busy: {}  refused otherwise: {}  delivered/s: {:.0}",
        stats.sent.load(Ordering::Relaxed),
        delivered_at_end,
        stats.busy.load(Ordering::Relaxed),
        stats.refused.load(Ordering::Relaxed),
        delivered_at_end as f64 / elapsed
    );
    println!(
        "latency ms: p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        histogram.value_at_quantile(0.5) as f64 / 1000.0,
        histogram.value_at_quantile(0.99) as f64 / 1000.0,
        histogram.value_at_quantile(0.999) as f64 / 1000.0,
        histogram.max() as f64 / 1000.0
    );
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        let cpu = after.cpu_seconds - before.cpu_seconds;
        println!(
            "server CPU: {:.2} s ({:.1} µs per delivered envelope)  RSS: {} MiB",
            cpu,
            cpu * 1e6 / delivered_at_end.max(1) as f64,
            after.rss_kib / 1024
        );
    }
    let own_cpu = own_after.cpu_seconds - own_before.cpu_seconds;
    println!(
        "load tool CPU: {:.2} s ({:.1} µs per delivered envelope)",
        own_cpu,
        own_cpu * 1e6 / delivered_at_end.max(1) as f64
    );
    Ok(())
}

async fn register(http: &reqwest::Client, args: &Args, index: usize) -> Result<String, Error> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(index as u64);
    let identity = starling_crypto::IdentityKeyPair::generate(&mut rng);
    let username = format!("{}{index}", args.prefix);
    let request = RegisterRequest {
        username: username.clone(),
        invite_code: None,
        identity_key: base64::engine::general_purpose::STANDARD
            .encode(identity.public().to_bytes()),
    };
    let response = http
        .post(format!("{}/v1/accounts", args.server))
        .json(&request)
        .send()
        .await?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        return Err(
            format!("registration refused: {status} {body} (is open registration on?)").into(),
        );
    }
    let registered: RegisterResponse = response.json().await?;
    Ok(format!(
        "Bearer {username}:{}:{}",
        registered.device_id, registered.credential
    ))
}

/// Gives account `index` its access key (no sealed envelopes from
/// strangers).
async fn set_access(
    http: &reqwest::Client,
    server: &str,
    auth: &str,
    index: usize,
) -> Result<(), Error> {
    let body = starling_protocol::api::SetAccess {
        access_key: base64::engine::general_purpose::STANDARD.encode(access_key(index)),
        sealed_from_strangers: false,
        if_absent: false,
    };
    let response = http
        .put(format!("{server}/v1/accounts/access"))
        .header("authorization", auth)
        .json(&body)
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(format!("setting an access key refused: {}", response.status()).into());
    }
    Ok(())
}

/// A WebSocket to `path`, with the device's credential when given.
async fn connect(server: &str, path: &str, auth: Option<&str>) -> Result<Socket, Error> {
    let url = format!("{}{path}", server.replacen("http", "ws", 1));
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)?;
    if let Some(auth) = auth {
        request.headers_mut().insert("authorization", auth.parse()?);
    }
    // No Nagle delay on the client's small frames either, and a small read
    // buffer: tungstenite zeroes the whole buffer before each read, and its
    // 128 KiB default made that the tool's main cost.
    let config = WebSocketConfig::default().read_buffer_size(4 * 1024);
    let (socket, _) =
        tokio_tungstenite::connect_async_with_config(request, Some(config), true).await?;
    Ok(socket)
}

async fn device_loop(
    index: usize,
    socket: Socket,
    anonymous: Option<Socket>,
    args: &Args,
    rate: f64,
    epoch: Instant,
    stats: Arc<Stats>,
) -> Result<(), Error> {
    let (mut sink, mut stream) = socket.split();
    // Unidentified sends go out on the anonymous socket; its answers are
    // counted in the same loop.
    let (mut anonymous_sink, mut answers) = match anonymous {
        Some(anonymous) => {
            let (sink, answers) = anonymous.split();
            (Some(sink), Some(answers))
        }
        None => (None, None),
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(1_000_000 + index as u64);
    // Each device starts at a random point of its period, so the devices'
    // sends spread over time instead of arriving in one burst per period.
    let period = Duration::from_secs_f64(1.0 / rate);
    let phase = period.mul_f64(rng.gen_range(0.0..1.0));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + phase, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut request_id = 0u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let mut peer = rng.gen_range(0..args.devices);
                if peer == index { peer = (peer + 1) % args.devices; }
                let mut content = vec![0u8; args.size.max(16)];
                let sent_at = u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
                content[STAMP].copy_from_slice(&sent_at.to_be_bytes());
                request_id += 1;
                let destination = format!("{}{peer}", args.prefix);
                let mut envelopes = vec![frames::OutgoingEnvelope { device_id: 1, content }];
                let frame = match anonymous_sink.as_mut() {
                    Some(anonymous) => {
                        if let Some(first) = envelopes.first_mut() { first.content[0] = SEALED_V1; }
                        let body = client_frame::Body::UnidentifiedSend(frames::UnidentifiedSend {
                            destination, envelopes, access_key: access_key(peer),
                        });
                        let frame = frames::ClientFrame { request_id, body: Some(body) };
                        anonymous.send(Message::Binary(frame.encode_to_vec().into())).await?;
                        None
                    }
                    None => Some(frames::ClientFrame {
                        request_id,
                        body: Some(client_frame::Body::Send(frames::SendMessage {
                            destination, envelopes, sealed: true,
                        })),
                    }),
                };
                if let Some(frame) = frame {
                    sink.send(Message::Binary(frame.encode_to_vec().into())).await?;
                }
                stats.sent.fetch_add(1, Ordering::Relaxed);
            }
            answer = next_answer(&mut answers) => {
                let Some(answer) = answer else {
                    return Ok(()); // the server hung up
                };
                receive(Some(answer), &epoch, &stats, &mut Vec::new());
            }
            message = stream.next() => {
                // Everything that has already arrived is acknowledged in
                // one frame, as a client draining its socket would.
                let Some(message) = message else {
                    return Ok(()); // the server hung up
                };
                let mut ids = Vec::new();
                receive(Some(message), &epoch, &stats, &mut ids);
                // Until nothing more is ready, or the socket ended (which
                // the next turn of the loop finds).
                while let Some(Some(message)) = stream.next().now_or_never() {
                    receive(Some(message), &epoch, &stats, &mut ids);
                }
                if !ids.is_empty() {
                    let ack = frames::ClientFrame {
                        request_id: 0,
                        body: Some(client_frame::Body::Ack(frames::Acknowledge { envelope_ids: ids })),
                    };
                    sink.send(Message::Binary(ack.encode_to_vec().into())).await?;
                }
            }
        }
    }
}

/// The next message on the anonymous socket, if there is one (else never).
async fn next_answer(
    answers: &mut Option<futures_util::stream::SplitStream<Socket>>,
) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match answers {
        Some(answers) => answers.next().await,
        None => std::future::pending().await,
    }
}

/// Counts one frame from the server; an envelope's id joins `ids`.
fn receive(
    message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    epoch: &Instant,
    stats: &Stats,
    ids: &mut Vec<Vec<u8>>,
) {
    let Some(Ok(Message::Binary(bytes))) = message else {
        return;
    };
    let Ok(frame) = frames::ServerFrame::decode(&bytes[..]) else {
        return;
    };
    match frame.body {
        Some(server_frame::Body::Envelope(envelope)) => {
            if let Some(sent) = envelope
                .content
                .get(STAMP)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
            {
                let now = u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
                let latency = now.saturating_sub(u64::from_be_bytes(sent)).max(1);
                let mut histogram = stats
                    .latency_us
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let _ = histogram.record(latency);
            }
            stats.delivered.fetch_add(1, Ordering::Relaxed);
            ids.push(envelope.id);
        }
        Some(server_frame::Body::Response(response)) if response.status == 503 => {
            stats.busy.fetch_add(1, Ordering::Relaxed);
        }
        Some(server_frame::Body::Response(response)) if response.status != 200 => {
            stats.refused.fetch_add(1, Ordering::Relaxed);
        }
        _ => {}
    }
}

#[derive(Clone, Copy)]
struct Usage {
    cpu_seconds: f64,
    rss_kib: u64,
}

/// CPU time (user + system) and resident memory of the server, from /proc.
fn server_usage(pid: u32) -> Usage {
    process_usage(&pid.to_string())
}

/// CPU time and resident memory of `/proc/{process}` (a pid, or `self`).
fn process_usage(process: &str) -> Usage {
    let stat = std::fs::read_to_string(format!("/proc/{process}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields after the command: state is 0, utime is 11, stime is 12.
    let cpu_seconds = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Usage {
        cpu_seconds,
        rss_kib,
    }
}

fn report_memory(args: &Args, baseline: Option<Usage>) {
    if let (Some(pid), Some(before)) = (args.server_pid, baseline) {
        let after = server_usage(pid);
        let growth = after.rss_kib.saturating_sub(before.rss_kib);
        println!(
            "{} idle connections: server RSS {} MiB -> {} MiB, {:.1} KiB per connection",
            args.devices,
            before.rss_kib / 1024,
            after.rss_kib / 1024,
            growth as f64 / args.devices as f64
        );
    }
}
