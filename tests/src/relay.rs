//! The media relay for call tests: a real `starling-relay` on loopback,
//! configured with the test server's call-token key, and a server whose
//! `STARLING_RELAY_URL` points at it.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{Db, TestServer, free_port, workspace_binary};

/// A running relay.
pub struct TestRelay {
    /// Its HTTP base URL (join, leave, `/metrics`).
    pub url: String,
    child: Child,
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TestRelay {
    /// Starts a server on `db` and a relay it sends callers to.
    pub async fn start(db: Db) -> (TestServer, Self) {
        let http_port = free_port();
        let url = format!("http://127.0.0.1:{http_port}");
        let server = TestServer::start_with_env(
            db,
            "info",
            vec![("STARLING_RELAY_URL".to_owned(), url.clone())],
        )
        .await;
        let key = token_key(&server).await;
        let udp_port = free_udp_port();
        let child = Command::new(workspace_binary("starling-relay"))
            .args(["--token-key", &key])
            .args(["--public-addr", &format!("127.0.0.1:{udp_port}")])
            .args(["--udp-listen", &format!("127.0.0.1:{udp_port}")])
            .args(["--tcp-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--http-listen", &format!("127.0.0.1:{http_port}")])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let mut relay = Self { url, child };
        relay.wait_ready().await;
        (server, relay)
    }

    async fn wait_ready(&mut self) {
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(response) = http.get(format!("{}/health", self.url)).send().await
                && response.status().is_success()
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("relay exited with {status}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("relay did not start");
    }

    /// The relay's Prometheus metrics.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// The server's call-token public key, as the relay is configured with it.
async fn token_key(server: &TestServer) -> String {
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let body: serde_json::Value = http
        .get(format!("{}/v1/calls/token-key", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["public_key"].as_str().unwrap().to_owned()
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
