//! Key transparency on the client (`crypto/SPEC.md` §16.4): before any
//! identity key the server sent is used, the log must hold it.
//!
//! Every fetch of bundles or device ids comes with a [`LogProof`]: a
//! signed root, the lookup proof of the account against it, and the
//! device list the proof is of. [`verify_account`] checks, in order, that
//! the root is signed by the pinned log key and is no older than the
//! newest root this device verified (the same epoch, the same root); that
//! the log only grew from that root to this one (the audit steps, walked
//! epoch by epoch); that the lookup proof shows this very device list;
//! and that the account's entry is at no older version than one this
//! device verified before (a replaced entry shown again is refused). A
//! version it has not verified before is checked once more, with akd's
//! proof of the most recent version.
//! [`check_bundles`] then takes identity keys only from that list. Any
//! failure refuses the keys: nothing is recorded and nothing is sent.
//!
//! The client core stays pure: the store keeps the [`LogRecord`], the
//! transport fetches proofs and runs akd's append-only check (which needs
//! a runtime of the shell's choosing).

use starling_crypto::{IdentityKey, PreKeyBundle};
use starling_protocol::Username;
use starling_transparency::audit::AuditChain;
use starling_transparency::history;
use starling_transparency::verify::{self, LogView, VerifiedRoot};
use starling_transparency::{DeviceList, SignedRoot};
use thiserror::Error;

pub use starling_transparency::audit::AppendOnlyClaim;
pub use starling_transparency::{LogPins, TransparencyError};

use crate::storage::Storage;
use crate::transport::Transport;

mod own;
mod peer;

pub use own::{OwnLogChange, OwnLogState, ServedHistory, check_own_history};
pub use peer::{PeerRoot, compare_peer_root};

/// What the server sends beside fetched keys or device ids, decoded from
/// its transport encoding but not checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogProof {
    /// The signed root (SPEC §16.2).
    pub signed_root: Vec<u8>,
    /// akd's lookup proof of the account (protobuf).
    pub lookup_proof: Vec<u8>,
    /// The canonical device list the proof is of (SPEC §16.3).
    pub devices: Vec<u8>,
}

/// A fetch's answer and the proof that came with it (none when the
/// server sent none: refused).
#[derive(Debug, Clone)]
pub struct Proved<V> {
    /// What was fetched.
    pub value: V,
    /// The proof the log holds the account's devices.
    pub proof: Option<LogProof>,
    /// The certificates served for linked devices (`crypto/SPEC.md`
    /// §2.5), by device id; checked by whoever uses them.
    pub certificates: Vec<(u32, Vec<u8>)>,
}

impl<V> Proved<V> {
    /// The certificate served for `device`, if any.
    pub fn certificate(&self, device: u32) -> Option<&[u8]> {
        self.certificates
            .iter()
            .find(|(id, _)| *id == device)
            .map(|(_, certificate)| certificate.as_slice())
    }
}

/// One epoch of the log's audit, as the server sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditStep {
    /// The epoch's signed root.
    pub signed_root: Vec<u8>,
    /// akd's append-only proof from the epoch before (protobuf).
    pub proof: Vec<u8>,
}

/// What a device keeps of the log: the pins it took when it was set up,
/// and the newest root it verified the whole way to, as the log key
/// signed it (it shows it to contacts, SPEC §16.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRecord {
    /// The log key and VRF key.
    pub pins: LogPins,
    /// The newest verified root.
    pub newest: Option<SignedRoot>,
}

impl LogRecord {
    /// The newest verified root's epoch and root hash.
    pub fn newest_root(&self) -> Option<(u64, [u8; 32])> {
        self.newest
            .map(|signed| (signed.statement.epoch, signed.statement.root))
    }
}

/// Why keys were refused.
#[derive(Debug, Error)]
pub enum LogError<S, T> {
    /// The local store failed.
    #[error(transparent)]
    Storage(S),
    /// The server call failed.
    #[error(transparent)]
    Transport(T),
    /// What the server sent for this account is not what the log holds
    /// (or came without a proof that it is).
    #[error("the keys the server sent for {username} are not the ones in the transparency log{}", detail(.reason))]
    NotInLog {
        /// The account.
        username: String,
        /// The check that failed.
        reason: TransparencyError,
    },
    /// The log itself is not one this device can follow: a root not
    /// signed by the pinned key, older than one already seen, a second
    /// root for an epoch, or a history that was rewritten.
    #[error("the server's transparency log is not consistent with what this device saw: {0}")]
    Log(TransparencyError),
    /// The account changed between the lookup proof and the proof of its
    /// newest version (an epoch was published in between): nothing is
    /// wrong, the keys are fetched again.
    #[error("the keys of {username} changed while they were checked; try again")]
    Changed {
        /// The account.
        username: String,
    },
    /// This device has no pins and the server offers none.
    #[error("the server offers no transparency log, so no keys it sends can be checked")]
    NoLog,
}

