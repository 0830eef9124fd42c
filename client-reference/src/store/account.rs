//! The account row: server, username, device, credential, identity and
//! prekey secrets of this home.

use sqlx::Row;
use starling_crypto::{IdentityKeyPair, PreKeyStore};
use zeroize::Zeroizing;

use super::{Store, now_millis};
use crate::error::{ClientError, Result};

/// This home's account.
pub struct AccountRecord {
    /// Base URL of the server.
    pub server_url: String,
    /// Pinned SHA-256 fingerprint of the server's certificate (hex).
    pub ca_fingerprint: Option<String>,
    /// Our username.
    pub username: String,
    /// Our device id.
    pub device_id: u32,
    /// Our credential for the server.
    pub credential: Zeroizing<String>,
    /// Our identity key pair.
    pub identity: IdentityKeyPair,
    /// Our prekey secrets.
    pub prekeys: PreKeyStore,
}

impl std::fmt::Debug for AccountRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountRecord")
            .field("server_url", &self.server_url)
            .field("username", &self.username)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Stores the account of a fresh registration or link.
    pub async fn create_account(&self, account: &AccountRecord) -> Result<()> {
        if let Some(existing) = self.account_username().await? {
            return Err(ClientError::AlreadyRegistered(existing));
        }
        sqlx::query(
            "INSERT INTO account (id, server_url, ca_fingerprint, username, device_id, credential, identity, prekeys, created_at) \
             VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&account.server_url)
        .bind(&account.ca_fingerprint)
        .bind(&account.username)
        .bind(i64::from(account.device_id))
        .bind(account.credential.as_str())
        .bind(&account.identity.to_bytes()[..])
        .bind(&account.prekeys.to_bytes()[..])
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The username of this home's account, if any.
    pub async fn account_username(&self) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT username FROM account WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Loads the account.
    pub async fn account(&self) -> Result<AccountRecord> {
        let row = sqlx::query(
            "SELECT server_url, ca_fingerprint, username, device_id, credential, identity, prekeys FROM account WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?
        .ok_or(ClientError::NotRegistered)?;
        let identity: Vec<u8> = row.try_get("identity")?;
        let identity = Zeroizing::new(identity);
        let prekeys: Vec<u8> = row.try_get("prekeys")?;
        let prekeys = Zeroizing::new(prekeys);
        let device_id: i64 = row.try_get("device_id")?;
        Ok(AccountRecord {
            server_url: row.try_get("server_url")?,
            ca_fingerprint: row.try_get("ca_fingerprint")?,
            username: row.try_get("username")?,
            device_id: u32::try_from(device_id).map_err(ClientError::protocol)?,
            credential: Zeroizing::new(row.try_get("credential")?),
            identity: IdentityKeyPair::from_bytes(&identity)?,
            prekeys: PreKeyStore::from_bytes(&prekeys)?,
        })
    }

    /// The stored prekey secrets (what the last committed change left).
    pub async fn load_prekeys(&self) -> Result<PreKeyStore> {
        let bytes: Vec<u8> = sqlx::query_scalar("SELECT prekeys FROM account WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?
            .ok_or(ClientError::NotRegistered)?;
        let bytes = Zeroizing::new(bytes);
        Ok(PreKeyStore::from_bytes(&bytes)?)
    }

    /// Replaces the stored prekey secrets.
    pub async fn save_prekeys(&self, prekeys: &PreKeyStore) -> Result<()> {
        sqlx::query("UPDATE account SET prekeys = ? WHERE id = 1")
            .bind(&prekeys.to_bytes()[..])
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
