//! Accounts, devices and invite codes.

use sqlx::Row;

use super::{Store, with_pool};

/// A device to create.
#[derive(Debug, Clone)]
pub struct NewDevice {
    /// SHA-256 of the device's credential (the credential itself is never
    /// stored).
    pub credential_hash: [u8; 32],
    /// The device's encoded public identity key.
    pub identity_key: Vec<u8>,
}

/// What authentication needs to know about a device.
#[derive(Debug, Clone)]
pub struct DeviceRecord {
    /// The owning account.
    pub account_id: i64,
    /// The device.
    pub device_id: u32,
    /// SHA-256 of its credential.
    pub credential_hash: Vec<u8>,
    /// Whether the account is disabled.
    pub disabled: bool,
    /// Whether the device is a manager (it links and removes the
    /// account's devices).
    pub manager: bool,
}

/// What removing a device did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Removed, with its keys and queue; a revocation is recorded.
    Removed,
    /// No such device in the account.
    NoSuchDevice,
    /// The device asked to remove itself (a device is removed from
    /// another).
    Itself,
}

/// A device (or with `device_id` `None`, every device of an account)
/// whose live connections must close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    /// Increasing; each process applies those after the last it saw.
    pub id: i64,
    /// The account.
    pub account_id: i64,
    /// The device, or every device of the account.
    pub device_id: Option<u32>,
}