fn detail(reason: &TransparencyError) -> String {
    match reason {
        TransparencyError::NotInLog { .. } => String::new(),
        other => format!(" ({other})"),
    }
}

/// The result of a check, for a store `S` and a server `T`.
pub type Result<V, S, T> =
    std::result::Result<V, LogError<<S as Storage>::Error, <T as Transport>::Error>>;

/// Checks that `proof` shows the device list the log holds for
/// `username` at a root this device can trust, and returns that list: the
/// only place identity keys are taken from.
pub async fn verify_account<S: Storage, T: Transport>(
    storage: &S,
    transport: &T,
    username: &str,
    proof: Option<&LogProof>,
) -> Result<DeviceList, S, T> {
    let not_in_log = |reason| LogError::NotInLog {
        username: username.to_owned(),
        reason,
    };
    let record = log_record(storage, transport).await?;
    let proof = proof.ok_or_else(|| {
        not_in_log(TransparencyError::MalformedProof(
            "the server sent no proof".into(),
        ))
    })?;
    let (root, signed) = trusted_root(storage, transport, &record, &proof.signed_root).await?;
    let name = Username::parse(username)
        .map_err(|_| not_in_log(TransparencyError::MalformedDevices("not a username")))?;
    let devices = DeviceList::from_bytes(&proof.devices).map_err(not_in_log)?;
    let lookup = verify::verify_lookup(&record.pins, &root, &name, &proof.lookup_proof, &devices)
        .map_err(not_in_log)?;
    remember::<S, T>(storage, record.pins, &signed).await?;
    let seen = storage
        .log_version(username)
        .await
        .map_err(LogError::Storage)?;
    match seen {
        Some(seen) if lookup.version < seen => {
            return Err(not_in_log(TransparencyError::EntryRollback {
                served: lookup.version,
                seen,
            }));
        }
        Some(seen) if lookup.version == seen => {}
        _ => check_latest(storage, transport, &name, &lookup).await?,
    }
    Ok(lookup.devices)
}

/// Checks a version of `name`'s entry this device has not verified before
/// with akd's proof of the most recent version (SPEC §16.4, 5), and
/// records it: a version planted past the owner's newest must then show
/// in the owner's own history check. The proof comes against the newest
/// root, which may be past the lookup's: an account that moved on in
/// between is [`LogError::Changed`], to be fetched again; an older
/// version or another list shown as the newest is refused.
async fn check_latest<S: Storage, T: Transport>(
    storage: &S,
    transport: &T,
    name: &Username,
    lookup: &verify::VerifiedLookup,
) -> Result<(), S, T> {
    let username = name.as_str();
    let not_in_log = |reason| LogError::NotInLog {
        username: username.to_owned(),
        reason,
    };
    let served = transport
        .latest_version(username)
        .await
        .map_err(LogError::Transport)?
        .ok_or_else(|| {
            not_in_log(TransparencyError::MalformedProof(
                "the server shows no newest version".into(),
            ))
        })?;
    let record = log_record(storage, transport).await?;
    let (root, signed) = trusted_root(storage, transport, &record, &served.signed_root).await?;
    let [list] = served.lists.as_slice() else {
        return Err(not_in_log(TransparencyError::MalformedProof(
            "not one newest version".into(),
        )));
    };
    let newest = history::verify_latest(&record.pins, &root, name, &served.proof, list)
        .map_err(not_in_log)?;
    remember::<S, T>(storage, record.pins, &signed).await?;
    if newest.version > lookup.version {
        return Err(LogError::Changed {
            username: username.to_owned(),
        });
    }
    if newest.version != lookup.version || newest.devices.as_ref() != Some(&lookup.devices) {
        return Err(not_in_log(TransparencyError::EntryMoved {
            proved: lookup.version,
            newest: newest.version,
        }));
    }
    storage
        .save_log_version(username, lookup.version)
        .await
        .map_err(LogError::Storage)
}

