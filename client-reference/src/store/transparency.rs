//! The transparency log's row: the pins this device took at setup and the
//! newest root it verified. The client core decides what they mean
//! (`starling_client_core::transparency`); this only keeps them.

use sqlx::Row;
use starling_client_core::transparency::{LogPins, LogRecord};
use starling_transparency::LogPublicKey;

use super::Store;
use crate::error::{ClientError, Result};

fn damaged() -> ClientError {
    ClientError::Protocol("the stored transparency log record is damaged".into())
}

impl Store {
    /// The log's pins and newest verified root; `None` before the first
    /// pin.
    pub async fn log_record(&self) -> Result<Option<LogRecord>> {
        let row = sqlx::query(
            "SELECT log_key, vrf_public_key, epoch, root FROM transparency_log WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let log_key: Vec<u8> = row.try_get("log_key")?;
        let vrf: Vec<u8> = row.try_get("vrf_public_key")?;
        let epoch: Option<i64> = row.try_get("epoch")?;
        let root: Option<Vec<u8>> = row.try_get("root")?;
        let pins = LogPins {
            log_key: LogPublicKey::from_bytes(&log_key).map_err(|_| damaged())?,
            vrf_public_key: vrf.try_into().map_err(|_| damaged())?,
        };
        let newest = match (epoch, root) {
            (Some(epoch), Some(root)) => Some((
                u64::try_from(epoch).map_err(|_| damaged())?,
                root.try_into().map_err(|_| damaged())?,
            )),
            (None, None) => None,
            _ => return Err(damaged()),
        };
        Ok(Some(LogRecord { pins, newest }))
    }

    /// Stores the log record. The pins are written once, never replaced;
    /// a newest root no newer than the stored one leaves the stored one.
    pub async fn save_log_record(&self, record: &LogRecord) -> Result<()> {
        let (epoch, root) = match record.newest {
            Some((epoch, root)) => (
                Some(i64::try_from(epoch).map_err(|_| damaged())?),
                Some(root.to_vec()),
            ),
            None => (None, None),
        };
        sqlx::query(
            "INSERT INTO transparency_log (id, log_key, vrf_public_key, epoch, root) \
             VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET \
             epoch = excluded.epoch, root = excluded.root \
             WHERE transparency_log.epoch IS NULL OR excluded.epoch > transparency_log.epoch",
        )
        .bind(&record.pins.log_key.to_bytes()[..])
        .bind(&record.pins.vrf_public_key[..])
        .bind(epoch)
        .bind(root)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_record_keeps_the_newest_root() {
        let dir = tempfile::tempdir().unwrap();
        let key = crate::store::StoreKey::from_bytes([7; 32]);
        let store = Store::open(dir.path(), &key).await.unwrap();
        assert_eq!(store.log_record().await.unwrap(), None);
        let signing = starling_transparency::LogSigningKey::from_bytes(&[3; 32]);
        let pins = LogPins {
            log_key: signing.public(),
            vrf_public_key: [4; 32],
        };
        let pinned = LogRecord { pins, newest: None };
        store.save_log_record(&pinned).await.unwrap();
        assert_eq!(store.log_record().await.unwrap(), Some(pinned));
        let at_five = LogRecord {
            pins,
            newest: Some((5, [5; 32])),
        };
        store.save_log_record(&at_five).await.unwrap();
        let at_three = LogRecord {
            pins,
            newest: Some((3, [3; 32])),
        };
        store.save_log_record(&at_three).await.unwrap();
        assert_eq!(
            store.log_record().await.unwrap(),
            Some(at_five),
            "an older root never replaces a newer one"
        );
    }
}
