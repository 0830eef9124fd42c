//! Key transparency's tables (`crypto/SPEC.md` §16): akd's records as
//! plain rows (the akd side is `crate::transparency::storage`), the signed
//! roots and audit proofs the publisher keeps, and the accounts waiting
//! for the next epoch.

use sqlx::{Connection, Row};
use tokio::sync::Mutex;

use super::{Pool, Store, with_pool};

/// The PostgreSQL advisory lock that elects the publisher ("STKT").
const PUBLISHER_LOCK: i64 = 0x5354_4b54;

/// The right to publish epochs: on PostgreSQL a session lock held on a
/// connection of its own (released when it closes, by a crash included);
/// on SQLite, the one process.
#[derive(Debug)]
pub enum PublisherLock {
    /// SQLite: one process, always the publisher.
    Sqlite,
    /// PostgreSQL: the connection holding the lock.
    Postgres(Mutex<sqlx::PgConnection>),
}

/// Marks an account's device list as changed, bound to the account id,
/// run inside the transaction that changes it: the next epoch publishes
/// it, even after a crash.
pub(crate) const MARK_CHANGED: &str = "INSERT INTO kt_pending (account_id, seq) VALUES ($1, 1) \
     ON CONFLICT (account_id) DO UPDATE SET seq = kt_pending.seq + 1";

/// Why akd's records were not written.
#[derive(Debug, thiserror::Error)]
pub enum KtWriteError {
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The stored tree is not at the epoch before this write's: another
    /// publisher wrote it.
    #[error("the log is no longer at the epoch before {0}: another publisher wrote it")]
    Fenced(i64),
}

/// The publisher's guard on its writes (see [`Store::kt_write`]), and the
/// device lists of the epoch it is about to commit, written with it.
#[derive(Debug, Default)]
pub struct KtFence {
    lists: std::sync::Mutex<Option<(i64, Lists)>>,
}

/// `(label, canonical device list)` rows.
type Lists = Vec<(Vec<u8>, Vec<u8>)>;

impl KtFence {
    /// Stages `(label, canonical list)` for epoch `epoch`'s commit.
    pub fn stage(&self, epoch: i64, lists: Lists) {
        if let Ok(mut staged) = self.lists.lock() {
            *staged = Some((epoch, lists));
        }
    }

    /// The lists staged for `epoch` (none for any other).
    fn take(&self, epoch: i64) -> Lists {
        match self.lists.lock() {
            Ok(mut staged) => match staged.take() {
                Some((staged_epoch, lists)) if staged_epoch == epoch => lists,
                _ => Vec::new(),
            },
            Err(_) => Vec::new(),
        }
    }
}

/// Writes `(label, canonical list)` rows of `epoch` in `tx`.
async fn insert_lists<DB>(
    tx: &mut sqlx::Transaction<'_, DB>,
    epoch: i64,
    lists: &[(Vec<u8>, Vec<u8>)],
) -> Result<(), sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Vec<u8>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    for chunk in lists.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO kt_device_lists (label, devices, epoch) VALUES {} \
             ON CONFLICT (label, epoch) DO UPDATE SET devices = excluded.devices",
            (0..chunk.len())
                .map(|row| format!("(${}, ${}, $1)", 2 * row + 2, 2 * row + 3))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut query = sqlx::query(&sql).bind(epoch);
        for (label, devices) in chunk {
            query = query.bind(label.clone()).bind(devices.clone());
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Deletes the waiting rows of `published` `(account, seq)` in `tx`, each
/// only if not changed again since it was read.
async fn clear_published<DB>(
    tx: &mut sqlx::Transaction<'_, DB>,
    published: &[(i64, i64)],
) -> Result<(), sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    for (account_id, seq) in published {
        sqlx::query("DELETE FROM kt_pending WHERE account_id = $1 AND seq = $2")
            .bind(*account_id)
            .bind(*seq)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Rows per multi-row statement: well under both databases' limits on
/// bound parameters.
const CHUNK: usize = 400;

/// One of akd's records, as the tables hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KtRow {
    /// The tree's summary (one row).
    Azks {
        /// The newest epoch.
        latest_epoch: i64,
        /// How many nodes the tree has.
        num_nodes: i64,
    },
    /// A tree node, by its key, in the server's node codec.
    Node {
        /// Its label's bytes.
        key: Vec<u8>,
        /// The node, as `transparency::codec` encodes it.
        node: Vec<u8>,
    },
    /// A version of a label's value.
    Value(KtValue),
}

/// A version of a label's value, as akd's `ValueState` has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KtValue {
    /// akd's label (`u1:` and the username).
    pub label: Vec<u8>,
    /// The epoch this version was published in.
    pub epoch: i64,
    /// The version (1 for the first).
    pub version: i64,
    /// The tree label (VRF output and its length) this version sits at.
    pub node_label: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
}

