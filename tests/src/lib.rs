//! Harness for the end-to-end tests: starts the real `starling-server`
//! binary (self-signed TLS, SQLite in a temporary folder or a fresh
//! PostgreSQL database, both from `starling-test-support`) and gives tests
//! clients and the `starling` command.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use starling_client::{Client, Event, ServerConfig, StoreKey};
pub use starling_test_support::DbKind;
use starling_test_support::{TestDatabase, WatchedChild, metrics};

pub mod cli;
mod malicious;
mod relay;
pub use malicious::{MaliciousServer, Tamper};
pub use relay::{TestRelay, wait_for_participants};

/// How long a server or relay may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A binary of the workspace, next to this test's executable.
pub fn workspace_binary(name: &str) -> PathBuf {
    // Tests run from target/<profile>/deps, tools from target/<profile>.
    let exe = std::env::current_exe().unwrap();
    let mut dir = exe.parent().unwrap();
    if dir.ends_with("deps") {
        dir = dir.parent().unwrap();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built (run the tests with `cargo nextest run --workspace`)",
        path.display()
    );
    path
}

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `starling-server`: self-signed TLS on a loopback port, its
/// data folder and log in a temporary folder, and its database.
pub struct TestServer {
    /// The server's database (on SQLite, the file in its data folder) and
    /// the temporary folder holding everything the server writes.
    pub db: TestDatabase,
    /// Its base URL, `https://127.0.0.1:PORT`.
    pub url: String,
    /// Its certificate's SHA-256 fingerprint, as clients pin it.
    pub fingerprint: String,
    /// Where its stdout and stderr go.
    pub log_path: PathBuf,
    log_filter: String,
    port: u16,
    child: WatchedChild,
    extra_env: Vec<(String, String)>,
}

impl TestServer {
    /// Starts a server on `db` with open registration.
    pub async fn start(db: DbKind) -> Self {
        Self::start_with(db, "info").await
    }

    /// Starts a server with a log filter (`RUST_LOG`).
    pub async fn start_with(db: DbKind, log_filter: &str) -> Self {
        Self::start_with_env(db, log_filter, Vec::new()).await
    }

    /// Starts a server with extra environment variables.
    pub async fn start_with_env(
        db: DbKind,
        log_filter: &str,
        extra_env: Vec<(String, String)>,
    ) -> Self {
        // On SQLite, the server's default: a file in its data folder.
        let db = TestDatabase::create_with_sqlite_file(db, "data/starling.db").await;
        let port = free_port();
        let log_path = db.dir().join("server.log");
        let mut child = spawn_server(&db, port, log_filter, &log_path, &extra_env);
        let fingerprint = wait_ready(&mut child, port).await;
        Self {
            url: format!("https://127.0.0.1:{port}"),
            fingerprint,
            log_path,
            log_filter: log_filter.to_owned(),
            port,
            child,
            db,
            extra_env,
        }
    }

    /// Kills the server (SIGKILL) and starts it again on the same port,
    /// database and data folder.
    pub async fn restart(&mut self) {
        self.stop();
        std::fs::write(&self.log_path, b"").unwrap();
        self.child = spawn_server(
            &self.db,
            self.port,
            &self.log_filter,
            &self.log_path,
            &self.extra_env,
        );
        let fingerprint = wait_ready(&mut self.child, self.port).await;
        assert_eq!(
            fingerprint, self.fingerprint,
            "the certificate survives a restart"
        );
    }

    /// The server's database URL (`sqlite://…` or `postgres://…`).
    pub fn database_url(&self) -> &str {
        self.db.url()
    }

    /// The temporary folder holding all the server writes.
    pub fn dir(&self) -> &Path {
        self.db.dir()
    }

    /// The configuration clients use.
    pub fn config(&self) -> ServerConfig {
        ServerConfig {
            url: self.url.clone(),
            ca_fingerprint: Some(self.fingerprint.clone()),
        }
    }

