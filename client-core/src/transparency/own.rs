//! Owners watch their own name (`crypto/SPEC.md` §16.6): a device checks
//! the log's whole history of its account and warns of every device or
//! key in it that it did not see its account publish.
//!
//! The log shows everyone the same versions of an account, so a device
//! the server adds to alice's account, for bob to encrypt to, shows in
//! alice's history too, even if it stood for one epoch only. A device
//! takes its account as it found it when it was set up (the first version
//! that lists it with its own key); every later version is compared with
//! the one before: a device added, a device's key changed, this device's
//! own entry changed or gone, and a history that no longer holds what
//! this device checked before, each is a warning ([`OwnLogChange`]),
//! stored with the account's other warnings, which the app shows on
//! every start until they are dealt with. Each device of the account
//! checks for itself, so each warns.
//!
//! A device linked by the account's owner shows too: the log cannot tell
//! it from one the server added. What tells them apart is the person who
//! linked it, who is shown the device and its epoch.

use starling_crypto::IdentityKey;
use starling_protocol::Username;
use starling_transparency::DeviceList;
use starling_transparency::history::{HistoryEntry, verify_history};

use super::{LogError, Result, log_record, remember, trusted_root};
use crate::storage::Storage;
use crate::transport::Transport;

/// What the server sends for `GET /v1/transparency/history` (the own
/// account's complete history) and `GET /v1/transparency/latest/{username}`
/// (an account's newest version), decoded from its transport encoding but
/// not checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedHistory {
    /// The signed root the proof is against.
    pub signed_root: Vec<u8>,
    /// akd's key-history proof of the account (protobuf).
    pub proof: Vec<u8>,
    /// Each version's canonical device list, newest first (empty for a
    /// deletion).
    pub lists: Vec<Vec<u8>>,
}

/// How far this device has checked its account's history: the newest
/// version it compared, and that version's devices (`None`: the account
/// was deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnLogState {
    /// The version.
    pub version: u64,
    /// Its devices.
    pub devices: Option<DeviceList>,
}

/// Something in the account's history this device did not see published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnLogChange {
    /// A device the version before did not list.
    DeviceAdded {
        /// The device.
        device_id: u32,
        /// The epoch that added it.
        epoch: u64,
    },
    /// A device listed before with another identity key.
    KeyChanged {
        /// The device.
        device_id: u32,
        /// The epoch of the new key.
        epoch: u64,
    },
    /// This device's id listed with an identity key that is not its own.
    ThisDeviceKeyChanged {
        /// This device.
        device_id: u32,
        /// The epoch of the other key.
        epoch: u64,
    },
    /// This device no longer listed: removed, or dropped by the server.
    ThisDeviceGone {
        /// This device.
        device_id: u32,
        /// The epoch it went in.
        epoch: u64,
    },
    /// The history no longer holds the version this device checked
    /// before, as it checked it.
    HistoryRewritten {
        /// The version.
        version: u64,
    },
}

impl OwnLogChange {
    /// The warning a person must see.
    pub fn warning(&self) -> String {
        match self {
            Self::DeviceAdded { device_id, epoch } => format!(
                "the transparency log shows a device ({device_id}) added to your account at \
                 epoch {epoch}; if you did not link it, its keys were published without you: \
                 remove it (starling devices remove {device_id}) and tell your administrator"
            ),
            Self::KeyChanged { device_id, epoch } => format!(
                "the transparency log shows a new identity key for your device {device_id} at \
                 epoch {epoch}; if you did not set that device up again, the key was published \
                 without you: remove it (starling devices remove {device_id}) and tell your \
                 administrator"
            ),
            Self::ThisDeviceKeyChanged { device_id, epoch } => format!(
                "the transparency log shows an identity key for this device ({device_id}) at \
                 epoch {epoch} that is not this device's: it was published without you; tell \
                 your administrator"
            ),
            Self::ThisDeviceGone { device_id, epoch } => format!(
                "the transparency log shows this device ({device_id}) no longer in your account \
                 from epoch {epoch}: it was removed, or the server dropped it; contacts cannot \
                 write to it"
            ),
            Self::HistoryRewritten { version } => format!(
                "the transparency log's history of your account no longer holds version \
                 {version} as this device checked it: the log was rewritten; tell your \
                 administrator"
            ),
        }
    }
}