/// Which version of a label `kt_value` finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KtValueAt {
    /// This version.
    Version(i64),
    /// The one published in this epoch.
    Epoch(i64),
    /// The newest published in this epoch or before.
    AtOrBefore(i64),
    /// The newest.
    Newest,
    /// The oldest.
    Oldest,
}

/// What the log publishes for an account: its name and each device's id
/// and identity key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedAccount {
    /// The username.
    pub username: String,
    /// `(device id, identity key)` of every device.
    pub devices: Vec<(u32, Vec<u8>)>,
}

/// `$first, $first+1, …` for `n` parameters, comma-separated.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows of one multi-row `VALUES`: `n` groups of `width` placeholders.
fn value_groups(n: usize, width: usize) -> String {
    (0..n)
        .map(|row| format!("({})", placeholders(row * width + 1, width)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn value_from_row<R: Row>(row: &R) -> Result<KtValue, sqlx::Error>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(KtValue {
        label: row.try_get("label")?,
        epoch: row.try_get("epoch")?,
        version: row.try_get("version")?,
        node_label: row.try_get("node_label")?,
        value: row.try_get("value")?,
    })
}

impl Store {
    /// Writes akd's records in one transaction: all of them or none. A
    /// record whose key comes twice is written once, as its last copy.
    ///
    /// With a `fence`, a write of the tree's summary to epoch `n` goes
    /// through only if the stored summary is at `n − 1` (or there is none,
    /// for `n = 0`), and then writes the fence's device lists in the same
    /// transaction: a second publisher (a node that lost the lock without
    /// knowing) fails here instead of mixing its tree into the log.
    pub async fn kt_write(
        &self,
        rows: Vec<KtRow>,
        fence: Option<&KtFence>,
    ) -> Result<(), KtWriteError> {
        let mut azks = None;
        let mut nodes = std::collections::HashMap::new();
        let mut values = std::collections::HashMap::new();
        for row in rows {
            match row {
                KtRow::Azks {
                    latest_epoch,
                    num_nodes,
                } => azks = Some((latest_epoch, num_nodes)),
                KtRow::Node { key, node } => {
                    nodes.insert(key, node);
                }
                KtRow::Value(value) => {
                    values.insert((value.label.clone(), value.epoch), value);
                }
            }
        }
        let nodes: Vec<(Vec<u8>, Vec<u8>)> = nodes.into_iter().collect();
        let values: Vec<KtValue> = values.into_values().collect();
        with_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            for chunk in nodes.chunks(CHUNK) {
                let sql = format!(
                    "INSERT INTO kt_nodes (node_key, node) VALUES {} \
                     ON CONFLICT (node_key) DO UPDATE SET node = excluded.node",
                    value_groups(chunk.len(), 2)
                );
                let mut query = sqlx::query(&sql);
                for (key, node) in chunk {
                    query = query.bind(key).bind(node);
                }
                query.execute(&mut *tx).await?;
            }
            for chunk in values.chunks(CHUNK) {
                let sql = format!(
                    "INSERT INTO kt_values (label, epoch, version, node_label, value) VALUES {} \
                     ON CONFLICT (label, epoch) DO UPDATE SET version = excluded.version, \
                     node_label = excluded.node_label, value = excluded.value",
                    value_groups(chunk.len(), 5)
                );
                let mut query = sqlx::query(&sql);
                for value in chunk {
                    query = query
                        .bind(&value.label)
                        .bind(value.epoch)
                        .bind(value.version)
                        .bind(&value.node_label)
                        .bind(&value.value);
                }
                query.execute(&mut *tx).await?;
            }
            // The summary last, as akd orders its own commits.
            if let Some((latest_epoch, num_nodes)) = azks {
                let sql = match fence {
                    None => "INSERT INTO kt_azks (id, latest_epoch, num_nodes) VALUES (1, $1, $2) \
                     ON CONFLICT (id) DO UPDATE SET latest_epoch = excluded.latest_epoch, \
                     num_nodes = excluded.num_nodes",
                    Some(_) if latest_epoch == 0 => "INSERT INTO kt_azks (id, latest_epoch, num_nodes) \
                     VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING",
                    Some(_) => "UPDATE kt_azks SET latest_epoch = $1, num_nodes = $2 \
                     WHERE id = 1 AND latest_epoch = $1 - 1",
                };
                let written = sqlx::query(sql)
                    .bind(latest_epoch)
                    .bind(num_nodes)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if let Some(fence) = fence {
                    if written != 1 {
                        // Dropping the transaction rolls it back.
                        return Err(KtWriteError::Fenced(latest_epoch));
                    }
                    let lists = fence.take(latest_epoch);
                    insert_lists(&mut tx, latest_epoch, &lists).await?;
                }
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// The tree's summary: `(latest epoch, node count)`, once there is a
    /// tree.
    pub async fn kt_azks(&self) -> Result<Option<(i64, i64)>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as("SELECT latest_epoch, num_nodes FROM kt_azks WHERE id = 1")
                .fetch_optional(pool)
                .await
        })
    }

    /// The nodes of these keys that exist, as `(key, node)`.
    pub async fn kt_nodes(&self, keys: &[Vec<u8>]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, sqlx::Error> {
        let mut found = Vec::with_capacity(keys.len());
        with_pool!(self, pool => {
            for chunk in keys.chunks(CHUNK) {
                let sql = format!(
                    "SELECT node_key, node FROM kt_nodes WHERE node_key IN ({})",
                    placeholders(1, chunk.len())
                );
                let mut query = sqlx::query_as(&sql);
                for key in chunk {
                    query = query.bind(key);
                }
                found.extend(query.fetch_all(pool).await?);
            }
            Ok(found)
        })
    }

    /// Every version of a label, oldest first.
    pub async fn kt_values(&self, label: &[u8]) -> Result<Vec<KtValue>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query(
                "SELECT label, epoch, version, node_label, value FROM kt_values \
                 WHERE label = $1 ORDER BY epoch",
            )
            .bind(label)
            .fetch_all(pool)
            .await?
            .iter()
            .map(value_from_row)
            .collect()
        })
    }

    /// One version of a label.
    pub async fn kt_value(
        &self,
        label: &[u8],
        at: KtValueAt,
    ) -> Result<Option<KtValue>, sqlx::Error> {
        const COLUMNS: &str = "SELECT label, epoch, version, node_label, value FROM kt_values";
        let (sql, arg) = match at {
            KtValueAt::Version(v) => (
                "WHERE label = $1 AND version = $2 ORDER BY epoch DESC",
                Some(v),
            ),
            KtValueAt::Epoch(e) => ("WHERE label = $1 AND epoch = $2", Some(e)),
            KtValueAt::AtOrBefore(e) => (
                "WHERE label = $1 AND epoch <= $2 ORDER BY epoch DESC",
                Some(e),
            ),
            KtValueAt::Newest => ("WHERE label = $1 ORDER BY epoch DESC", None),
            KtValueAt::Oldest => ("WHERE label = $1 ORDER BY epoch", None),
        };
        let sql = format!("{COLUMNS} {sql} LIMIT 1");
        with_pool!(self, pool => {
            let mut query = sqlx::query(&sql).bind(label);
            if let Some(arg) = arg {
                query = query.bind(arg);
            }
            query.fetch_optional(pool).await?.as_ref().map(value_from_row).transpose()
        })
    }

    /// For each label that has one, its newest version published in
    /// `epoch` or before.
    pub async fn kt_values_at_or_before(
        &self,
        labels: &[Vec<u8>],
        epoch: i64,
    ) -> Result<Vec<KtValue>, sqlx::Error> {
        let mut found = Vec::with_capacity(labels.len());
        with_pool!(self, pool => {
            for chunk in labels.chunks(CHUNK) {
                let sql = format!(
                    "SELECT label, epoch, version, node_label, value FROM kt_values v \
                     WHERE label IN ({}) AND epoch = (SELECT MAX(epoch) FROM kt_values w \
                     WHERE w.label = v.label AND w.epoch <= $1)",
                    placeholders(2, chunk.len())
                );
                let mut query = sqlx::query(&sql).bind(epoch);
                for label in chunk {
                    query = query.bind(label);
                }
                for row in query.fetch_all(pool).await? {
                    found.push(value_from_row(&row)?);
                }
            }
            Ok(found)
        })
    }

    /// The device list a label's value of `epoch` commits to.
    pub async fn kt_list(&self, label: &[u8], epoch: i64) -> Result<Option<Vec<u8>>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_scalar("SELECT devices FROM kt_device_lists WHERE label = $1 AND epoch = $2")
                .bind(label)
                .bind(epoch)
                .fetch_optional(pool)
                .await
        })
    }

    /// Up to `limit` accounts waiting for an epoch, as `(account, seq)`.
    pub async fn kt_pending(&self, limit: i64) -> Result<Vec<(i64, i64)>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as("SELECT account_id, seq FROM kt_pending ORDER BY account_id LIMIT $1")
                .bind(limit)
                .fetch_all(pool)
                .await
        })
    }

    /// Whether an account waits for an epoch.
    pub async fn kt_is_pending(&self, account_id: i64) -> Result<bool, sqlx::Error> {
        with_pool!(self, pool => {
            let found: Option<i64> =
                sqlx::query_scalar("SELECT seq FROM kt_pending WHERE account_id = $1")
                    .bind(account_id)
                    .fetch_optional(pool)
                    .await?;
            Ok(found.is_some())
        })
    }

    /// What the log publishes for an account: `None` once it is gone.
    pub async fn kt_account(&self, account_id: i64) -> Result<Option<LoggedAccount>, sqlx::Error> {
        with_pool!(self, pool => {
            let live: Option<String> =
                sqlx::query_scalar("SELECT username FROM accounts WHERE id = $1")
                    .bind(account_id)
                    .fetch_optional(pool)
                    .await?;
            let Some(username) = live else {
                // A deleted account: its name, kept until published, with
                // no devices.
                let deleted: Option<Option<String>> =
                    sqlx::query_scalar("SELECT username FROM kt_pending WHERE account_id = $1")
                        .bind(account_id)
                        .fetch_optional(pool)
                        .await?;
                return Ok(deleted.flatten().map(|username| LoggedAccount {
                    username,
                    devices: Vec::new(),
                }));
            };
            let rows = sqlx::query(
                "SELECT device_id, identity_key FROM devices WHERE account_id = $1 ORDER BY device_id",
            )
            .bind(account_id)
            .fetch_all(pool)
            .await?;
            let mut devices = Vec::with_capacity(rows.len());
            for row in rows {
                let id: i64 = row.try_get("device_id")?;
                let id = u32::try_from(id).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
                devices.push((id, row.try_get("identity_key")?));
            }
            Ok(Some(LoggedAccount { username, devices }))
        })
    }

    /// Stores an epoch's signed root and the append-only proof from the
    /// epoch before (none for epoch 0, the empty tree), and takes the accounts it published off the waiting
    /// list (those changed again meanwhile stay), in one transaction.
    pub async fn kt_record_epoch(
        &self,
        epoch: i64,
        signed_root: &[u8],
        audit_proof: Option<&[u8]>,
        published: &[(i64, i64)],
    ) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            sqlx::query("INSERT INTO kt_roots (epoch, signed_root) VALUES ($1, $2)")
                .bind(epoch)
                .bind(signed_root)
                .execute(&mut *tx)
                .await?;
            if let Some(proof) = audit_proof {
                sqlx::query("INSERT INTO kt_audit (epoch, proof) VALUES ($1, $2)")
                    .bind(epoch)
                    .bind(proof)
                    .execute(&mut *tx)
                    .await?;
            }
            clear_published(&mut tx, published).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Takes published accounts off the waiting list when their change
    /// made no new epoch (the log already held their list).
    pub async fn kt_clear_pending(&self, published: &[(i64, i64)]) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            clear_published(&mut tx, published).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Takes the publisher lock, if no other node holds it.
    pub async fn kt_publisher_lock(&self) -> Result<Option<PublisherLock>, sqlx::Error> {
        let Pool::Postgres(pool) = &self.pool else {
            return Ok(Some(PublisherLock::Sqlite));
        };
        let mut connection = pool.acquire().await?.detach();
        let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(PUBLISHER_LOCK)
            .fetch_one(&mut connection)
            .await?;
        if !taken {
            connection.close().await?;
            return Ok(None);
        }
        Ok(Some(PublisherLock::Postgres(Mutex::new(connection))))
    }

    /// Whether `lock` still holds (its connection answers).
    pub async fn kt_publisher_lock_held(&self, lock: &PublisherLock) -> bool {
        match lock {
            PublisherLock::Sqlite => true,
            PublisherLock::Postgres(connection) => {
                let mut connection = connection.lock().await;
                matches!(
                    tokio::time::timeout(std::time::Duration::from_secs(5), connection.ping())
                        .await,
                    Ok(Ok(()))
                )
            }
        }
    }

    /// The newest signed root: `(epoch, signed root)`.
    pub async fn kt_latest_root(&self) -> Result<Option<(i64, Vec<u8>)>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as("SELECT epoch, signed_root FROM kt_roots ORDER BY epoch DESC LIMIT 1")
                .fetch_optional(pool)
                .await
        })
    }

    /// An epoch's signed root.
    pub async fn kt_root(&self, epoch: i64) -> Result<Option<Vec<u8>>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_scalar("SELECT signed_root FROM kt_roots WHERE epoch = $1")
                .bind(epoch)
                .fetch_optional(pool)
                .await
        })
    }

    /// The epochs after `from`, at most `limit`, oldest first: `(epoch,
    /// signed root, append-only proof from the epoch before)`, read one by
    /// one and stopped once `budget` bytes of proofs are taken (the first
    /// is taken whatever its size).
    pub async fn kt_audit(
        &self,
        from: i64,
        limit: i64,
        budget: usize,
    ) -> Result<Vec<(i64, Vec<u8>, Vec<u8>)>, sqlx::Error> {
        use futures_util::TryStreamExt;
        let mut steps = Vec::new();
        let mut bytes = 0;
        with_pool!(self, pool => {
            let mut rows = sqlx::query_as::<_, (i64, Vec<u8>, Vec<u8>)>(
                "SELECT r.epoch, r.signed_root, a.proof FROM kt_roots r \
                 JOIN kt_audit a ON a.epoch = r.epoch \
                 WHERE r.epoch > $1 ORDER BY r.epoch LIMIT $2",
            )
            .bind(from)
            .bind(limit)
            .fetch(pool);
            while let Some(step) = rows.try_next().await? {
                bytes += step.1.len() + step.2.len();
                if bytes > budget && !steps.is_empty() {
                    break;
                }
                steps.push(step);
            }
            Ok(steps)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_from_the_first() {
        assert_eq!(placeholders(2, 3), "$2, $3, $4");
        assert_eq!(value_groups(2, 2), "($1, $2), ($3, $4)");
    }
}
