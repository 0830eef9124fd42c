//! Attachment records. The bytes are files; these rows say who may write
//! them, how far an upload got, and when they expire.

use sqlx::Row;

use super::{Store, with_pool};

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

impl Store {
    /// Records a new, empty attachment.
    pub async fn create_attachment(
        &self,
        id: &[u8; 16],
        account_id: i64,
        size: i64,
        now: i64,
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO attachments (id, account_id, size, received, created_at, expires_at) VALUES ($1, $2, $3, 0, $4, $5)",
            )
            .bind(&id[..])
            .bind(account_id)
            .bind(size)
            .bind(now)
            .bind(expires_at)
            .execute(pool)
            .await
            .map(|_| ())
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
