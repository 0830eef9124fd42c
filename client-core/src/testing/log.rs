//! A real transparency log for the fake servers: akd's directory in
//! memory, publishing an account's device list whenever what the fake
//! serves for it changes, signing every root, and keeping every step's
//! append-only proof. akd needs a Tokio runtime; the log brings its own,
//! so the core's futures still run without one.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use akd::storage::StorageManager;
use akd::storage::memory::AsyncInMemoryDatabase;
use akd::{AzksParallelismConfig, Directory};
use starling_protocol::Username;
use starling_transparency::verify::encode_lookup;
use starling_transparency::{
    CONFIGURATION_ID, DeviceEntry, DeviceList, LogConfig, LogPins, LogSigningKey, RootStatement,
    SignedRoot, TransparencyError, VrfSecret, label,
};

use crate::transparency::{AppendOnlyClaim, AuditStep, LogProof, ServedHistory};

type Akd = Directory<LogConfig, AsyncInMemoryDatabase, VrfSecret>;

/// The fakes' log.
pub(crate) struct TestLog {
    runtime: tokio::runtime::Runtime,
    directory: Akd,
    key: LogSigningKey,
    pins: LogPins,
    /// What the log holds for each account (the encoded device list).
    published: RefCell<BTreeMap<String, Vec<u8>>>,
    /// Every list published for each account, oldest first.
    versions: RefCell<BTreeMap<String, Vec<Vec<u8>>>>,
    /// Signed roots and append-only proofs, by epoch − 1.
    steps: RefCell<Vec<AuditStep>>,
    /// Publishes nothing more: the fake then serves keys the log does not
    /// hold beside the proof of what it does (an operator's edit).
    pub(crate) frozen: Cell<bool>,
}

impl Default for TestLog {
    fn default() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let vrf = VrfSecret::from_bytes(rand::random());
        let directory = runtime
            .block_on(Directory::new(
                StorageManager::new_no_cache(AsyncInMemoryDatabase::new()),
                vrf.clone(),
                AzksParallelismConfig::disabled(),
            ))
            .expect("a directory");
        let key = LogSigningKey::generate(&mut rand::rngs::OsRng);
        let pins = LogPins {
            log_key: key.public(),
            vrf_public_key: vrf.public_key(),
        };
        Self {
            runtime,
            directory,
            key,
            pins,
            published: RefCell::default(),
            versions: RefCell::default(),
            steps: RefCell::default(),
            frozen: Cell::new(false),
        }
    }
}

impl TestLog {
    /// The keys a device pins.
    pub(crate) fn pins(&self) -> LogPins {
        self.pins
    }

    /// Publishes `devices` for `username` unless the log holds them
    /// already, and proves them against the latest root.
    pub(crate) fn prove(&self, username: &str, devices: &[(u32, [u8; 64])]) -> LogProof {
        let list = DeviceList::new(
            devices
                .iter()
                .map(|(device_id, identity)| DeviceEntry {
                    device_id: *device_id,
                    identity: *identity,
                })
                .collect(),
        )
        .expect("a device list");
        if self.frozen.get() {
            let published = self.published.borrow().get(username).cloned();
            let list = published
                .map(|bytes| DeviceList::from_bytes(&bytes).expect("a list"))
                .unwrap_or(list);
            return self.proof(username, &list);
        }
        self.publish(username, &list);
        self.proof(username, &list)
    }

    /// Publishes `list` for `username` as a new epoch, unless it is what
    /// the log holds.
    pub(crate) fn publish(&self, username: &str, list: &DeviceList) {
        let encoded = list.to_bytes();
        if self.published.borrow().get(username) == Some(&encoded) {
            return;
        }
        let label = label(&Username::parse(username).expect("a username"));
        self.runtime.block_on(async {
            let before = self.directory.get_epoch_hash().await.expect("a root");
            let after = self
                .directory
                .publish(vec![(label, list.value())])
                .await
                .expect("published");
            let audit = self
                .directory
                .audit(before.epoch(), after.epoch())
                .await
                .expect("an audit");
            let single = audit.proofs.first().expect("one step");
            let proof = akd::proto::specs::types::SingleAppendOnlyProof::from(single);
            let signed = self.key.sign(RootStatement {
                configuration: CONFIGURATION_ID,
                epoch: after.epoch(),
                root: after.hash(),
                vrf_public_key: self.pins.vrf_public_key,
                published_hour: 480_000,
            });
            self.steps.borrow_mut().push(AuditStep {
                signed_root: signed.to_bytes(),
                proof: protobuf::Message::write_to_bytes(&proof).expect("encoded"),
            });
        });
        self.versions
            .borrow_mut()
            .entry(username.to_owned())
            .or_default()
            .push(encoded.clone());
        self.published
            .borrow_mut()
            .insert(username.to_owned(), encoded);
    }

