//! `starling-server admin backup DIR`: a consistent copy of what a server
//! needs to start again with its accounts and keys: the SQLite database,
//! copied with SQLite's online backup while the server runs and writes,
//! and the key files of the data folder (sender-certificate, call-token,
//! transparency and TLS keys). With PostgreSQL the database is the
//! operator's `pg_dump`; the key files are copied all the same.
//! Attachments (`attachments/`), which expire, are not copied.
//!
//! The copy holds secret keys: the folder and its files are readable by
//! their owner only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

/// The database file's name in a backup (and in the data folder).
pub const DATABASE_FILE: &str = "starling.db";

/// Pages copied per step of the online backup; the server may write
/// between steps.
const PAGES_PER_STEP: std::ffi::c_int = 256;

/// Why a backup failed.
#[derive(Debug, Error)]
pub enum BackupError {
    /// The destination already holds a backup.
    #[error("{0} already holds a database: choose a new folder")]
    NotEmpty(PathBuf),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// SQLite's online backup failed.
    #[error("database backup: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// What a backup wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupReport {
    /// The database copy and its size, if the store is SQLite.
    pub database: Option<(PathBuf, u64)>,
    /// The key and certificate files copied.
    pub files: Vec<PathBuf>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Copies `database` (SQLite, if any) and the key files of `data_dir` into
/// `dest`, created if missing. Blocking: call from a blocking thread.
pub fn backup(
    data_dir: &Path,
    database: Option<&Path>,
    dest: &Path,
) -> Result<BackupReport, BackupError> {
    create_private_dir(dest)?;
    let mut report = BackupReport::default();
    if let Some(database) = database {
        let target = dest.join(DATABASE_FILE);
        if target.exists() {
            return Err(BackupError::NotEmpty(dest.to_path_buf()));
        }
        copy_database(database, &target)?;
        restrict(&target)?;
        let size = std::fs::metadata(&target).map_err(io(&target))?.len();
        report.database = Some((target, size));
    }
    let entries = std::fs::read_dir(data_dir).map_err(io(data_dir))?;
    for entry in entries {
        let entry = entry.map_err(io(data_dir))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry.file_type().map_err(io(&path))?;
        if !kind.is_file() || is_database_file(&name) {
            continue;
        }
        let target = dest.join(&name);
        std::fs::copy(&path, &target).map_err(io(&target))?;
        restrict(&target)?;
        report.files.push(target);
    }
    report.files.sort();
    Ok(report)
}

/// The database and SQLite's files beside it (journal, WAL, shared
/// memory): never copied as files, which would not be consistent.
fn is_database_file(name: &str) -> bool {
    name.starts_with(DATABASE_FILE)
        || name.ends_with("-wal")
        || name.ends_with("-shm")
        || name.ends_with("-journal")
}

/// SQLite's online backup: pages copied in steps from a read transaction,
/// restarted by SQLite if the server writes meanwhile, so that the copy is
/// the database at one instant.
fn copy_database(source: &Path, target: &Path) -> Result<(), BackupError> {
    let source = rusqlite::Connection::open_with_flags(
        source,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    source.busy_timeout(Duration::from_secs(10))?;
    let mut copy = rusqlite::Connection::open(target)?;
    {
        let backup = rusqlite::backup::Backup::new(&source, &mut copy)?;
        backup.run_to_completion(PAGES_PER_STEP, Duration::from_millis(5), None)?;
    }
    // One file, no WAL beside it: what is restored is this file.
    copy.pragma_update(None, "journal_mode", "DELETE")?;
    let check: String = copy.query_row("PRAGMA integrity_check", [], |row| row.get(0))?;
    if check != "ok" {
        return Err(BackupError::Io {
            path: target.to_path_buf(),
            source: std::io::Error::other(format!("the copy fails its integrity check: {check}")),
        });
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), BackupError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    }
    Ok(())
}

fn restrict(file: &Path) -> Result<(), BackupError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).map_err(io(file))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_holds_what_was_committed_and_the_keys() {
        let data = tempfile::tempdir().unwrap();
        let db = data.path().join(DATABASE_FILE);
        let live = rusqlite::Connection::open(&db).unwrap();
        live.pragma_update(None, "journal_mode", "WAL").unwrap();
        live.execute_batch("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1), (2);")
            .unwrap();
        std::fs::write(data.path().join("call-token.key"), b"secret").unwrap();
        std::fs::create_dir(data.path().join("attachments")).unwrap();
        let dest = tempfile::tempdir().unwrap();
        let out = dest.path().join("backup");
        let report = backup(data.path(), Some(&db), &out).unwrap();
        // The WAL was not checkpointed: the rows are only there, and the
        // online backup still sees them.
        let copy = rusqlite::Connection::open(out.join(DATABASE_FILE)).unwrap();
        let sum: i64 = copy
            .query_row("SELECT SUM(v) FROM t", [], |row| row.get(0))
            .unwrap();
        assert_eq!(sum, 3);
        assert_eq!(report.files, vec![out.join("call-token.key")]);
        assert!(!out.join("attachments").exists());
        assert!(!out.join(format!("{DATABASE_FILE}-wal")).exists());
        drop(live);
        // A second backup into the same folder is refused.
        assert!(matches!(
            backup(data.path(), Some(&db), &out),
            Err(BackupError::NotEmpty(_))
        ));
    }
}
