//! A `kill -9` of the real server binary in the middle of a stream of
//! sends loses no envelope whose send was acknowledged, on SQLite and on
//! PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{DbKind, JsonRequest, TestDatabase};
use serde_json::json;
use starling_test_support::{WatchedChild, both_databases, wait_until};

/// The real server binary on a database, in plain HTTP on a fixed port
/// (so that it comes back on the same one).
struct Server {
    db: TestDatabase,
    addr: SocketAddr,
}

impl Server {
    /// Its base URL.
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `starling-server` with this server's environment.
    fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_starling-server"));
        command
            .env("STARLING_DATA_DIR", self.db.dir())
            .env("STARLING_LISTEN", self.addr.to_string())
            .env("STARLING_RELAY_UDP_LISTEN", "127.0.0.1:0")
            .env("STARLING_TLS_MODE", "plain_http")
            .env("DATABASE_URL", self.db.url())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        command
    }

    /// Starts the server and returns once it accepts connections.
    async fn spawn(&self) -> WatchedChild {
        let mut child = WatchedChild::spawn("starling-server", &mut self.command(), None);
        child
            .wait_for_line(Duration::from_secs(30), "its start", |l| {
                l.contains("listening on")
            })
            .await;
        child
            .wait_for_port(Duration::from_secs(30), self.addr)
            .await;
        child
    }

    /// A single-use invite code from `starling-server admin invite`.
    fn invite(&self) -> String {
        let output = self.command().args(["admin", "invite"]).output().unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    }

    /// Registers `username` with a fresh identity; returns its bearer
    /// credential.
    async fn register(&self, client: &reqwest::Client, username: &str, seed: u64) -> String {
        let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(seed);
        let identity = starling_crypto::IdentityKeyPair::generate(&mut rng);
        let reply = JsonRequest::post("/v1/accounts")
            .json(&json!({
                "username": username,
                "invite_code": self.invite(),
                "identity_key": STANDARD.encode(identity.public().to_bytes()),
            }))
            .send(client, &self.url())
            .await;
        assert!(reply.status.is_success(), "{}", reply.json());
        format!(
            "Bearer {username}:1:{}",
            reply.json()["credential"].as_str().unwrap()
        )
    }
}

/// A loopback address nothing listens on right now.
fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn kill_during_sends(kind: DbKind) {
    let server = Server {
        db: TestDatabase::create(kind).await,
        addr: free_addr(),
    };
    let mut child = server.spawn().await;
    let client = reqwest::Client::new();
    let alice = server.register(&client, "alice", 1).await;
    let bob = server.register(&client, "bob", 2).await;

    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    let mut senders = Vec::new();
    for sender in 0..4u32 {
        let (client, alice, acknowledged) = (client.clone(), alice.clone(), acknowledged.clone());
        let url = format!("{}/v1/messages/bob", server.url());
        senders.push(tokio::spawn(async move {
            for n in 0..100_000u32 {
                let content = format!("{sender}:{n}");
                let body = json!({ "envelopes": [{ "device_id": 1, "content": STANDARD.encode(&content) }] });
                match client.put(&url).header("authorization", &alice).json(&body).send().await {
                    Ok(response) if response.status().is_success() => {
                        acknowledged.lock().unwrap().insert(content);
                    }
                    _ => return,
                }
            }
        }));
    }
    // The kill lands in the middle of the stream: the senders are still
    // going once a few hundred sends are acknowledged.
    wait_until(
        Duration::from_secs(60),
        "200 acknowledged sends",
        || async { acknowledged.lock().unwrap().len() >= 200 },
    )
    .await;
    child.kill(); // SIGKILL
    for sender in senders {
        sender.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 20,
        "the load ran: {} sends acknowledged",
        acknowledged.len()
    );

    // Restart on the same data; Bob reads his whole queue.
    let mut child = server.spawn().await;
    let mut ws = common::Ws::connect(server.addr, &bob).await;
    let mut stored = HashSet::new();
    loop {
        let envelopes = ws.drain_window().await;
        if envelopes.is_empty() {
            break;
        }
        let ids = envelopes.iter().map(|e| e.id.clone()).collect();
        for envelope in envelopes {
            stored.insert(String::from_utf8(envelope.content).unwrap());
        }
        ws.ack(ids).await;
    }
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged envelopes lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    child.kill();
}
both_databases!(kill_9_loses_no_acknowledged_envelope, kill_during_sends);
