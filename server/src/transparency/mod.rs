//! The server's side of key transparency (`crypto/SPEC.md` §16,
//! `docs/design/key-transparency.md`): akd's directory on the server's
//! database ([`storage`], [`codec`]), the log and VRF keys in the data
//! folder, and the publisher ([`publisher`]), which puts every account
//! whose devices changed into the next epoch and signs its root.

pub mod codec;
pub mod publisher;
pub mod storage;

use std::path::Path;
use std::sync::Arc;

use akd::storage::StorageManager;
use akd::{AzksParallelismConfig, Directory};
use starling_transparency::{LogConfig, LogPublicKey, LogSigningKey, VrfSecret};
use tokio::sync::{Notify, OnceCell, watch};

use crate::store::{KtFence, Store};
use storage::LogStorage;

/// The log key's file in the data folder.
pub const LOG_KEY_FILE: &str = "transparency-log.key";
/// The VRF key's file in the data folder: never rotated, backed up with
/// the database (its loss ends the log).
pub const VRF_KEY_FILE: &str = "transparency-vrf.key";

/// akd's directory on the server's database.
pub type LogDirectory = Directory<LogConfig, LogStorage, VrfSecret>;

/// Why the log could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// akd failed (its storage included).
    #[error("akd: {0}")]
    Akd(#[from] akd::errors::AkdError),
    /// A record the server wrote does not read back.
    #[error("stored log: {0}")]
    Corrupt(String),
}

/// The log of one deployment: its keys, and what the publisher tells the
/// rest of the server.
pub struct TransparencyLog {
    store: Store,
    signing: LogSigningKey,
    vrf: VrfSecret,
    vrf_public_key: [u8; 32],
    wake: Notify,
    published: watch::Sender<Option<u64>>,
    /// The directory lookups read through: no cache, so every lookup sees
    /// what the database has committed (the publisher may be on another
    /// node).
    reader: OnceCell<LogDirectory>,
    /// Fences this process's publisher's commits, and carries the device
    /// lists of the epoch it is about to commit.
    fence: Arc<KtFence>,
}

impl std::fmt::Debug for TransparencyLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransparencyLog")
            .field("log_key", &self.signing.public())
            .finish_non_exhaustive()
    }
}

impl TransparencyLog {
    /// The log of `store`, its keys read from `data_dir` (made on first
    /// start).
    pub fn load(store: Store, data_dir: &Path) -> std::io::Result<Self> {
        let log_key = crate::keyfile::load_or_create(data_dir, LOG_KEY_FILE, || {
            LogSigningKey::generate(&mut rand::rngs::OsRng).to_bytes()
        })?;
        let vrf_key = crate::keyfile::load_or_create(data_dir, VRF_KEY_FILE, || {
            let mut key = zeroize::Zeroizing::new([0; 32]);
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut *key);
            key
        })?;
        let vrf = VrfSecret::from_bytes(*vrf_key);
        Ok(Self {
            store,
            signing: LogSigningKey::from_bytes(&log_key),
            vrf_public_key: vrf.public_key(),
            vrf,
            wake: Notify::new(),
            published: watch::Sender::new(None),
            reader: OnceCell::new(),
            fence: Arc::default(),
        })
    }

    /// The key every root is signed with, which clients pin.
    pub fn log_public_key(&self) -> LogPublicKey {
        self.signing.public()
    }

    /// The VRF public key, which clients pin and every root names.
    pub fn vrf_public_key(&self) -> [u8; 32] {
        self.vrf_public_key
    }

    /// Tells the publisher that an account's devices changed (the change
    /// is already marked in the database; this only saves the wait).
    pub fn changed(&self) {
        self.wake.notify_one();
    }

    /// The newest epoch this process signed or found signed.
    pub fn published(&self) -> watch::Receiver<Option<u64>> {
        self.published.subscribe()
    }

    /// A directory over the server's database with a cache of its own:
    /// one per publisher term, so that a node that takes over publishing
    /// starts from what the database holds.
    pub async fn open_directory(&self) -> Result<LogDirectory, LogError> {
        let storage = StorageManager::new(
            LogStorage::fenced(self.store.clone(), self.fence.clone()),
            Some(std::time::Duration::from_secs(30 * 60)),
            Some(256 * 1024 * 1024),
            Some(std::time::Duration::from_secs(60)),
        );
        Ok(Directory::new(storage, self.vrf.clone(), AzksParallelismConfig::default()).await?)
    }
}

