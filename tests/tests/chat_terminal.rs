//! `starling chat` in a real pseudo-terminal, read back through a terminal
//! emulator (vt100) as a person would see the screen: a line being typed
//! stays intact when a message arrives, the chat outlives a server restart
//! and sends what was typed meanwhile, and its commands answer.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::num::NonZeroU16;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use starling_e2e::cli::{Cli, messages};
use starling_e2e::{TestServer, workspace_binary};
use starling_test_support::DbKind;

const ROWS: u16 = 40;
const COLUMNS: u16 = 120;

/// A program running in a pseudo-terminal, its screen kept by an emulator.
struct Terminal {
    screen: Arc<Mutex<vt100::Parser>>,
    /// Everything the program wrote, escape codes and all.
    transcript: Arc<Mutex<Vec<u8>>>,
    keyboard: Arc<Mutex<Box<dyn Write + Send>>>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
}

impl Terminal {
    fn spawn(command: CommandBuilder) -> Self {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: ROWS,
                cols: COLUMNS,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let child = pair.slave.spawn_command(command).unwrap();
        drop(pair.slave);
        let screen = Arc::new(Mutex::new(vt100::Parser::new(
            NonZeroU16::new(ROWS).unwrap(),
            NonZeroU16::new(COLUMNS).unwrap(),
            0,
        )));
        let transcript = Arc::new(Mutex::new(Vec::new()));
        let keyboard = Arc::new(Mutex::new(pair.master.take_writer().unwrap()));
        let mut reader = pair.master.try_clone_reader().unwrap();
        let (shown, kept, answer) = (screen.clone(), transcript.clone(), keyboard.clone());
        std::thread::spawn(move || {
            let _master = pair.master;
            let mut buffer = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                let chunk = &buffer[..n];
                kept.lock().unwrap().extend_from_slice(chunk);
                let mut parser = shown.lock().unwrap();
                parser.process(chunk);
                // A terminal answers a cursor-position query, as line
                // editors ask one.
                if chunk.windows(4).any(|w| w == b"\x1b[6n") {
                    let (row, column) = parser.screen().cursor_position();
                    let reply = format!("\x1b[{};{}R", row + 1, column + 1);
                    let _ = answer.lock().unwrap().write_all(reply.as_bytes());
                }
            }
        });
        Self {
            screen,
            transcript,
            keyboard,
            child,
        }
    }

    /// Types, a key at a time.
    fn type_keys(&self, keys: &str) {
        let mut keyboard = self.keyboard.lock().unwrap();
        for key in keys.as_bytes() {
            keyboard.write_all(&[*key]).unwrap();
            keyboard.flush().unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The screen's rows, trailing blanks cut.
    fn rows(&self) -> Vec<String> {
        let parser = self.screen.lock().unwrap();
        parser
            .screen()
            .rows(0, COLUMNS)
            .map(|row| row.trim_end().to_owned())
            .collect()
    }

    /// The row the cursor is on: the line being typed.
    fn cursor_row(&self) -> String {
        let parser = self.screen.lock().unwrap();
        let (row, _) = parser.screen().cursor_position();
        parser
            .screen()
            .rows(0, COLUMNS)
            .nth(usize::from(row))
            .unwrap_or_default()
            .trim_end()
            .to_owned()
    }

    fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.transcript.lock().unwrap()).into_owned()
    }

    /// Waits (up to `seconds`) until a row of the screen contains `text`.
    fn wait_for(&self, text: &str, seconds: u64) {
        self.wait_until(text, seconds, || {
            self.rows().iter().any(|r| r.contains(text))
        });
    }

    fn wait_until(&self, what: &str, seconds: u64, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        while !done() {
            assert!(
                Instant::now() < deadline,
                "waited {seconds} s for {what:?}; the screen:\n{}",
                self.rows().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the program to end; its success.
    fn wait_exit(&mut self, seconds: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "still running after {seconds} s; the screen:\n{}",
                self.rows().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// `starling --home HOME chat WITH` in a terminal.
fn chat(cli: &Cli, with: &str) -> Terminal {
    let mut command = CommandBuilder::new(workspace_binary("starling"));
    command.arg("--home");
    command.arg(cli.home.path());
    command.args(["chat", with]);
    command.env("STARLING_PASSPHRASE", "correct horse battery");
    command.env("TERM", "xterm-256color");
    command.env_remove("STARLING_HOME");
    command.env_remove("NO_COLOR");
    Terminal::spawn(command)
}

/// Bob's messages as they arrive, up to the one with `body`.
fn bob_receives(bob: &Cli, body: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let lines = bob.receive_a_message();
        let bodies: Vec<String> = messages(&lines)
            .iter()
            .map(|m| m["body"].as_str().unwrap_or_default().to_owned())
            .collect();
        if bodies.iter().any(|b| b == body) {
            return;
        }
        seen.extend(bodies);
        assert!(
            Instant::now() < deadline,
            "bob never got {body:?}; he got {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_in_a_terminal_keeps_the_typed_line_and_survives_a_restart() {
    let mut server = TestServer::start(DbKind::Sqlite).await;
    let alice = Cli::new(&server);
    let bob = Cli::new(&server);
    alice.register("alice", &server.invite());
    bob.register("bob", &server.invite());
    bob.json(&["send", "alice", "hello alice"]);
    alice.receive_a_message();

    let mut terminal = chat(&alice, "bob");
    terminal.wait_for("chatting with bob", 30);
    terminal.wait_until("the prompt", 10, || terminal.cursor_row() == ">");

    terminal.type_keys("first line\r");
    bob_receives(&bob, "first line");

    // A message arrives while alice is in the middle of a line.
    terminal.type_keys("half typed");
    terminal.wait_until("the half-typed line", 10, || {
        terminal.cursor_row() == "> half typed"
    });
    bob.json(&["send", "alice", "incoming while typing"]);
    terminal.wait_for("incoming while typing", 30);
    let rows = terminal.rows();
    let incoming = rows
        .iter()
        .find(|r| r.contains("incoming while typing"))
        .unwrap();
    assert!(
        !incoming.contains("half typed"),
        "the incoming line is mixed into the typed one: {incoming:?}"
    );
    assert_eq!(terminal.cursor_row(), "> half typed", "{}", rows.join("\n"));
    terminal.type_keys(" and finished\r");
    bob_receives(&bob, "half typed and finished");

    terminal.type_keys("/help\r");
    terminal.wait_for("/file PATH", 10);
    terminal.wait_for("/verify", 10);

    // The server goes away; what is typed meanwhile is kept and sent.
    server.stop();
    terminal.wait_for("connection to the server lost", 30);
    terminal.type_keys("typed while the server was down\r");
    terminal.wait_for("not sent yet", 10);
    server.restart().await;
    terminal.wait_for("reconnected", 60);
    bob_receives(&bob, "typed while the server was down");
    let transcript = terminal.transcript();
    for internal in ["rustls", "close_notify", "IO error", "tungstenite"] {
        assert!(!transcript.contains(internal), "{internal}: {transcript}");
    }

    // A file, and verifying the contact: the number is shown first and
    // marked only at the second /verify.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, b"minutes of the meeting").unwrap();
    terminal.type_keys(&format!("/file {}\r", file.display()));
    terminal.wait_for("sent ", 30);
    terminal.type_keys("/verify\r");
    terminal.wait_for("if it matches, type /verify again", 20);
    assert!(
        !terminal
            .rows()
            .iter()
            .any(|r| r.contains("bob is verified"))
    );
    terminal.type_keys("/verify\r");
    terminal.wait_for("bob is verified", 20);

    terminal.type_keys("/quit\r");
    assert!(terminal.wait_exit(15), "{}", terminal.rows().join("\n"));
    assert_eq!(alice.json(&["safety-number", "bob"])[0]["verified"], true);
}
