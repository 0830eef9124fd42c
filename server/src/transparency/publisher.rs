//! The publisher: one per deployment (on PostgreSQL, the node holding the
//! publisher lock). Each round takes the accounts whose devices changed,
//! publishes their device lists as one epoch, signs its root, stores the
//! root and the append-only proof from the epoch before, and takes the
//! accounts off the waiting list, all before telling anyone the epoch
//! exists.

use std::time::Duration;

use akd::{AkdLabel, AkdValue};
use protobuf::Message as _;
use starling_crypto::IdentityKey;
use starling_protocol::Username;
use starling_transparency::{
    CONFIGURATION_ID, DeviceEntry, DeviceList, RootStatement, commitment, label,
};

use super::{LogDirectory, LogError, SharedLog, TransparencyLog};

/// Most accounts one epoch publishes; more wait for the next.
pub const MAX_PER_EPOCH: i64 = 20_000;
/// How often a publisher without news looks for changes anyway (marked by
/// another node, or missed).
const POLL_EVERY: Duration = Duration::from_secs(5);
/// How long a node that is not the publisher waits before asking again.
const STANDBY_RETRY: Duration = Duration::from_secs(5);

/// What one round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Nothing waited.
    Idle,
    /// The waiting accounts' lists were already the log's: no new epoch.
    Unchanged {
        /// The epoch that stands.
        epoch: u64,
    },
    /// A new epoch was published and signed.
    Published {
        /// The new epoch.
        epoch: u64,
        /// How many accounts it published.
        accounts: usize,
    },
}

/// What the log holds for an account.
struct Entry {
    label: AkdLabel,
    value: AkdValue,
    /// The canonical device list `value` commits to (empty for the
    /// deleted value).
    list: Vec<u8>,
}

fn hour_now() -> u64 {
    u64::try_from(crate::store::now_millis()).unwrap_or(0) / 3_600_000
}

fn to_i64(n: u64) -> Result<i64, LogError> {
    i64::try_from(n).map_err(|_| LogError::Corrupt(format!("epoch {n} out of range")))
}

impl TransparencyLog {
    /// Signs the directory's latest epoch if no root is stored for it yet
    /// (the empty tree's epoch 0 on first start, or an epoch akd committed
    /// just before a crash), with the append-only proof from the one
    /// before. Returns the latest epoch.
    async fn sign_latest(&self, directory: &LogDirectory) -> Result<u64, LogError> {
        let latest = directory.get_epoch_hash().await?;
        let signed = self.store.kt_latest_root().await?.map(|(epoch, _)| epoch);
        let epoch = latest.epoch();
        match signed {
            Some(signed) if signed == to_i64(epoch)? => {}
            Some(signed) if signed + 1 == to_i64(epoch)? => {
                self.record(directory, epoch, latest.hash(), &[]).await?;
            }
            None if epoch == 0 => self.record(directory, 0, latest.hash(), &[]).await?,
            signed => {
                return Err(LogError::Corrupt(format!(
                    "the tree is at epoch {epoch} but the newest signed root is of {signed:?}"
                )));
            }
        }
        self.published.send_replace(Some(epoch));
        Ok(epoch)
    }

    /// Signs epoch `epoch` of root `root`, makes its append-only proof
    /// from the epoch before, and stores both with the accounts published.
    async fn record(
        &self,
        directory: &LogDirectory,
        epoch: u64,
        root: [u8; 32],
        published: &[(i64, i64)],
    ) -> Result<(), LogError> {
        let signed = self.signing.sign(RootStatement {
            configuration: CONFIGURATION_ID,
            epoch,
            root,
            vrf_public_key: self.vrf_public_key,
            published_hour: hour_now(),
        });
        let proof = if epoch == 0 {
            None
        } else {
            let proof = directory.audit(epoch - 1, epoch).await?;
            let [single] = proof.proofs.as_slice() else {
                return Err(LogError::Corrupt(
                    "an audit of one step with several proofs".into(),
                ));
            };
            let encoded = akd::proto::specs::types::SingleAppendOnlyProof::from(single)
                .write_to_bytes()
                .map_err(|e| LogError::Corrupt(e.to_string()))?;
            Some(encoded)
        };
        self.store
            .kt_record_epoch(
                to_i64(epoch)?,
                &signed.to_bytes(),
                proof.as_deref(),
                published,
            )
            .await?;
        Ok(())
    }

