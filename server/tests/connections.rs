//! What the server accepts as connections: plain HTTP only where it cannot
//! carry credentials across a network in cleartext; and, with 2,000 slow
//! or silent connections open, the others served, the connections over the
//! cap closed at once, and the slow ones closed within a minute.
//!
//! The slow-connection tests hold about 2,400 sockets in the test process
//! and as many in the server it starts (which inherits the limit), so they
//! need an open-file limit of a few thousand (`ulimit -n 8192`); they check
//! it first and say so when it is lower.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use starling_server::frames::{self, client_frame, server_frame};
use starling_test_support::WatchedChild;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// `starling-server` in `tls_mode` on `listen`, with a fresh data folder.
fn server_command(listen: &str, data: &std::path::Path, tls_mode: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_starling-server"));
    command
        .env_clear()
        .env("STARLING_DATA_DIR", data)
        .env("STARLING_LISTEN", listen)
        .env("STARLING_RELAY_UDP_LISTEN", "127.0.0.1:0")
        .env("STARLING_TLS_MODE", tls_mode)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    command
}

/// `starling-server` in plain HTTP on `listen`, with a fresh data folder.
fn plain_http_server(listen: &str, data: &std::path::Path) -> Command {
    server_command(listen, data, "plain_http")
}

#[test]
fn plain_http_on_a_reachable_address_is_refused_with_the_reason() {
    let data = tempfile::tempdir().unwrap();
    let output = plain_http_server("0.0.0.0:0", data.path())
        .output()
        .unwrap();
    assert!(!output.status.success(), "the server started");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let reason: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("refusing plain HTTP"))
        .collect();
    assert_eq!(reason.len(), 1, "{stderr}");
    assert!(reason[0].contains("STARLING_BEHIND_TLS_PROXY"), "{stderr}");
    // Nothing was created: the check comes before the database.
    assert_eq!(std::fs::read_dir(data.path()).unwrap().count(), 0);
}

#[test]
fn a_declared_tls_proxy_lets_plain_http_listen_on_any_address() {
    let data = tempfile::tempdir().unwrap();
    let mut child = plain_http_server("0.0.0.0:0", data.path())
        .env("STARLING_BEHIND_TLS_PROXY", "true")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let started = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains("listening on http://"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(started, "the server did not start");
}

/// The acceptance bound: a slow connection is closed by the server within
/// this long of being opened.
const CLOSED_WITHIN: Duration = Duration::from_secs(60);
/// How long a request of a well-behaved client may take while the slow
/// connections are open. Generous on purpose: this checks that others are
/// served at all, not how fast.
const SERVED_WITHIN: Duration = Duration::from_secs(10);
/// Share of the slow connections of each kind that must be closed within
/// [`CLOSED_WITHIN`], in percent.
const CLOSED_PERCENT: usize = 95;
/// Open files the slow-connection tests need in this process.
const NEEDED_OPEN_FILES: u64 = 4_096;

/// A way of holding a connection without completing a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// Connects and sends nothing at all.
    Silent,
    /// Sends the start of an HTTP/2 connection preface, then nothing.
    PartialPreface,
    /// Sends half a request head at once, then nothing.
    HalfHead,
    /// Sends a request head a few bytes a second and never finishes it
    /// (slowloris).
    Trickling,
    /// Completes the WebSocket upgrade with a valid credential, then sends
    /// nothing, not even a pong.
    SilentWebSocket,
    /// Connects to the TLS listener and sends no ClientHello.
    SilentTls,
}

/// A slow connection, once opened: its socket and when it was opened.
struct Opened {
    kind: Kind,
    stream: TcpStream,
    at: Instant,
}

/// What became of a slow connection: how long after its opening the server
/// closed it, if it did within [`CLOSED_WITHIN`].
struct Outcome {
    kind: Kind,
    closed_after: Option<Duration>,
}

