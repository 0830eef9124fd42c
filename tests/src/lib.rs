//! Harness for the end-to-end tests: starts the real `starling-server`
//! binary (self-signed TLS, SQLite in a temporary folder or a fresh
//! PostgreSQL database) and gives tests clients and the `starling` command.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    unreachable_pub
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sqlx::Connection;
use starling_client::{Client, Event, ServerConfig, StoreKey};

mod relay;
pub use relay::TestRelay;

/// Which database the server runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Runs a test body once per database.
#[macro_export]
macro_rules! both_databases {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$body($crate::Db::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$body($crate::Db::Postgres).await;
            }
        }
    };
}

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

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A running server.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub fingerprint: String,
    pub database_url: String,
    pub log_path: PathBuf,
    log_filter: String,
    port: u16,
    child: Child,
    pg_name: Option<String>,
    extra_env: Vec<(String, String)>,
}

impl TestServer {
    /// Starts a server on `db` with open registration.
    pub async fn start(db: Db) -> Self {
        Self::start_with(db, "info").await
    }

    /// Starts a server with a log filter (`RUST_LOG`).
    pub async fn start_with(db: Db, log_filter: &str) -> Self {
        Self::start_with_env(db, log_filter, Vec::new()).await
    }

    /// Starts a server with extra environment variables.
    pub async fn start_with_env(
        db: Db,
        log_filter: &str,
        extra_env: Vec<(String, String)>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (database_url, pg_name) = match db {
            // The server's default: SQLite in its data folder.
            Db::Sqlite => (
                format!("sqlite://{}", dir.path().join("data/starling.db").display()),
                None,
            ),
            Db::Postgres => {
                let admin = std::env::var("STARLING_TEST_POSTGRES")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
                let name = format!(
                    "starling_e2e_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::Relaxed)
                );
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .expect("PostgreSQL must be running");
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let base = admin.rsplit_once('/').unwrap().0;
                (format!("{base}/{name}"), Some(name))
            }
        };
        let port = free_port();
        let log_path = dir.path().join("server.log");
        let child = spawn_server(
            dir.path(),
            &database_url,
            port,
            log_filter,
            &log_path,
            &extra_env,
        );
        let mut server = Self {
            url: format!("https://127.0.0.1:{port}"),
            fingerprint: String::new(),
            database_url,
            log_path,
            log_filter: log_filter.to_owned(),
            port,
            child,
            pg_name,
            dir,
            extra_env,
        };
        server.fingerprint = server.wait_ready().await;
        server
    }

    /// Kills the server (SIGKILL) and starts it again on the same port,
    /// database and data folder.
    pub async fn restart(&mut self) {
        self.stop();
        std::fs::write(&self.log_path, b"").unwrap();
        self.child = spawn_server(
            self.dir.path(),
            &self.database_url,
            self.port,
            &self.log_filter,
            &self.log_path,
            &self.extra_env,
        );
        let fingerprint = self.wait_ready().await;
        assert_eq!(
            fingerprint, self.fingerprint,
            "the certificate survives a restart"
        );
    }

    async fn wait_ready(&mut self) -> String {
        for _ in 0..300 {
            let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
            if let Some(line) = log.lines().find(|l| l.contains("fingerprint:")) {
                let fingerprint = line.rsplit(' ').next().unwrap().trim().to_owned();
                if log.contains("listening on") {
                    return fingerprint;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("server exited with {status}: {log}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server did not start");
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
        let output = server_command(self.dir.path(), &self.database_url)
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
        let output = server_command(self.dir.path(), &self.database_url)
            .arg("admin")
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// The server's data folder.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Registers a library client in a fresh home.
    pub async fn client(&self, username: &str) -> TestClient {
        let home = tempfile::tempdir().unwrap();
        let key = test_key(username);
        let client = Client::register(home.path(), &key, &self.config(), username, None)
            .await
            .unwrap();
        TestClient { client, home, key }
    }

    /// Stops the server (SIGKILL) — used before scanning its files.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_server(
    dir: &Path,
    database_url: &str,
    port: u16,
    log_filter: &str,
    log_path: &Path,
    extra_env: &[(String, String)],
) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .unwrap();
    server_command(dir, database_url)
        .env("STARLING_LISTEN", format!("127.0.0.1:{port}"))
        .env("STARLING_OPEN_REGISTRATION", "true")
        .env("RUST_LOG", log_filter)
        .envs(extra_env.iter().map(|(k, v)| (k, v)))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn server_command(dir: &Path, database_url: &str) -> Command {
    let mut command = Command::new(workspace_binary("starling-server"));
    command
        .env("STARLING_DATA_DIR", dir.join("data"))
        .env_remove("STARLING_TLS_MODE")
        .stdin(Stdio::null());
    if database_url.starts_with("postgres") {
        command.env("DATABASE_URL", database_url);
    } else {
        command.env_remove("DATABASE_URL");
    }
    command
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(name) = self.pg_name.take() {
            let admin = std::env::var("STARLING_TEST_POSTGRES")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
            // Best effort, on a fresh thread with its own runtime.
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
    pub client: Client,
    pub home: tempfile::TempDir,
    pub key: StoreKey,
}

impl TestClient {
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
