//! The `starling` command driven end to end as a person (or a script)
//! would: register with invite codes, send and receive text and a file,
//! history, search, directory, safety numbers and verification, and the
//! errors a person sees.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Output;

use starling_e2e::cli::{Cli, messages};
use starling_e2e::{TestServer, workspace_binary};
use starling_test_support::{DbKind, both_databases};

async fn a_person_can_chat_share_a_file_and_verify_with_the_command(db: DbKind) {
    let server = TestServer::start(db).await;
    let alice = Cli::new(&server);
    let bob = Cli::new(&server);
    alice.register("alice", &server.invite());
    bob.register("bob", &server.invite());

    let sent = alice.json(&["send", "bob", "hello from the command line"]);
    assert_eq!(sent[0]["sent"], "bob");
    let received = bob.json(&["receive", "--wait", "10"]);
    let received = messages(&received);
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0]["body"], "hello from the command line");
    assert_eq!(received[0]["sender"], "alice");
    let id = received[0]["message_id"].as_str().unwrap();
    bob.json(&["send", "alice", "a reply", "--reply-to", &id[..8]]);
    let back = alice.json(&["receive", "--wait", "10"]);
    assert!(
        messages(&back)[0]["body"]
            .as_str()
            .unwrap()
            .contains("a reply")
    );
    // Bob's receive told alice her message was read.
    assert!(
        back.iter()
            .any(|l| l["event"] == "updated" && l["change"] == "read"),
        "{back:?}"
    );
    assert_eq!(alice.json(&["history", "bob"])[0]["read"], true);

    // The interactive chat, fed from a pipe.
    let mut chat = std::process::Command::new(workspace_binary("starling"))
        .arg("--home")
        .arg(alice.home.path())
        .args(["chat", "bob"])
        .env("STARLING_PASSPHRASE", "correct horse battery")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = chat.stdin.take().unwrap();
        stdin.write_all(b"typed in the chat\n").unwrap();
        // The chat quits once what was typed reached bob.
        let in_chat = bob.receive_a_message();
        assert_eq!(messages(&in_chat)[0]["body"], "typed in the chat");
        stdin.write_all(b"/quit\n").unwrap();
    }
    let finished = chat.wait_with_output().unwrap();
    assert!(
        finished.status.success(),
        "{}",
        String::from_utf8_lossy(&finished.stderr)
    );

    // A file, saved by the recipient.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.pdf");
    std::fs::write(&file, b"%PDF-1.7 quarterly figures".repeat(5000)).unwrap();
    bob.json(&[
        "send-file",
        "alice",
        file.to_str().unwrap(),
        "--caption",
        "Q3",
    ]);
    let saved_dir = dir.path().join("saved");
    let got = alice.json(&[
        "receive",
        "--wait",
        "10",
        "--save-dir",
        saved_dir.to_str().unwrap(),
    ]);
    assert_eq!(messages(&got)[0]["kind"], "file");
    let saved = got.iter().find_map(|l| l["saved"].as_str()).unwrap();
    assert_eq!(std::fs::read(saved).unwrap(), std::fs::read(&file).unwrap());

    // History and search.
    let history = alice.json(&["history", "bob"]);
    assert_eq!(history.len(), 4);
    assert_eq!(history[0]["body"], "hello from the command line");
    let found = bob.json(&["search", "command line"]);
    assert_eq!(found.len(), 2, "the message and the reply quoting it");
    let found = bob.json(&["search", "quarterly", "--in", "alice"]);
    assert!(
        found.is_empty(),
        "file contents are not indexed, only what is shown"
    );
    let found = bob.json(&["search", "Q3"]);
    assert_eq!(found.len(), 1);

    // The directory the organisation published.
    publish_alice(&server, dir.path());
    let people = bob.json(&["directory", "search", "ali"]);
    assert_eq!(people[0]["username"], "alice");
    // Nothing found is said, not left as silence.
    for (args, said) in [
        (&["search", "zebra"][..], "no message matches \"zebra\""),
        (
            &["directory", "search", "zebra"][..],
            "no one in the directory matches \"zebra\"",
        ),
    ] {
        let nothing = bob.run_with("correct horse battery", args);
        assert!(nothing.status.success());
        assert!(nothing.stdout.is_empty());
        let stderr = String::from_utf8_lossy(&nothing.stderr);
        assert!(stderr.contains(said), "{args:?}: {stderr}");
    }

    // Safety numbers match on both sides; verify with the digits.
    let a = alice.json(&["safety-number", "bob"]);
    let b = bob.json(&["safety-number", "alice"]);
    assert_eq!(a[0]["display"], b[0]["display"]);
    let wrong = alice.run_with(
        "correct horse battery",
        &["verify", "bob", "--digits", &"1".repeat(60)],
    );
    assert!(!wrong.status.success());
    alice.json(&[
        "verify",
        "bob",
        "--digits",
        a[0]["display"].as_str().unwrap(),
    ]);
    assert_eq!(alice.json(&["safety-number", "bob"])[0]["verified"], true);

    // A session restarts only when a person asks: bob starts fresh
    // sessions (or asks alice to), and messages still flow.
    let reset = bob.json(&["reset-session", "alice"]);
    assert_eq!(reset[0]["reset_session"], "alice");
    assert_eq!(reset[0]["asked"], false);
    let asked = bob.json(&["reset-session", "--ask", "@alice"]);
    assert_eq!(asked[0]["asked"], true);
    alice.json(&["receive", "--wait", "2"]);
    bob.json(&["send", "alice", "after the reset"]);
    let lines = alice.receive_a_message();
    assert_eq!(messages(&lines)[0]["body"], "after the reset");
}
both_databases!(
    chat_file_verify,
    a_person_can_chat_share_a_file_and_verify_with_the_command
);

