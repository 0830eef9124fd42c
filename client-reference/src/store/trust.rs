//! Trust on first use: the identity key seen for each device of each
//! account, contacts' verification state, and the warnings a person must
//! see when a key changes.

use sqlx::Row;
use starling_crypto::IdentityKey;

use super::{Store, now_millis};
use crate::error::{ClientError, Result};
pub use starling_client_core::storage::ContactRecord;
pub use starling_client_core::tofu::TrustChange;
use starling_client_core::tofu::{self, Prior, StoredKey};

impl Store {
    /// Records the identity key of `username`'s device, trusting it on
    /// first use. A change on a known account is flagged and warned about.
    /// For this home's own account (`own_device` is this device's id), a
    /// device that was not there when this home was set up is announced as
    /// newly linked, without blocking anything, unless a device of the
    /// account vouched for it (`vouched_by`). The decision is the client
    /// core's ([`tofu::observe`]); this reads what it needs and records the
    /// outcome in one transaction.
    pub async fn observe_identity(
        &self,
        username: &str,
        device_id: u32,
        key: &IdentityKey,
        (own_device, vouched_by): (Option<u32>, Option<u32>),
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
        let stored = match existing.as_deref() {
            None => StoredKey::Absent,
            Some(old) if old == &bytes[..] => StoredKey::Same,
            Some(_) => StoredKey::Different,
        };
        if stored == StoredKey::Same {
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
        let present_at_setup = if own_device.is_some() && stored == StoredKey::Absent {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM setup_devices WHERE device_id = ?")
                .bind(i64::from(device_id))
                .fetch_one(&mut *tx)
                .await?
                > 0
        } else {
            false
        };
        let observed = tofu::observe(
            username,
            device_id,
            &Prior {
                stored,
                account_known: known != 0,
                own_account: own_device.is_some(),
                present_at_setup,
                vouched_by,
            },
        );
        // A key that raised a warning vouches for nothing until verified.
        sqlx::query("UPDATE identities SET may_vouch = ? WHERE username = ? AND device_id = ?")
            .bind(i64::from(observed.warning.is_none()))
            .bind(username)
            .bind(i64::from(device_id))
            .execute(&mut *tx)
            .await?;
        if let Some(text) = &observed.warning {
            if observed.mark_identity_changed {
                sqlx::query("UPDATE contacts SET identity_changed = 1 WHERE username = ?")
                    .bind(username)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("INSERT INTO warnings (username, text, created_at) VALUES (?, ?, ?)")
                .bind(username)
                .bind(text)
                .bind(now_millis())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(observed.change)
    }

    /// Records the devices our account has as this home is set up; they are
    /// ours, and any other own device seen later is announced.
    pub async fn record_setup_devices(&self, devices: &[u32]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for device in devices {
            sqlx::query("INSERT OR IGNORE INTO setup_devices (device_id) VALUES (?)")
                .bind(i64::from(*device))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Forgets a device that the account no longer has. If it is one of our
    /// own, its id is no longer taken as present at setup.
    pub async fn forget_device(&self, username: &str, device_id: u32) -> Result<()> {
        sqlx::query("DELETE FROM identities WHERE username = ? AND device_id = ?")
            .bind(username)
            .bind(i64::from(device_id))
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "DELETE FROM setup_devices WHERE device_id = ? \
             AND EXISTS (SELECT 1 FROM account WHERE username = ?)",
        )
        .bind(i64::from(device_id))
        .bind(username)
        .execute(&self.pool)
        .await?;
        self.delete_sessions(username, device_id).await
    }

    /// The key held for a device, when it may vouch for a new device of
    /// its account (`crypto/SPEC.md` §2.5).
    pub async fn vouching_key(
        &self,
        username: &str,
        device_id: u32,
    ) -> Result<Option<IdentityKey>> {
        let key: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT identity_key FROM identities WHERE username = ? AND device_id = ? AND may_vouch = 1",
        )
        .bind(username)
        .bind(i64::from(device_id))
        .fetch_optional(&self.pool)
        .await?;
        key.map(|key| IdentityKey::from_bytes(&key).map_err(ClientError::from))
            .transpose()
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
                    IdentityKey::from_bytes(&key)?,
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
        sqlx::query("UPDATE identities SET may_vouch = 1 WHERE username = ?")
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

#[cfg(test)]
mod tests {
    use starling_crypto::{IdentityKeyPair, PreKeyStore};
    use zeroize::Zeroizing;

    use super::*;
    use crate::StoreKey;
    use crate::store::AccountRecord;

    async fn own_store(home: &std::path::Path) -> Store {
        let store = Store::open(home, &StoreKey::from_bytes([5; 32]))
            .await
            .unwrap();
        store
            .create_account(&AccountRecord {
                server_url: "https://127.0.0.1:1".into(),
                ca_fingerprint: None,
                username: "alice".into(),
                device_id: 7,
                credential: Zeroizing::new("secret".into()),
                identity: IdentityKeyPair::generate(&mut rand::rngs::OsRng),
                prekeys: PreKeyStore::new(),
            })
            .await
            .unwrap();
        store
    }

    fn key() -> IdentityKey {
        IdentityKeyPair::generate(&mut rand::rngs::OsRng)
            .public()
            .clone()
    }

    #[tokio::test]
    async fn an_own_device_is_announced_unless_present_at_setup_whatever_its_id() {
        let home = tempfile::tempdir().unwrap();
        let store = own_store(home.path()).await;
        store.record_setup_devices(&[3, 7]).await.unwrap();
        store
            .observe_identity("alice", 3, &key(), (Some(7), None))
            .await
            .unwrap();
        assert!(store.warnings().await.unwrap().is_empty());
        // A device the server numbers below ours, that was not there at setup.
        store
            .observe_identity("alice", 2, &key(), (Some(7), None))
            .await
            .unwrap();
        let warnings = store.warnings().await.unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].1.contains("new device (2)"), "{warnings:?}");
        // A removed device's id coming back is a new device too.
        store.forget_device("alice", 3).await.unwrap();
        store
            .observe_identity("alice", 3, &key(), (Some(7), None))
            .await
            .unwrap();
        assert_eq!(store.warnings().await.unwrap().len(), 2);
        // Own devices never block sending to ourselves.
        assert!(!store.contact("alice").await.unwrap().identity_changed);
    }

    #[tokio::test]
    async fn a_contacts_new_key_warns_and_flags_the_contact() {
        let home = tempfile::tempdir().unwrap();
        let store = own_store(home.path()).await;
        let first = store
            .observe_identity("bob", 1, &key(), (None, None))
            .await
            .unwrap();
        assert_eq!(first, TrustChange::FirstContact);
        assert!(store.warnings().await.unwrap().is_empty());
        let changed = store
            .observe_identity("bob", 1, &key(), (None, None))
            .await
            .unwrap();
        assert_eq!(changed, TrustChange::Changed);
        assert!(store.contact("bob").await.unwrap().identity_changed);
        assert_eq!(store.warnings().await.unwrap().len(), 1);
    }
}
