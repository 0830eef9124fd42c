//! The `starling` command with one home, as one person uses it: run with
//! a passphrase, read as JSON lines.

use std::process::Output;

use serde_json::Value;

use crate::{TestServer, workspace_binary};

/// The `starling` command with one home, as one person uses it.
pub struct Cli {
    /// The server's URL and certificate fingerprint.
    url: String,
    fingerprint: String,
    /// The home folder.
    pub home: tempfile::TempDir,
}

impl Cli {
    /// A person with an empty home for the command.
    pub fn new(server: &TestServer) -> Self {
        Self {
            url: server.url.clone(),
            fingerprint: server.fingerprint.clone(),
            home: tempfile::tempdir().unwrap(),
        }
    }

    /// `starling --home HOME ARGS`, no passphrase set yet.
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(workspace_binary("starling"));
        command
            .arg("--home")
            .arg(self.home.path())
            .args(args)
            .env_remove("STARLING_PASSPHRASE")
            .env_remove("STARLING_HOME");
        command
    }

    /// Runs `starling --home HOME ARGS` with `passphrase`.
    pub fn run_with(&self, passphrase: &str, args: &[&str]) -> Output {
        self.command(args)
            .env("STARLING_PASSPHRASE", passphrase)
            .output()
            .unwrap()
    }

    /// Runs `starling --home HOME ARGS` with no passphrase given and no
    /// terminal to ask one on.
    pub fn run_without_passphrase(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs with `--json`; returns the JSON lines, asserting success.
    pub fn json(&self, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let output = self.run_with("correct horse battery", &all);
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(
            output.status.success(),
            "starling {args:?} failed: {stdout} {}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Runs `receive` until a message is among what arrived (receipts
    /// and other events may come first); at most 30 s.
    pub fn receive_a_message(&self) -> Vec<Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut received = Vec::new();
        while messages(&received).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "no message arrived within 30 s: {received:?}"
            );
            received.extend(self.json(&["receive", "--wait", "10"]));
        }
        received
    }

    /// Registers `username` with an invite code.
    pub fn register(&self, username: &str, invite: &str) {
        let lines = self.json(&[
            "register",
            "--server",
            &self.url,
            "--username",
            username,
            "--invite",
            invite,
            "--ca-fingerprint",
            &self.fingerprint,
        ]);
        assert_eq!(lines[0]["registered"], username);
    }
}

/// The message events among JSON lines.
pub fn messages(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|l| l["event"] == "message").collect()
}
