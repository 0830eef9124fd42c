//! Public prekeys: upload, atomic claim, counts.
//!
//! Claiming a one-time prekey is one `DELETE … RETURNING` statement, so a
//! key is handed out at most once even under concurrent claims from many
//! connections and several server processes. On PostgreSQL the candidate
//! row is picked `FOR UPDATE SKIP LOCKED`, so concurrent claimers take
//! different keys instead of queueing on the same one.

use sqlx::Row;

use super::{Backend, Store, with_pool};

/// Prekeys a device uploads, already verified against its identity.
#[derive(Debug, Clone, Default)]
pub struct UploadedKeys {
    /// The new signed prekey (replaces the old one).
    pub signed: Option<Vec<u8>>,
    /// One-time X25519 prekeys: `(id, encoded)`.
    pub one_time: Vec<(u32, Vec<u8>)>,
    /// One-time ML-KEM prekeys: `(id, encoded)`.
    pub kem_one_time: Vec<(u32, Vec<u8>)>,
    /// A new last-resort ML-KEM prekey (replaces the old one).
    pub kem_last_resort: Option<(u32, Vec<u8>)>,
}

/// What a bundle fetch took for one device.
#[derive(Debug, Clone, Default)]
pub struct ClaimedKeys {
    /// The signed prekey.
    pub signed: Option<Vec<u8>>,
    /// A one-time prekey, if any were left.
    pub one_time: Option<Vec<u8>>,
    /// A one-time ML-KEM prekey, or else the last-resort one.
    pub kem: Option<Vec<u8>>,
}

pub use starling_protocol::api::PrekeyCounts;

fn claim_sql(backend: Backend, table: &str, extra: &str) -> String {
    match backend {
        Backend::Sqlite => format!(
            "DELETE FROM {table} WHERE rowid = (SELECT rowid FROM {table} \
             WHERE account_id = $1 AND device_id = $2 {extra} ORDER BY key_id LIMIT 1) RETURNING prekey"
        ),
        Backend::Postgres => format!(
            "DELETE FROM {table} WHERE (account_id, device_id, key_id) IN (SELECT account_id, device_id, key_id \
             FROM {table} WHERE account_id = $1 AND device_id = $2 {extra} ORDER BY key_id LIMIT 1 \
             FOR UPDATE SKIP LOCKED) RETURNING prekey"
        ),
    }
}

impl Store {
    /// Stores uploaded prekeys in one transaction.
    pub async fn upload_keys(
        &self,
        account_id: i64,
        device: u32,
        keys: &UploadedKeys,
    ) -> Result<(), sqlx::Error> {
        let device = i64::from(device);
        with_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            if let Some(signed) = &keys.signed {
                sqlx::query(
                    "INSERT INTO signed_prekeys (account_id, device_id, prekey) VALUES ($1, $2, $3) \
                     ON CONFLICT (account_id, device_id) DO UPDATE SET prekey = excluded.prekey",
                )
                .bind(account_id)
                .bind(device)
                .bind(signed)
                .execute(&mut *tx)
                .await?;
            }
            for (id, prekey) in &keys.one_time {
                sqlx::query(
                    "INSERT INTO one_time_prekeys (account_id, device_id, key_id, prekey) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(account_id)
                .bind(device)
                .bind(i64::from(*id))
                .bind(prekey)
                .execute(&mut *tx)
                .await?;
            }
            if keys.kem_last_resort.is_some() {
                sqlx::query("DELETE FROM kem_prekeys WHERE account_id = $1 AND device_id = $2 AND last_resort")
                    .bind(account_id)
                    .bind(device)
                    .execute(&mut *tx)
                    .await?;
            }
            let kem = keys
                .kem_one_time
                .iter()
                .map(|(id, key)| (id, key, false))
                .chain(keys.kem_last_resort.iter().map(|(id, key)| (id, key, true)));
            for (id, prekey, last_resort) in kem {
                sqlx::query(
                    "INSERT INTO kem_prekeys (account_id, device_id, key_id, last_resort, prekey) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(account_id)
                .bind(device)
                .bind(i64::from(*id))
                .bind(last_resort)
                .bind(prekey)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        })
    }

    /// Takes what a bundle for this device needs, deleting the one-time
    /// prekeys it hands out.
    pub async fn claim_keys(
        &self,
        account_id: i64,
        device: u32,
    ) -> Result<ClaimedKeys, sqlx::Error> {
        let device = i64::from(device);
        let backend = self.backend();
        let one_time_sql = claim_sql(backend, "one_time_prekeys", "");
        let kem_sql = claim_sql(backend, "kem_prekeys", "AND NOT last_resort");
        with_pool!(self, pool => {
            let signed = sqlx::query("SELECT prekey FROM signed_prekeys WHERE account_id = $1 AND device_id = $2")
                .bind(account_id)
                .bind(device)
                .fetch_optional(pool)
                .await?
                .map(|row| row.try_get("prekey"))
                .transpose()?;
            let one_time = sqlx::query(&one_time_sql)
                .bind(account_id)
                .bind(device)
                .fetch_optional(pool)
                .await?
                .map(|row| row.try_get("prekey"))
                .transpose()?;
            let mut kem: Option<Vec<u8>> = sqlx::query(&kem_sql)
                .bind(account_id)
                .bind(device)
                .fetch_optional(pool)
                .await?
                .map(|row| row.try_get("prekey"))
                .transpose()?;
            if kem.is_none() {
                kem = sqlx::query(
                    "SELECT prekey FROM kem_prekeys WHERE account_id = $1 AND device_id = $2 AND last_resort \
                     ORDER BY key_id DESC LIMIT 1",
                )
                .bind(account_id)
                .bind(device)
                .fetch_optional(pool)
                .await?
                .map(|row| row.try_get("prekey"))
                .transpose()?;
            }
            Ok(ClaimedKeys { signed, one_time, kem })
        })
    }

    /// Remaining one-time prekeys of a device.
    pub async fn prekey_counts(
        &self,
        account_id: i64,
        device: u32,
    ) -> Result<PrekeyCounts, sqlx::Error> {
        let device = i64::from(device);
        with_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT (SELECT COUNT(*) FROM one_time_prekeys WHERE account_id = $1 AND device_id = $2) AS one_time, \
                 (SELECT COUNT(*) FROM kem_prekeys WHERE account_id = $1 AND device_id = $2 AND NOT last_resort) AS kem",
            )
            .bind(account_id)
            .bind(device)
            .fetch_one(pool)
            .await?;
            let count = |name: &str| -> Result<u32, sqlx::Error> {
                Ok(u32::try_from(row.try_get::<i64, _>(name)?).unwrap_or(u32::MAX))
            };
            Ok(PrekeyCounts { one_time: count("one_time")?, kem: count("kem")? })
        })
    }
}
