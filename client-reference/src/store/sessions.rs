//! Double Ratchet sessions per peer device, and the record of processed
//! envelopes. A session and the prekeys it consumed are saved together.

use sqlx::Row;
use starling_crypto::PreKeyStore;
use starling_crypto::ratchet::PeerSessions;
use zeroize::Zeroizing;

use super::{Store, now_millis};
use crate::error::Result;
use starling_client_core::records::InboxItem;

const INBOX_COLUMNS: &str =
    "envelope_id, sender, sender_device, pairwise, identity_changed, content";

fn inbox_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<InboxItem> {
    Ok(InboxItem {
        envelope_id: row.try_get("envelope_id")?,
        sender: row.try_get("sender")?,
        sender_device: u32::try_from(row.try_get::<i64, _>("sender_device")?).unwrap_or(0),
        pairwise: row.try_get::<i64, _>("pairwise")? != 0,
        identity_changed: row.try_get::<i64, _>("identity_changed")? != 0,
        content: Zeroizing::new(row.try_get("content")?),
    })
}

/// Marks an envelope processed and drops its staged content, in `tx`.
pub(super) async fn finish_envelope_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    envelope_id: &[u8],
) -> Result<()> {
    sqlx::query("DELETE FROM inbox WHERE envelope_id = ?")
        .bind(envelope_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("INSERT OR IGNORE INTO seen_envelopes (envelope_id, seen_at) VALUES (?, ?)")
        .bind(envelope_id)
        .bind(now_millis())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(super) async fn insert_inbox(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    item: &InboxItem,
) -> Result<()> {
    sqlx::query(
        "INSERT OR IGNORE INTO inbox (envelope_id, sender, sender_device, pairwise, identity_changed, content) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&item.envelope_id)
    .bind(&item.sender)
    .bind(i64::from(item.sender_device))
    .bind(i64::from(item.pairwise))
    .bind(i64::from(item.identity_changed))
    .bind(&item.content[..])
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// The sessions with one peer device (empty when there are none).
    pub async fn sessions(&self, username: &str, device_id: u32) -> Result<PeerSessions> {
        let row = sqlx::query("SELECT state FROM sessions WHERE username = ? AND device_id = ?")
            .bind(username)
            .bind(i64::from(device_id))
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => {
                let bytes: Vec<u8> = row.try_get("state")?;
                let bytes = Zeroizing::new(bytes);
                Ok(PeerSessions::from_bytes(&bytes)?)
            }
            None => Ok(PeerSessions::new()),
        }
    }

    /// Saves the sessions with one peer device, and (when a session was
    /// accepted) the prekeys it consumed, in one transaction.
    pub async fn save_sessions(
        &self,
        username: &str,
        device_id: u32,
        sessions: &PeerSessions,
        prekeys: Option<&PreKeyStore>,
    ) -> Result<()> {
        self.save_sessions_with_inbox(username, device_id, sessions, prekeys, None)
            .await
    }

    /// Like [`Self::save_sessions`], also staging what was decrypted in the
    /// same transaction.
    pub async fn save_sessions_with_inbox(
        &self,
        username: &str,
        device_id: u32,
        sessions: &PeerSessions,
        prekeys: Option<&PreKeyStore>,
        inbox: Option<&InboxItem>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        if let Some(item) = inbox {
            insert_inbox(&mut tx, item).await?;
        }
        sqlx::query(
            "INSERT INTO sessions (username, device_id, state) VALUES (?, ?, ?) \
             ON CONFLICT (username, device_id) DO UPDATE SET state = excluded.state",
        )
        .bind(username)
        .bind(i64::from(device_id))
        .bind(&sessions.to_bytes()[..])
        .execute(&mut *tx)
        .await?;
        if let Some(prekeys) = prekeys {
            sqlx::query("UPDATE account SET prekeys = ? WHERE id = 1")
                .bind(&prekeys.to_bytes()[..])
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Forgets the sessions with a device that no longer exists.
    pub async fn delete_sessions(&self, username: &str, device_id: u32) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE username = ? AND device_id = ?")
            .bind(username)
            .bind(i64::from(device_id))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether an envelope was already processed.
    pub async fn envelope_seen(&self, envelope_id: &[u8]) -> Result<bool> {
        Ok(
            sqlx::query("SELECT 1 FROM seen_envelopes WHERE envelope_id = ?")
                .bind(envelope_id)
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }

    /// Records an envelope as processed.
    pub async fn mark_envelope_seen(&self, envelope_id: &[u8]) -> Result<()> {
        sqlx::query("INSERT OR IGNORE INTO seen_envelopes (envelope_id, seen_at) VALUES (?, ?)")
            .bind(envelope_id)
            .bind(now_millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A staged envelope, if this one was decrypted but not yet applied.
    pub async fn inbox_item(&self, envelope_id: &[u8]) -> Result<Option<InboxItem>> {
        let row = sqlx::query(&format!(
            "SELECT {INBOX_COLUMNS} FROM inbox WHERE envelope_id = ?"
        ))
        .bind(envelope_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(inbox_from_row).transpose()
    }

    /// Every staged envelope (left by a crash), oldest first.
    pub async fn pending_inbox(&self) -> Result<Vec<InboxItem>> {
        let rows = sqlx::query(&format!("SELECT {INBOX_COLUMNS} FROM inbox ORDER BY rowid"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(inbox_from_row).collect()
    }

    /// Marks an envelope processed and drops its staged content, together.
    pub async fn finish_envelope(&self, envelope_id: &[u8]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        finish_envelope_in(&mut tx, envelope_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets processed envelope ids older than `before` (the server has
    /// long deleted them by then).
    pub async fn prune_seen_envelopes(&self, before: i64) -> Result<()> {
        sqlx::query("DELETE FROM seen_envelopes WHERE seen_at < ?")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// When a peer's repair request last started a fresh session with its
    /// device, if ever.
    pub async fn last_repair(&self, username: &str, device_id: u32) -> Result<Option<i64>> {
        let at = sqlx::query_scalar(
            "SELECT at FROM session_repairs WHERE username = ? AND device_id = ?",
        )
        .bind(username)
        .bind(i64::from(device_id))
        .fetch_optional(&self.pool)
        .await?;
        Ok(at)
    }

    /// Records when a repair with a peer device started.
    pub async fn record_repair(&self, username: &str, device_id: u32, at: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO session_repairs (username, device_id, at) VALUES (?, ?, ?) \
             ON CONFLICT (username, device_id) DO UPDATE SET at = excluded.at",
        )
        .bind(username)
        .bind(i64::from(device_id))
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
