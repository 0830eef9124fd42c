//! The media relay for call tests: a real `starling-relay` on loopback,
//! configured with the test server's call-token key, and a server whose
//! `STARLING_RELAY_URL` points at it.

use std::process::{Command, Stdio};
use std::time::Duration;

use starling_test_support::{JsonRequest, Wait, WatchedChild, metrics};

use crate::{DbKind, START_TIMEOUT, TestServer, free_port, workspace_binary};

/// A running relay; killed on drop.
pub struct TestRelay {
    /// Its HTTP base URL (join, leave, `/metrics`).
    pub url: String,
    child: WatchedChild,
}

/// A UDP port nothing is bound to right now.
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TestRelay {
    /// Starts a server on `db` and a relay it sends callers to.
    pub async fn start(db: DbKind) -> (TestServer, Self) {
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
        let mut command = Command::new(workspace_binary("starling-relay"));
        command
            .args(["--token-key", &key])
            .args(["--public-addr", &format!("127.0.0.1:{udp_port}")])
            .args(["--udp-listen", &format!("127.0.0.1:{udp_port}")])
            .args(["--tcp-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--http-listen", &format!("127.0.0.1:{http_port}")])
            .env("RUST_LOG", "warn")
            .env("STARLING_RELAY_METRICS_TOKEN", metrics::TEST_TOKEN)
            .stdin(Stdio::null());
        let mut relay = Self {
            child: WatchedChild::spawn("starling-relay", &mut command, None),
            url,
        };
        relay.wait_ready().await;
        (server, relay)
    }

    /// Waits until the relay answers its health check.
    async fn wait_ready(&mut self) {
        let http = reqwest::Client::new();
        let health = format!("{}/health", self.url);
        let child = &mut self.child;
        Wait::new(START_TIMEOUT, "the relay's health check")
            .for_ok(|| {
                if let Some(status) = child.try_wait() {
                    panic!("the relay exited with {status}: {}", child.output());
                }
                let request = http.get(&health).send();
                async move {
                    match request.await {
                        Ok(response) if response.status().is_success() => Ok(()),
                        Ok(response) => Err(response.status().to_string()),
                        Err(e) => Err(e.to_string()),
                    }
                }
            })
            .await;
    }

    /// The value of one series of the relay's metrics (`None` if absent).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        metrics::value(&self.metrics().await, name)
    }

    /// Waits at most `timeout` until the relay holds `count` participants.
    pub async fn wait_for_participants(&self, timeout: Duration, count: u32) {
        wait_for_participants(&self.url, timeout, count).await;
    }

    /// The relay's Prometheus metrics.
    pub async fn metrics(&self) -> String {
        metrics::scrape(&format!("{}/metrics", self.url))
            .await
            .unwrap()
    }
}

/// Waits at most `timeout` until the relay at `url` holds `count`
/// participants (for tasks that cannot borrow the [`TestRelay`]).
pub async fn wait_for_participants(url: &str, timeout: Duration, count: u32) {
    let metrics_url = format!("{url}/metrics");
    Wait::new(timeout, format!("the relay to hold {count} participants"))
        .for_ok(|| async {
            let text = metrics::scrape(&metrics_url)
                .await
                .map_err(|e| e.to_string())?;
            match metrics::value(&text, "starling_relay_participants") {
                Some(now) if now == f64::from(count) => Ok(()),
                now => Err(format!("it holds {now:?}")),
            }
        })
        .await;
}

/// The server's call-token public key, as the relay is configured with it.
async fn token_key(server: &TestServer) -> String {
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let reply = JsonRequest::get("/v1/calls/token-key")
        .send(&http, &server.url)
        .await;
    reply.json()["public_key"].as_str().unwrap().to_owned()
}