impl TransparencyLog {
    /// The directory lookups read through: no cache, so every lookup sees
    /// what the database has committed (the publisher may be on another
    /// node), and a storage view that cannot write.
    async fn reader(&self) -> Result<&LogDirectory, LogError> {
        Ok(self
            .reader
            .get_or_try_init(|| async {
                let storage =
                    StorageManager::new_no_cache(LogStorage::read_only(self.store.clone()));
                Directory::new(storage, self.vrf.clone(), AzksParallelismConfig::disabled()).await
            })
            .await?)
    }

    /// The lookup proof of `label` at the directory's newest epoch, and
    /// that epoch, or `None` if the log has never held the label.
    pub async fn lookup(
        &self,
        label: akd::AkdLabel,
    ) -> Result<Option<(akd::LookupProof, akd::EpochHash)>, LogError> {
        not_found_as_none(self.reader().await?.lookup(label).await)
    }

    /// The key-history proof of `label` (complete, or of its most recent
    /// versions, as `params` asks) at the directory's newest epoch, and
    /// that epoch, or `None` if the log has never held the label.
    pub async fn history(
        &self,
        label: &akd::AkdLabel,
        params: akd::HistoryParams,
    ) -> Result<Option<(akd::HistoryProof, akd::EpochHash)>, LogError> {
        let reader = self.reader().await?;
        not_found_as_none(reader.key_history(label, params).await)
    }

    /// The store the log is kept in.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// akd's "not found" as `None` (akd also reports a failed read so: the
/// caller tells the two apart).
fn not_found_as_none<V>(result: Result<V, akd::errors::AkdError>) -> Result<Option<V>, LogError> {
    match result {
        Ok(found) => Ok(Some(found)),
        Err(akd::errors::AkdError::Storage(akd::errors::StorageError::NotFound(_))) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Refuses to start on key files that are not the log's: the database's
/// first signed root names the VRF key and is signed by the log key, and
/// a node with other files (lost, or never copied to it) would sign roots
/// and make labels no client could check. Run before the keys are loaded,
/// so that missing files are not replaced by new ones.
pub async fn check_key_files(store: &Store, data_dir: &Path) -> std::io::Result<()> {
    let genesis = store
        .kt_root(0)
        .await
        .map_err(|e| std::io::Error::other(format!("reading the transparency log: {e}")))?;
    let Some(genesis) = genesis else {
        return Ok(()); // a new log: the keys are made with it
    };
    let refuse = |why: String| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{why}: every server process must use the transparency key files \
                 ({LOG_KEY_FILE}, {VRF_KEY_FILE}) of the process that started the log; \
                 restore them from a backup or copy them from that process's data folder"
            ),
        )
    };
    for name in [LOG_KEY_FILE, VRF_KEY_FILE] {
        if !data_dir.join(name).exists() {
            return Err(refuse(format!(
                "{} is missing from {}, but the database holds a transparency log",
                name,
                data_dir.display()
            )));
        }
    }
    let log = TransparencyLog::load(store.clone(), data_dir)?;
    let matches = starling_transparency::SignedRoot::from_bytes(&genesis)
        .ok()
        .filter(|root| root.verify(&log.log_public_key()).is_ok())
        .is_some_and(|root| root.statement.vrf_public_key == log.vrf_public_key);
    if !matches {
        return Err(refuse(format!(
            "the transparency keys in {} are not those of the log in the database",
            data_dir.display()
        )));
    }
    Ok(())
}

/// A log shared by the request handlers and the publisher.
pub type SharedLog = Arc<TransparencyLog>;
