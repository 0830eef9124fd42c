//! What an operator does to an account from the command line: remove every
//! device of it (the member registers again with an invite bound to the
//! name), or delete it. Both close its live connections on every server
//! process (a revocation) and have the transparency log publish the change.

use super::accounts::{NewDevice, RegisterError};
use super::{Store, with_pool};

/// What resetting or deleting an account did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountRemoval {
    /// Done: how many devices it had, and (for a deletion) the ids of the
    /// attachments it had uploaded, whose files the caller removes.
    Done {
        /// Devices removed.
        devices: u64,
        /// Attachment ids whose files go too.
        attachments: Vec<Vec<u8>>,
    },
    /// No account of that name.
    NoSuchAccount,
}

impl Store {
    /// Removes every device of `username` with its keys, queue and push
    /// endpoints; the account and its name stay, for a registration with
    /// the invite `invite` (its hash, valid until `expires_at`), bound to
    /// the name and stored in the same transaction. Every other invite
    /// bound to the name goes: only this one can take the account. Each
    /// device is told it was removed.
    pub async fn reset_devices(
        &self,
        username: &str,
        invite: &[u8; 32],
        expires_at: i64,
        now: i64,
    ) -> Result<AccountRemoval, sqlx::Error> {
        with_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            let account: Option<i64> = sqlx::query_scalar("SELECT id FROM accounts WHERE username = $1")
                .bind(username)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(account_id) = account else {
                return Ok(AccountRemoval::NoSuchAccount);
            };
            sqlx::query(
                "INSERT INTO removed_devices (account_id, device_id, credential_hash) \
                 SELECT account_id, device_id, credential_hash FROM devices WHERE account_id = $1 \
                 ON CONFLICT (account_id, device_id) DO UPDATE SET \
                 credential_hash = excluded.credential_hash",
            )
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
            // Keys, envelopes and push endpoints go with their device.
            let devices = sqlx::query("DELETE FROM devices WHERE account_id = $1")
                .bind(account_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            for sql in [
                "DELETE FROM link_codes WHERE account_id = $1",
                super::MARK_CHANGED,
            ] {
                sqlx::query(sql).bind(account_id).execute(&mut *tx).await?;
            }
            sqlx::query("INSERT INTO revocations (account_id, device_id, created_at) VALUES ($1, NULL, $2)")
                .bind(account_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM invites WHERE username = $1")
                .bind(username)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO invites (code_hash, expires_at, username) VALUES ($1, $2, $3)")
                .bind(&invite[..])
                .bind(expires_at)
                .bind(username)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(AccountRemoval::Done { devices, attachments: Vec::new() })
        })
    }

    /// Deletes `username`'s account with everything it holds (devices,
    /// keys, queue, attachments, link codes); the name is free again. Its
    /// name waits in the transparency queue until the log marks it
    /// deleted.
    pub async fn delete_account(
        &self,
        username: &str,
        now: i64,
    ) -> Result<AccountRemoval, sqlx::Error> {
        with_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            let account: Option<i64> = sqlx::query_scalar("SELECT id FROM accounts WHERE username = $1")
                .bind(username)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(account_id) = account else {
                return Ok(AccountRemoval::NoSuchAccount);
            };
            let devices: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM devices WHERE account_id = $1")
                .bind(account_id)
                .fetch_one(&mut *tx)
                .await?;
            let attachments: Vec<Vec<u8>> =
                sqlx::query_scalar("SELECT id FROM attachments WHERE account_id = $1")
                    .bind(account_id)
                    .fetch_all(&mut *tx)
                    .await?;
            sqlx::query(
                "INSERT INTO kt_pending (account_id, seq, username) VALUES ($1, 1, $2) \
                 ON CONFLICT (account_id) DO UPDATE SET seq = kt_pending.seq + 1, \
                 username = excluded.username",
            )
            .bind(account_id)
            .bind(username)
            .execute(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO revocations (account_id, device_id, created_at) VALUES ($1, NULL, $2)")
                .bind(account_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            // An invite issued for the old account does not carry over.
            sqlx::query("DELETE FROM invites WHERE username = $1")
                .bind(username)
                .execute(&mut *tx)
                .await?;
            // Devices (and their keys, queue, push endpoints), attachments,
            // link codes and removal records go with the account.
            sqlx::query("DELETE FROM accounts WHERE id = $1")
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(AccountRemoval::Done {
                devices: u64::try_from(devices).unwrap_or(0),
                attachments,
            })
        })
    }

    /// Registers a new first device in `username`'s account after an
    /// operator removed all its devices (`admin devices reset`), consuming
    /// `invite`, which must be bound to the name. Returns the account and
    /// the new device's id (never one used before); `UsernameTaken` when
    /// the account still has a device or is disabled.
    pub async fn register_again(
        &self,
        username: &str,
        invite: [u8; 32],
        device: &NewDevice,
        now: i64,
    ) -> Result<(i64, u32), RegisterError> {
        with_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            let account: Option<(i64, i64)> = sqlx::query_as(
                "SELECT a.id, a.last_device_id FROM accounts a WHERE a.username = $1 \
                 AND NOT a.disabled AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.account_id = a.id)",
            )
            .bind(username)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((account_id, last)) = account else {
                return Err(RegisterError::UsernameTaken);
            };
            let consumed = sqlx::query(
                "DELETE FROM invites WHERE code_hash = $1 AND expires_at > $2 AND username = $3",
            )
            .bind(&invite[..])
            .bind(now)
            .bind(username)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if consumed != 1 {
                return Err(RegisterError::UsernameTaken);
            }
            // No other invite bound to the name takes the account later.
            sqlx::query("DELETE FROM invites WHERE username = $1")
                .bind(username)
                .execute(&mut *tx)
                .await?;
            let device_id = last.saturating_add(1);
            sqlx::query("UPDATE accounts SET last_device_id = $1 WHERE id = $2")
                .bind(device_id)
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO devices (account_id, device_id, credential_hash, identity_key, created_at, manager) \
                 VALUES ($1, $2, $3, $4, $5, TRUE)",
            )
            .bind(account_id)
            .bind(device_id)
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
            Ok((account_id, super::accounts::device_id(device_id)))
        })
    }

    /// Invites not yet used nor expired: the name each is bound to (if
    /// any) and its expiry (ms), soonest first.
    pub async fn open_invites(&self, now: i64) -> Result<Vec<(Option<String>, i64)>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT username, expires_at FROM invites WHERE expires_at > $1 ORDER BY expires_at",
            )
            .bind(now)
            .fetch_all(pool)
            .await
        })
    }

    /// Takes `username` out of the directory; `false` if it was not in it.
    /// The name is no longer reserved for an invite bound to it.
    pub async fn remove_directory_entry(&self, username: &str) -> Result<bool, sqlx::Error> {
        with_pool!(self, pool => {
            Ok(sqlx::query("DELETE FROM directory_entries WHERE username = $1")
                .bind(username)
                .execute(pool)
                .await?
                .rows_affected()
                == 1)
        })
    }

    /// The SQLite database file, if the store is SQLite.
    pub fn sqlite_path(&self) -> Option<&std::path::Path> {
        self.sqlite_file.as_deref().map(std::path::PathBuf::as_path)
    }
}
