//! The transparency log's rows: the pins this device took at setup and the
//! newest root it verified, and how far it checked its own account's
//! history. The client core decides what they mean
//! (`starling_client_core::transparency`); this only keeps them.

use sqlx::Row;
use starling_client_core::transparency::{LogPins, LogRecord, OwnLogState};
use starling_transparency::{DeviceList, LogPublicKey, SignedRoot};

use super::{Store, now_millis};
use crate::error::{ClientError, Result};

fn damaged() -> ClientError {
    ClientError::Protocol("the stored transparency log record is damaged".into())
}

impl Store {
    /// The log's pins and newest verified root; `None` before the first
    /// pin.
    pub async fn log_record(&self) -> Result<Option<LogRecord>> {
        let row = sqlx::query(
            "SELECT log_key, vrf_public_key, epoch, signed_root FROM transparency_log WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let log_key: Vec<u8> = row.try_get("log_key")?;
        let vrf: Vec<u8> = row.try_get("vrf_public_key")?;
        let epoch: Option<i64> = row.try_get("epoch")?;
        let signed: Option<Vec<u8>> = row.try_get("signed_root")?;
        let pins = LogPins {
            log_key: LogPublicKey::from_bytes(&log_key).map_err(|_| damaged())?,
            vrf_public_key: vrf.try_into().map_err(|_| damaged())?,
        };
        let newest = match (epoch, signed) {
            (Some(epoch), Some(signed)) => {
                let signed = SignedRoot::from_bytes(&signed).map_err(|_| damaged())?;
                if i64::try_from(signed.statement.epoch).ok() != Some(epoch) {
                    return Err(damaged());
                }
                Some(signed)
            }
            (None, None) => None,
            _ => return Err(damaged()),
        };
        Ok(Some(LogRecord { pins, newest }))
    }

    /// Stores the log record. The pins are written once, never replaced;
    /// a newest root no newer than the stored one leaves the stored one.
    pub async fn save_log_record(&self, record: &LogRecord) -> Result<()> {
        let (epoch, signed) = match &record.newest {
            Some(signed) => (
                Some(i64::try_from(signed.statement.epoch).map_err(|_| damaged())?),
                Some(signed.to_bytes()),
            ),
            None => (None, None),
        };
        sqlx::query(
            "INSERT INTO transparency_log (id, log_key, vrf_public_key, epoch, signed_root) \
             VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET \
             epoch = excluded.epoch, signed_root = excluded.signed_root \
             WHERE transparency_log.epoch IS NULL OR excluded.epoch > transparency_log.epoch",
        )
        .bind(&record.pins.log_key.to_bytes()[..])
        .bind(&record.pins.vrf_public_key[..])
        .bind(epoch)
        .bind(signed)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

impl Store {
    /// How far this device checked its own account's history; `None`
    /// before the first check.
    pub async fn own_log_state(&self) -> Result<Option<OwnLogState>> {
        let row = sqlx::query("SELECT version, devices FROM own_log WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let version: i64 = row.try_get("version")?;
        let devices: Option<Vec<u8>> = row.try_get("devices")?;
        Ok(Some(OwnLogState {
            version: u64::try_from(version).map_err(|_| damaged())?,
            devices: devices
                .map(|bytes| DeviceList::from_bytes(&bytes))
                .transpose()
                .map_err(|_| damaged())?,
        }))
    }

    /// The newest version of `username`'s log entry this device verified.
    pub async fn log_version(&self, username: &str) -> Result<Option<u64>> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT version FROM log_versions WHERE username = ?")
                .bind(username)
                .fetch_optional(&self.pool)
                .await?;
        version
            .map(|v| u64::try_from(v).map_err(|_| damaged()))
            .transpose()
    }

    /// Records a verified version of `username`'s log entry, keeping the
    /// newer of it and the stored one.
    pub async fn save_log_version(&self, username: &str, version: u64) -> Result<()> {
        sqlx::query(
            "INSERT INTO log_versions (username, version) VALUES (?, ?) \
             ON CONFLICT (username) DO UPDATE SET version = MAX(version, excluded.version)",
        )
        .bind(username)
        .bind(i64::try_from(version).map_err(|_| damaged())?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replaces how far this device checked its own account's history.
    pub async fn save_own_log_state(&self, state: &OwnLogState) -> Result<()> {
        sqlx::query(
            "INSERT INTO own_log (id, version, devices) VALUES (1, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET version = excluded.version, devices = excluded.devices",
        )
        .bind(i64::try_from(state.version).map_err(|_| damaged())?)
        .bind(state.devices.as_ref().map(DeviceList::to_bytes))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Adds a warning for `username`, unless the same one is outstanding;
    /// whether it was added.
    pub async fn add_warning(&self, username: &str, text: &str) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO warnings (username, text, created_at) SELECT ?, ?, ? \
             WHERE NOT EXISTS (SELECT 1 FROM warnings WHERE username = ? AND text = ?)",
        )
        .bind(username)
        .bind(text)
        .bind(now_millis())
        .bind(username)
        .bind(text)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_log_version_only_moves_forward() {
        let dir = tempfile::tempdir().unwrap();
        let key = crate::store::StoreKey::from_bytes([7; 32]);
        let store = Store::open(dir.path(), &key).await.unwrap();
        assert_eq!(store.log_version("bob").await.unwrap(), None);
        store.save_log_version("bob", 3).await.unwrap();
        store.save_log_version("bob", 2).await.unwrap();
        store.save_log_version("carol", 1).await.unwrap();
        assert_eq!(store.log_version("bob").await.unwrap(), Some(3));
        store.save_log_version("bob", 4).await.unwrap();
        assert_eq!(store.log_version("bob").await.unwrap(), Some(4));
        assert_eq!(store.log_version("carol").await.unwrap(), Some(1));
    }

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
        let root = |epoch, fill| {
            signing.sign(starling_transparency::RootStatement {
                configuration: starling_transparency::CONFIGURATION_ID,
                epoch,
                root: [fill; 32],
                vrf_public_key: [4; 32],
                published_hour: 1,
            })
        };
        let at_five = LogRecord {
            pins,
            newest: Some(root(5, 5)),
        };
        store.save_log_record(&at_five).await.unwrap();
        let at_three = LogRecord {
            pins,
            newest: Some(root(3, 3)),
        };
        store.save_log_record(&at_three).await.unwrap();
        assert_eq!(
            store.log_record().await.unwrap(),
            Some(at_five),
            "an older root never replaces a newer one"
        );
    }
}

#[cfg(test)]
mod own_log_tests {
    use starling_transparency::DeviceEntry;

    use super::*;

    #[tokio::test]
    async fn the_own_history_state_and_warnings_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let key = crate::store::StoreKey::from_bytes([7; 32]);
        let store = Store::open(dir.path(), &key).await.unwrap();
        assert_eq!(store.own_log_state().await.unwrap(), None);
        let devices = DeviceList::new(vec![DeviceEntry {
            device_id: 1,
            identity: [1; 64],
        }])
        .unwrap();
        for state in [
            OwnLogState {
                version: 2,
                devices: Some(devices),
            },
            OwnLogState {
                version: 3,
                devices: None,
            },
        ] {
            store.save_own_log_state(&state).await.unwrap();
            assert_eq!(store.own_log_state().await.unwrap(), Some(state));
        }
        assert!(store.add_warning("alice", "a device (2)").await.unwrap());
        assert!(!store.add_warning("alice", "a device (2)").await.unwrap());
        assert!(store.add_warning("alice", "a device (3)").await.unwrap());
        assert_eq!(store.warnings().await.unwrap().len(), 2, "each once");
    }
}
