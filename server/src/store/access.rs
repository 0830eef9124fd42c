//! Unidentified delivery's records: the hash of each account's access key
//! and whether it accepts sealed envelopes from anyone
//! (`crypto/SPEC.md` §15.8).

use sqlx::Row;

use super::{Store, with_pool};

/// What the server knows about who may send an account sealed envelopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRecord {
    /// The account.
    pub account_id: i64,
    /// SHA-256 of its access key, once set.
    pub key_hash: Option<[u8; 32]>,
    /// Whether anyone may send it sealed envelopes without the key.
    pub sealed_from_strangers: bool,
}

impl Store {
    /// Sets an account's access key hash and stranger policy. With
    /// `if_absent`, only when no key is set yet or the same one is; returns
    /// whether it was written.
    pub async fn set_access(
        &self,
        account_id: i64,
        key_hash: &[u8; 32],
        sealed_from_strangers: bool,
        if_absent: bool,
    ) -> Result<bool, sqlx::Error> {
        // With `if_absent`, the same key again is taken too (a device whose
        // first answer was lost asks again), leaving the policy as it is.
        let sql = if if_absent {
            "UPDATE accounts SET sealed_from_strangers = CASE WHEN access_key_hash IS NULL \
             THEN $2 ELSE sealed_from_strangers END, access_key_hash = $1 \
             WHERE id = $3 AND (access_key_hash IS NULL OR access_key_hash = $1)"
        } else {
            "UPDATE accounts SET access_key_hash = $1, sealed_from_strangers = $2 WHERE id = $3"
        };
        with_pool!(self, pool => {
            Ok(sqlx::query(sql)
                .bind(&key_hash[..])
                .bind(sealed_from_strangers)
                .bind(account_id)
                .execute(pool)
                .await?
                .rows_affected()
                == 1)
        })
    }

    /// The access record of an enabled account named `username`.
    pub async fn access(&self, username: &str) -> Result<Option<AccessRecord>, sqlx::Error> {
        with_pool!(self, pool => {
            let Some(row) = sqlx::query(
                "SELECT id, access_key_hash, sealed_from_strangers FROM accounts \
                 WHERE username = $1 AND NOT disabled",
            )
            .bind(username)
            .fetch_optional(pool)
            .await?
            else {
                return Ok(None);
            };
            let hash: Option<Vec<u8>> = row.try_get("access_key_hash")?;
            Ok(Some(AccessRecord {
                account_id: row.try_get("id")?,
                key_hash: hash.and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok()),
                sealed_from_strangers: row.try_get("sealed_from_strangers")?,
            }))
        })
    }
}
