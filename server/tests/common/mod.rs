//! Test harness: a fresh database of each kind (a temporary SQLite file, a
//! new PostgreSQL database), the app on a loopback port, and clients for
//! its HTTP and WebSocket APIs.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU32, Ordering};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use prost::Message as _;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::{Value, json};
use sqlx::Connection;
use starling_crypto::{IdentityKeyPair, PreKeyStore};
use starling_server::config::Config;
use starling_server::frames::{self, client_frame, server_frame};
use starling_server::store::{NewEnvelope, Store, now_millis};
use starling_server::{AppState, app};
use tokio_tungstenite::tungstenite;
use tower::ServiceExt;

/// Where PostgreSQL test databases are created.
pub fn postgres_admin_url() -> String {
    std::env::var("STARLING_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A fresh, migrated database, removed on drop (PostgreSQL: dropped by the
/// next test run if this one is killed).
pub struct TestDb {
    pub kind: Kind,
    pub url: String,
    pub dir: tempfile::TempDir,
    pg_name: Option<String>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    pub async fn new(kind: Kind) -> Self {
        let dir = tempfile::tempdir().unwrap();
        match kind {
            Kind::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                Self {
                    kind,
                    url,
                    dir,
                    pg_name: None,
                }
            }
            Kind::Postgres => {
                let name = format!(
                    "starling_t_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::Relaxed)
                );
                let admin = postgres_admin_url();
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .expect("PostgreSQL must be running for the tests (see .ci/test)");
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let base = admin.rsplit_once('/').unwrap().0;
                Self {
                    kind,
                    url: format!("{base}/{name}"),
                    dir,
                    pg_name: Some(name),
                }
            }
        }
    }

    pub async fn store(&self) -> Store {
        let store = Store::open(Some(&self.url), self.dir.path()).await.unwrap();
        store.migrate().await.unwrap();
        store
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            let admin = postgres_admin_url();
            // Best effort, on a separate thread: Drop cannot await.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut conn)
                                .await;
                    }
                });
            })
            .join();
        }
    }
}

/// Runs a test body once per database kind.
#[macro_export]
macro_rules! both_databases {
    ($(#[$meta:meta])* $name:ident, $body:path) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $body($crate::common::Kind::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $body($crate::common::Kind::Postgres).await;
            }
        }
    };
}

/// The app over a database, plus a loopback listener for WebSockets.
pub struct TestServer {
    pub db: TestDb,
    pub state: AppState,
    pub addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn start(kind: Kind) -> Self {
        Self::start_with(kind, |_| {}).await
    }

    pub async fn start_with(kind: Kind, adjust: impl FnOnce(&mut Config)) -> Self {
        let db = TestDb::new(kind).await;
        let mut config = Config {
            data_dir: db.dir.path().to_path_buf(),
            ..Config::default()
        };
        adjust(&mut config);
        let state = AppState::new(db.store().await, config).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = app(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            db,
            state,
            addr,
            task,
        }
    }

