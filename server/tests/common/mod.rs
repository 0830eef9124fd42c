//! The server's test harness: the app over a fresh database of each kind
//! (from `starling-test-support`), on a loopback port for WebSockets and
//! in process for HTTP, registered users with real identities and
//! prekeys, and a WebSocket client that speaks the frames.
#![allow(dead_code, unreachable_pub)]

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::{SinkExt, StreamExt};
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
pub use starling_test_support::{DbKind, JsonRequest, Reply, TestDatabase};
use tokio_tungstenite::tungstenite;

/// A fresh, migrated store on `db`.
pub async fn open_store(db: &TestDatabase) -> Store {
    let store = Store::open(Some(db.url()), db.dir()).await.unwrap();
    store.migrate().await.unwrap();
    store
}

/// The scraper's token the test servers are configured with.
pub const METRICS_TOKEN: &str = "test-metrics-token";

/// The `Authorization` value that reads a test server's `/metrics`.
pub fn metrics_auth() -> String {
    format!("Bearer {METRICS_TOKEN}")
}

/// The app over a database, plus a loopback listener for WebSockets.
pub struct TestServer {
    pub db: TestDatabase,
    pub state: AppState,
    pub addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// The app with the default configuration on a fresh database.
    pub async fn start(kind: DbKind) -> Self {
        Self::start_with(kind, |_| {}).await
    }

    /// The app with the configuration `adjust` leaves, on a fresh database.
    pub async fn start_with(kind: DbKind, adjust: impl FnOnce(&mut Config)) -> Self {
        let db = TestDatabase::create(kind).await;
        let mut config = Config {
            data_dir: db.dir().to_path_buf(),
            ..Config::default()
        };
        config.metrics.token = Some(starling_server::config::Secret(METRICS_TOKEN.into()));
        // Registrations wait for their epoch: no need to batch them here.
        config.transparency.publish_interval_ms = 10;
        adjust(&mut config);
        let state = AppState::new(open_store(&db).await, config).unwrap();
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

    /// The app's router, as the server serves it.
    pub fn router(&self) -> axum::Router {
        app(self.state.clone())
    }

    /// Sends `request` through the router in process.
    pub async fn send(&self, request: JsonRequest) -> Reply {
        request.oneshot(self.router()).await
    }

    /// One HTTP request through the router, with an optional JSON body;
    /// returns the status and the JSON body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = JsonRequest::new(method, path).auth(auth);
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await.into_pair()
    }

    /// As [`Self::request`], with the body's bytes as they are (labelled
    /// JSON).
    pub async fn request_raw(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (StatusCode, Value) {
        let mut request = JsonRequest::new(method, path).auth(auth);
        if let Some(body) = body {
            request = request.raw_json(body);
        }
        self.send(request).await.into_pair()
    }

    /// A single-use invite code, stored directly.
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
        self.register_answered(username, seed).await.0
    }

    /// [`Self::register`], with the registration's answer.
    pub async fn register_answered(&self, username: &str, seed: u64) -> (TestUser, Value) {
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
        (user, body)
    }

    /// A device's WebSocket to this server, authenticated with `auth`.
    pub async fn ws(&self, auth: &str) -> Ws {
        Ws::connect(self.addr, auth).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A registered user's device: its credential, identity and prekeys.
pub struct TestUser {
    pub username: String,
    pub auth: String,
    pub identity: IdentityKeyPair,
    pub prekeys: PreKeyStore,
    pub rng: ChaCha20Rng,
}

impl TestUser {
    /// Uploads `count` one-time and ML-KEM prekeys (and, the first time,
    /// the signed and last-resort ones); returns the server's counts.
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
            let last_resort = self.prekeys.generate_last_resort_kem_prekey(
                &self.identity,
                1_700_000_000,
                &mut self.rng,
            );
            body["last_resort_kem_prekey"] = json!(STANDARD.encode(last_resort.to_bytes()));
        }
        let (status, counts) = server
            .request("PUT", "/v1/keys", Some(&self.auth), Some(body))
            .await;
        assert_eq!(status, StatusCode::OK, "{counts}");
        counts
    }
}

