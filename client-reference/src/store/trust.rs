//! Trust on first use: the identity key seen for each device of each
//! account, contacts' verification state, and the warnings a person must
//! see when a key changes.

use sqlx::Row;
use starling_crypto::IdentityKey;

use super::{Store, now_millis};
use crate::error::{ClientError, Result};

/// What observing a device's identity key found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustChange {
    /// Already known with this key.
    Known,
    /// First key ever seen for this account (trusted on first use).
    FirstContact,
    /// A new device of a known account, or a device whose key changed.
    Changed,
}

/// A contact's trust state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactRecord {
    /// Safety number compared and confirmed.
    pub verified: bool,
    /// Keys changed since trust was established.
    pub identity_changed: bool,
    /// Disappearing-message timer of the conversation, 0 = off.
    pub expire_seconds: u32,
}

impl Store {
    /// Records the identity key of `username`'s device, trusting it on
    /// first use. A change on a known account is flagged and warned about.
    /// For this home's own account (`own_device` is this device's id), a
    /// device newer than this one is announced as newly linked, without
    /// blocking anything.
    pub async fn observe_identity(
        &self,
        username: &str,
        device_id: u32,
        key: &IdentityKey,
        own_device: Option<u32>,
    ) -> Result<TrustChange> {
        let bytes = key.to_bytes();
        let mut tx = self.pool.begin().await?;
        let existing: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT identity_key FROM identities WHERE username = ? AND device_id = ?",
        )
        .bind(username)
        .bind(i64::from(device_id))
        .fetch_optional(&mut *tx)
        .await?;
        if existing.as_deref() == Some(&bytes[..]) {
            return Ok(TrustChange::Known);
        }
        let known: i64 =
            sqlx::query_scalar("SELECT count(*) FROM contacts WHERE username = ? AND known = 1")
                .bind(username)
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO identities (username, device_id, identity_key, first_seen) VALUES (?, ?, ?, ?) \
             ON CONFLICT (username, device_id) DO UPDATE SET identity_key = excluded.identity_key, first_seen = excluded.first_seen",
        )
        .bind(username)
        .bind(i64::from(device_id))
        .bind(&bytes)
        .bind(now_millis())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO contacts (username, known) VALUES (?, 1) ON CONFLICT (username) DO UPDATE SET known = 1",
        )
            .bind(username)
            .execute(&mut *tx)
            .await?;
        let change = if existing.is_none() && known == 0 {
            TrustChange::FirstContact
        } else {
            TrustChange::Changed
        };
        let warning = match own_device {
            // Devices older than this one were there when it was linked.
            Some(this) if existing.is_none() && device_id < this => None,
            Some(_) if existing.is_none() => Some(format!(
                "a new device ({device_id}) was linked to your account; if it is not yours, remove it: starling devices remove {device_id}"
            )),
            Some(_) => Some(format!(
                "your device {device_id} has a new identity key; if you did not reinstall it, remove it: starling devices remove {device_id}"
            )),
            None if change == TrustChange::FirstContact => None,
            None if existing.is_some() => Some(format!(
                "{username}'s device {device_id} has a new identity key: the safety number changed"
            )),
            None => Some(format!(
                "{username} has a new device ({device_id}): the safety number changed"
            )),
        };
        if let Some(text) = warning {
            if own_device.is_none() {
                sqlx::query("UPDATE contacts SET identity_changed = 1 WHERE username = ?")
                    .bind(username)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("INSERT INTO warnings (username, text, created_at) VALUES (?, ?, ?)")
                .bind(username)
                .bind(&text)
                .bind(now_millis())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(change)
    }

    /// Forgets a device that the account no longer has.
    pub async fn forget_device(&self, username: &str, device_id: u32) -> Result<()> {
        sqlx::query("DELETE FROM identities WHERE username = ? AND device_id = ?")
            .bind(username)
            .bind(i64::from(device_id))
            .execute(&self.pool)
            .await?;
        self.delete_sessions(username, device_id).await
    }

    /// The identity keys known for an account, by device.
    pub async fn identity_keys(&self, username: &str) -> Result<Vec<(u32, IdentityKey)>> {
        let rows = sqlx::query(
            "SELECT device_id, identity_key FROM identities WHERE username = ? ORDER BY device_id",
        )
        .bind(username)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let device: i64 = row.try_get("device_id")?;
                let key: Vec<u8> = row.try_get("identity_key")?;
                Ok((
                    u32::try_from(device).map_err(ClientError::protocol)?,
                    IdentityKey::from_bytes(&key).map_err(ClientError::crypto)?,
                ))
            })
            .collect()
    }

    /// A contact's trust state (default when unknown).
    pub async fn contact(&self, username: &str) -> Result<ContactRecord> {
        let row = sqlx::query(
            "SELECT verified, identity_changed, expire_seconds FROM contacts WHERE username = ?",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(row) => ContactRecord {
                verified: row.try_get::<i64, _>("verified")? != 0,
                identity_changed: row.try_get::<i64, _>("identity_changed")? != 0,
                expire_seconds: u32::try_from(row.try_get::<i64, _>("expire_seconds")?)
                    .unwrap_or(0),
            },
            None => ContactRecord::default(),
        })
    }

    /// Marks a contact verified (their current keys) and clears warnings.
    pub async fn set_verified(&self, username: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO contacts (username, verified, identity_changed) VALUES (?, 1, 0) \
             ON CONFLICT (username) DO UPDATE SET verified = 1, identity_changed = 0",
        )
        .bind(username)
        .execute(&self.pool)
        .await?;
        sqlx::query("DELETE FROM warnings WHERE username = ?")
            .bind(username)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Sets a one-to-one conversation's disappearing-message timer.
    pub async fn set_contact_timer(&self, username: &str, seconds: u32) -> Result<()> {
        sqlx::query(
            "INSERT INTO contacts (username, expire_seconds) VALUES (?, ?) \
             ON CONFLICT (username) DO UPDATE SET expire_seconds = excluded.expire_seconds",
        )
        .bind(username)
        .bind(i64::from(seconds))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Outstanding identity warnings, oldest first: (username, text).
    pub async fn warnings(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT username, text FROM warnings ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("username")?, row.try_get("text")?)))
            .collect()
    }
}
