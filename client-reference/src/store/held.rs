//! Sender keys that come late. Group messages held for their senders'
//! keys: a message that arrived before the sender key it needs is kept,
//! still encrypted, and its envelope marked processed in the same
//! transaction; staging its decryption later removes it in the
//! transaction that stages it (`Store::save_inbound_group_session_with_inbox`).
//! And our own keys as each member device was first given them, for when
//! one asks again.

use sqlx::Row;
use starling_client_core::records::HeldGroupMessage;
use zeroize::Zeroizing;

use super::Store;
use crate::error::{ClientError, Result};

const COLUMNS: &str =
    "envelope_id, group_id, sender, sender_device, certified, message, received_at";

fn held_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<HeldGroupMessage> {
    let certified: Option<Vec<u8>> = row.try_get("certified")?;
    let certified = certified
        .map(|bytes| {
            <[u8; 64]>::try_from(bytes.as_slice())
                .map_err(|_| ClientError::Protocol("a held message's identity is damaged".into()))
        })
        .transpose()?;
    Ok(HeldGroupMessage {
        envelope_id: row.try_get("envelope_id")?,
        group_id: row.try_get("group_id")?,
        sender: row.try_get("sender")?,
        sender_device: u32::try_from(row.try_get::<i64, _>("sender_device")?)
            .map_err(|_| ClientError::Protocol("a held message's device is damaged".into()))?,
        certified,
        message: row.try_get("message")?,
        received_at: row.try_get("received_at")?,
    })
}

impl Store {
    /// Keeps a group message until its sender key arrives, and marks its
    /// envelope processed, together.
    pub async fn hold_group_message(&self, held: &HeldGroupMessage) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "INSERT OR REPLACE INTO held_group_messages ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(&held.envelope_id)
        .bind(&held.group_id)
        .bind(&held.sender)
        .bind(i64::from(held.sender_device))
        .bind(held.certified.as_ref().map(|c| c.to_vec()))
        .bind(&held.message)
        .bind(held.received_at)
        .execute(&mut *tx)
        .await?;
        super::sessions::finish_envelope_in(&mut tx, &held.envelope_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The messages held for one member device's key in one group, oldest
    /// first.
    pub async fn held_group_messages(
        &self,
        group_id: &[u8],
        sender: &str,
        device_id: u32,
    ) -> Result<Vec<HeldGroupMessage>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM held_group_messages \
             WHERE group_id = ? AND sender = ? AND sender_device = ? ORDER BY received_at"
        ))
        .bind(group_id)
        .bind(sender)
        .bind(i64::from(device_id))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(held_from_row).collect()
    }

    /// Held messages that arrived before `before`, oldest first.
    pub async fn held_group_messages_before(&self, before: i64) -> Result<Vec<HeldGroupMessage>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM held_group_messages WHERE received_at < ? ORDER BY received_at"
        ))
        .bind(before)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(held_from_row).collect()
    }

    /// How many messages are held, in all.
    pub async fn held_count(&self) -> Result<usize> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM held_group_messages")
            .fetch_one(&self.pool)
            .await?;
        Ok(usize::try_from(count).unwrap_or(usize::MAX))
    }

    /// Drops a held message.
    pub async fn drop_held_group_message(&self, envelope_id: &[u8]) -> Result<()> {
        sqlx::query("DELETE FROM held_group_messages WHERE envelope_id = ?")
            .bind(envelope_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records our key of a group's current chain as given to `holders`;
    /// a holder given one before keeps the earlier.
    pub async fn record_given_key(
        &self,
        group_id: &[u8],
        holders: &[String],
        distribution: &[u8],
        at: i64,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for holder in holders {
            sqlx::query(
                "INSERT OR IGNORE INTO group_given_keys (group_id, holder, distribution, given_at) \
                 VALUES (?, ?, ?, ?)",
            )
            .bind(group_id)
            .bind(holder)
            .bind(distribution)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Our key of a group's current chain as first given to `holder`.
    pub async fn given_key(
        &self,
        group_id: &[u8],
        holder: &str,
    ) -> Result<Option<(Zeroizing<Vec<u8>>, i64)>> {
        let row: Option<(Vec<u8>, i64)> = sqlx::query_as(
            "SELECT distribution, given_at FROM group_given_keys WHERE group_id = ? AND holder = ?",
        )
        .bind(group_id)
        .bind(holder)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(distribution, at)| (Zeroizing::new(distribution), at)))
    }

    /// Forgets the keys given of a group's chain.
    pub async fn forget_given_keys(&self, group_id: &[u8]) -> Result<()> {
        sqlx::query("DELETE FROM group_given_keys WHERE group_id = ?")
            .bind(group_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
