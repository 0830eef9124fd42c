//! The group commit on SQLite (decision 23): the writer applies each batch
//! through a rusqlite connection of its own, on its own thread. Every
//! statement runs on that thread, prepared once and kept, so a batch costs
//! no hand-off between threads and no parsing of SQL. Only the writer's
//! batch lives here; every other query of the server goes through sqlx.
//!
//! The statements are those of the PostgreSQL path in `batch`, one row at a
//! time: in-process SQLite pays a few microseconds per executed statement,
//! and a single-row `INSERT` gives its sequence number directly.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};

use super::batch::{
    BatchOp, BatchOutcome, acknowledgements, committed_envelope, device_key, outcome,
};
use super::queue_usage::QueueUsage;
use super::sends::{self, Accounts};

const READ_ACCOUNT: &str = "SELECT a.id, d.device_id FROM accounts a \
     LEFT JOIN devices d ON d.account_id = a.id \
     WHERE NOT a.disabled AND a.username = ?1";
const READ_DEVICE: &str = "SELECT 1 FROM devices d JOIN accounts a ON a.id = d.account_id \
     WHERE NOT a.disabled AND d.account_id = ?1 AND d.device_id = ?2";
const INSERT_ENVELOPE: &str = "INSERT INTO envelopes (envelope_id, account_id, device_id, \
     sender, sender_device, created_at, content) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
/// An envelope goes only if the acknowledging device is its destination.
const DELETE_ENVELOPE: &str = "DELETE FROM envelopes \
     WHERE envelope_id = ?1 AND account_id = ?2 AND device_id = ?3 RETURNING length(content)";
/// What waits for one device.
const READ_USAGE: &str = "SELECT count(*), coalesce(sum(length(content)), 0) FROM envelopes \
     WHERE account_id = ?1 AND device_id = ?2";

/// The writer's connection to the SQLite file the server's pool uses.
pub(super) struct SqliteWriter {
    connection: Connection,
}

impl std::fmt::Debug for SqliteWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteWriter").finish_non_exhaustive()
    }
}

impl SqliteWriter {
    /// Opens `path`, which the pool has created and migrated, with the
    /// pool's durability: `synchronous = FULL` in WAL mode (the pool set
    /// WAL, which the file keeps), foreign keys enforced.
    pub(super) fn open(path: &Path) -> Result<Self, rusqlite::Error> {
        let connection = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        connection.busy_timeout(Duration::from_secs(10))?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.pragma_update(None, "foreign_keys", true)?;
        // Deleted envelopes are overwritten, not left in free pages.
        connection.pragma_update(None, "secure_delete", "ON")?;
        Ok(Self { connection })
    }

    /// Applies `ops` in one transaction, taken for writing at its start so
    /// that it never has to upgrade; returns the envelopes inserted, in
    /// queue order, how many the acknowledgements deleted, and which sends
    /// were refused. Nothing of a failed batch is kept.
    pub(super) fn apply(
        &mut self,
        ops: &[&BatchOp],
        usage: &mut QueueUsage,
    ) -> Result<BatchOutcome, rusqlite::Error> {
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let accounts = read_accounts(&tx, &sends::destination_usernames(ops))?;
        let mut enabled = sends::enabled_devices(&accounts);
        let unknown = sends::unknown_senders(ops, &enabled);
        enabled.extend(read_enabled(&tx, &unknown)?);
        let mut plan = sends::plan(ops, &accounts, &enabled);
        let now = Instant::now();
        {
            let mut read = tx.prepare_cached(READ_USAGE)?;
            for device in usage.to_read(plan.send_devices(), now) {
                let (envelopes, bytes) = read
                    .query_row(params![device.0, i64::from(device.1)], |row| {
                        Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
                    })?;
                usage.read(device, envelopes.unsigned_abs(), bytes.unsigned_abs(), now);
            }
        }
        plan.apply_queue_caps(usage);
        let mut committed = Vec::with_capacity(plan.rows.len());
        {
            let mut insert = tx.prepare_cached(INSERT_ENVELOPE)?;
            for row in &plan.rows {
                let e = row.envelope;
                insert.execute(params![
                    &e.envelope_id[..],
                    row.account_id,
                    i64::from(e.device_id),
                    e.sender.as_deref(),
                    e.sender_device.map(i64::from),
                    e.created_at,
                    &e.content[..],
                ])?;
                committed.push(committed_envelope(tx.last_insert_rowid(), row));
            }
        }
        let mut deleted = 0;
        {
            let mut delete = tx.prepare_cached(DELETE_ENVELOPE)?;
            for (account_id, device_id, id) in acknowledgements(ops) {
                let mut rows = delete.query(params![id, account_id, i64::from(device_id)])?;
                while let Some(row) = rows.next()? {
                    let size: i64 = row.get(0)?;
                    let device = device_key(account_id, i64::from(device_id));
                    usage.deleted(device, size.unsigned_abs());
                    deleted += 1;
                }
            }
        }
        tx.commit()?;
        Ok(outcome(committed, deleted, plan))
    }
}

/// Which of `devices` exist in an enabled account.
fn read_enabled(
    tx: &Connection,
    devices: &[(i64, u32)],
) -> Result<Vec<(i64, u32)>, rusqlite::Error> {
    let mut statement = tx.prepare_cached(READ_DEVICE)?;
    let mut enabled = Vec::with_capacity(devices.len());
    for &(account_id, device_id) in devices {
        if statement.exists(params![account_id, i64::from(device_id)])? {
            enabled.push((account_id, device_id));
        }
    }
    Ok(enabled)
}

/// The enabled accounts among `usernames`, with their devices.
fn read_accounts(tx: &Connection, usernames: &[&str]) -> Result<Accounts, rusqlite::Error> {
    let mut statement = tx.prepare_cached(READ_ACCOUNT)?;
    let mut accounts = Accounts::new();
    for username in usernames {
        let mut rows = statement.query([username])?;
        while let Some(row) = rows.next()? {
            sends::add_account_row(&mut accounts, username, row.get(0)?, row.get(1)?);
        }
    }
    Ok(accounts)
}
