//! Queued envelopes: stored durably before a send is acknowledged, read in
//! order per device, deleted on acknowledgement or expiry.

use sqlx::Row;

use super::{BatchOp, Store, with_pool};
use crate::delivery::StoredEnvelope;

/// Envelope times at rest are whole hours: what expiry needs, no more.
pub const ACCEPTED_TIME_GRANULARITY_MS: i64 = 3_600_000;

/// The hour `now_ms` falls in, as stored with an envelope.
pub fn accepted_hour(now_ms: i64) -> i64 {
    now_ms - now_ms.rem_euclid(ACCEPTED_TIME_GRANULARITY_MS)
}

/// An envelope to queue.
#[derive(Debug, Clone)]
pub struct NewEnvelope {
    /// Random 16-byte id.
    pub envelope_id: [u8; 16],
    /// Destination account.
    pub account_id: i64,
    /// Destination device.
    pub device_id: u32,
    /// Sender username, `None` for a sealed send.
    pub sender: Option<String>,
    /// Sender device, `None` for a sealed send.
    pub sender_device: Option<u32>,
    /// The hour the send was accepted: milliseconds since the epoch, a
    /// multiple of [`ACCEPTED_TIME_GRANULARITY_MS`]. Expiry is this plus
    /// the configured TTL.
    pub created_at: i64,
    /// Opaque ciphertext.
    pub content: Vec<u8>,
}

/// What the audit reports about the queue.
#[derive(Debug, Clone, Default)]
pub struct QueueStats {
    /// Queued envelopes.
    pub count: i64,
    /// Their total content size.
    pub bytes: i64,
    /// The hour the oldest was accepted.
    pub oldest: Option<i64>,
}

impl Store {
    /// Stores envelopes in one transaction; when this returns `Ok`, every
    /// one of them is on disk. (The send path goes through the group-commit
    /// writer, `Batcher`, which runs the same statements and then wakes the
    /// devices; this method wakes nobody.)
    pub async fn insert_envelopes(&self, envelopes: &[NewEnvelope]) -> Result<(), sqlx::Error> {
        self.apply_batch(&[&BatchOp::Insert(envelopes.to_vec())])
            .await
            .map(|_| ())
    }

    /// Up to `limit` envelopes for a device with `seq > after`, oldest first.
    pub async fn envelopes_after(
        &self,
        account_id: i64,
        device: u32,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredEnvelope>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query(
                "SELECT seq, envelope_id, sender, sender_device, created_at, content FROM envelopes \
                 WHERE account_id = $1 AND device_id = $2 AND seq > $3 ORDER BY seq LIMIT $4",
            )
            .bind(account_id)
            .bind(i64::from(device))
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| {
                Ok(StoredEnvelope {
                    seq: row.try_get("seq")?,
                    envelope_id: row.try_get("envelope_id")?,
                    sender: row.try_get("sender")?,
                    sender_device: row
                        .try_get::<Option<i64>, _>("sender_device")?
                        .and_then(|d| u32::try_from(d).ok()),
                    created_at: row.try_get("created_at")?,
                    content: row.try_get("content")?,
                })
            })
            .collect()
        })
    }

    /// Deletes acknowledged envelopes of this device; returns how many.
    pub async fn acknowledge(
        &self,
        account_id: i64,
        device: u32,
        ids: &[Vec<u8>],
    ) -> Result<u64, sqlx::Error> {
        let op = BatchOp::Acknowledge {
            account_id,
            device_id: device,
            ids: ids.to_vec(),
        };
        Ok(self.apply_batch(&[&op]).await?.deleted)
    }

    /// Drops envelopes accepted at or before `cutoff` (now minus the TTL);
    /// returns how many.
    pub async fn delete_expired(&self, cutoff: i64) -> Result<u64, sqlx::Error> {
        with_pool!(self, pool => {
            Ok(sqlx::query("DELETE FROM envelopes WHERE created_at <= $1")
                .bind(cutoff)
                .execute(pool)
                .await?
                .rows_affected())
        })
    }

    /// Count, size and age of the queue.
    pub async fn queue_stats(&self) -> Result<QueueStats, sqlx::Error> {
        with_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT COUNT(*) AS count, CAST(COALESCE(SUM(LENGTH(content)), 0) AS BIGINT) AS bytes, \
                 MIN(created_at) AS oldest FROM envelopes",
            )
            .fetch_one(pool)
            .await?;
            Ok(QueueStats {
                count: row.try_get("count")?,
                bytes: row.try_get("bytes")?,
                oldest: row.try_get("oldest")?,
            })
        })
    }
}

/// What the audit checks of every queued envelope, without reading more
/// than its first byte.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvelopeAudit {
    /// Sealed envelopes (content starting `0x31` or `0x32`).
    pub sealed: u64,
    /// Envelopes sent unsealed (the sender visible).
    pub unsealed: u64,
    /// Sealed envelopes whose row names a sender: must be none.
    pub sealed_with_sender: u64,
    /// Sealed envelopes whose length is not a padding bucket: must be none.
    pub sealed_unpadded: u64,
    /// Rows whose time is finer than the hour: must be none.
    pub fine_times: u64,
}

impl EnvelopeAudit {
    /// Whether every row keeps what the inventory promises.
    pub fn passed(&self) -> bool {
        self.sealed_with_sender == 0 && self.sealed_unpadded == 0 && self.fine_times == 0
    }

    fn count(&mut self, first: Option<u8>, len: i64, named: bool, created_at: i64) {
        let sealed = first.is_some_and(|b| starling_crypto::sealed::is_sealed(&[b]));
        if sealed {
            self.sealed += 1;
            self.sealed_with_sender += u64::from(named);
            let bucket = u64::try_from(len).is_ok_and(starling_crypto::padding::is_envelope_bucket);
            self.sealed_unpadded += u64::from(!bucket);
        } else {
            self.unsealed += 1;
        }
        self.fine_times += u64::from(created_at % ACCEPTED_TIME_GRANULARITY_MS != 0);
    }
}

impl Store {
    /// Scans the queue for the audit, a page at a time.
    pub async fn audit_envelopes(&self) -> Result<EnvelopeAudit, sqlx::Error> {
        const PAGE: usize = 1000;
        let mut audit = EnvelopeAudit::default();
        let mut after = 0i64;
        with_pool!(self, pool => loop {
            let rows = sqlx::query(
                "SELECT seq, CAST(LENGTH(content) AS BIGINT) AS len, SUBSTR(content, 1, 1) AS first, \
                 (sender IS NOT NULL OR sender_device IS NOT NULL) AS named, created_at \
                 FROM envelopes WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
            .bind(after)
            .bind(PAGE as i64)
            .fetch_all(pool)
            .await?;
            for row in &rows {
                after = row.try_get("seq")?;
                let first: Vec<u8> = row.try_get("first")?;
                audit.count(
                    first.first().copied(),
                    row.try_get("len")?,
                    row.try_get("named")?,
                    row.try_get("created_at")?,
                );
            }
            if rows.len() < PAGE {
                return Ok(audit);
            }
        })
    }

    /// Rows in `table` (a name the database itself listed).
    pub async fn row_count(&self, table: &str) -> Result<i64, sqlx::Error> {
        let sql = format!("SELECT COUNT(*) FROM \"{}\"", table.replace('"', "\"\""));
        with_pool!(self, pool => sqlx::query_scalar(&sql).fetch_one(pool).await)
    }
}
