//! A `kill -9` of the real server binary in the middle of a stream of
//! sends loses no envelope whose send was acknowledged, on SQLite and on
//! PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Kind, TestDb};
use serde_json::{Value, json};

struct Server {
    db: TestDb,
    port: u16,
}

impl Server {
    fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_starling-server"));
        command
            .env("STARLING_DATA_DIR", self.db.dir.path())
            .env("STARLING_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("STARLING_TLS_MODE", "plain_http")
            .env("DATABASE_URL", &self.db.url)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        command
    }

    async fn spawn(&self) -> Child {
        let mut child = self
            .command()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{}/healthz", self.port);
        for _ in 0..200 {
            if reqwest::get(&url)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return child;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        panic!("server did not start");
    }

    fn invite(&self) -> String {
        let output = self.command().args(["admin", "invite"]).output().unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    }

    async fn register(&self, client: &reqwest::Client, username: &str, seed: u64) -> String {
        let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(seed);
        let identity = starling_crypto::IdentityKeyPair::generate(&mut rng);
        let body: Value = client
            .post(format!("http://127.0.0.1:{}/v1/accounts", self.port))
            .json(&json!({
                "username": username,
                "invite_code": self.invite(),
                "identity_key": STANDARD.encode(identity.public().to_bytes()),
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        format!(
            "Bearer {username}:1:{}",
            body["credential"].as_str().unwrap()
        )
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn kill_during_sends(kind: Kind) {
    let server = Server {
        db: TestDb::new(kind).await,
        port: free_port(),
    };
    let mut child = server.spawn().await;
    let client = reqwest::Client::new();
    let alice = server.register(&client, "alice", 1).await;
    let bob = server.register(&client, "bob", 2).await;

    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    let mut senders = Vec::new();
    for sender in 0..4u32 {
        let (client, alice, acknowledged) = (client.clone(), alice.clone(), acknowledged.clone());
        let url = format!("http://127.0.0.1:{}/v1/messages/bob", server.port);
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
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
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
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://127.0.0.1:{}/v1/ws",
            server.port
        ))
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", bob.parse().unwrap());
    let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut ws = common::Ws { socket };
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
    child.kill().unwrap();
    child.wait().unwrap();
}
crate::both_databases!(
    kill_9_loses_no_acknowledged_envelope,
    super::kill_during_sends
);