/// Compares the verified history `entries` (oldest first) with what this
/// device (`me`: its id and identity's public bytes) checked before
/// (`state`): the state to keep and what changed. `None` while no version
/// lists this device with its key (it is not published yet).
pub(super) fn review(
    state: Option<&OwnLogState>,
    me: (u32, &[u8; 64]),
    entries: &[HistoryEntry],
) -> Option<(OwnLogState, Vec<OwnLogChange>)> {
    let mut changes = Vec::new();
    let (mut previous, start) = match state {
        Some(state) => {
            let same = entries
                .iter()
                .find(|e| e.version == state.version)
                .is_some_and(|e| e.devices == state.devices);
            if !same {
                changes.push(OwnLogChange::HistoryRewritten {
                    version: state.version,
                });
            }
            (state.clone(), state.version)
        }
        None => {
            // The account as this device found it when it was set up.
            let first = entries.iter().find(|e| {
                e.devices
                    .as_ref()
                    .is_some_and(|d| d.identity(me.0) == Some(me.1))
            })?;
            let before = entries.iter().filter(|e| e.version <= first.version);
            baseline_changes(before, me, &mut changes);
            let state = OwnLogState {
                version: first.version,
                devices: first.devices.clone(),
            };
            (state, first.version)
        }
    };
    for entry in entries.iter().filter(|e| e.version > start) {
        compare(&previous, entry, me, &mut changes);
        previous = OwnLogState {
            version: entry.version,
            devices: entry.devices.clone(),
        };
    }
    Some((previous, changes))
}

/// The device id of the device that registered an account: the first.
const FIRST_DEVICE: u32 = 1;

/// What the versions up to the one this device takes as its start say
/// that it can judge: device ids are never reused, so its own id with
/// another key is a key published in its name; and the device that
/// registered the account had no other device before or beside it, so
/// any other device in those versions was added without it. (A linked
/// device takes the devices it finds: its person linked it from one.)
fn baseline_changes<'a>(
    versions: impl Iterator<Item = &'a HistoryEntry>,
    me: (u32, &[u8; 64]),
    changes: &mut Vec<OwnLogChange>,
) {
    let mut seen = std::collections::BTreeSet::new();
    for entry in versions {
        let Some(devices) = &entry.devices else {
            continue;
        };
        for device in devices.entries() {
            let change = if device.device_id == me.0 {
                (device.identity != *me.1).then_some(OwnLogChange::ThisDeviceKeyChanged {
                    device_id: me.0,
                    epoch: entry.epoch,
                })
            } else {
                (me.0 == FIRST_DEVICE).then_some(OwnLogChange::DeviceAdded {
                    device_id: device.device_id,
                    epoch: entry.epoch,
                })
            };
            if let Some(change) = change
                && seen.insert(device.device_id)
            {
                changes.push(change);
            }
        }
    }
}

/// What `entry` changed from `previous`, from this device's view.
fn compare(
    previous: &OwnLogState,
    entry: &HistoryEntry,
    me: (u32, &[u8; 64]),
    changes: &mut Vec<OwnLogChange>,
) {
    let (device_id, epoch) = (me.0, entry.epoch);
    let before = |id| previous.devices.as_ref().and_then(|d| d.identity(id));
    let listed_before = before(device_id) == Some(me.1);
    let Some(devices) = &entry.devices else {
        if listed_before {
            changes.push(OwnLogChange::ThisDeviceGone { device_id, epoch });
        }
        return;
    };
    match devices.identity(device_id) {
        Some(key) if key == me.1 => {}
        Some(key) if before(device_id) != Some(key) => {
            changes.push(OwnLogChange::ThisDeviceKeyChanged { device_id, epoch });
        }
        Some(_) => {}
        None if listed_before => changes.push(OwnLogChange::ThisDeviceGone { device_id, epoch }),
        None => {}
    }
    for other in devices
        .entries()
        .iter()
        .filter(|e| e.device_id != device_id)
    {
        match before(other.device_id) {
            None => changes.push(OwnLogChange::DeviceAdded {
                device_id: other.device_id,
                epoch,
            }),
            Some(key) if *key != other.identity => changes.push(OwnLogChange::KeyChanged {
                device_id: other.device_id,
                epoch,
            }),
            Some(_) => {}
        }
    }
}