    /// One HTTP request through the router; returns status and JSON body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let raw = body.map(|b| b.to_string().into_bytes());
        self.request_raw(method, path, auth, raw).await
    }

    pub async fn request_raw(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap();
        let response = app(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value)
    }

    pub async fn invite(&self) -> String {
        let code = hex::encode(rand_core::RngCore::next_u64(&mut rand_core::OsRng).to_be_bytes());
        let hash = starling_server::auth::hash_secret(&code);
        self.state
            .store
            .create_invites(&[hash], i64::MAX)
            .await
            .unwrap();
        code
    }

    /// Registers a user with a fresh identity and uploads prekeys.
    pub async fn register(&self, username: &str, seed: u64) -> TestUser {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let identity = IdentityKeyPair::generate(&mut rng);
        let invite = self.invite().await;
        let (status, body) = self
            .request(
                "POST",
                "/v1/accounts",
                None,
                Some(json!({
                    "username": username,
                    "invite_code": invite,
                    "identity_key": STANDARD.encode(identity.public().to_bytes()),
                })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let auth = format!(
            "Bearer {username}:{}:{}",
            body["device_id"],
            body["credential"].as_str().unwrap()
        );
        let mut user = TestUser {
            username: username.to_string(),
            auth,
            identity,
            prekeys: PreKeyStore::new(),
            rng,
        };
        user.upload_prekeys(self, 10).await;
        user
    }

    pub async fn ws(&self, auth: &str) -> Ws {
        let mut request = tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{}/v1/ws",
            self.addr
        ))
        .unwrap();
        request
            .headers_mut()
            .insert("authorization", auth.parse().unwrap());
        let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        Ws { socket }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub struct TestUser {
    pub username: String,
    pub auth: String,
    pub identity: IdentityKeyPair,
    pub prekeys: PreKeyStore,
    pub rng: ChaCha20Rng,
}

impl TestUser {
    pub async fn upload_prekeys(&mut self, server: &TestServer, count: usize) -> Value {
        let mut body = json!({
            "one_time_prekeys": self.prekeys.generate_one_time_prekeys(count, &mut self.rng).unwrap()
                .iter().map(|k| STANDARD.encode(k.to_bytes())).collect::<Vec<_>>(),
            "kem_prekeys": self.prekeys.generate_kem_prekeys(&self.identity, count, &mut self.rng).unwrap()
                .iter().map(|k| STANDARD.encode(k.to_bytes())).collect::<Vec<_>>(),
        });
        if self.prekeys.current_signed_prekey().is_none() {
            let signed = self
                .prekeys
                .generate_signed_prekey(&self.identity, 0, &mut self.rng);
            body["signed_prekey"] = json!(STANDARD.encode(signed.to_bytes()));
            let last_resort = self
                .prekeys
                .generate_last_resort_kem_prekey(&self.identity, &mut self.rng);
            body["last_resort_kem_prekey"] = json!(STANDARD.encode(last_resort.to_bytes()));
        }
        let (status, counts) = server
            .request("PUT", "/v1/keys", Some(&self.auth), Some(body))
            .await;
        assert_eq!(status, StatusCode::OK, "{counts}");
        counts
    }
}

pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

pub struct Ws {
    pub socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Ws {
    pub async fn next_frame(&mut self) -> frames::ServerFrame {
        loop {
            let message =
                tokio::time::timeout(std::time::Duration::from_secs(10), self.socket.next())
                    .await
                    .expect("a frame within 10 s")
                    .expect("socket open")
                    .expect("no socket error");
            if let tungstenite::Message::Binary(bytes) = message {
                return frames::ServerFrame::decode(&bytes[..]).unwrap();
            }
        }
    }

    /// Envelopes until the queue-drained marker.
    pub async fn drain(&mut self) -> Vec<frames::Envelope> {
        let mut envelopes = Vec::new();
        loop {
            match self.next_frame().await.body {
                Some(server_frame::Body::Envelope(e)) => envelopes.push(e),
                Some(server_frame::Body::QueueDrained(_)) => return envelopes,
                _ => {}
            }
        }
    }

    /// Envelopes of one delivery window: those sent before the queue-drained
    /// marker on connect, or, later, until no frame arrives for a second.
    pub async fn drain_window(&mut self) -> Vec<frames::Envelope> {
        let mut envelopes = Vec::new();
        loop {
            let next =
                tokio::time::timeout(std::time::Duration::from_secs(1), self.socket.next()).await;
            let Ok(Some(Ok(tungstenite::Message::Binary(bytes)))) = next else {
                return envelopes;
            };
            match frames::ServerFrame::decode(&bytes[..]).unwrap().body {
                Some(server_frame::Body::Envelope(e)) => envelopes.push(e),
                Some(server_frame::Body::QueueDrained(_)) if !envelopes.is_empty() => {
                    return envelopes;
                }
                _ => {}
            }
        }
    }

    pub async fn next_envelope(&mut self) -> frames::Envelope {
        loop {
            if let Some(server_frame::Body::Envelope(e)) = self.next_frame().await.body {
                return e;
            }
        }
    }

    pub async fn send_frame(&mut self, frame: frames::ClientFrame) {
        self.socket
            .send(tungstenite::Message::Binary(frame.encode_to_vec().into()))
            .await
            .unwrap();
    }

    pub async fn ack(&mut self, ids: Vec<Vec<u8>>) {
        self.send_frame(frames::ClientFrame {
            request_id: 99,
            body: Some(client_frame::Body::Ack(frames::Acknowledge {
                envelope_ids: ids,
            })),
        })
        .await;
        loop {
            if let Some(server_frame::Body::Response(r)) = self.next_frame().await.body {
                assert_eq!(r.status, 200);
                return;
            }
        }
    }
}

/// A queued envelope for `account_id`/`device_id`, told apart by `index`
/// (in its id and its content).
pub fn envelope(account_id: i64, device_id: u32, index: u16) -> NewEnvelope {
    let mut envelope_id = [0u8; 16];
    envelope_id[..2].copy_from_slice(&index.to_be_bytes());
    envelope_id[2..6].copy_from_slice(&device_id.to_be_bytes());
    NewEnvelope {
        envelope_id,
        account_id,
        device_id,
        sender: Some("alice".into()),
        sender_device: Some(1),
        created_at: now_millis(),
        expires_at: now_millis() + 60_000,
        content: index.to_be_bytes().to_vec(),
    }
}