/// Checks a served signed root against what this device saw (signature,
/// log, rollback, fork) and walks the log's audit to it from the newest
/// verified root: the root a proof may then be checked against (stored
/// as the newest once the proof held, [`remember`]), and the root as
/// signed.
async fn trusted_root<S: Storage, T: Transport>(
    storage: &S,
    transport: &T,
    record: &LogRecord,
    signed_root: &[u8],
) -> Result<(VerifiedRoot, SignedRoot), S, T> {
    let signed = SignedRoot::from_bytes(signed_root).map_err(LogError::Log)?;
    let root = walk_to(storage, transport, record, &signed).await?;
    Ok((root, signed))
}

/// Checks `signed` against what this device saw (signature, log,
/// rollback, fork) and walks the log's audit to it from the newest
/// verified root.
async fn walk_to<S: Storage, T: Transport>(
    storage: &S,
    transport: &T,
    record: &LogRecord,
    signed: &SignedRoot,
) -> Result<VerifiedRoot, S, T> {
    let view = LogView::restore(record.pins, record.newest_root());
    let root = view.accept_root(signed).map_err(LogError::Log)?;
    if let Some(from) = view.audit_from(&root) {
        audit::<S, T>(storage, transport, record.pins, from, &root).await?;
    }
    Ok(root)
}

/// Stores `reached` (a root verified the whole way to) as the newest, unless
/// a newer one is stored. A different root stored for the same epoch (by a
/// check that ran beside this one) is a fork: two roots signed for one
/// epoch.
async fn remember<S: Storage, T: Transport>(
    storage: &S,
    pins: LogPins,
    reached: &SignedRoot,
) -> Result<(), S, T> {
    let stored = storage.log_record().await.map_err(LogError::Storage)?;
    let (epoch_reached, root_reached) = (reached.statement.epoch, reached.statement.root);
    match stored.and_then(|r| r.newest_root()) {
        Some((epoch, root)) if epoch == epoch_reached && root != root_reached => {
            Err(LogError::Log(TransparencyError::Fork { epoch }))
        }
        Some((epoch, _)) if epoch >= epoch_reached => Ok(()),
        _ => storage
            .save_log_record(&LogRecord {
                pins,
                newest: Some(*reached),
            })
            .await
            .map_err(LogError::Storage),
    }
}

/// Checks that every bundle is of a device in `devices`, with the
/// identity key the log holds for it.
pub fn check_bundles<S, T>(
    username: &str,
    devices: &DeviceList,
    bundles: &[(u32, PreKeyBundle)],
) -> std::result::Result<(), LogError<S, T>> {
    let logged = |(device, bundle): &(u32, PreKeyBundle)| {
        devices.identity(*device) == Some(&bundle.identity().public_bytes())
    };
    if bundles.iter().all(logged) {
        Ok(())
    } else {
        Err(not_held(username))
    }
}

/// Checks that every device id served is one the log holds (a device
/// removed since the log's last epoch may still be in the log, never the
/// other way round).
pub fn check_device_ids<S, T>(
    username: &str,
    devices: &DeviceList,
    ids: &[u32],
) -> std::result::Result<(), LogError<S, T>> {
    if ids.iter().all(|id| devices.identity(*id).is_some()) {
        Ok(())
    } else {
        Err(not_held(username))
    }
}

/// The refusal of keys the proved list does not hold.
fn not_held<S, T>(username: &str) -> LogError<S, T> {
    LogError::NotInLog {
        username: username.to_owned(),
        reason: TransparencyError::NotInLog {
            username: username.to_owned(),
        },
    }
}

/// A device the log holds, as [`logged_device`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedDevice {
    /// The certificate served for it, when it was looked up.
    pub certificate: Option<Vec<u8>>,
}

