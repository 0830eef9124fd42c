//! Linking devices: one-time link codes (stored by hash, with the issuing
//! device's grant of the link key) and the device certificates made from
//! them (`crypto/SPEC.md` §2.5), served beside each linked device's keys.
//!
//! The server checks a certificate before it keeps one, so that a broken
//! endorsement is refused with a reason; clients check it again, against
//! the identity keys they hold, since they trust nothing the server says.

use sqlx::Row;
use starling_crypto::IdentityKey;
use starling_crypto::link::{DeviceCertificate, LinkGrant};

use super::accounts::device_id;
use super::{NewDevice, Store, with_pool};

/// Why linking a device was refused.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The code is unknown, used or expired.
    #[error("invalid or expired link code")]
    InvalidCode,
    /// The account has its maximum number of devices.
    #[error("the account has the maximum number of devices")]
    TooManyDevices,
    /// The endorsement does not match the code's grant and the new
    /// identity key.
    #[error("the endorsement does not match the link code's grant")]
    BadEndorsement,
    /// The database failed (a concurrent link may have taken the id).
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A new device's certificate: the code's grant (signed by `issuer`,
/// whose identity is `issuer_key`) and the endorsement, checked.
fn certificate(
    username: &str,
    (issuer, issuer_key): (u32, &[u8]),
    grant: &[u8],
    endorsement: &[u8; 64],
    identity: &[u8],
) -> Result<Vec<u8>, LinkError> {
    let checked = || {
        let grant = LinkGrant::from_bytes(grant).ok()?;
        let certificate = DeviceCertificate::new(issuer, grant, *endorsement);
        let issuer_key = IdentityKey::from_bytes(issuer_key).ok()?;
        let identity = IdentityKey::from_bytes(identity).ok()?;
        certificate.verify(username, &issuer_key, &identity).ok()?;
        Some(certificate.to_bytes())
    };
    checked().ok_or(LinkError::BadEndorsement)
}

impl Store {
    /// Stores a link code (by hash) for an account; the device it links
    /// becomes a manager when `manager` is set. `grant` is the issuing
    /// device's grant of the link key, when its code carries a secret.
    pub async fn create_link_code(
        &self,
        code_hash: &[u8; 32],
        (account_id, issuer): (i64, u32),
        expires_at: i64,
        manager: bool,
        grant: Option<&[u8]>,
    ) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO link_codes (code_hash, account_id, expires_at, manager, issuer_device_id, link_grant) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
                .bind(&code_hash[..])
                .bind(account_id)
                .bind(expires_at)
                .bind(manager)
                .bind(i64::from(issuer))
                .bind(grant)
                .execute(pool)
                .await
                .map(|_| ())
        })
    }

    /// Consumes a link code and adds a device to its account; returns the
    /// account's username and the new device id. With an `endorsement`
    /// and a code that holds a grant, the device keeps its certificate.
    pub async fn link_device(
        &self,
        code_hash: &[u8; 32],
        (device, endorsement): (&NewDevice, Option<&[u8; 64]>),
        max_devices: u32,
        now: i64,
    ) -> Result<(String, u32), LinkError> {
        with_pool!(self, pool => {
            // A read first: a bogus code never takes the write lock.
            let live: Option<i64> = sqlx::query_scalar(
                "SELECT account_id FROM link_codes WHERE code_hash = $1 AND expires_at > $2",
            )
            .bind(&code_hash[..])
            .bind(now)
            .fetch_optional(pool)
            .await?;
            if live.is_none() {
                return Err(LinkError::InvalidCode);
            }
            let mut tx = pool.begin_with(self.begin_write()).await?;
            let row = sqlx::query(
                "DELETE FROM link_codes WHERE code_hash = $1 AND expires_at > $2 \
                 RETURNING account_id, manager, issuer_device_id, link_grant",
            )
                .bind(&code_hash[..])
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(LinkError::InvalidCode)?;
            let account_id: i64 = row.try_get("account_id")?;
            let manager: bool = row.try_get("manager")?;
            let issuer: Option<i64> = row.try_get("issuer_device_id")?;
            let grant: Option<Vec<u8>> = row.try_get("link_grant")?;
            // Ids are never reused: a removed device's id never names a
            // new one, so nothing addressed to the old device reaches it.
            // Taking the id first locks the account's row, so concurrent
            // links are counted one after the other.
            let row = sqlx::query(
                "UPDATE accounts SET last_device_id = last_device_id + 1 WHERE id = $1 \
                 RETURNING username, last_device_id",
            )
            .bind(account_id)
            .fetch_one(&mut *tx)
            .await?;
            let username: String = row.try_get("username")?;
            let last: i64 = row.try_get("last_device_id")?;
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM devices WHERE account_id = $1")
                .bind(account_id)
                .fetch_one(&mut *tx)
                .await?;
            if count >= i64::from(max_devices) {
                return Err(LinkError::TooManyDevices);
            }
            let certificate = match (issuer, grant, endorsement) {
                (Some(issuer), Some(grant), Some(endorsement)) => {
                    let issuer_key: Option<Vec<u8>> = sqlx::query_scalar(
                        "SELECT identity_key FROM devices WHERE account_id = $1 AND device_id = $2",
                    )
                    .bind(account_id)
                    .bind(issuer)
                    .fetch_optional(&mut *tx)
                    .await?;
                    // The issuer was removed since: the code is void.
                    let issuer_key = issuer_key.ok_or(LinkError::InvalidCode)?;
                    Some(certificate(
                        &username,
                        (device_id(issuer), &issuer_key),
                        &grant,
                        endorsement,
                        &device.identity_key,
                    )?)
                }
                _ => None,
            };
            let device_id = u32::try_from(last).map_err(|_| LinkError::TooManyDevices)?;
            sqlx::query(
                "INSERT INTO devices (account_id, device_id, credential_hash, identity_key, created_at, manager, certificate) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(account_id)
            .bind(i64::from(device_id))
            .bind(&device.credential_hash[..])
            .bind(&device.identity_key)
            .bind(now)
            .bind(manager)
            .bind(certificate)
            .execute(&mut *tx)
            .await?;
            sqlx::query(super::MARK_CHANGED)
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok((username, device_id))
        })
    }

    /// The certificates of an account's linked devices, by device id.
    pub async fn device_certificates(
        &self,
        username: &str,
    ) -> Result<Vec<(u32, Vec<u8>)>, sqlx::Error> {
        with_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT d.device_id, d.certificate FROM devices d JOIN accounts a ON a.id = d.account_id \
                 WHERE a.username = $1 AND d.certificate IS NOT NULL ORDER BY d.device_id",
            )
            .bind(username)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok((
                        device_id(row.try_get("device_id")?),
                        row.try_get::<Vec<u8>, _>("certificate")?,
                    ))
                })
                .collect()
        })
    }
}
