//! Persistence: SQLite (the embedded default) or PostgreSQL, behind one
//! `Store`. Every query is written once, in SQL both databases accept
//! (`$N` placeholders, `RETURNING`, `ON CONFLICT`), and runs on whichever
//! pool is configured; the few statements that must differ say so.
//!
//! Every operation is a single statement or a transaction, so several
//! server processes may share one PostgreSQL database.

mod access;
mod accounts;
mod admin;
mod attachments;
mod batch;
mod directory;
mod envelopes;
mod keys;
mod links;
mod push;
mod queue_usage;
mod sends;
mod sqlite_batch;
mod transparency;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use access::AccessRecord;
pub use accounts::{DeviceRecord, NewDevice, RegisterError, Removal, Revocation};
pub use admin::AccountRemoval;
pub use attachments::{AttachmentRecord, NewAttachment, QuotaOutcome};
pub use batch::{
    BatchOp, BatchOutcome, Batcher, Commit, MAX_BATCH, MAX_IN_FLIGHT_PER_DEVICE, QUEUE_CAPACITY,
    SendSlot, Submitter, WriteError,
};
pub use directory::DirectoryEntry;
pub use envelopes::{
    ACCEPTED_TIME_GRANULARITY_MS, EnvelopeAudit, NewEnvelope, QueueStats, accepted_hour,
};
pub use keys::{ClaimedKeys, PrekeyCounts, UploadedKeys};
pub use links::LinkError;
pub use queue_usage::QueueCaps;
pub use sends::{Destination, SendOp, SendRefusal, StaleLists};
pub(crate) use transparency::MARK_CHANGED;
pub use transparency::{
    KtFence, KtRow, KtValue, KtValueAt, KtWriteError, LoggedAccount, PublisherLock,
};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The migration that coarsened envelope times at rest.
const COARSE_TIMES_MIGRATION: i64 = 10;

/// The newest migration applied to a SQLite database, or `None` for a new
/// database (nothing to rebuild).
async fn sqlite_schema_version(pool: &sqlx::SqlitePool) -> Option<i64> {
    sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .ok()
        .flatten()
}

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default.
    Sqlite,
    /// The production store.
    Postgres,
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever pool the store has; the
/// body is compiled once per database.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($pool) => $body,
            $crate::store::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// The server's database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    /// The SQLite database file, which the group-commit writer opens for
    /// itself (`sqlite_batch`); `None` on PostgreSQL.
    sqlite_file: Option<Arc<PathBuf>>,
}

impl Store {
    /// Opens the database: `database_url` if given (PostgreSQL), else
    /// `starling.db` in `data_dir` (created if missing). SQLite runs in WAL
    /// mode with `synchronous = FULL`: a committed envelope survives a crash.
    pub async fn open(database_url: Option<&str>, data_dir: &Path) -> Result<Self, sqlx::Error> {
        let options = match database_url {
            Some(url) if url.starts_with("postgres") => {
                let pool = PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await?;
                return Ok(Self {
                    pool: Pool::Postgres(pool),
                    sqlite_file: None,
                });
            }
            Some(url) if url.contains(":memory:") || url.contains("mode=memory") => {
                return Err(sqlx::Error::Configuration(
                    "an in-memory SQLite database would lose every envelope; name a file".into(),
                ));
            }
            Some(url) => SqliteConnectOptions::from_str(url)?,
            None => {
                std::fs::create_dir_all(data_dir).map_err(sqlx::Error::Io)?;
                SqliteConnectOptions::new().filename(data_dir.join("starling.db"))
            }
        };
        let sqlite_file = Some(Arc::new(options.get_filename().to_path_buf()));
        Ok(Self {
            pool: Pool::Sqlite(sqlite_pool(options).await?),
            sqlite_file,
        })
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// The statement that opens a transaction which writes. On SQLite it
    /// takes the write lock at once (`BEGIN IMMEDIATE`, waiting its turn
    /// for the busy timeout): a deferred transaction that reads first
    /// cannot take the lock once another writer has committed since its
    /// read, and would fail with "database is locked" under concurrent
    /// registrations or links.
    pub(crate) fn begin_write(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "BEGIN IMMEDIATE",
            Pool::Postgres(_) => "BEGIN",
        }
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match &self.pool {
            Pool::Sqlite(pool) => {
                let before = sqlite_schema_version(pool).await;
                SQLITE_MIGRATIONS.run(pool).await?;
                if before.is_some_and(|v| v < COARSE_TIMES_MIGRATION) {
                    // Migration 0010 rewrote every envelope time to the
                    // hour; the old fine times stay in free pages until
                    // the file is rebuilt, once.
                    sqlx::query("VACUUM").execute(pool).await?;
                }
                Ok(())
            }
            Pool::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
        }
    }

    /// On SQLite, copies the write-ahead log into the database and empties
    /// it, so that deleted envelopes do not linger in old log frames; does
    /// nothing on PostgreSQL. Returns whether the log was emptied (a busy
    /// reader can keep it, and the next sweep tries again).
    pub async fn truncate_log(&self) -> Result<bool, sqlx::Error> {
        use sqlx::Row;
        match &self.pool {
            Pool::Sqlite(pool) => {
                let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .fetch_one(pool)
                    .await?;
                let busy: i64 = row.try_get(0)?;
                Ok(busy == 0)
            }
            Pool::Postgres(_) => Ok(true),
        }
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))
    }

    /// Closes every connection.
    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await)
    }

    /// The columns of every table, as the database reports them (for the
    /// audit): `(table, column)` pairs, sorted.
    pub async fn schema_columns(&self) -> Result<Vec<(String, String)>, sqlx::Error> {
        use sqlx::Row;
        let mut columns: Vec<(String, String)> = match &self.pool {
            Pool::Sqlite(pool) => {
                sqlx::query(
                    "SELECT m.name AS table_name, p.name AS column_name \
                     FROM sqlite_master m JOIN pragma_table_info(m.name) p \
                     WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx_%'",
                )
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| Ok((row.try_get("table_name")?, row.try_get("column_name")?)))
                .collect::<Result<_, sqlx::Error>>()?
            }
            Pool::Postgres(pool) => {
                sqlx::query(
                    "SELECT table_name::text AS table_name, column_name::text AS column_name \
                     FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name NOT LIKE '\\_sqlx\\_%'",
                )
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| Ok((row.try_get("table_name")?, row.try_get("column_name")?)))
                .collect::<Result<_, sqlx::Error>>()?
            }
        };
        columns.sort();
        Ok(columns)
    }
}

async fn sqlite_pool(options: SqliteConnectOptions) -> Result<SqlitePool, sqlx::Error> {
    let options = options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        // Deleted rows (acknowledged envelopes above all) are overwritten,
        // not left readable in free pages.
        .pragma("secure_delete", "ON")
        .busy_timeout(Duration::from_secs(10));
    SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_in_memory_sqlite_database_is_refused() {
        for url in ["sqlite::memory:", "sqlite://starling?mode=memory"] {
            let opened = Store::open(Some(url), Path::new("unused")).await;
            assert!(
                matches!(opened, Err(sqlx::Error::Configuration(_))),
                "{url}: {opened:?}"
            );
        }
    }
}