/// The one line a failed command printed on stderr.
fn error_line(output: &Output) -> String {
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "errors are one line: {stderr}");
    lines[0].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_one_clear_line() {
    let server = TestServer::start(DbKind::Sqlite).await;
    let alice = Cli::new(&server);
    // Not registered yet.
    let line = error_line(&alice.run_with("pw-one", &["send", "bob", "hi"]));
    assert!(line.contains("starling register"), "{line}");
    alice.register("alice", &server.invite());
    // A wrong passphrase.
    let line = error_line(&alice.run_with("not the passphrase", &["history", "bob"]));
    assert!(line.contains("passphrase"), "{line}");
    // An unknown user.
    let line = error_line(&alice.run_with("correct horse battery", &["send", "nobody", "hi"]));
    assert!(line.contains("nobody"), "{line}");
    // A wrong certificate pin; nothing is left behind, so a retry with
    // another passphrase works.
    let other = Cli::new(&server);
    let invite = server.invite();
    let register = |passphrase: &str, fingerprint: &str, username: &str| {
        other.run_with(
            passphrase,
            &[
                "register",
                "--server",
                &server.url,
                "--username",
                username,
                "--invite",
                &invite,
                "--ca-fingerprint",
                fingerprint,
            ],
        )
    };
    let line = error_line(&register("first", &"00".repeat(32), "mallory"));
    // The pin-mismatch error itself, not a network error that mentions
    // the certificate: only it tells the person what to check.
    assert!(line.contains("check --ca-fingerprint"), "{line}");
    assert!(
        register("second", &server.fingerprint, "mallory")
            .status
            .success()
    );
    // A server address without its scheme, or over plain HTTP: said so
    // before any passphrase is asked for.
    let address = server.url.trim_start_matches("https://");
    for typed in [address.to_owned(), format!("http://{address}")] {
        let line = error_line(
            &other.run_with("pw", &["register", "--server", &typed, "--username", "zed"]),
        );
        assert!(
            line.contains(&format!("--server https://{address}")),
            "{typed}: {line}"
        );
    }
    // The link-code hint is the whole command, pin included.
    let output = alice.run_with("correct horse battery", &["devices", "link-code"]);
    assert!(output.status.success());
    let hint = String::from_utf8(output.stdout).unwrap();
    assert!(
        hint.contains(&format!("starling link --server {} --code", server.url))
            && hint.contains(&format!("--ca-fingerprint {}", server.fingerprint)),
        "{hint}"
    );
    // A used invite code.
    let third = Cli::new(&server);
    let output = third.run_with(
        "pw",
        &[
            "register",
            "--server",
            &server.url,
            "--username",
            "trent",
            "--invite",
            &invite,
            "--ca-fingerprint",
            &server.fingerprint,
        ],
    );
    assert!(error_line(&output).contains("invite"));
    assert!(Path::new(&alice.home.path().join("store.db")).exists());
}

