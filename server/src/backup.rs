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

/// Why a backup failed.
#[derive(Debug, Error)]
pub enum BackupError {
    /// The destination exists already, or lies inside the data folder.
    #[error("{0}: {1}")]
    Destination(PathBuf, &'static str),
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

/// The data folder's subfolders whose files are copied too: the TLS
/// certificate and key that clients pinned.
const KEY_FOLDERS: [&str; 1] = ["tls"];

/// Copies `database` (SQLite, if any) and the key files of `data_dir` into
/// `dest`, a new folder outside the data folder (created, readable by its
/// owner only). Blocking: call from a blocking thread.
pub fn backup(
    data_dir: &Path,
    database: Option<&Path>,
    dest: &Path,
) -> Result<BackupReport, BackupError> {
    check_destination(data_dir, dest)?;
    create_private_dir(dest)?;
    let mut report = BackupReport::default();
    if let Some(database) = database {
        let target = dest.join(DATABASE_FILE);
        copy_database(database, &target)?;
        let size = std::fs::metadata(&target).map_err(io(&target))?.len();
        report.database = Some((target, size));
    }
    copy_key_files(data_dir, dest, &mut report.files)?;
    for folder in KEY_FOLDERS {
        let source = data_dir.join(folder);
        if source.is_dir() {
            let target = dest.join(folder);
            create_private_dir(&target)?;
            copy_key_files(&source, &target, &mut report.files)?;
        }
    }
    report.files.sort();
    Ok(report)
}

/// Refuses a destination that exists (nothing is overwritten, no folder's
/// permissions changed) or that lies inside the data folder.
fn check_destination(data_dir: &Path, dest: &Path) -> Result<(), BackupError> {
    if dest.symlink_metadata().is_ok() {
        return Err(BackupError::Destination(
            dest.to_path_buf(),
            "exists already: name a new folder",
        ));
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let parent = parent.canonicalize().map_err(io(&parent))?;
    let data = data_dir.canonicalize().map_err(io(data_dir))?;
    if parent.starts_with(&data) {
        return Err(BackupError::Destination(
            dest.to_path_buf(),
            "is inside the data folder: name a folder elsewhere",
        ));
    }
    Ok(())
}

/// Copies the regular files of `from` (a symbolic link to one included),
/// the database's own files excepted, into `to`.
fn copy_key_files(from: &Path, to: &Path, copied: &mut Vec<PathBuf>) -> Result<(), BackupError> {
    let entries = std::fs::read_dir(from).map_err(io(from))?;
    for entry in entries {
        let entry = entry.map_err(io(from))?;
        let path = entry.path();
        let name = entry.file_name();
        if is_database_file(&name.to_string_lossy()) || !path.is_file() {
            continue;
        }
        let bytes = zeroize::Zeroizing::new(std::fs::read(&path).map_err(io(&path))?);
        let target = to.join(&name);
        write_private(&target, &bytes)?;
        copied.push(target);
    }
    Ok(())
}

/// Writes a new file readable by its owner only; an existing file (or a
/// link planted in its place) is an error, never followed.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

/// The database and SQLite's files beside it (journal, WAL, shared
/// memory): never copied as files, which would not be consistent.
fn is_database_file(name: &str) -> bool {
    name.starts_with(DATABASE_FILE)
        || name.ends_with("-wal")
        || name.ends_with("-shm")
        || name.ends_with("-journal")
}

/// How often a step the server's lock held up is tried again.
const BUSY_RETRIES: u32 = 200;

/// SQLite's online backup in one step: every page copied within one read
/// transaction (in WAL mode writers go on meanwhile), so that the copy is
/// the database at one instant and a busy server cannot restart it
/// forever.
fn copy_database(source: &Path, target: &Path) -> Result<(), BackupError> {
    use rusqlite::backup::StepResult;
    let source = rusqlite::Connection::open_with_flags(
        source,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    source.busy_timeout(Duration::from_secs(10))?;
    let mut copy = rusqlite::Connection::open_with_flags(
        target,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
            | rusqlite::OpenFlags::SQLITE_OPEN_CREATE
            | rusqlite::OpenFlags::SQLITE_OPEN_NOFOLLOW,
    )?;
    restrict(target)?;
    {
        let backup = rusqlite::backup::Backup::new(&source, &mut copy)?;
        let mut tries = 0;
        loop {
            match backup.step(-1)? {
                StepResult::Done => break,
                StepResult::Busy | StepResult::Locked if tries < BUSY_RETRIES => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    return Err(BackupError::Io {
                        path: target.to_path_buf(),
                        source: std::io::Error::other("the database stayed locked"),
                    });
                }
            }
        }
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

/// Creates a new folder readable by its owner only (an existing one is an
/// error).
fn create_private_dir(dir: &Path) -> Result<(), BackupError> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io(dir))
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
        std::fs::create_dir(data.path().join("tls")).unwrap();
        std::fs::write(data.path().join("tls/key.pem"), b"tls key").unwrap();
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
        assert_eq!(
            report.files,
            vec![out.join("call-token.key"), out.join("tls/key.pem")]
        );
        assert_eq!(std::fs::read(out.join("tls/key.pem")).unwrap(), b"tls key");
        assert!(!out.join("attachments").exists());
        assert!(!out.join(format!("{DATABASE_FILE}-wal")).exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&out), 0o700);
            assert_eq!(mode(&out.join("call-token.key")), 0o600);
            assert_eq!(mode(&out.join(DATABASE_FILE)), 0o600);
        }
        drop(live);
        // Nothing is overwritten: a folder that exists is refused.
        assert!(matches!(
            backup(data.path(), Some(&db), &out),
            Err(BackupError::Destination(..))
        ));
        assert!(matches!(
            backup(data.path(), None, dest.path()),
            Err(BackupError::Destination(..))
        ));
    }

    #[test]
    fn a_backup_into_the_data_folder_is_refused_and_harms_no_key() {
        let data = tempfile::tempdir().unwrap();
        std::fs::write(data.path().join("transparency-log.key"), b"secret").unwrap();
        let inside = data.path().join("copy");
        assert!(matches!(
            backup(data.path(), None, &inside),
            Err(BackupError::Destination(..))
        ));
        assert!(matches!(
            backup(data.path(), None, data.path()),
            Err(BackupError::Destination(..))
        ));
        let key = std::fs::read(data.path().join("transparency-log.key")).unwrap();
        assert_eq!(key, b"secret");
    }
}
