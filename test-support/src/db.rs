//! A fresh database per test, of either kind the server supports.
//!
//! SQLite lives in a temporary folder removed with the [`TestDatabase`].
//! PostgreSQL gets a new database, created on the admin URL
//! ([`postgres_admin_url`]) and dropped (with its connections) when the
//! [`TestDatabase`] is; a test process that is killed leaves its database
//! behind, and the next process with the same id and counter drops it
//! before creating it again.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;

/// The environment variable naming the PostgreSQL admin URL.
pub const POSTGRES_ENV: &str = "STARLING_TEST_POSTGRES";
/// The admin URL used when [`POSTGRES_ENV`] is not set.
pub const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Where PostgreSQL test databases are created: `STARLING_TEST_POSTGRES`,
/// or a local server with trust authentication.
pub fn postgres_admin_url() -> String {
    std::env::var(POSTGRES_ENV).unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned())
}

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DbKind {
    /// A SQLite file in a temporary folder.
    Sqlite,
    /// A fresh database on the PostgreSQL admin URL.
    Postgres,
}

/// Tells this process's databases apart.
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// An empty database (nothing migrated) and a temporary folder that goes
/// with it (the SQLite file's home, and a data folder for whatever else the
/// code under test stores). Both are removed on drop.
#[derive(Debug)]
pub struct TestDatabase {
    kind: DbKind,
    url: String,
    dir: tempfile::TempDir,
    postgres_name: Option<String>,
}

impl TestDatabase {
    /// A fresh database of `kind`; SQLite's file is `test.db` in the
    /// temporary folder.
    pub async fn create(kind: DbKind) -> Self {
        Self::create_with_sqlite_file(kind, "test.db").await
    }

    /// A fresh database of `kind`; SQLite's file is `sqlite_file`, relative
    /// to the temporary folder (its parent folders are left for the code
    /// under test to create). PostgreSQL ignores `sqlite_file`.
    pub async fn create_with_sqlite_file(kind: DbKind, sqlite_file: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder for the test database");
        match kind {
            DbKind::Sqlite => Self {
                kind,
                url: format!("sqlite://{}", dir.path().join(sqlite_file).display()),
                dir,
                postgres_name: None,
            },
            DbKind::Postgres => {
                let name = format!(
                    "starling_test_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::Relaxed)
                );
                let admin = postgres_admin_url();
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "PostgreSQL must be running for the tests ({POSTGRES_ENV}={admin}): {e}"
                        )
                    });
                for statement in [
                    format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                    format!("CREATE DATABASE {name}"),
                ] {
                    sqlx::query(&statement)
                        .execute(&mut conn)
                        .await
                        .unwrap_or_else(|e| panic!("{statement}: {e}"));
                }
                let _ = conn.close().await;
                let (base, _) = admin
                    .rsplit_once('/')
                    .expect("the admin URL ends in a database name");
                Self {
                    kind,
                    url: format!("{base}/{name}"),
                    dir,
                    postgres_name: Some(name),
                }
            }
        }
    }

    /// Which kind of database this is.
    pub fn kind(&self) -> DbKind {
        self.kind
    }

    /// Its connection URL (`sqlite://…` or `postgres://…`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The temporary folder that goes with it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else {
            return;
        };
        let admin = postgres_admin_url();
        // Best effort, on a thread of its own with its own runtime: drop
        // cannot await, and may run inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}
