//! The local store: one SQLCipher database per home, opened with a 256-bit
//! key that is derived from the passphrase with Argon2id (or supplied by the
//! embedding app). The salt is the only file beside it and is not secret.
//!
//! Submodules hold the queries of one concept each; nothing here talks to
//! the network.

mod account;
mod directory;
mod groups;
mod held;
mod messages;
mod sealed;
mod sessions;
mod transparency;
pub(crate) mod trust;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use sqlx::ConnectOptions;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use zeroize::Zeroizing;

pub use account::AccountRecord;
pub use messages::HistoryEntry;
pub use starling_client_core::records::{GroupRecord, InboxItem, MemberChange, NewMessage};
pub use trust::{ContactRecord, TrustChange};

use crate::error::{ClientError, Result};

/// File name of the database inside a home.
pub const DATABASE_FILE: &str = "store.db";
/// File name of the Argon2id salt inside a home.
pub const SALT_FILE: &str = "store.salt";

/// Argon2id cost: 64 MiB, 3 passes, 1 lane (above OWASP's minimum).
const ARGON2_MEMORY_KIB: u32 = 64 * 1024;
const ARGON2_PASSES: u32 = 3;

/// The key that opens a store. Wiped on drop, never printed.
pub struct StoreKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreKey(..)")
    }
}

impl StoreKey {
    /// A key the embedding app manages itself (e.g. from the OS keyring).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The key's bytes, to hand to a key agent of the same user. Never
    /// print or log them.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Derives the key of the home at `home` from a passphrase, creating the
    /// salt on first use.
    pub fn derive(home: &Path, passphrase: &str) -> Result<Self> {
        let salt = read_or_create_salt(home)?;
        let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, 1, Some(32))?;
        let mut key = Zeroizing::new([0u8; 32]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params).hash_password_into(
            passphrase.as_bytes(),
            &salt,
            &mut *key,
        )?;
        Ok(Self(key))
    }

    fn pragma_value(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("\"x'{}'\"", hex::encode(*self.0)))
    }
}