/// `starling privacy sealed-from-strangers on|off` sets what the server
/// enforces for the whole account, and `starling privacy` reads it back
/// from the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stranger_setting_is_the_server_s() {
    let server = TestServer::start(DbKind::Sqlite).await;
    let alice = Cli::new(&server);
    alice.register("alice", &server.invite());
    let shown = alice.json(&["privacy"]);
    assert_eq!(shown[0]["sealed_from_strangers"], false);
    let set = alice.json(&["privacy", "sealed-from-strangers", "on"]);
    assert_eq!(set[0]["sealed_from_strangers"], true);
    assert_eq!(alice.json(&["privacy"])[0]["sealed_from_strangers"], true);
    // Sending still works with the setting on, and it can be turned off.
    let bob = Cli::new(&server);
    bob.register("bob", &server.invite());
    alice.json(&["send", "bob", "hello"]);
    assert_eq!(messages(&bob.receive_a_message())[0]["body"], "hello");
    let set = alice.json(&["privacy", "sealed-from-strangers", "off"]);
    assert_eq!(set[0]["sealed_from_strangers"], false);
    let output = alice.run_with(
        "correct horse battery",
        &["privacy", "sealed-from-strangers", "maybe"],
    );
    assert!(!output.status.success());
}

/// A device linked with the hint `devices link-code` prints, word for
/// word, then removed from the account, is told so on its next command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_device_is_told_it_was_removed() {
    let server = TestServer::start(DbKind::Sqlite).await;
    let alice = Cli::new(&server);
    alice.register("alice", &server.invite());
    let output = alice.run_with("correct horse battery", &["devices", "link-code"]);
    assert!(output.status.success());
    let hint = String::from_utf8(output.stdout).unwrap();
    let command = hint
        .lines()
        .find_map(|line| line.strip_prefix("on the new device: starling "))
        .expect("the hint names the command");
    let laptop = Cli::new(&server);
    let args: Vec<&str> = command.split_whitespace().collect();
    let linked = laptop.json(&args);
    assert_eq!(linked[0]["linked"], "alice", "{linked:?}");
    let device = linked[0]["device_id"].as_u64().unwrap().to_string();
    alice.json(&["devices", "remove", &device]);
    let line = error_line(&laptop.run_with("correct horse battery", &["send", "alice", "hi"]));
    assert!(
        line.contains("this device was removed from the account"),
        "{line}"
    );
    // Also where the command's first request is the WebSocket.
    for args in [&["receive"][..], &["chat", "alice"][..]] {
        let line = error_line(&laptop.run_with("correct horse battery", args));
        assert!(
            line.contains("this device was removed from the account"),
            "{args:?}: {line}"
        );
    }
    // What it stored stays readable, with a note.
    let output = laptop.run_with("correct horse battery", &["history", "alice"]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("removed from the account"));
}

/// Publishes a directory of one person, alice ("Alice Martin").
fn publish_alice(server: &TestServer, dir: &Path) {
    let csv = dir.join("people.csv");
    std::fs::write(
        &csv,
        "username,display_name,title,department\nalice,Alice Martin,Engineer,Platform\n",
    )
    .unwrap();
    server.admin(&["import", csv.to_str().unwrap()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_show_their_directory_name_and_receipts_fold() {
    let server = TestServer::start(DbKind::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    publish_alice(&server, dir.path());
    let alice = Cli::new(&server);
    let bob = Cli::new(&server);
    alice.register(
        "alice",
        server.admin(&["invite", "--username", "alice"]).trim(),
    );
    bob.register("bob", &server.invite());
    for text in ["one", "two", "three"] {
        alice.json(&["send", "bob", text]);
    }

    let text = |output: Output| {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let received = text(bob.run_with("correct horse battery", &["receive", "--wait", "10"]));
    for body in ["one", "two", "three"] {
        assert!(
            received.contains(&format!("] alice (Alice Martin): {body}")),
            "{received}"
        );
    }
    let history = text(bob.run_with("correct horse battery", &["history", "alice"]));
    assert!(history.contains("alice (Alice Martin): one"), "{history}");

    // Bob's one receive read all three: alice sees one line for them.
    let mut receipts = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !receipts.contains("read") {
        assert!(
            std::time::Instant::now() < deadline,
            "no receipt: {receipts}"
        );
        receipts.push_str(&text(
            alice.run_with("correct horse battery", &["receive", "--wait", "5"]),
        ));
    }
    assert!(
        receipts.contains("[@bob] 3 messages read, up to "),
        "{receipts}"
    );
    assert_eq!(receipts.matches("read").count(), 1, "{receipts}");
}