/// Why a registration was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The invite code is unknown, used or expired.
    #[error("invalid or expired invite code")]
    InvalidInvite,
    /// The username is taken.
    #[error("username taken")]
    UsernameTaken,
    /// The invite is bound to another username.
    #[error("the invite is for another username")]
    InviteForAnotherName,
    /// The username is in the organisation's directory and the invite is
    /// not bound to it (or there is none).
    #[error("the username is reserved by the directory")]
    ReservedName,
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub(super) fn device_id(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

impl Store {
    /// Stores invite codes (by hash) valid until `expires_at` (ms).
    pub async fn create_invites(
        &self,
        code_hashes: &[[u8; 32]],
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            for hash in code_hashes {
                sqlx::query("INSERT INTO invites (code_hash, expires_at) VALUES ($1, $2)")
                    .bind(&hash[..])
                    .bind(expires_at)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        })
    }

    /// Stores one invite code (by hash) that registers only `username`.
    pub async fn create_invite_for(
        &self,
        code_hash: &[u8; 32],
        expires_at: i64,
        username: &str,
    ) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("INSERT INTO invites (code_hash, expires_at, username) VALUES ($1, $2, $3)")
                .bind(&code_hash[..])
                .bind(expires_at)
                .bind(username)
                .execute(pool)
                .await
                .map(|_| ())
        })
    }

    /// Creates an account with its first device (id 1), consuming the
    /// invite (unless `invite` is `None`, for open registration). All or
    /// nothing: a taken username leaves the invite unused.
    pub async fn register(
        &self,
        username: &str,
        invite: Option<[u8; 32]>,
        device: &NewDevice,
        now: i64,
    ) -> Result<i64, RegisterError> {
        with_pool!(self, pool => {
            // A read first: a bogus invite never takes the write lock.
            let bound = match invite {
                Some(hash) => {
                    let row: Option<(Option<String>,)> = sqlx::query_as(
                        "SELECT username FROM invites WHERE code_hash = $1 AND expires_at > $2",
                    )
                    .bind(&hash[..])
                    .bind(now)
                    .fetch_optional(pool)
                    .await?;
                    let (bound,) = row.ok_or(RegisterError::InvalidInvite)?;
                    if bound.as_deref().is_some_and(|b| b != username) {
                        return Err(RegisterError::InviteForAnotherName);
                    }
                    bound
                }
                None => None,
            };
            let mut tx = pool.begin_with(self.begin_write()).await?;
            // A name the directory publishes is its member's: only an
            // invite bound to it registers it.
            if bound.is_none() {
                let reserved: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM directory_entries WHERE username = $1",
                )
                .bind(username)
                .fetch_one(&mut *tx)
                .await?;
                if reserved > 0 {
                    return Err(RegisterError::ReservedName);
                }
            }
            if let Some(hash) = invite {
                let consumed = sqlx::query(
                    "DELETE FROM invites WHERE code_hash = $1 AND expires_at > $2 \
                     AND (username IS NULL OR username = $3)",
                )
                .bind(&hash[..])
                .bind(now)
                .bind(username)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if consumed != 1 {
                    return Err(RegisterError::InvalidInvite);
                }
            }
            let inserted = sqlx::query(
                "INSERT INTO accounts (username, created_at, last_device_id) VALUES ($1, $2, 1) \
                 ON CONFLICT (username) DO NOTHING RETURNING id",
            )
            .bind(username)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = inserted else {
                return Err(RegisterError::UsernameTaken);
            };
            let account_id: i64 = row.try_get("id")?;
            sqlx::query(
                "INSERT INTO devices (account_id, device_id, credential_hash, identity_key, created_at, manager) \
                 VALUES ($1, 1, $2, $3, $4, TRUE)",
            )
            .bind(account_id)
            .bind(&device.credential_hash[..])
            .bind(&device.identity_key)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(super::MARK_CHANGED)
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(account_id)
        })
    }

    /// The device record used to authenticate a request.
    pub async fn device_for_auth(
        &self,
        username: &str,
        device: u32,
    ) -> Result<Option<DeviceRecord>, sqlx::Error> {
        with_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT a.id, d.device_id, d.credential_hash, a.disabled, d.manager FROM accounts a \
                 JOIN devices d ON d.account_id = a.id WHERE a.username = $1 AND d.device_id = $2",
            )
            .bind(username)
            .bind(i64::from(device))
            .fetch_optional(pool)
            .await?;
            row.map(|row| {
                Ok(DeviceRecord {
                    account_id: row.try_get("id")?,
                    device_id: device_id(row.try_get("device_id")?),
                    credential_hash: row.try_get("credential_hash")?,
                    disabled: row.try_get("disabled")?,
                    manager: row.try_get("manager")?,
                })
            })
            .transpose()
        })
    }

    /// The credential hash `username`'s device `device` had when it was
    /// removed, if it was.
    pub async fn removed_credential(
        &self,
        username: &str,
        device: u32,
    ) -> Result<Option<Vec<u8>>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT r.credential_hash FROM accounts a \
                 JOIN removed_devices r ON r.account_id = a.id \
                 WHERE a.username = $1 AND r.device_id = $2",
            )
            .bind(username)
            .bind(i64::from(device))
            .fetch_optional(pool)
            .await
        })
    }

    /// An account's id and its device ids, ascending; `None` if no such
    /// (enabled) account.
    pub async fn devices_of(&self, username: &str) -> Result<Option<(i64, Vec<u32>)>, sqlx::Error> {
        with_pool!(self, pool => {
            // One statement: the send path calls this for every message.
            let rows = sqlx::query(
                "SELECT a.id, d.device_id FROM accounts a LEFT JOIN devices d ON d.account_id = a.id \
                 WHERE a.username = $1 AND NOT a.disabled ORDER BY d.device_id",
            )
            .bind(username)
            .fetch_all(pool)
            .await?;
            let Some(first) = rows.first() else { return Ok(None) };
            let account_id: i64 = first.try_get("id")?;
            let mut ids = Vec::with_capacity(rows.len());
            for row in &rows {
                if let Some(device) = row.try_get::<Option<i64>, _>("device_id")? {
                    ids.push(device_id(device));
                }
            }
            Ok(Some((account_id, ids)))
        })
    }

    /// A device's encoded identity key.
    pub async fn identity_key(
        &self,
        account_id: i64,
        device: u32,
    ) -> Result<Option<Vec<u8>>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("SELECT identity_key FROM devices WHERE account_id = $1 AND device_id = $2")
                .bind(account_id)
                .bind(i64::from(device))
                .fetch_optional(pool)
                .await?
                .map(|row| row.try_get("identity_key"))
                .transpose()
        })
    }

    /// Removes `device` of an account on behalf of its device `by` (never
    /// itself) with its keys and queued envelopes, and records its
    /// revocation, in one transaction.
    pub async fn remove_device(
        &self,
        account_id: i64,
        by: u32,
        device: u32,
        now: i64,
    ) -> Result<Removal, sqlx::Error> {
        if by == device {
            return Ok(Removal::Itself);
        }
        with_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            for table in ["envelopes", "one_time_prekeys", "kem_prekeys", "signed_prekeys"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE account_id = $1 AND device_id = $2"))
                    .bind(account_id)
                    .bind(i64::from(device))
                    .execute(&mut *tx)
                    .await?;
            }
            // Kept so that the removed device is told why it is refused.
            sqlx::query(
                "INSERT INTO removed_devices (account_id, device_id, credential_hash) \
                 SELECT account_id, device_id, credential_hash FROM devices \
                 WHERE account_id = $1 AND device_id = $2 \
                 ON CONFLICT (account_id, device_id) DO UPDATE SET \
                 credential_hash = excluded.credential_hash",
            )
            .bind(account_id)
            .bind(i64::from(device))
            .execute(&mut *tx)
            .await?;
            let removed = sqlx::query("DELETE FROM devices WHERE account_id = $1 AND device_id = $2")
                .bind(account_id)
                .bind(i64::from(device))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if removed != 1 {
                return Ok(Removal::NoSuchDevice);
            }
            sqlx::query("DELETE FROM link_codes WHERE account_id = $1 AND issuer_device_id = $2")
                .bind(account_id)
                .bind(i64::from(device))
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO revocations (account_id, device_id, created_at) VALUES ($1, $2, $3)")
                .bind(account_id)
                .bind(i64::from(device))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(super::MARK_CHANGED)
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Removal::Removed)
        })
    }

    /// Every account: username, device count, disabled.
    pub async fn list_accounts(&self) -> Result<Vec<(String, i64, bool)>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query(
                "SELECT a.username, COUNT(d.device_id) AS devices, a.disabled FROM accounts a \
                 LEFT JOIN devices d ON d.account_id = a.id GROUP BY a.id, a.username, a.disabled ORDER BY a.username",
            )
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| Ok((row.try_get("username")?, row.try_get("devices")?, row.try_get("disabled")?)))
            .collect()
        })
    }

    /// Disables or re-enables an account; `false` if there is none.
    /// Disabling records a revocation of all its devices in the same
    /// transaction, so that every server process closes their connections.
    pub async fn set_disabled(
        &self,
        username: &str,
        disabled: bool,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        with_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            let account: Option<i64> = sqlx::query_scalar(
                "UPDATE accounts SET disabled = $1 WHERE username = $2 RETURNING id",
            )
            .bind(disabled)
            .bind(username)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(account_id) = account else { return Ok(false) };
            if disabled {
                sqlx::query("DELETE FROM link_codes WHERE account_id = $1")
                    .bind(account_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("INSERT INTO revocations (account_id, device_id, created_at) VALUES ($1, NULL, $2)")
                    .bind(account_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Deletes invites and link codes that expired before `now`; returns
    /// how many.
    pub async fn purge_expired_codes(&self, now: i64) -> Result<u64, sqlx::Error> {
        with_pool!(self, pool => {
            let mut purged = 0;
            for table in ["invites", "link_codes"] {
                purged += sqlx::query(&format!("DELETE FROM {table} WHERE expires_at <= $1"))
                    .bind(now)
                    .execute(pool)
                    .await?
                    .rows_affected();
            }
            Ok(purged)
        })
    }

    /// The revocations recorded at or after `since` (ms), in order.
    pub async fn revocations_since(&self, since: i64) -> Result<Vec<Revocation>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("SELECT id, account_id, device_id FROM revocations WHERE created_at >= $1 ORDER BY id")
                .bind(since)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    Ok(Revocation {
                        id: row.try_get("id")?,
                        account_id: row.try_get("account_id")?,
                        device_id: row.try_get::<Option<i64>, _>("device_id")?.map(device_id),
                    })
                })
                .collect()
        })
    }

    /// Forgets revocations recorded before `before` (ms): every process
    /// has long applied them.
    pub async fn purge_revocations(&self, before: i64) -> Result<u64, sqlx::Error> {
        with_pool!(self, pool => {
            Ok(sqlx::query("DELETE FROM revocations WHERE created_at < $1")
                .bind(before)
                .execute(pool)
                .await?
                .rows_affected())
        })
    }
}