/// The salt of `home`, made on first use. Two passes at most: a salt
/// another process wrote first is read on the second.
fn read_or_create_salt(home: &Path) -> Result<Vec<u8>> {
    let path = home.join(SALT_FILE);
    for _ in 0..2 {
        match std::fs::read(&path) {
            Ok(salt) if salt.len() == 16 => return Ok(salt),
            Ok(_) => return Err(ClientError::DamagedSalt(path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(home)?;
                let mut salt = vec![0u8; 16];
                rand::rngs::OsRng.fill_bytes(&mut salt);
                match write_salt(&path, &salt) {
                    Ok(()) => return Ok(salt),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Neither readable nor writable: a link to nowhere, say.
    Err(ClientError::DamagedSalt(path))
}

/// Writes a new salt file all at once and durably: under a temporary
/// name of this process's own, synced, then linked into place (which
/// fails if one exists), and the folder synced. The store is created only
/// after this, so no crash or power cut can leave a store whose salt is
/// lost or short, and of two processes creating a home at once one wins.
fn write_salt(path: &Path, salt: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut tag = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut tag);
    let partial = path.with_extension(format!("salt.{}.partial", hex::encode(tag)));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial)
        .and_then(|mut file| {
            file.write_all(salt)?;
            file.sync_all()
        });
    let linked = written.and_then(|()| std::fs::hard_link(&partial, path));
    let _ = std::fs::remove_file(&partial);
    linked?;
    #[cfg(unix)]
    if let Some(folder) = path.parent() {
        std::fs::File::open(folder)?.sync_all()?;
    }
    Ok(())
}

/// [`ClientError::WrongPassphrase`] for SQLCipher's answer to a wrong
/// key, the error itself otherwise.
fn wrong_key(error: sqlx::Error) -> ClientError {
    match error {
        sqlx::Error::Database(ref d) if d.message().contains("not a database") => {
            ClientError::WrongPassphrase
        }
        other => ClientError::Store(other),
    }
}

/// File whose exclusive lock marks a home as in use.
pub const LOCK_FILE: &str = "starling.lock";

/// An open store. It holds the home's lock for as long as any clone lives:
/// two processes working on one home would hand out the same prekeys and
/// overwrite each other's sessions.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    home: PathBuf,
    _lock: Arc<std::fs::File>,
}

impl Store {
    /// Opens (creating if needed) the store of `home` with `key`. Fails with
    /// [`ClientError::HomeInUse`] while another store of the home is open.
    pub async fn open(home: &Path, key: &StoreKey) -> Result<Self> {
        std::fs::create_dir_all(home)?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(home.join(LOCK_FILE))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(ClientError::HomeInUse),
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
        let path = home.join(DATABASE_FILE);
        let url = format!("sqlite://{}", path.display());
        // `key` must be the first statement on every connection; sqlx keeps
        // it first. Statement logging is off so the key never reaches a log.
        let options = SqliteConnectOptions::from_str(&url)?
            .pragma("key", key.pragma_value().to_string())
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .log_statements(tracing::log::LevelFilter::Off)
            .log_slow_statements(
                tracing::log::LevelFilter::Off,
                std::time::Duration::from_secs(3600),
            );
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(wrong_key)?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| match e {
                sqlx::migrate::MigrateError::Execute(sqlx::Error::Database(d))
                    if d.message().contains("not a database") =>
                {
                    ClientError::WrongPassphrase
                }
                other => ClientError::Store(other.into()),
            })?;
        Ok(Self {
            pool,
            home: home.to_path_buf(),
            _lock: Arc::new(lock),
        })
    }

    /// Whether `key` opens the existing store of `home`, checked without
    /// the home's lock, so also while another process has the store open:
    /// one read-only connection reads the schema, and nothing is written.
    pub async fn check_key(home: &Path, key: &StoreKey) -> Result<()> {
        let options = SqliteConnectOptions::new()
            .filename(home.join(DATABASE_FILE))
            .pragma("key", key.pragma_value().to_string())
            .read_only(true)
            .log_statements(tracing::log::LevelFilter::Off)
            .log_slow_statements(
                tracing::log::LevelFilter::Off,
                std::time::Duration::from_secs(3600),
            );
        let mut connection = options.connect().await.map_err(wrong_key)?;
        // A store being created has no migrations yet, and any key "opens"
        // an empty file: only a migrated store proves the key.
        let read = sqlx::query("SELECT count(*) FROM _sqlx_migrations")
            .execute(&mut connection)
            .await
            .map_err(wrong_key);
        let _ = sqlx::Connection::close(connection).await;
        read.map(drop)
    }

    /// The home folder.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Folder of encrypted attachment blobs.
    pub fn attachments_dir(&self) -> PathBuf {
        self.home.join("attachments")
    }

    /// Deletes an encrypted attachment file of the home (best effort).
    pub async fn remove_attachment_file(&self, name: &str) {
        if name.contains(['/', '\\']) || name.starts_with('.') {
            return;
        }
        let _ = tokio::fs::remove_file(self.attachments_dir().join(name)).await;
    }

    /// Deletes expired messages and their attachment files; returns how
    /// many files went.
    pub async fn delete_expired_files(&self, now: i64) -> Result<usize> {
        let files = self.delete_expired(now).await?;
        for file in &files {
            self.remove_attachment_file(file).await;
        }
        Ok(files.len())
    }

    /// Closes the pool, checkpointing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_salt_is_written_once_whole_and_never_replaced() {
        let home = tempfile::tempdir().unwrap();
        let first = StoreKey::derive(home.path(), "pass").unwrap();
        assert_eq!(
            std::fs::read(home.path().join(SALT_FILE)).unwrap().len(),
            16
        );
        // Only the salt: the temporary file is gone.
        assert_eq!(std::fs::read_dir(home.path()).unwrap().count(), 1);
        let again = StoreKey::derive(home.path(), "pass").unwrap();
        assert_eq!(first.as_bytes(), again.as_bytes());
        let existing = home.path().join(SALT_FILE);
        assert!(write_salt(&existing, &[2; 16]).is_err(), "never replaced");
        // A salt that is a link to nowhere is reported, not retried forever.
        #[cfg(unix)]
        {
            let other = tempfile::tempdir().unwrap();
            let salt = other.path().join(SALT_FILE);
            std::os::unix::fs::symlink(other.path().join("nowhere"), &salt).unwrap();
            assert!(matches!(
                StoreKey::derive(other.path(), "pass"),
                Err(ClientError::DamagedSalt(_))
            ));
        }
    }

    #[tokio::test]
    async fn a_key_is_checked_while_the_store_is_open_elsewhere() {
        let home = tempfile::tempdir().unwrap();
        let key = StoreKey::from_bytes([7; 32]);
        let store = Store::open(home.path(), &key).await.unwrap();
        Store::check_key(home.path(), &key).await.unwrap();
        // An empty store file (one being created) proves no key.
        let empty = tempfile::tempdir().unwrap();
        std::fs::write(empty.path().join(DATABASE_FILE), b"").unwrap();
        assert!(Store::check_key(empty.path(), &key).await.is_err());
        let wrong = StoreKey::from_bytes([8; 32]);
        assert!(matches!(
            Store::check_key(home.path(), &wrong).await,
            Err(ClientError::WrongPassphrase)
        ));
        // The store stays usable.
        sqlx::query("INSERT INTO warnings (username, text, created_at) VALUES ('m', 't', 0)")
            .execute(&store.pool)
            .await
            .unwrap();
        store.close().await;
    }

    #[tokio::test]
    async fn wrong_key_is_refused_and_file_is_not_plaintext() {
        let home = tempfile::tempdir().unwrap();
        let key = StoreKey::from_bytes([7; 32]);
        let store = Store::open(home.path(), &key).await.unwrap();
        sqlx::query("INSERT INTO warnings (username, text, created_at) VALUES ('m', 'plaintext-marker-123', 0)")
            .execute(&store.pool)
            .await
            .unwrap();
        // The home stays locked while the store lives.
        assert!(matches!(
            Store::open(home.path(), &key).await,
            Err(ClientError::HomeInUse)
        ));
        store.close().await;
        drop(store);
        let bytes = std::fs::read(home.path().join(DATABASE_FILE)).unwrap();
        assert!(!bytes.starts_with(b"SQLite format 3"));
        assert!(!bytes.windows(20).any(|w| w == b"plaintext-marker-123"));
        let wrong = StoreKey::from_bytes([8; 32]);
        assert!(matches!(
            Store::open(home.path(), &wrong).await,
            Err(ClientError::WrongPassphrase)
        ));
        let again = Store::open(home.path(), &key).await.unwrap();
        let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM warnings")
            .fetch_one(&again.pool)
            .await
            .unwrap();
        assert_eq!(count, 1);
    }

    #[test]
    fn passphrase_derivation_is_stable_per_home() {
        let home = tempfile::tempdir().unwrap();
        let a = StoreKey::derive(home.path(), "correct horse").unwrap();
        let b = StoreKey::derive(home.path(), "correct horse").unwrap();
        let c = StoreKey::derive(home.path(), "wrong horse").unwrap();
        assert_eq!(*a.0, *b.0);
        assert_ne!(*a.0, *c.0);
        assert_eq!(format!("{a:?}"), "StoreKey(..)");
    }
}
