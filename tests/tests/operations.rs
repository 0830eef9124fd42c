//! Running the server as an operator does: a port in use is an error that
//! names the address (and nothing claims the server listens), output to
//! a pipe carries no colour codes, `--log-format json` writes one JSON
//! object per line, and a closed stdout is not a panic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read as _;
use std::process::{Command, Stdio};

use starling_e2e::{TestServer, workspace_binary};
use starling_test_support::DbKind;

/// `starling-server` on SQLite in a fresh data folder.
fn server(data: &tempfile::TempDir) -> Command {
    let mut command = Command::new(workspace_binary("starling-server"));
    command
        .env("STARLING_DATA_DIR", data.path())
        .env_remove("DATABASE_URL")
        .env_remove("STARLING_CONFIG")
        .env_remove("STARLING_TLS_MODE")
        .env("STARLING_RELAY_UDP_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    command
}

#[test]
fn a_port_in_use_is_an_error_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let data = tempfile::tempdir().unwrap();
    let output = server(&data)
        .env("STARLING_LISTEN", addr.to_string())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    assert!(!stderr.contains("listening"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_written_to_a_file_carry_no_colour_codes() {
    let server = TestServer::start_with(DbKind::Sqlite, "info").await;
    server.client("alice").await;
    let log = std::fs::read_to_string(&server.log_path).unwrap();
    assert!(log.contains("INFO"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in {log}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let data = tempfile::tempdir().unwrap();
    let output = server(&data)
        .args(["--log-format", "json", "migrate"])
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(!lines.is_empty(), "nothing logged");
    for line in lines {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(object["level"].is_string(), "{line}");
    }
    // What the server says on stderr, a fatal error included, is JSON too.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let output = server(&data)
        .args(["--log-format", "json"])
        .env("STARLING_LISTEN", taken.local_addr().unwrap().to_string())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    let errors: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .filter(|object: &serde_json::Value| object["level"] == "ERROR")
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0]["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("cannot listen on")),
        "{stderr}"
    );
}

#[test]
fn a_closed_stdout_is_not_a_panic() {
    let data = tempfile::tempdir().unwrap();
    // More invite codes than a pipe holds, to a reader that has left.
    let mut child = server(&data)
        .args(["admin", "invite", "--count", "10000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(status.code().is_some_and(|code| code != 101), "{stderr}");
}

/// Starts `command` with its output piped, waits until it says it listens,
/// then closes the pipes, as `tee` leaves after Ctrl-C.
fn start_then_lose_the_reader(command: &mut Command) -> std::process::Child {
    use std::io::BufRead as _;
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("listening") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the server exited"
        );
    }
    drop(stderr);
    drop(child.stdout.take());
    child
}

/// Waits up to `limit` for `child` to exit; panics with `what` otherwise.
fn wait_for_exit(child: &mut std::process::Child, limit: std::time::Duration, what: &str) {
    let asked = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(asked.elapsed() < limit, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Sends SIGINT (what Ctrl-C sends) to `pid`.
fn interrupt(pid: u32) {
    let status = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_second_ctrl_c_stops_a_draining_server_at_once() {
    use std::io::Write as _;
    use std::time::Duration;

    let data = tempfile::tempdir().unwrap();
    // A long drain, and a client that holds its request open through it.
    let config = data.path().join("starling.toml");
    std::fs::write(&config, "shutdown_grace_seconds = 120\n").unwrap();
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut child = start_then_lose_the_reader(
        server(&data)
            .arg("--config")
            .arg(&config)
            .env("STARLING_LISTEN", addr.to_string())
            .env("STARLING_TLS_MODE", "plain_http"),
    );
    let mut held = std::net::TcpStream::connect(addr).unwrap();
    held.write_all(
        b"POST /v1/accounts HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 4096\r\n\r\n{",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    interrupt(child.id());
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the held request should keep the first Ctrl-C draining"
    );
    interrupt(child.id());
    wait_for_exit(
        &mut child,
        Duration::from_secs(10),
        "a second Ctrl-C left the server running",
    );
    drop(held);
}

#[test]
fn ctrl_c_stops_a_server_whose_log_reader_left() {
    use std::time::Duration;

    // `starling-server 2>&1 | tee server.log`, then Ctrl-C: tee goes first,
    // and the server's next log line meets a closed pipe.
    let data = tempfile::tempdir().unwrap();
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut child =
        start_then_lose_the_reader(server(&data).env("STARLING_LISTEN", addr.to_string()));
    interrupt(child.id());
    wait_for_exit(
        &mut child,
        Duration::from_secs(15),
        "Ctrl-C left the server running",
    );
}