    /// The newest signed root, once there is one.
    pub(crate) fn newest(&self) -> Option<SignedRoot> {
        let steps = self.steps.borrow();
        let last = steps.last()?;
        Some(SignedRoot::from_bytes(&last.signed_root).expect("a signed root"))
    }

    /// The signed root of `epoch` (from 1).
    pub(crate) fn root_at(&self, epoch: u64) -> SignedRoot {
        let index = usize::try_from(epoch - 1).expect("an epoch");
        SignedRoot::from_bytes(&self.steps.borrow()[index].signed_root).expect("a signed root")
    }

    /// A root statement for `epoch` signed with the log key, as a server
    /// showing another log would sign it.
    pub(crate) fn sign(&self, epoch: u64, root: [u8; 32]) -> SignedRoot {
        self.key.sign(RootStatement {
            configuration: CONFIGURATION_ID,
            epoch,
            root,
            vrf_public_key: self.pins.vrf_public_key,
            published_hour: 480_000,
        })
    }

    /// `username`'s whole history against the latest root, or `None` if
    /// the log never held the account.
    pub(crate) fn history(&self, username: &str) -> Option<ServedHistory> {
        let mut lists = self.versions.borrow().get(username)?.clone();
        lists.reverse();
        let label = label(&Username::parse(username).expect("a username"));
        let (proof, _) = self
            .runtime
            .block_on(
                self.directory
                    .key_history(&label, akd::HistoryParams::Complete),
            )
            .expect("a history");
        let signed_root = self.steps.borrow().last()?.signed_root.clone();
        Some(ServedHistory {
            signed_root,
            proof: starling_transparency::history::encode_history(&proof).expect("encoded"),
            lists,
        })
    }

    /// `username`'s newest version against the latest root, with the proof
    /// of the most recent version, or `None` if the log never held it.
    pub(crate) fn latest(&self, username: &str) -> Option<ServedHistory> {
        let list = self.versions.borrow().get(username)?.last()?.clone();
        let label = label(&Username::parse(username).expect("a username"));
        let (proof, _) = self
            .runtime
            .block_on(
                self.directory
                    .key_history(&label, akd::HistoryParams::MostRecent(1)),
            )
            .expect("a history");
        let signed_root = self.steps.borrow().last()?.signed_root.clone();
        Some(ServedHistory {
            signed_root,
            proof: starling_transparency::history::encode_history(&proof).expect("encoded"),
            lists: vec![list],
        })
    }

    /// The proof of what the log holds for `username`, served with `list`
    /// (which a lying server may make differ).
    pub(crate) fn proof(&self, username: &str, list: &DeviceList) -> LogProof {
        let label = label(&Username::parse(username).expect("a username"));
        let (proof, _) = self
            .runtime
            .block_on(self.directory.lookup(label))
            .expect("a lookup");
        let signed_root = self
            .steps
            .borrow()
            .last()
            .map(|step| step.signed_root.clone())
            .expect("a root");
        LogProof {
            signed_root,
            lookup_proof: encode_lookup(&proof).expect("encoded"),
            devices: list.to_bytes(),
        }
    }

    /// The steps after epoch `from`, two at a time (so that callers page).
    pub(crate) fn audit_steps(&self, from: u64) -> Vec<AuditStep> {
        let start = usize::try_from(from).expect("an epoch");
        self.steps
            .borrow()
            .iter()
            .skip(start)
            .take(2)
            .cloned()
            .collect()
    }

    /// akd's append-only check of one step.
    pub(crate) fn check_append_only(
        &self,
        proof: &[u8],
        claim: &AppendOnlyClaim,
    ) -> Result<(), TransparencyError> {
        self.runtime
            .block_on(starling_transparency::audit::verify_append_only(
                proof, claim,
            ))
    }
}
