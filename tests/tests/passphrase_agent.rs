//! The passphrase once per sitting: `starling unlock` leaves the store's
//! key with an agent for the time given, commands take it from there
//! without asking, and `starling lock` (or the end of the time) ends it.
//! `STARLING_PASSPHRASE` works as before.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use starling_e2e::TestServer;
use starling_e2e::cli::Cli;
use starling_test_support::DbKind;

/// A command that opens the store (and needs nothing else).
const HISTORY: [&str; 2] = ["history", "@alice"];

/// A server, and alice registered on it with the command.
async fn alice_registered() -> (TestServer, Cli) {
    let server = TestServer::start(DbKind::Sqlite).await;
    let alice = Cli::new(&server);
    alice.register("alice", &server.invite());
    (server, alice)
}

/// `starling unlock` with a wrong passphrase fails, saying so.
fn unlock_with_a_wrong_passphrase_fails(alice: &Cli) {
    let wrong = alice.run_with("not the passphrase", &["unlock"]);
    assert!(!succeeds(&wrong), "{}", explain(&wrong));
    assert!(
        explain(&wrong).contains("passphrase does not open"),
        "{}",
        explain(&wrong)
    );
}

fn succeeds(output: &std::process::Output) -> bool {
    output.status.success()
}

fn explain(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlock_once_then_commands_need_no_passphrase_until_locked() {
    let (_server, alice) = alice_registered().await;

    // Locked: with no passphrase and no terminal, a command cannot open
    // the store.
    let locked = alice.run_without_passphrase(&HISTORY);
    assert!(!succeeds(&locked), "{}", explain(&locked));

    // A wrong passphrase starts no agent.
    unlock_with_a_wrong_passphrase_fails(&alice);
    assert!(!succeeds(&alice.run_without_passphrase(&HISTORY)));

    let unlocked = alice.run_with("correct horse battery", &["unlock", "--for", "10"]);
    assert!(succeeds(&unlocked), "{}", explain(&unlocked));
    assert!(explain(&unlocked).contains("unlocked for 10 minutes"));
    for _ in 0..2 {
        let run = alice.run_without_passphrase(&HISTORY);
        assert!(succeeds(&run), "{}", explain(&run));
    }
    // The agent's socket is the owner's alone.
    let socket = alice.home.path().join("agent.sock");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).unwrap().permissions());
    assert_eq!(mode & 0o077, 0, "{mode:o}");
    // STARLING_PASSPHRASE still works, and wins over the agent.
    let wrong_env = alice.run_with("not the passphrase", &HISTORY);
    assert!(!succeeds(&wrong_env), "{}", explain(&wrong_env));

    let locked = alice.run_with("", &["lock"]);
    assert!(succeeds(&locked), "{}", explain(&locked));
    assert!(explain(&locked).contains("locked"));
    assert!(!succeeds(&alice.run_without_passphrase(&HISTORY)));
    assert!(!socket.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlock_ends_when_its_time_is_up() {
    let (_server, alice) = alice_registered().await;
    // Two seconds.
    let unlocked = alice.run_with("correct horse battery", &["unlock", "--for", "0.034"]);
    assert!(succeeds(&unlocked), "{}", explain(&unlocked));
    let run = alice.run_without_passphrase(&HISTORY);
    assert!(succeeds(&run), "{}", explain(&run));
    let deadline = Instant::now() + Duration::from_secs(30);
    while alice.home.path().join("agent.sock").exists() {
        assert!(Instant::now() < deadline, "the agent outlived its time");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!succeeds(&alice.run_without_passphrase(&HISTORY)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlock_works_while_another_command_has_the_store_open() {
    let (_server, alice) = alice_registered().await;
    let mut waiting = alice
        .command(&["receive", "--wait", "60"])
        .env("STARLING_PASSPHRASE", "correct horse battery")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Until `receive` holds the home (looked up without taking the lock,
    // which would make `receive` itself find the home in use).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !holds_the_home(alice.home.path(), waiting.id()) {
        if waiting.try_wait().unwrap().is_some() {
            let output = waiting.wait_with_output().unwrap();
            panic!("receive ended: {}", explain(&output));
        }
        assert!(Instant::now() < deadline, "receive never opened the home");
        std::thread::sleep(Duration::from_millis(100));
    }
    let other = alice.run_with("correct horse battery", &HISTORY);
    assert!(
        explain(&other).contains("another starling process is using this home"),
        "{}",
        explain(&other)
    );

    unlock_with_a_wrong_passphrase_fails(&alice);
    let unlocked = alice.run_with("correct horse battery", &["unlock", "--for", "10"]);
    assert!(succeeds(&unlocked), "{}", explain(&unlocked));

    waiting.kill().unwrap();
    waiting.wait().unwrap();
    let run = alice.run_without_passphrase(&HISTORY);
    assert!(succeeds(&run), "{}", explain(&run));
    assert!(succeeds(&alice.run_with("", &["lock"])));
}

/// Whether process `pid` holds the home's lock (a `flock`), read from
/// `/proc/locks` so that looking does not take the lock.
fn holds_the_home(home: &std::path::Path, pid: u32) -> bool {
    let Ok(meta) = std::fs::metadata(home.join("starling.lock")) else {
        return false;
    };
    let inode = format!(":{}", std::os::unix::fs::MetadataExt::ino(&meta));
    let pid = pid.to_string();
    std::fs::read_to_string("/proc/locks")
        .unwrap()
        .lines()
        .any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&"FLOCK")
                && fields.get(4) == Some(&pid.as_str())
                && fields.get(5).is_some_and(|file| file.ends_with(&inode))
        })
}