/// Opens a connection of `kind` to `addr`; a WebSocket authenticates with
/// `auth`.
async fn open(kind: Kind, addr: SocketAddr, auth: Option<String>) -> Opened {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // A write fails only if the server has already closed the connection
    // (over the cap), which watching it then shows.
    match kind {
        Kind::Silent | Kind::Trickling | Kind::SilentTls => {}
        Kind::PartialPreface => drop(stream.write_all(b"PRI * HTTP/2.0\r\n").await),
        Kind::HalfHead => drop(
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: starling\r\n")
                .await,
        ),
        Kind::SilentWebSocket => {
            let auth = auth.expect("a WebSocket needs a credential");
            upgrade(&mut stream, addr, &auth).await;
        }
    }
    Opened {
        kind,
        stream,
        at: Instant::now(),
    }
}

/// Upgrades `stream` to the device WebSocket, by hand: the socket stays a
/// plain one that this test never writes to again.
async fn upgrade(stream: &mut TcpStream, addr: SocketAddr, auth: &str) {
    let request = format!(
        "GET /v1/ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Authorization: {auth}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut buffer = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut buffer).await.unwrap();
        assert!(read > 0, "the server closed the upgrade request");
        head.extend_from_slice(&buffer[..read]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
}

/// Returns once the server has ended the connection (end of stream or
/// reset), reading and dropping whatever it sends before (a WebSocket's
/// frames and pings, unanswered).
async fn until_closed(mut reader: impl AsyncRead + Unpin) {
    let mut buffer = [0u8; 1024];
    while matches!(reader.read(&mut buffer).await, Ok(read) if read > 0) {}
}

/// Writes a request head that never ends, a few bytes a second; returns
/// when a write fails (the server reset the connection).
async fn trickle(mut writer: impl AsyncWrite + Unpin) {
    let start = b"GET /healthz HTTP/1.1\r\nHost: starling\r\nX-Slow: ";
    for chunk in start.chunks(3).chain(std::iter::repeat(&b"zz"[..])) {
        if writer.write_all(chunk).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Keeps `opened` as its kind does until the server closes it or
/// [`CLOSED_WITHIN`] has passed since it was opened.
async fn watch(opened: Opened) -> Outcome {
    let Opened {
        kind,
        mut stream,
        at,
    } = opened;
    let closed = async {
        let (reader, writer) = stream.split();
        if kind == Kind::Trickling {
            tokio::select! {
                () = until_closed(reader) => {}
                () = trickle(writer) => {}
            }
        } else {
            until_closed(reader).await;
        }
    };
    let closed_after = tokio::time::timeout_at(at + CLOSED_WITHIN, closed)
        .await
        .ok()
        .map(|()| at.elapsed());
    Outcome { kind, closed_after }
}

/// Opens `count` connections of `kind` (a few at a time) and starts
/// watching each. WebSockets take their credentials from `auths`.
async fn open_many(
    watched: &mut JoinSet<Outcome>,
    kind: Kind,
    count: usize,
    addr: SocketAddr,
    auths: &[String],
) {
    let mut opening = futures_util::stream::iter(0..count)
        .map(|i| open(kind, addr, auths.get(i).cloned()))
        .buffer_unordered(32);
    while let Some(opened) = opening.next().await {
        watched.spawn(watch(opened));
    }
}

/// Fails, saying what to do, when this process may not open enough files
/// (read from `/proc/self/limits` where there is one).
fn check_open_file_limit() {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return;
    };
    let soft = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse::<u64>().ok());
    if let Some(soft) = soft {
        assert!(
            soft >= NEEDED_OPEN_FILES,
            "this test holds thousands of sockets and may open only {soft} files: \
             raise the limit (`ulimit -n 8192`) and run it again"
        );
    }
}

/// A free TCP port on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A started server: its process and address. `config` is written to the
/// data folder and passed with `--config`.
async fn start_server(
    data: &std::path::Path,
    tls_mode: &str,
    config: &str,
) -> (WatchedChild, SocketAddr) {
    let file = data.join("starling.toml");
    std::fs::write(&file, config).unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut command = server_command(&addr.to_string(), data, tls_mode);
    command.arg("--config").arg(&file);
    let mut server = WatchedChild::spawn("starling-server", &mut command, None);
    server.wait_for_port(Duration::from_secs(30), addr).await;
    (server, addr)
}

/// Registers `username` on the open server at `addr`; returns its
/// device's `Authorization` value.
async fn register(client: &reqwest::Client, addr: SocketAddr, username: String) -> String {
    let identity = starling_crypto::IdentityKeyPair::generate(&mut rand_core::OsRng);
    let reply = client
        .post(format!("http://{addr}/v1/accounts"))
        .json(&json!({
            "username": username,
            "identity_key": common::b64(&identity.public().to_bytes()),
        }))
        .send()
        .await
        .unwrap();
    let status = reply.status();
    let body: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(status, reqwest::StatusCode::OK, "{username}: {body}");
    format!(
        "Bearer {username}:{}:{}",
        body["device_id"],
        body["credential"].as_str().unwrap()
    )
}

/// Registers `count` accounts named `prefix` and a number, one after
/// another; returns their `Authorization` values.
async fn register_many(addr: SocketAddr, prefix: &str, count: usize) -> Vec<String> {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut auths = Vec::with_capacity(count);
    for i in 0..count {
        auths.push(register(&client, addr, format!("{prefix}{i:04}")).await);
    }
    auths
}

/// `what`, which a served client does, bounded by [`SERVED_WITHIN`].
async fn served<T>(what: &str, doing: impl Future<Output = T>) -> T {
    tokio::time::timeout(SERVED_WITHIN, doing)
        .await
        .unwrap_or_else(|_| panic!("{what}: not served within {SERVED_WITHIN:?}"))
}

/// A well-behaved client of the plain server at `addr`: a health check, an
/// authenticated API call, and a message from one WebSocket to another.
async fn serve_others(addr: SocketAddr, alice: &str, bob: &str) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let health = served(
        "GET /healthz",
        client.get(format!("http://{addr}/healthz")).send(),
    )
    .await
    .unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    let devices = served(
        "GET /v1/accounts/bob/devices",
        client
            .get(format!("http://{addr}/v1/accounts/bob/devices"))
            .header("authorization", alice)
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(devices.status(), reqwest::StatusCode::OK);

    let mut bob_ws = served("bob's WebSocket", common::Ws::connect(addr, bob)).await;
    served("bob's queue", bob_ws.drain()).await;
    let mut alice_ws = served("alice's WebSocket", common::Ws::connect(addr, alice)).await;
    served("alice's queue", alice_ws.drain()).await;
    let send = frames::ClientFrame {
        request_id: 7,
        body: Some(client_frame::Body::Send(frames::SendMessage {
            destination: "bob".into(),
            envelopes: vec![frames::OutgoingEnvelope {
                device_id: 1,
                content: b"served meanwhile".to_vec(),
            }],
            sealed: true,
        })),
    };
    served("alice's send", alice_ws.send_frame(send)).await;
    let answer = served("the answer to alice's send", async {
        loop {
            if let Some(server_frame::Body::Response(response)) = alice_ws.next_frame().await.body {
                return response;
            }
        }
    })
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body_json);
    let envelope = served("bob's envelope", bob_ws.next_envelope()).await;
    assert_eq!(envelope.content, b"served meanwhile");
}

/// Waits for every watched connection; fails unless, of each kind, at
/// least [`CLOSED_PERCENT`] were closed within [`CLOSED_WITHIN`].
async fn assert_closed_in_time(watched: Vec<JoinSet<Outcome>>) {
    let mut outcomes = Vec::new();
    for set in watched {
        outcomes.extend(set.join_all().await);
    }
    outcomes.sort_by_key(|o| o.kind);
    let mut report = Vec::new();
    let mut short = Vec::new();
    for group in outcomes.chunk_by(|a, b| a.kind == b.kind) {
        let times: Vec<Duration> = group.iter().filter_map(|o| o.closed_after).collect();
        let range = match (times.iter().min(), times.iter().max()) {
            (Some(first), Some(last)) => format!(", after {first:.1?} to {last:.1?}"),
            _ => String::new(),
        };
        let line = format!(
            "{:?}: {} of {} closed within {CLOSED_WITHIN:?}{range}",
            group[0].kind,
            times.len(),
            group.len(),
        );
        if times.len() * 100 < group.len() * CLOSED_PERCENT {
            short.push(line.clone());
        }
        report.push(line);
    }
    eprintln!("{}", report.join("\n"));
    assert!(
        short.is_empty(),
        "fewer than {CLOSED_PERCENT} % closed in time:\n{}",
        short.join("\n")
    );
}

/// Slow connections of each kind the acceptance test holds on the plain
/// server: 2,000 in all.
const SLOW_ON_PLAIN: [(Kind, usize); 5] = [
    (Kind::SilentWebSocket, 500),
    (Kind::HalfHead, 400),
    (Kind::Trickling, 600),
    (Kind::Silent, 400),
    (Kind::PartialPreface, 100),
];
/// Silent connections to the TLS server, besides.
const SILENT_ON_TLS: usize = 250;
/// Room under the plain server's cap beyond the slow connections.
const HEADROOM: usize = 25;
/// Connections opened past the slow ones to meet the cap.
const OVER: usize = 100;
/// "At once", for a connection closed at the cap: well within the
/// deadlines, which are 10 s and more.
const AT_ONCE: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_closed_and_others_served_within_the_caps() {
    check_open_file_limit();
    let slow_total: usize = SLOW_ON_PLAIN.iter().map(|(_, count)| count).sum();
    let silent_websockets = SLOW_ON_PLAIN
        .iter()
        .find(|(kind, _)| *kind == Kind::SilentWebSocket)
        .map_or(0, |(_, count)| *count);

    // The default deadlines: request heads 15 s, TLS handshakes 10 s. The
    // default WebSocket ping interval (30 s) would close a silent WebSocket
    // after two intervals, 60 s: the acceptance bound itself, and past
    // this test's time; 10 s closes it after 20 s by the same rule.
    let plain_data = tempfile::tempdir().unwrap();
    let (_plain, addr) = start_server(
        plain_data.path(),
        "plain_http",
        &format!(
            "[connections]\nmax_connections = {}\nwebsocket_ping_seconds = 10\n\
             [registration]\nopen = true\n",
            slow_total + HEADROOM
        ),
    )
    .await;
    let tls_data = tempfile::tempdir().unwrap();
    let (_tls, tls_addr) = start_server(tls_data.path(), "self_signed", "").await;

    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let alice = register(&client, addr, "alice".into()).await;
    let bob = register(&client, addr, "bob".into()).await;
    drop(client);
    let silent_auths = register_many(addr, "silent", silent_websockets).await;

    // The slow ones: WebSockets first, whose deadline is the longest, so
    // that none is closed yet when the cap is met below.
    let started = Instant::now();
    let mut on_plain = JoinSet::new();
    for (kind, count) in SLOW_ON_PLAIN {
        open_many(&mut on_plain, kind, count, addr, &silent_auths).await;
    }
    let mut on_tls = JoinSet::new();
    open_many(&mut on_tls, Kind::SilentTls, SILENT_ON_TLS, tls_addr, &[]).await;
    eprintln!(
        "{slow_total} slow connections open on the plain server and {SILENT_ON_TLS} on the \
         TLS server after {:.1?}",
        started.elapsed()
    );

    // With all of them open, others are served, on both servers.
    serve_others(addr, &alice, &bob).await;
    let tls_client = reqwest::Client::builder()
        .no_proxy()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let health = served(
        "GET /healthz over TLS",
        tls_client.get(format!("https://{tls_addr}/healthz")).send(),
    )
    .await
    .unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK);

    // Past the cap, a connection is closed at once: of OVER more, at most
    // HEADROOM find room, and those wait for the header deadline like the
    // slow ones.
    let mut over = JoinSet::new();
    for _ in 0..OVER {
        let opened = open(Kind::HalfHead, addr, None).await;
        over.spawn(tokio::time::timeout(AT_ONCE, watch(opened)));
    }
    let closed_at_once = over.join_all().await.iter().filter(|c| c.is_ok()).count();
    eprintln!("{closed_at_once} of {OVER} connections over the cap closed at once");
    // All that while, the 2,000 held their places.
    assert!(
        on_plain.try_join_next().is_none(),
        "a slow connection ended before the others were served ({:.1?} after the first \
         was opened)",
        started.elapsed()
    );
    assert!(
        closed_at_once >= OVER - HEADROOM,
        "{closed_at_once} of {OVER} connections over the cap closed at once"
    );

    assert_closed_in_time(vec![on_plain, on_tls]).await;
}
