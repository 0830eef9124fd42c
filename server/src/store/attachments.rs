//! Attachment records. The bytes are files; these rows say who may write
//! them, how far an upload got, and when they expire.
//!
//! A new record counts against its account's quota: the announced sizes of
//! the account's unexpired attachments, finished or not. The sum and the
//! insert are one check that concurrent creations cannot both pass: on
//! SQLite the conditional insert holds the write lock while it sums; on
//! PostgreSQL the transaction first locks the account's row, so creations
//! of one account are counted one after the other.

use sqlx::Row;

use super::{Backend, Store, with_pool};

/// One attachment's record.
#[derive(Debug, Clone)]
pub struct AttachmentRecord {
    /// The uploader.
    pub account_id: i64,
    /// Announced size.
    pub size: i64,
    /// Bytes received so far.
    pub received: i64,
    /// Expiry (ms).
    pub expires_at: i64,
}

/// A new attachment, as [`Store::create_attachment`] records it.
#[derive(Debug, Clone, Copy)]
pub struct NewAttachment<'a> {
    /// Its id.
    pub id: &'a [u8; 16],
    /// The uploader.
    pub account_id: i64,
    /// Announced size.
    pub size: i64,
    /// Creation time (ms); attachments expiring by then no longer count.
    pub now: i64,
    /// Expiry (ms).
    pub expires_at: i64,
}

/// Whether a new attachment was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaOutcome {
    /// Recorded.
    Created,
    /// Refused: the account's unexpired attachments already take `used`
    /// bytes, and this one would take them past the quota.
    Exceeded {
        /// Bytes in use.
        used: i64,
    },
}

/// Inserts the record only if the account's unexpired attachments and it
/// fit `$6` bytes.
const INSERT_WITHIN_QUOTA: &str = "INSERT INTO attachments (id, account_id, size, received, created_at, expires_at) \
     SELECT $1, $2, $3, 0, $4, $5 \
     WHERE (SELECT COALESCE(SUM(size), 0) FROM attachments WHERE account_id = $2 AND expires_at > $4) + $3 <= $6";

/// Bytes an account's unexpired attachments take.
const USED: &str = "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM attachments WHERE account_id = $1 AND expires_at > $2";

impl Store {
    /// Records a new, empty attachment, unless the account's unexpired
    /// attachments and it would take more than `quota` bytes.
    pub async fn create_attachment(
        &self,
        new: NewAttachment<'_>,
        quota: i64,
    ) -> Result<QuotaOutcome, sqlx::Error> {
        let backend = self.backend();
        with_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            if backend == Backend::Postgres {
                // Creations of one account wait for each other here; the
                // insert's sum, a statement later, sees the ones before.
                sqlx::query("SELECT id FROM accounts WHERE id = $1 FOR NO KEY UPDATE")
                    .bind(new.account_id)
                    .execute(&mut *tx)
                    .await?;
            }
            let inserted = sqlx::query(INSERT_WITHIN_QUOTA)
                .bind(&new.id[..])
                .bind(new.account_id)
                .bind(new.size)
                .bind(new.now)
                .bind(new.expires_at)
                .bind(quota)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if inserted == 1 {
                tx.commit().await?;
                return Ok(QuotaOutcome::Created);
            }
            let used: i64 = sqlx::query_scalar(USED)
                .bind(new.account_id)
                .bind(new.now)
                .fetch_one(&mut *tx)
                .await?;
            tx.rollback().await?;
            Ok(QuotaOutcome::Exceeded { used })
        })
    }

    /// An attachment's record, if it exists and has not expired.
    pub async fn attachment(
        &self,
        id: &[u8],
        now: i64,
    ) -> Result<Option<AttachmentRecord>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("SELECT account_id, size, received, expires_at FROM attachments WHERE id = $1 AND expires_at > $2")
                .bind(id)
                .bind(now)
                .fetch_optional(pool)
                .await?
                .map(|row| {
                    Ok(AttachmentRecord {
                        account_id: row.try_get("account_id")?,
                        size: row.try_get("size")?,
                        received: row.try_get("received")?,
                        expires_at: row.try_get("expires_at")?,
                    })
                })
                .transpose()
        })
    }

    /// Records upload progress; only moves forward from `from`.
    pub async fn set_attachment_received(
        &self,
        id: &[u8],
        from: i64,
        received: i64,
    ) -> Result<bool, sqlx::Error> {
        with_pool!(self, pool => {
            Ok(sqlx::query("UPDATE attachments SET received = $1 WHERE id = $2 AND received = $3")
                .bind(received)
                .bind(id)
                .bind(from)
                .execute(pool)
                .await?
                .rows_affected()
                == 1)
        })
    }

    /// Deletes expired attachment records and returns their ids, so the
    /// caller can delete the files.
    pub async fn delete_expired_attachments(&self, now: i64) -> Result<Vec<Vec<u8>>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM attachments WHERE expires_at <= $1 RETURNING id")
                .bind(now)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| row.try_get("id"))
                .collect()
        })
    }
}
