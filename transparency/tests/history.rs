//! The owner's check of its history against a real akd directory (in
//! memory): every version's device list verifies, oldest first; a list
//! left out, a list swapped, a history cut short, another account's
//! history and a version beyond the log are each refused. A contact's
//! check of the newest version alone likewise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use akd::storage::StorageManager;
use akd::storage::memory::AsyncInMemoryDatabase;
use akd::{AzksParallelismConfig, Directory, HistoryParams};
use starling_protocol::Username;
use starling_transparency::history::{encode_history, verify_history, verify_latest};
use starling_transparency::verify::LogPins;
use starling_transparency::{
    CONFIGURATION_ID, DeviceEntry, DeviceList, LogConfig, LogSigningKey, LogView, RootStatement,
    TransparencyError, VerifiedRoot, VrfSecret, label,
};

type Log = Directory<LogConfig, AsyncInMemoryDatabase, VrfSecret>;

async fn log() -> Log {
    let storage = StorageManager::new_no_cache(AsyncInMemoryDatabase::new());
    Directory::new(
        storage,
        VrfSecret::from_bytes([7; 32]),
        AzksParallelismConfig::disabled(),
    )
    .await
    .unwrap()
}

fn devices(entries: &[(u32, u8)]) -> DeviceList {
    DeviceList::new(
        entries
            .iter()
            .map(|&(device_id, fill)| DeviceEntry {
                device_id,
                identity: [fill; 64],
            })
            .collect(),
    )
    .unwrap()
}

fn user(name: &str) -> Username {
    Username::parse(name).unwrap()
}

/// Alice's three versions (one device, a second linked, the first
/// removed) among bob's changes; the verified root and the pins.
async fn alices_log() -> (Log, LogPins, VerifiedRoot) {
    let log = log().await;
    let alice = label(&user("alice"));
    for list in [devices(&[(1, 1)]), devices(&[(1, 1), (2, 2)])] {
        log.publish(vec![(alice.clone(), list.value())])
            .await
            .unwrap();
        log.publish(vec![(label(&user("bob")), devices(&[(1, 9)]).value())])
            .await
            .unwrap();
    }
    log.publish(vec![(alice, devices(&[(2, 2)]).value())])
        .await
        .unwrap();
    let key = LogSigningKey::generate(&mut rand::rngs::OsRng);
    let pins = LogPins {
        log_key: key.public(),
        vrf_public_key: *log.get_public_key().await.unwrap().as_bytes(),
    };
    let hash = log.get_epoch_hash().await.unwrap();
    let signed = key.sign(RootStatement {
        configuration: CONFIGURATION_ID,
        epoch: hash.epoch(),
        root: hash.hash(),
        vrf_public_key: pins.vrf_public_key,
        published_hour: 493_000,
    });
    let root = LogView::new(pins).accept_root(&signed).unwrap();
    (log, pins, root)
}

async fn history_of(log: &Log, name: &str) -> Vec<u8> {
    let (proof, _) = log
        .key_history(&label(&user(name)), HistoryParams::Complete)
        .await
        .unwrap();
    encode_history(&proof).unwrap()
}

/// Alice's lists as the server serves them: newest first.
fn served() -> Vec<Vec<u8>> {
    [
        devices(&[(2, 2)]),
        devices(&[(1, 1), (2, 2)]),
        devices(&[(1, 1)]),
    ]
    .iter()
    .map(DeviceList::to_bytes)
    .collect()
}

#[tokio::test]
async fn every_version_verifies_oldest_first() {
    let (log, pins, root) = alices_log().await;
    let proof = history_of(&log, "alice").await;
    let history = verify_history(&pins, &root, &user("alice"), &proof, &served()).unwrap();
    let seen: Vec<_> = history.iter().map(|e| (e.version, e.epoch)).collect();
    assert_eq!(
        seen,
        [(1, 1), (2, 3), (3, 4)],
        "bob's unchanged list made no epoch"
    );
    assert_eq!(history[1].devices, Some(devices(&[(1, 1), (2, 2)])));
}

#[tokio::test]
async fn a_list_the_log_does_not_hold_is_refused() {
    let (log, pins, root) = alices_log().await;
    let proof = history_of(&log, "alice").await;
    // The server shows alice her second version without the device it
    // added.
    let mut lists = served();
    lists[1] = devices(&[(1, 1)]).to_bytes();
    assert_eq!(
        verify_history(&pins, &root, &user("alice"), &proof, &lists),
        Err(TransparencyError::NotInLog {
            username: "alice".into()
        })
    );
    // One list fewer than versions.
    assert!(matches!(
        verify_history(&pins, &root, &user("alice"), &proof, &served()[..2]),
        Err(TransparencyError::MalformedProof(_))
    ));
}

#[tokio::test]
async fn a_history_cut_short_is_refused() {
    let (log, pins, root) = alices_log().await;
    // The newest version only, passed off as the whole history.
    let (recent, _) = log
        .key_history(&label(&user("alice")), HistoryParams::MostRecent(1))
        .await
        .unwrap();
    let recent = encode_history(&recent).unwrap();
    assert!(matches!(
        verify_history(&pins, &root, &user("alice"), &recent, &served()[..1]),
        Err(TransparencyError::BadProof(_))
    ));
    // Bob's history passed off as alice's.
    let bobs = history_of(&log, "bob").await;
    let bob_lists = vec![devices(&[(1, 9)]).to_bytes()];
    let passed_off = verify_history(&pins, &root, &user("alice"), &bobs, &bob_lists);
    assert!(
        matches!(passed_off, Err(TransparencyError::BadProof(_))),
        "{passed_off:?}"
    );
    // Garbage.
    assert!(matches!(
        verify_history(&pins, &root, &user("alice"), b"garbage", &served()),
        Err(TransparencyError::MalformedProof(_))
    ));
}

#[tokio::test]
async fn the_newest_version_alone_verifies_for_a_contact() {
    let (log, pins, root) = alices_log().await;
    let (recent, _) = log
        .key_history(&label(&user("alice")), HistoryParams::MostRecent(1))
        .await
        .unwrap();
    let recent = encode_history(&recent).unwrap();
    let newest = &served()[0];
    let entry = verify_latest(&pins, &root, &user("alice"), &recent, newest).unwrap();
    assert_eq!((entry.version, entry.epoch), (3, 4));
    assert_eq!(entry.devices, Some(devices(&[(2, 2)])));
    // Her second version shown as the newest.
    assert_eq!(
        verify_latest(&pins, &root, &user("alice"), &recent, &served()[1]),
        Err(TransparencyError::NotInLog {
            username: "alice".into()
        })
    );
    // The complete history is not the proof of the newest alone.
    let complete = history_of(&log, "alice").await;
    assert!(matches!(
        verify_latest(&pins, &root, &user("alice"), &complete, newest),
        Err(TransparencyError::MalformedProof(_))
    ));
    // Bob's newest passed off as alice's.
    let (bobs, _) = log
        .key_history(&label(&user("bob")), HistoryParams::MostRecent(1))
        .await
        .unwrap();
    let bobs = encode_history(&bobs).unwrap();
    let bob_list = devices(&[(1, 9)]).to_bytes();
    assert!(matches!(
        verify_latest(&pins, &root, &user("alice"), &bobs, &bob_list),
        Err(TransparencyError::BadProof(_))
    ));
}