/// Checks the log's history of this device's own account (`username`,
/// `device_id`, `identity`) against what the device checked before, stores
/// how far it got and a warning for each change, and returns the changes.
/// Nothing while the log does not hold this device yet.
pub async fn check_own_history<S: Storage, T: Transport>(
    storage: &S,
    transport: &T,
    username: &str,
    device_id: u32,
    identity: &IdentityKey,
) -> Result<Vec<OwnLogChange>, S, T> {
    let not_in_log = |reason| LogError::NotInLog {
        username: username.to_owned(),
        reason,
    };
    let record = log_record(storage, transport).await?;
    let Some(served) = transport.own_history().await.map_err(LogError::Transport)? else {
        // Not in the log yet; but once this device has checked a history,
        // a server that shows none hides one.
        if storage
            .own_log_state()
            .await
            .map_err(LogError::Storage)?
            .is_some()
        {
            return Err(not_in_log(
                starling_transparency::TransparencyError::MalformedProof(
                    "the server no longer shows this account's history".into(),
                ),
            ));
        }
        return Ok(Vec::new());
    };
    let (root, signed) = trusted_root(storage, transport, &record, &served.signed_root).await?;
    let name = Username::parse(username).map_err(|_| {
        not_in_log(starling_transparency::TransparencyError::MalformedDevices(
            "not a username",
        ))
    })?;
    let entries = verify_history(&record.pins, &root, &name, &served.proof, &served.lists)
        .map_err(not_in_log)?;
    remember::<S, T>(storage, record.pins, &signed).await?;
    let state = storage.own_log_state().await.map_err(LogError::Storage)?;
    let me = identity.public_bytes();
    let Some((state, changes)) = review(state.as_ref(), (device_id, &me), &entries) else {
        return Ok(Vec::new());
    };
    for change in &changes {
        storage
            .add_warning(username, &change.warning())
            .await
            .map_err(LogError::Storage)?;
    }
    storage
        .save_own_log_state(&state)
        .await
        .map_err(LogError::Storage)?;
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use starling_transparency::DeviceEntry;

    use super::*;

    fn list(devices: &[(u32, u8)]) -> Option<DeviceList> {
        let entries = devices
            .iter()
            .map(|&(device_id, fill)| DeviceEntry {
                device_id,
                identity: [fill; 64],
            })
            .collect();
        Some(DeviceList::new(entries).unwrap())
    }

    fn history(versions: &[Option<DeviceList>]) -> Vec<HistoryEntry> {
        versions
            .iter()
            .enumerate()
            .map(|(i, devices)| HistoryEntry {
                version: i as u64 + 1,
                epoch: 10 * (i as u64 + 1),
                devices: devices.clone(),
            })
            .collect()
    }

    const ME: (u32, &[u8; 64]) = (2, &[2; 64]);

    #[test]
    fn the_account_as_found_at_setup_is_taken() {
        // Device 1 came and went before this device (2) was linked.
        let entries = history(&[list(&[(1, 1)]), list(&[(1, 1), (2, 2)]), list(&[(2, 2)])]);
        let (state, changes) = review(None, ME, &entries).unwrap();
        assert_eq!(changes, []);
        assert_eq!(state.version, 3);
        assert_eq!(state.devices, list(&[(2, 2)]));
    }

    #[test]
    fn what_the_registering_device_did_not_publish_is_seen_from_the_start() {
        let first: (u32, &[u8; 64]) = (1, &[1; 64]);
        // The server published a key of its own for device 1 first, then
        // device 1 with a device 3 beside it.
        let entries = history(&[list(&[(1, 7)]), list(&[(1, 1), (3, 3)])]);
        let (state, changes) = review(None, first, &entries).unwrap();
        assert_eq!(
            changes,
            [
                OwnLogChange::ThisDeviceKeyChanged {
                    device_id: 1,
                    epoch: 10
                },
                OwnLogChange::DeviceAdded {
                    device_id: 3,
                    epoch: 20
                },
            ]
        );
        assert_eq!(state.version, 2);
        // A linked device's id with another key before it was listed.
        let entries = history(&[list(&[(1, 1), (2, 9)]), list(&[(1, 1), (2, 2)])]);
        let (_, changes) = review(None, ME, &entries).unwrap();
        assert_eq!(
            changes,
            [OwnLogChange::ThisDeviceKeyChanged {
                device_id: 2,
                epoch: 10
            }]
        );
    }

    #[test]
    fn nothing_is_taken_before_this_device_is_listed() {
        let entries = history(&[list(&[(1, 1)]), list(&[(1, 1), (2, 9)])]);
        assert_eq!(review(None, ME, &entries), None);
    }

    #[test]
    fn every_later_device_and_key_is_a_change() {
        let entries = history(&[
            list(&[(2, 2)]),
            list(&[(2, 2), (3, 3)]),
            list(&[(2, 2), (3, 4)]),
            list(&[(2, 2)]),
        ]);
        let (state, changes) = review(None, ME, &entries).unwrap();
        assert_eq!(
            changes,
            [
                OwnLogChange::DeviceAdded {
                    device_id: 3,
                    epoch: 20
                },
                OwnLogChange::KeyChanged {
                    device_id: 3,
                    epoch: 30
                },
            ],
            "a device that stood for one version is still seen"
        );
        assert_eq!(state.version, 4);
        // Checked again with nothing new: nothing to say.
        let (_, again) = review(Some(&state), ME, &entries).unwrap();
        assert_eq!(again, []);
    }

    #[test]
    fn this_devices_own_entry_is_watched() {
        let entries = history(&[
            list(&[(2, 2)]),
            list(&[(2, 7)]),
            list(&[(2, 2)]),
            list(&[(1, 1)]),
            None,
        ]);
        let (_, changes) = review(None, ME, &entries).unwrap();
        assert_eq!(
            changes,
            [
                OwnLogChange::ThisDeviceKeyChanged {
                    device_id: 2,
                    epoch: 20
                },
                OwnLogChange::ThisDeviceGone {
                    device_id: 2,
                    epoch: 40
                },
                OwnLogChange::DeviceAdded {
                    device_id: 1,
                    epoch: 40
                },
            ]
        );
    }

    /// Alice's device 1, its log and store in memory, and its key.
    fn alices_phone() -> (crate::testing::Memory, starling_crypto::IdentityKeyPair) {
        let memory = crate::testing::Memory::default();
        let phone = starling_crypto::IdentityKeyPair::generate(&mut rand::rngs::OsRng);
        *memory.me.borrow_mut() = Some(("alice".into(), 1, phone.public().clone()));
        (memory, phone)
    }

    fn check(
        memory: &crate::testing::Memory,
        phone: &starling_crypto::IdentityKeyPair,
    ) -> Result<Vec<OwnLogChange>, crate::testing::Memory, crate::testing::Memory> {
        crate::testing::run(check_own_history(
            memory,
            memory,
            "alice",
            1,
            phone.public(),
        ))
    }

    #[test]
    fn a_device_published_without_the_owner_is_warned_of_once() {
        let (memory, phone) = alices_phone();
        assert_eq!(check(&memory, &phone).unwrap(), [], "not in the log yet");
        let mine = (1, phone.public().public_bytes());
        memory.log.prove("alice", &[mine]);
        assert_eq!(check(&memory, &phone).unwrap(), []);
        assert!(memory.warnings.borrow().is_empty());
        // The server publishes a device 2 for alice.
        memory.log.prove("alice", &[mine, (2, [9; 64])]);
        memory.log.prove("bob", &[(1, [3; 64])]);
        let changes = check(&memory, &phone).unwrap();
        assert_eq!(
            changes,
            [OwnLogChange::DeviceAdded {
                device_id: 2,
                epoch: 2
            }]
        );
        assert_eq!(check(&memory, &phone).unwrap(), [], "said once");
        let warnings = memory.warnings.borrow();
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].0, "alice");
        assert!(warnings[0].1.contains("device (2) added"), "{warnings:?}");
    }

    #[test]
    fn a_history_no_longer_shown_is_refused() {
        let (memory, phone) = alices_phone();
        memory
            .log
            .prove("alice", &[(1, phone.public().public_bytes())]);
        assert_eq!(check(&memory, &phone).unwrap(), []);
        // The server answers "not in the log" for an account it showed.
        *memory.me.borrow_mut() = None;
        let hidden = check(&memory, &phone);
        assert!(
            matches!(hidden, Err(LogError::NotInLog { ref username, .. }) if username == "alice"),
            "{hidden:?}"
        );
    }

    #[test]
    fn a_history_that_does_not_verify_is_refused_and_nothing_kept() {
        let (memory, phone) = alices_phone();
        let mine = (1, phone.public().public_bytes());
        memory.log.prove("alice", &[mine]);
        memory.log.prove("alice", &[mine, (2, [9; 64])]);
        // A server that shows alice her second version without device 2.
        let mut served = memory.log.history("alice").unwrap();
        served.lists[0] = served.lists[1].clone();
        let own = run_with_history(&memory, &phone, served);
        assert!(
            matches!(own, Err(LogError::NotInLog { ref username, .. }) if username == "alice"),
            "{own:?}"
        );
        assert_eq!(*memory.own_log.borrow(), None);
    }

    /// [`check_own_history`] with the server answering `served`.
    fn run_with_history(
        memory: &crate::testing::Memory,
        phone: &starling_crypto::IdentityKeyPair,
        served: ServedHistory,
    ) -> Result<Vec<OwnLogChange>, crate::testing::Memory, crate::testing::Memory> {
        *memory.history_override.borrow_mut() = Some(served);
        check(memory, phone)
    }

    #[test]
    fn a_history_that_changed_what_was_checked_is_a_change() {
        let entries = history(&[list(&[(2, 2)]), list(&[(2, 2), (3, 3)])]);
        let state = OwnLogState {
            version: 2,
            devices: list(&[(2, 2), (3, 5)]),
        };
        let (_, changes) = review(Some(&state), ME, &entries).unwrap();
        assert_eq!(changes, [OwnLogChange::HistoryRewritten { version: 2 }]);
        // A history cut short of the version checked.
        let (_, changes) = review(Some(&state), ME, &entries[..1]).unwrap();
        assert_eq!(changes, [OwnLogChange::HistoryRewritten { version: 2 }]);
    }
}