    /// What the log holds for an account now: its label and the value of
    /// its device list (the deleted value once it is gone), or `None` if
    /// what the database holds cannot be committed to (logged).
    async fn entry(&self, account_id: i64) -> Result<Option<Entry>, LogError> {
        let Some(account) = self.store.kt_account(account_id).await? else {
            return Ok(None);
        };
        let Ok(username) = Username::parse(&account.username) else {
            tracing::error!(account_id, "an account name the log cannot hold");
            return Ok(None);
        };
        if account.devices.is_empty() {
            return Ok(Some(Entry {
                label: label(&username),
                value: commitment::deleted_value(),
                list: Vec::new(),
            }));
        }
        let entries: Option<Vec<DeviceEntry>> = account
            .devices
            .iter()
            .map(|(device_id, identity)| {
                // The log commits to both public keys (SPEC §16.3), as
                // safety numbers do.
                let identity = IdentityKey::from_bytes(identity).ok()?;
                Some(DeviceEntry {
                    device_id: *device_id,
                    identity: identity.public_bytes(),
                })
            })
            .collect();
        match entries.map(DeviceList::new) {
            Some(Ok(list)) => Ok(Some(Entry {
                label: label(&username),
                value: list.value(),
                list: list.to_bytes(),
            })),
            _ => {
                tracing::error!(account_id, "a device list the log cannot hold");
                Ok(None)
            }
        }
    }

    /// One round: publishes every account waiting (up to
    /// [`MAX_PER_EPOCH`]) as one epoch.
    pub async fn publish_round(&self, directory: &LogDirectory) -> Result<Round, LogError> {
        let before = self.sign_latest(directory).await?;
        let pending = self.store.kt_pending(MAX_PER_EPOCH).await?;
        if pending.is_empty() {
            return Ok(Round::Idle);
        }
        let mut updates = Vec::with_capacity(pending.len());
        let mut lists = Vec::with_capacity(pending.len());
        for (account_id, _) in &pending {
            if let Some(entry) = self.entry(*account_id).await? {
                // A deleted account's name taken again since: one value
                // per label, the live account's (it has devices).
                if let Some(at) = lists.iter().position(|(l, _)| *l == entry.label.0) {
                    if entry.list.is_empty() {
                        continue;
                    }
                    lists.remove(at);
                    updates.remove(at);
                }
                lists.push((entry.label.0.clone(), entry.list));
                updates.push((entry.label, entry.value));
            }
        }
        // Written in the same transaction as akd's commit of the epoch.
        self.fence.stage(to_i64(before + 1)?, lists);
        let hash = directory.publish(updates).await?;
        if hash.epoch() == before {
            self.store.kt_clear_pending(&pending).await?;
            return Ok(Round::Unchanged { epoch: before });
        }
        self.record(directory, hash.epoch(), hash.hash(), &pending)
            .await?;
        self.published.send_replace(Some(hash.epoch()));
        Ok(Round::Published {
            epoch: hash.epoch(),
            accounts: pending.len(),
        })
    }

    /// Publishes for as long as the server runs: when woken by a change,
    /// or every few seconds, at most once per `interval`. On PostgreSQL
    /// only the node holding the publisher lock publishes; the others
    /// wait to take it over.
    pub async fn run(self: SharedLog, interval: Duration) {
        loop {
            let lock = match self.store.kt_publisher_lock().await {
                Ok(Some(lock)) => lock,
                Ok(None) => {
                    tokio::time::sleep(STANDBY_RETRY).await;
                    continue;
                }
                Err(error) => {
                    tracing::warn!(error = %error, "transparency publisher lock");
                    tokio::time::sleep(STANDBY_RETRY).await;
                    continue;
                }
            };
            if let Err(error) = self.serve_term(interval, &lock).await {
                tracing::error!(error = %error, "transparency publisher stopped; retrying");
                tokio::time::sleep(STANDBY_RETRY).await;
            }
            drop(lock);
        }
    }

    /// Publishes while `lock` holds, with a directory of its own.
    async fn serve_term(
        &self,
        interval: Duration,
        lock: &crate::store::PublisherLock,
    ) -> Result<(), LogError> {
        let directory = self.open_directory().await?;
        loop {
            if !self.store.kt_publisher_lock_held(lock).await {
                return Ok(());
            }
            match self.publish_round(&directory).await? {
                Round::Published { epoch, accounts } => {
                    tracing::info!(epoch, accounts, "transparency epoch published");
                    tokio::time::sleep(interval).await;
                }
                Round::Idle | Round::Unchanged { .. } => {
                    let _ = tokio::time::timeout(POLL_EVERY, self.wake.notified()).await;
                }
            }
        }
    }
}