    /// A single-use invite code from `starling-server admin invite`.
    pub fn invite(&self) -> String {
        let output = server_command(&self.db)
            .args(["admin", "invite"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    /// Runs `starling-server admin ARGS` against this server's database.
    pub fn admin(&self, args: &[&str]) -> String {
        let mut full = vec!["admin"];
        full.extend_from_slice(args);
        self.server_command(&full)
    }

    /// Runs `starling-server admin ARGS` against this server's database,
    /// whatever its outcome.
    pub fn admin_output(&self, args: &[&str]) -> std::process::Output {
        server_command(&self.db)
            .arg("admin")
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs `starling-server ARGS` against this server's database; it must
    /// succeed.
    pub fn server_command(&self, args: &[&str]) -> String {
        let output = server_command(&self.db).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// The server's data folder.
    pub fn data_dir(&self) -> PathBuf {
        self.dir().join("data")
    }

    /// The server's Prometheus metrics (`/metrics`).
    pub async fn metrics(&self) -> String {
        metrics::scrape(&format!("{}/metrics", self.url))
            .await
            .unwrap()
    }

    /// Registers a library client in a fresh home.
    pub async fn client(&self, username: &str) -> TestClient {
        let home = tempfile::tempdir().unwrap();
        let key = test_key(username);
        let client = Client::register(home.path(), &key, &self.config(), username, None)
            .await
            .unwrap();
        TestClient::new(client, home, key)
    }

    /// Stops the server (SIGKILL) — used before scanning its files; all
    /// it printed is in its log when this returns.
    pub fn stop(&mut self) {
        self.child.kill();
    }
}

/// Starts the server binary on `db`, listening on `port`, its output
/// appended to `log_path`.
fn spawn_server(
    db: &TestDatabase,
    port: u16,
    log_filter: &str,
    log_path: &Path,
    extra_env: &[(String, String)],
) -> WatchedChild {
    let mut command = server_command(db);
    command
        .env("STARLING_LISTEN", format!("127.0.0.1:{port}"))
        // Tests run side by side: each relay takes a free media port.
        .env("STARLING_RELAY_UDP_LISTEN", "127.0.0.1:0")
        .env("STARLING_OPEN_REGISTRATION", "true")
        .env("STARLING_METRICS_TOKEN", metrics::TEST_TOKEN)
        .env("RUST_LOG", log_filter)
        .envs(extra_env.iter().map(|(k, v)| (k, v)));
    WatchedChild::spawn("starling-server", &mut command, Some(log_path))
}

/// Waits until the server printed its certificate's fingerprint and
/// accepts connections; returns the fingerprint.
async fn wait_ready(child: &mut WatchedChild, port: u16) -> String {
    let line = child
        .wait_for_line(START_TIMEOUT, "its certificate fingerprint", |l| {
            l.contains("fingerprint:")
        })
        .await;
    // The line is printed just before the server binds its port.
    child
        .wait_for_port(START_TIMEOUT, ([127, 0, 0, 1], port).into())
        .await;
    line.rsplit(' ').next().unwrap().trim().to_owned()
}

/// `starling-server` with its data folder and database set.
fn server_command(db: &TestDatabase) -> Command {
    let mut command = Command::new(workspace_binary("starling-server"));
    command
        .env("STARLING_DATA_DIR", db.dir().join("data"))
        .env_remove("STARLING_TLS_MODE")
        .stdin(Stdio::null());
    match db.kind() {
        DbKind::Postgres => command.env("DATABASE_URL", db.url()),
        DbKind::Sqlite => command.env_remove("DATABASE_URL"),
    };
    command
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // The server goes before its database does (the field's drop).
        self.stop();
    }
}

/// A deterministic store key per user (tests skip Argon2id; the CLI test
/// covers passphrases).
pub fn test_key(username: &str) -> StoreKey {
    let mut key = [0u8; 32];
    for (i, b) in username.bytes().enumerate() {
        key[i % 32] ^= b;
    }
    key[31] ^= 0x5a;
    StoreKey::from_bytes(key)
}

/// A library client with its home.
pub struct TestClient {
    /// First, so that it closes the store before the rest is dropped.
    _closer: StoreCloser,
    pub client: Client,
    pub home: tempfile::TempDir,
    pub key: StoreKey,
}

/// Closes a client's store when dropped, while the runtime still runs. A
/// SQLCipher connection left to close on its own thread can still be
/// closing when the test process exits, racing OpenSSL's exit-time
/// cleanup (the process then aborts with a double free after every test
/// passed). Closing an already closed store does nothing.
pub struct StoreCloser(starling_client::store::Store);

impl Drop for StoreCloser {
    fn drop(&mut self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return;
        }
        let store = self.0.clone();
        tokio::task::block_in_place(|| handle.block_on(store.close()));
    }
}

impl TestClient {
    /// Closes the client and gives back its home, to open it again.
    pub async fn close_into_home(self) -> (tempfile::TempDir, StoreKey) {
        let Self {
            _closer,
            client,
            home,
            key,
        } = self;
        client.close().await;
        drop(_closer);
        (home, key)
    }

    /// A client in its home, closed cleanly when dropped.
    pub fn new(client: Client, home: tempfile::TempDir, key: StoreKey) -> Self {
        Self {
            _closer: StoreCloser(client.store().clone()),
            client,
            home,
            key,
        }
    }

    /// Receives until at least `count` messages arrived or 10 s passed.
    pub async fn messages(&mut self, count: usize) -> Vec<starling_client::store::HistoryEntry> {
        let events = self
            .events_until(|events| message_count(events) >= count)
            .await;
        events
            .into_iter()
            .filter_map(|e| match e {
                Event::Message(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    /// Receives until `done` holds for what arrived, or 10 s passed.
    pub async fn events_until(&mut self, done: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        let mut all = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline {
            let events = self
                .client
                .receive(Some(Duration::from_millis(500)))
                .await
                .unwrap();
            all.extend(events);
            if done(&all) {
                break;
            }
        }
        all
    }

    /// Receives whatever is queued now.
    pub async fn drain(&mut self) -> Vec<Event> {
        self.client.receive(None).await.unwrap()
    }
}

/// How many of `events` are messages.
pub fn message_count(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::Message(_)))
        .count()
}

/// Texts of the message events, in order.
pub fn texts(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.body.clone()),
            _ => None,
        })
        .collect()
}

/// Writes `size` random bytes to `path` (1 MiB at a time) and returns
/// their SHA-256.
pub fn write_random_file(path: &Path, size: usize) -> [u8; 32] {
    use rand::RngCore;
    use sha2::Digest;
    use std::io::Write;
    let mut digest = sha2::Sha256::new();
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut chunk = vec![0u8; 1024 * 1024];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len());
        rand::rngs::OsRng.fill_bytes(&mut chunk[..n]);
        digest.update(&chunk[..n]);
        file.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    file.flush().unwrap();
    digest.finalize().into()
}
