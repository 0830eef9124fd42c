//! What the server accepts as connections: plain HTTP only where it cannot
//! carry credentials across a network in cleartext.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use starling_test_support::{WatchedChild, wait_until};

/// `starling-server` in plain HTTP on `listen`, with a fresh data folder.
fn plain_http_server(listen: &str, data: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_starling-server"));
    command
        .env_clear()
        .env("STARLING_DATA_DIR", data)
        .env("STARLING_LISTEN", listen)
        .env("STARLING_TLS_MODE", "plain_http")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    command
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

/// Connections that send half a request head and then nothing.
async fn slow_connections(addr: std::net::SocketAddr, count: usize) -> Vec<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let mut slow = Vec::with_capacity(count);
    for _ in 0..count {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(stream);
    }
    slow
}

/// Whether the server has acted on `stream`: closed it (end of stream or
/// reset), or answered it before closing.
async fn closed_by_server(stream: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buffer = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buffer)).await;
    read.is_ok()
}

/// How many of `streams` the server has acted on.
async fn count_closed(streams: &Shared) -> usize {
    let mut streams = streams.lock().await;
    let mut closed = 0;
    for stream in streams.iter_mut() {
        closed += usize::from(closed_by_server(stream).await);
    }
    closed
}

type Shared = Arc<tokio::sync::Mutex<Vec<tokio::net::TcpStream>>>;

/// A free TCP port on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn slow_clients_are_closed_and_others_served_within_the_caps() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("starling.toml");
    std::fs::write(
        &config,
        "[connections]\nheader_read_timeout_seconds = 2\nmax_connections = 300\n",
    )
    .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut command = plain_http_server(&addr.to_string(), data.path());
    command.arg("--config").arg(&config);
    let mut server = WatchedChild::spawn("starling-server", &mut command, None);
    server.wait_for_port(Duration::from_secs(30), addr).await;

    let slow: Shared = Arc::new(tokio::sync::Mutex::new(slow_connections(addr, 250).await));
    // Past the cap of 300 in all, a connection is closed at once.
    let over: Shared = Arc::new(tokio::sync::Mutex::new(slow_connections(addr, 60).await));
    wait_until(
        Duration::from_secs(10),
        "the connections over the cap to be closed",
        || {
            let over = over.clone();
            async move { count_closed(&over).await >= 10 }
        },
    )
    .await;
    // The slow ones still open, the server answers someone else.
    over.lock().await.clear();
    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    // The slow ones are closed at the header deadline: at least 95 %.
    wait_until(
        Duration::from_secs(20),
        "95 % of the slow connections to be closed",
        || {
            let slow = slow.clone();
            async move { count_closed(&slow).await * 100 >= 250 * 95 }
        },
    )
    .await;
    drop(server);
}