/// Whether the log holds `identity` for `username`'s `device`, for a
/// device we learn of from a message it sent rather than from a fetch: a
/// device whose identity we already hold passes at once; any other is
/// looked up (its account's device list, with the log's proof) before
/// anything of it is recorded, so that a server cannot add a device to an
/// account and write as it. `Ok(None)` when the log does not hold it, or
/// when the server's answer about the log does not verify; otherwise the
/// certificate served for a device looked up (`crypto/SPEC.md` §2.5,
/// unchecked).
pub async fn logged_device<S: Storage, T: Transport>(
    storage: &S,
    transport: &T,
    username: &str,
    device: u32,
    identity: &IdentityKey,
) -> std::result::Result<Option<LoggedDevice>, LogError<S::Error, T::Error>> {
    let known = storage
        .identity_keys(username)
        .await
        .map_err(LogError::Storage)?;
    if known.iter().any(|(d, key)| *d == device && key == identity) {
        return Ok(Some(LoggedDevice { certificate: None }));
    }
    let mut retried = false;
    loop {
        let served = transport
            .devices(username)
            .await
            .map_err(LogError::Transport)?;
        return match verify_account(storage, transport, username, served.proof.as_ref()).await {
            Ok(list) => Ok(
                (list.identity(device) == Some(&identity.public_bytes())).then(|| LoggedDevice {
                    certificate: served.certificate(device).map(<[u8]>::to_vec),
                }),
            ),
            Err(LogError::Changed { .. }) if !retried => {
                retried = true;
                continue;
            }
            // The message waits (it is not rejected) while the account
            // keeps changing, as when the server is out of reach.
            Err(e @ (LogError::Storage(_) | LogError::Transport(_) | LogError::Changed { .. })) => {
                Err(e)
            }
            Err(_) => Ok(None),
        };
    }
}

/// The stored log record; a device set up before the log existed pins
/// the keys the server names now, once (as it pinned the server itself).
async fn log_record<S: Storage, T: Transport>(
    storage: &S,
    transport: &T,
) -> Result<LogRecord, S, T> {
    if let Some(record) = storage.log_record().await.map_err(LogError::Storage)? {
        return Ok(record);
    }
    let pins = transport
        .log_pins()
        .await
        .map_err(LogError::Transport)?
        .ok_or(LogError::NoLog)?;
    let record = LogRecord { pins, newest: None };
    storage
        .save_log_record(&record)
        .await
        .map_err(LogError::Storage)?;
    Ok(record)
}