/// Standard base64, as the JSON API carries bytes.
pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// A device's WebSocket (`/v1/ws`), speaking protobuf frames.
pub struct Ws {
    pub socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Ws {
    /// Connects to the server at `addr` (plain HTTP) as the device `auth`
    /// names.
    pub async fn connect(addr: std::net::SocketAddr, auth: &str) -> Self {
        let mut request = tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{addr}/v1/ws"
        ))
        .unwrap();
        request
            .headers_mut()
            .insert("authorization", auth.parse().unwrap());
        let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        Self { socket }
    }

    /// Opens the anonymous socket for unidentified sends (no credential).
    pub async fn connect_unidentified(addr: std::net::SocketAddr) -> Self {
        let url = format!("ws://{addr}/v1/ws/unidentified");
        let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Self { socket }
    }

    /// The answer to request `request_id`: a `Response` (status, JSON body)
    /// or an `Error` (as status 0 and its code), skipping other frames.
    pub async fn answer(&mut self, request_id: u64) -> (u32, String) {
        loop {
            let frame = self.next_frame().await;
            match frame.body {
                Some(server_frame::Body::Response(r)) if frame.request_id == request_id => {
                    return (r.status, r.body_json);
                }
                Some(server_frame::Body::Error(e)) if frame.request_id == request_id => {
                    return (0, e.code);
                }
                _ => {}
            }
        }
    }

    /// The next frame; panics if none comes within 10 s.
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

    /// The next envelope, skipping other frames.
    pub async fn next_envelope(&mut self) -> frames::Envelope {
        loop {
            if let Some(server_frame::Body::Envelope(e)) = self.next_frame().await.body {
                return e;
            }
        }
    }

    /// Sends one frame.
    pub async fn send_frame(&mut self, frame: frames::ClientFrame) {
        self.socket
            .send(tungstenite::Message::Binary(frame.encode_to_vec().into()))
            .await
            .unwrap();
    }

    /// Acknowledges envelopes and waits for the server's 200.
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
        created_at: starling_server::store::accepted_hour(now_millis()),
        content: index.to_be_bytes().to_vec(),
    }
}

/// Every row `sql` returns from the test's database, whichever it is.
pub async fn rows<T>(db: &TestDatabase, sql: &str) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + Send
        + Unpin,
{
    match db.kind() {
        DbKind::Sqlite => {
            let pool = sqlx::SqlitePool::connect(db.url()).await.unwrap();
            let rows = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows
        }
        DbKind::Postgres => {
            let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
            let rows = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows
        }
    }
}

/// Runs one statement on the test's database, whichever it is (as an
/// operator with database access would).
pub async fn execute(db: &TestDatabase, sql: &str) {
    match db.kind() {
        DbKind::Sqlite => {
            let pool = sqlx::SqlitePool::connect(db.url()).await.unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
        DbKind::Postgres => {
            let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
}

impl TestServer {
    /// Sends `content` from `auth` to `to`'s device 1 over HTTP, which
    /// must be stored.
    pub async fn send_to(&self, auth: &str, to: &str, content: &[u8]) {
        let body = json!({ "envelopes": [{ "device_id": 1, "content": b64(content) }] });
        let (status, body) = self
            .request("PUT", &format!("/v1/messages/{to}"), Some(auth), Some(body))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

/// A write lock on the database, held by a connection of its own, which
/// keeps the group-commit writer from committing until it is released
/// (well within the writer's 10 s wait on SQLite).
pub enum WriterHold {
    Sqlite(rusqlite::Connection),
    Postgres(sqlx::PgConnection),
}

impl WriterHold {
    pub async fn take(server: &TestServer) -> Self {
        match server.db.kind() {
            DbKind::Sqlite => {
                let path = server.db.url().trim_start_matches("sqlite://");
                let connection = rusqlite::Connection::open(path).unwrap();
                connection.execute_batch("BEGIN IMMEDIATE").unwrap();
                Self::Sqlite(connection)
            }
            DbKind::Postgres => {
                let mut connection = sqlx::PgConnection::connect(server.db.url()).await.unwrap();
                sqlx::query("BEGIN").execute(&mut connection).await.unwrap();
                sqlx::query("LOCK TABLE envelopes IN EXCLUSIVE MODE")
                    .execute(&mut connection)
                    .await
                    .unwrap();
                Self::Postgres(connection)
            }
        }
    }

    pub async fn release(self) {
        match self {
            Self::Sqlite(connection) => connection.execute_batch("ROLLBACK").unwrap(),
            Self::Postgres(mut connection) => {
                sqlx::query("ROLLBACK")
                    .execute(&mut connection)
                    .await
                    .unwrap();
            }
        }
    }
}
