//! Double Ratchet sessions per peer device, and the record of processed
//! envelopes. A session and the prekeys it consumed are saved together.

use sqlx::Row;
use starling_crypto::PreKeyStore;
use starling_crypto::ratchet::PeerSessions;
use zeroize::Zeroizing;

use super::{Store, now_millis};
use crate::error::{ClientError, Result};

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
                PeerSessions::from_bytes(&bytes).map_err(ClientError::crypto)
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
        let mut tx = self.pool.begin().await?;
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

    /// Forgets processed envelope ids older than `before` (the server has
    /// long deleted them by then).
    pub async fn prune_seen_envelopes(&self, before: i64) -> Result<()> {
        sqlx::query("DELETE FROM seen_envelopes WHERE seen_at < ?")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