/// Walks the log from the verified root `from` to `root`, one epoch at a
/// time, checking each step's signed root and append-only proof. The root
/// reached after each page is stored, so that a walk cut short resumes
/// from there.
async fn audit<S: Storage, T: Transport>(
    storage: &S,
    transport: &T,
    pins: LogPins,
    from: (u64, [u8; 32]),
    root: &VerifiedRoot,
) -> Result<(), S, T> {
    let mut chain = AuditChain::new(pins, from);
    let mut last = None;
    while !chain.reached(root).map_err(LogError::Log)? {
        let steps = transport
            .audit_steps(chain.at().0)
            .await
            .map_err(LogError::Transport)?;
        if steps.is_empty() {
            return Err(LogError::Log(TransparencyError::AuditGap {
                expected: chain.at().0.saturating_add(1),
                served: chain.at().0,
            }));
        }
        for step in steps {
            let signed = SignedRoot::from_bytes(&step.signed_root).map_err(LogError::Log)?;
            let claim = chain.next(&signed).map_err(LogError::Log)?;
            transport
                .check_append_only(&step.proof, &claim)
                .await
                .map_err(LogError::Log)?;
            chain.advance(claim);
            last = Some(signed);
            if chain.at().0 >= root.epoch() {
                break;
            }
        }
        if let Some(reached) = &last {
            remember::<S, T>(storage, pins, reached).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use starling_crypto::{IdentityKeyPair, PreKeyStore};

    use super::*;
    use crate::testing::{Memory, TestLog, run};

    fn bundle_of(identity: &IdentityKeyPair) -> PreKeyBundle {
        let mut prekeys = PreKeyStore::new();
        let rng = &mut rand::rngs::OsRng;
        prekeys.generate_signed_prekey(identity, 0, rng);
        prekeys.generate_last_resort_kem_prekey(identity, 0, rng);
        prekeys.bundle(identity).unwrap()
    }

    /// A fake serving bob's one device, its log holding it.
    fn serving_bob() -> (Memory, IdentityKeyPair) {
        let memory = Memory::default();
        let bob = IdentityKeyPair::generate(&mut rand::rngs::OsRng);
        memory
            .bundles
            .borrow_mut()
            .insert("bob".into(), vec![(1, bundle_of(&bob))]);
        (memory, bob)
    }

    fn fetch(memory: &Memory) -> Result<DeviceList, Memory, Memory> {
        run(async {
            let served = memory
                .bundles("bob", None)
                .await
                .map_err(LogError::Transport)?;
            let devices = verify_account(memory, memory, "bob", served.proof.as_ref()).await?;
            check_bundles("bob", &devices, &served.value)?;
            Ok(devices)
        })
    }

    #[test]
    fn keys_the_log_holds_are_taken_and_the_root_remembered() {
        let (memory, bob) = serving_bob();
        let devices = fetch(&memory).unwrap();
        assert_eq!(
            devices.identity(1),
            Some(&bob.public().public_bytes()),
            "the identity comes from the proved list"
        );
        let record = memory.log_record.borrow().unwrap();
        assert_eq!(record.pins, memory.log.pins());
        assert_eq!(record.newest_root().map(|(epoch, _)| epoch), Some(1));
    }

    #[test]
    fn a_key_the_log_does_not_hold_is_refused_with_the_name() {
        let (memory, _) = serving_bob();
        fetch(&memory).unwrap();
        // The operator swaps bob's key in the database: the log still
        // holds the one bob published.
        memory.log.frozen.set(true);
        let operator = IdentityKeyPair::generate(&mut rand::rngs::OsRng);
        memory
            .bundles
            .borrow_mut()
            .insert("bob".into(), vec![(1, bundle_of(&operator))]);
        let error = fetch(&memory).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the keys the server sent for bob are not the ones in the transparency log"
        );
    }

    #[test]
    fn keys_without_a_proof_are_refused() {
        let (memory, _) = serving_bob();
        let error = run(verify_account(&memory, &memory, "bob", None)).unwrap_err();
        assert!(matches!(error, LogError::NotInLog { ref username, .. } if username == "bob"));
        assert!(error.to_string().contains("no proof"), "{error}");
    }

    #[test]
    fn a_root_of_another_log_is_refused() {
        let (memory, _) = serving_bob();
        let other = TestLog::default();
        *memory.log_record.borrow_mut() = Some(LogRecord {
            pins: other.pins(),
            newest: None,
        });
        let error = fetch(&memory).unwrap_err();
        assert!(
            matches!(
                error,
                LogError::Log(TransparencyError::BadRootSignature { .. })
            ),
            "{error:?}"
        );
    }

    #[test]
    fn an_older_root_than_one_seen_is_refused() {
        let (memory, _) = serving_bob();
        *memory.log_record.borrow_mut() = Some(LogRecord {
            pins: memory.log.pins(),
            newest: Some(memory.log.sign(100, [7; 32])),
        });
        let error = fetch(&memory).unwrap_err();
        assert!(
            matches!(
                error,
                LogError::Log(TransparencyError::Rollback {
                    served: 1,
                    seen: 100
                })
            ),
            "{error:?}"
        );
    }

    #[test]
    fn an_entry_older_than_one_verified_is_refused() {
        let (memory, _) = serving_bob();
        fetch(&memory).unwrap();
        assert_eq!(memory.log_versions.borrow().get("bob"), Some(&1));
        // This device verified version 2 of bob's entry before (a key bob
        // has since replaced): a proof of version 1 shows it again.
        memory.log_versions.borrow_mut().insert("bob".into(), 2);
        let error = fetch(&memory).unwrap_err();
        assert!(
            matches!(
                error,
                LogError::NotInLog {
                    reason: TransparencyError::EntryRollback { served: 1, seen: 2 },
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(memory.log_versions.borrow().get("bob"), Some(&2));
    }

    #[test]
    fn each_new_version_is_checked_once_with_the_proof_of_the_newest() {
        let (memory, bob) = serving_bob();
        fetch(&memory).unwrap();
        fetch(&memory).unwrap();
        assert_eq!(*memory.latest_asked.borrow(), ["bob"], "once per version");
        // Bob links a second device: a version this device has not seen.
        let second = IdentityKeyPair::generate(&mut rand::rngs::OsRng);
        memory.bundles.borrow_mut().insert(
            "bob".into(),
            vec![(1, bundle_of(&bob)), (2, bundle_of(&second))],
        );
        fetch(&memory).unwrap();
        assert_eq!(memory.latest_asked.borrow().len(), 2);
        assert_eq!(memory.log_versions.borrow().get("bob"), Some(&2));
    }

    #[test]
    fn a_new_version_without_the_proof_of_the_newest_is_refused() {
        let (memory, bob) = serving_bob();
        memory.log.prove("carol", &[(1, [5; 64])]);
        memory.log.prove("bob", &[(1, bob.public().public_bytes())]);
        // Carol's newest passed off as bob's, at the root bob's lookup is
        // against.
        *memory.latest_override.borrow_mut() = memory.log.latest("carol");
        let error = fetch(&memory).unwrap_err();
        assert!(
            matches!(
                error,
                LogError::NotInLog {
                    reason: TransparencyError::BadProof(_),
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(memory.log_versions.borrow().get("bob"), None);
        // A proof of bob's newest at the same root, but with a list of its
        // own: the lists differ.
        let mut served = memory.log.latest("bob").unwrap();
        served.lists = vec![
            DeviceList::new(vec![starling_transparency::DeviceEntry {
                device_id: 1,
                identity: [6; 64],
            }])
            .unwrap()
            .to_bytes(),
        ];
        *memory.latest_override.borrow_mut() = Some(served);
        assert!(matches!(
            fetch(&memory).unwrap_err(),
            LogError::NotInLog {
                reason: TransparencyError::NotInLog { .. },
                ..
            }
        ));
        // The log's own answer.
        *memory.latest_override.borrow_mut() = None;
        memory.latest_asked.borrow_mut().clear();
        fetch(&memory).unwrap();
        assert_eq!(memory.log_versions.borrow().get("bob"), Some(&1));
    }

    #[test]
    fn an_account_that_changed_between_the_proofs_is_fetched_again() {
        let memory = Memory::default();
        let first = memory.log.prove("bob", &[(1, [1; 64])]);
        // Bob links a device before the proof of his newest is asked for.
        memory.log.prove("bob", &[(1, [1; 64]), (2, [2; 64])]);
        let error = run(verify_account(&memory, &memory, "bob", Some(&first))).unwrap_err();
        assert!(
            matches!(error, LogError::Changed { ref username } if username == "bob"),
            "{error:?}"
        );
        assert_eq!(memory.log_versions.borrow().get("bob"), None);
    }

    #[test]
    fn the_walk_to_a_newer_root_checks_every_step() {
        let (memory, _) = serving_bob();
        fetch(&memory).unwrap();
        // Five more epochs: the walk pages through them two at a time.
        for n in 2..7u8 {
            memory.log.prove("carol", &[(1, [n; 64])]);
        }
        let devices = fetch(&memory).unwrap();
        assert_eq!(devices.entries().len(), 1);
        let newest = memory.log_record.borrow().unwrap().newest_root().unwrap();
        assert_eq!(newest.0, 6);
    }

    #[test]
    fn a_history_that_does_not_extend_the_root_seen_is_refused() {
        let (memory, _) = serving_bob();
        memory.log.prove("carol", &[(1, [1; 64])]);
        memory.log.prove("carol", &[(1, [2; 64])]);
        // This device saw another root at epoch 1 than the log's.
        *memory.log_record.borrow_mut() = Some(LogRecord {
            pins: memory.log.pins(),
            newest: Some(memory.log.sign(1, [7; 32])),
        });
        let error = fetch(&memory).unwrap_err();
        assert!(
            matches!(
                error,
                LogError::Log(TransparencyError::NotAppendOnly { epoch: 2 })
            ),
            "{error:?}"
        );
        assert_eq!(
            memory.log_record.borrow().unwrap().newest_root(),
            Some((1, [7; 32])),
            "nothing learned from a refused walk"
        );
    }

    #[test]
    fn a_device_known_only_from_its_message_must_be_in_the_log() {
        let (memory, bob) = serving_bob();
        let stranger = IdentityKeyPair::generate(&mut rand::rngs::OsRng);
        let logged = |device, identity: &IdentityKeyPair| {
            run(logged_device(
                &memory,
                &memory,
                "bob",
                device,
                identity.public(),
            ))
            .unwrap()
            .is_some()
        };
        assert!(logged(1, &bob), "the device the log holds");
        assert!(!logged(1, &stranger), "another key for that device");
        assert!(!logged(2, &bob), "a device the log does not hold");
        // A key already recorded needs no lookup, even with the server
        // offline.
        run(memory.observe_identity("bob", 1, bob.public(), (None, None))).unwrap();
        memory.log.frozen.set(true);
        memory.bundles.borrow_mut().clear();
        assert!(logged(1, &bob));
    }
}
