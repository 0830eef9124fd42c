//! What the server accepts as connections: plain HTTP only where it cannot
//! carry credentials across a network in cleartext.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};

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
