//! Sealed sender's row: the server certificate keys this device trusts and
//! its current sender certificate. The client core decides what they mean
//! (`starling_client_core::sealed`); this only keeps them.

use sqlx::Row;
use starling_client_core::sealed::SealedRecord;
use zeroize::Zeroizing;

use super::Store;
use crate::error::{ClientError, Result};

impl Store {
    /// The trusted server keys and our sender certificate (empty before
    /// the first pin).
    pub async fn sealed_record(&self) -> Result<SealedRecord> {
        let row = sqlx::query(
            "SELECT trusted_keys, certificate, certificate_fetched_at, profile_key, profile_key_pending \
             FROM sealed_sender WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(SealedRecord::default());
        };
        let certificate: Option<Vec<u8>> = row.try_get("certificate")?;
        let fetched_at: Option<i64> = row.try_get("certificate_fetched_at")?;
        let profile_key: Option<Vec<u8>> = row.try_get("profile_key")?;
        let profile_key = profile_key.map(Zeroizing::new);
        Ok(SealedRecord {
            trusted_keys: row.try_get("trusted_keys")?,
            certificate: certificate.map(|c| (c, fetched_at.unwrap_or(0))),
            profile_key: profile_key
                .as_deref()
                .map(|k| <[u8; 32]>::try_from(k.as_slice()).map(Zeroizing::new))
                .transpose()
                .map_err(|_| ClientError::Protocol("the stored profile key is damaged".into()))?,
            profile_key_pending: row.try_get("profile_key_pending")?,
        })
    }

    /// Replaces the trusted server keys and our sender certificate.
    pub async fn save_sealed_record(&self, record: &SealedRecord) -> Result<()> {
        let (certificate, fetched_at) = match &record.certificate {
            Some((bytes, at)) => (Some(bytes.as_slice()), Some(*at)),
            None => (None, None),
        };
        sqlx::query(
            "INSERT INTO sealed_sender (id, trusted_keys, certificate, certificate_fetched_at, \
             profile_key, profile_key_pending) VALUES (1, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET \
             trusted_keys = excluded.trusted_keys, certificate = excluded.certificate, \
             certificate_fetched_at = excluded.certificate_fetched_at, \
             profile_key = excluded.profile_key, profile_key_pending = excluded.profile_key_pending",
        )
        .bind(record.trusted_keys.as_deref())
        .bind(certificate)
        .bind(fetched_at)
        .bind(record.profile_key.as_deref().map(|k| &k[..]))
        .bind(record.profile_key_pending)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

impl Store {
    /// A contact's profile key, as they last sent it.
    pub async fn contact_profile_key(&self, username: &str) -> Result<Option<[u8; 32]>> {
        let key: Option<Option<Vec<u8>>> =
            sqlx::query_scalar("SELECT profile_key FROM contacts WHERE username = ?")
                .bind(username)
                .fetch_optional(&self.pool)
                .await?;
        Ok(key
            .flatten()
            .map(Zeroizing::new)
            .and_then(|k| <[u8; 32]>::try_from(k.as_slice()).ok()))
    }

    /// Records (or with `None` forgets) a contact's profile key.
    pub async fn set_contact_profile_key(
        &self,
        username: &str,
        key: Option<&[u8; 32]>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO contacts (username, profile_key) VALUES (?, ?) \
             ON CONFLICT (username) DO UPDATE SET profile_key = excluded.profile_key",
        )
        .bind(username)
        .bind(key.map(|k| &k[..]))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_record_starts_empty_and_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let key = crate::store::StoreKey::from_bytes([7; 32]);
        let store = Store::open(dir.path(), &key).await.unwrap();
        assert_eq!(
            store.sealed_record().await.unwrap(),
            SealedRecord::default()
        );
        let record = SealedRecord {
            trusted_keys: Some(vec![1, 2, 3]),
            certificate: Some((vec![4, 5], 99)),
            profile_key: Some(Zeroizing::new([6; 32])),
            profile_key_pending: true,
        };
        store.save_sealed_record(&record).await.unwrap();
        assert_eq!(store.sealed_record().await.unwrap(), record);
        let cleared = SealedRecord {
            trusted_keys: Some(vec![1, 2, 3]),
            certificate: None,
            profile_key: None,
            profile_key_pending: false,
        };
        store.save_sealed_record(&cleared).await.unwrap();
        assert_eq!(store.sealed_record().await.unwrap(), cleared);
        assert_eq!(store.contact_profile_key("bob").await.unwrap(), None);
        store
            .set_contact_profile_key("bob", Some(&[9; 32]))
            .await
            .unwrap();
        assert_eq!(
            store.contact_profile_key("bob").await.unwrap(),
            Some([9; 32])
        );
        store.set_contact_profile_key("bob", None).await.unwrap();
        assert_eq!(store.contact_profile_key("bob").await.unwrap(), None);
    }
}
