//! The key transparency log on the server's own database, both databases:
//! akd's storage suite passes on it; every registration, link and removal
//! reaches the next epoch, whose root the log key signs, whose append-only
//! proof from the epoch before verifies, and in which a lookup proof of
//! the account's current devices verifies with the client's checks; a
//! restart continues the log, and an epoch akd committed just before a
//! crash is signed on the next start; a second publisher working from a
//! stale tree cannot write, and a process with other key files than the
//! log's refuses to start.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use akd::auditor::audit_verify;
use akd::{AppendOnlyProof, SingleAppendOnlyProof};
use common::DbKind;
use protobuf::Message as _;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use starling_crypto::IdentityKeyPair;
use starling_protocol::Username;
use starling_server::store::{NewDevice, Store};
use starling_server::transparency::publisher::Round;
use starling_server::transparency::storage::LogStorage;
use starling_server::transparency::{LOG_KEY_FILE, LogDirectory, TransparencyLog, check_key_files};
use starling_test_support::{TestDatabase, both_databases};
use starling_transparency::verify::{LogPins, encode_lookup, verify_lookup};
use starling_transparency::{DeviceEntry, DeviceList, LogConfig, LogView, SignedRoot, label};

async fn storage_suite(kind: DbKind) {
    let db = TestDatabase::create(kind).await;
    let store = common::open_store(&db).await;
    akd::storage::tests::run_test_cases_for_storage_impl(LogStorage::new(store)).await;
}
both_databases!(akds_storage_suite, storage_suite);

/// The identity of test device `seed`.
fn identity(seed: u8) -> IdentityKeyPair {
    IdentityKeyPair::generate(&mut ChaCha20Rng::from_seed([seed; 32]))
}

fn device(seed: u8) -> NewDevice {
    NewDevice {
        credential_hash: [seed; 32],
        identity_key: identity(seed).public().to_bytes(),
    }
}

/// The list of `(device id, identity seed)`.
fn list(devices: &[(u32, u8)]) -> DeviceList {
    DeviceList::new(
        devices
            .iter()
            .map(|&(device_id, seed)| DeviceEntry {
                device_id,
                identity: identity(seed).public().public_bytes(),
            })
            .collect(),
    )
    .unwrap()
}

fn pins(log: &TransparencyLog) -> LogPins {
    LogPins {
        log_key: log.log_public_key(),
        vrf_public_key: log.vrf_public_key(),
    }
}

async fn root(store: &Store, log: &TransparencyLog, epoch: u64) -> SignedRoot {
    let bytes = store.kt_root(epoch as i64).await.unwrap().expect("a root");
    let root = SignedRoot::from_bytes(&bytes).unwrap();
    root.verify(&log.log_public_key()).unwrap();
    assert_eq!(root.statement.epoch, epoch);
    assert_eq!(root.statement.vrf_public_key, log.vrf_public_key());
    root
}

/// Every stored step from epoch 0 verifies as append-only.
async fn audit_all(store: &Store, log: &TransparencyLog) -> u64 {
    let steps = store.kt_audit(0, 1_000, usize::MAX).await.unwrap();
    let mut previous = root(store, log, 0).await;
    for (epoch, _, proof) in &steps {
        let current = root(store, log, *epoch as u64).await;
        let proto =
            akd::proto::specs::types::SingleAppendOnlyProof::parse_from_bytes(proof).unwrap();
        let single = SingleAppendOnlyProof::try_from(&proto).unwrap();
        audit_verify::<LogConfig>(
            vec![previous.statement.root, current.statement.root],
            AppendOnlyProof {
                proofs: vec![single],
                epochs: vec![previous.statement.epoch],
            },
        )
        .await
        .unwrap_or_else(|e| panic!("epoch {epoch}: {e}"));
        previous = current;
    }
    previous.statement.epoch
}

/// The account's devices as the log proves them at the newest root.
async fn check_lookup(
    store: &Store,
    log: &TransparencyLog,
    directory: &LogDirectory,
    name: &str,
    devices: &DeviceList,
) {
    let username = Username::parse(name).unwrap();
    let (newest, _) = store.kt_latest_root().await.unwrap().unwrap();
    let signed = root(store, log, newest as u64).await;
    let view = LogView::new(pins(log));
    let verified = view.accept_root(&signed).unwrap();
    let (proof, hash) = directory.lookup(label(&username)).await.unwrap();
    assert_eq!(hash.epoch(), newest as u64);
    let proof = encode_lookup(&proof).unwrap();
    verify_lookup(&pins(log), &verified, &username, &proof, devices).unwrap();
}

async fn changes_are_published(kind: DbKind) {
    let db = TestDatabase::create(kind).await;
    let store = common::open_store(&db).await;
    let keys = tempfile::tempdir().unwrap();
    let log = TransparencyLog::load(store.clone(), keys.path()).unwrap();
    let directory = log.open_directory().await.unwrap();
    assert_eq!(log.publish_round(&directory).await.unwrap(), Round::Idle);

    let alice = store.register("alice", None, &device(1), 1).await.unwrap();
    store.register("bob", None, &device(2), 1).await.unwrap();
    assert_eq!(
        log.publish_round(&directory).await.unwrap(),
        Round::Published {
            epoch: 1,
            accounts: 2
        }
    );
    assert_eq!(*log.published().borrow(), Some(1));
    check_lookup(&store, &log, &directory, "alice", &list(&[(1, 1)])).await;
    check_lookup(&store, &log, &directory, "bob", &list(&[(1, 2)])).await;
    assert_eq!(log.publish_round(&directory).await.unwrap(), Round::Idle);

    // A linked device, then its removal: two epochs.
    store
        .create_link_code(&[9; 32], (alice, 1), i64::MAX, false, None)
        .await
        .unwrap();
    store
        .link_device(&[9; 32], (&device(3), None), 16, 2)
        .await
        .unwrap();
    assert!(store.kt_is_pending(alice).await.unwrap());
    assert!(matches!(
        log.publish_round(&directory).await.unwrap(),
        Round::Published { epoch: 2, .. }
    ));
    assert!(!store.kt_is_pending(alice).await.unwrap());
    check_lookup(&store, &log, &directory, "alice", &list(&[(1, 1), (2, 3)])).await;
    store.remove_device(alice, 1, 2, 3).await.unwrap();
    assert!(matches!(
        log.publish_round(&directory).await.unwrap(),
        Round::Published { epoch: 3, .. }
    ));
    check_lookup(&store, &log, &directory, "alice", &list(&[(1, 1)])).await;
    assert_eq!(audit_all(&store, &log).await, 3);

    // A restart: the same keys, a new directory on the same database.
    drop(directory);
    let log = TransparencyLog::load(store.clone(), keys.path()).unwrap();
    let directory = log.open_directory().await.unwrap();
    assert_eq!(log.publish_round(&directory).await.unwrap(), Round::Idle);
    store.register("carol", None, &device(4), 4).await.unwrap();
    assert!(matches!(
        log.publish_round(&directory).await.unwrap(),
        Round::Published { epoch: 4, .. }
    ));
    check_lookup(&store, &log, &directory, "carol", &list(&[(1, 4)])).await;
    check_lookup(&store, &log, &directory, "alice", &list(&[(1, 1)])).await;
    assert_eq!(audit_all(&store, &log).await, 4);
}
both_databases!(every_change_reaches_a_signed_epoch, changes_are_published);

async fn unsigned_epoch_is_signed(kind: DbKind) {
    let db = TestDatabase::create(kind).await;
    let store = common::open_store(&db).await;
    let keys = tempfile::tempdir().unwrap();
    let log = TransparencyLog::load(store.clone(), keys.path()).unwrap();
    let directory = log.open_directory().await.unwrap();
    store.register("alice", None, &device(1), 1).await.unwrap();
    log.publish_round(&directory).await.unwrap();
    // As if the process died after akd committed epoch 1 and before its
    // root was stored.
    common::execute(&db, "DELETE FROM kt_roots WHERE epoch = 1").await;
    common::execute(&db, "DELETE FROM kt_audit WHERE epoch = 1").await;
    common::execute(
        &db,
        "INSERT INTO kt_pending (account_id, seq) SELECT id, 1 FROM accounts",
    )
    .await;
    drop(directory);
    let log = TransparencyLog::load(store.clone(), keys.path()).unwrap();
    let directory = log.open_directory().await.unwrap();
    // The account waits still, but its list is the log's: no new epoch.
    assert_eq!(
        log.publish_round(&directory).await.unwrap(),
        Round::Unchanged { epoch: 1 }
    );
    assert_eq!(audit_all(&store, &log).await, 1);
    check_lookup(&store, &log, &directory, "alice", &list(&[(1, 1)])).await;
}
both_databases!(
    an_epoch_committed_before_a_crash_is_signed,
    unsigned_epoch_is_signed
);

async fn second_publisher_is_fenced(kind: DbKind) {
    let db = TestDatabase::create(kind).await;
    let store = common::open_store(&db).await;
    let keys = tempfile::tempdir().unwrap();
    let first = TransparencyLog::load(store.clone(), keys.path()).unwrap();
    let first_directory = first.open_directory().await.unwrap();
    first.publish_round(&first_directory).await.unwrap();
    // A node that lost the lock without knowing: its tree is of epoch 0.
    let second = TransparencyLog::load(store.clone(), keys.path()).unwrap();
    let stale = second.open_directory().await.unwrap();
    store.register("alice", None, &device(1), 1).await.unwrap();
    assert!(matches!(
        first.publish_round(&first_directory).await.unwrap(),
        Round::Published { epoch: 1, .. }
    ));
    let eve = Username::parse("eve").unwrap();
    let refused = stale
        .publish(vec![(label(&eve), list(&[(1, 9)]).value())])
        .await;
    assert!(refused.is_err(), "{refused:?}");
    // The log is the first publisher's, whole.
    store.register("bob", None, &device(2), 2).await.unwrap();
    assert!(matches!(
        first.publish_round(&first_directory).await.unwrap(),
        Round::Published { epoch: 2, .. }
    ));
    assert_eq!(audit_all(&store, &first).await, 2);
    check_lookup(&store, &first, &first_directory, "alice", &list(&[(1, 1)])).await;
    check_lookup(&store, &first, &first_directory, "bob", &list(&[(1, 2)])).await;
}
both_databases!(a_second_publisher_cannot_write, second_publisher_is_fenced);

async fn key_files_must_be_the_logs(kind: DbKind) {
    let db = TestDatabase::create(kind).await;
    let store = common::open_store(&db).await;
    let keys = tempfile::tempdir().unwrap();
    // A new log: any keys do, and are made.
    check_key_files(&store, keys.path()).await.unwrap();
    let log = TransparencyLog::load(store.clone(), keys.path()).unwrap();
    let directory = log.open_directory().await.unwrap();
    log.publish_round(&directory).await.unwrap();
    check_key_files(&store, keys.path()).await.unwrap();
    // Another node's own keys, or none at all: refused, nothing made.
    let other = tempfile::tempdir().unwrap();
    TransparencyLog::load(store.clone(), other.path()).unwrap();
    let error = check_key_files(&store, other.path()).await.unwrap_err();
    assert!(
        error.to_string().contains("not those of the log"),
        "{error}"
    );
    let empty = tempfile::tempdir().unwrap();
    let error = check_key_files(&store, empty.path()).await.unwrap_err();
    assert!(error.to_string().contains("is missing"), "{error}");
    assert!(!empty.path().join(LOG_KEY_FILE).exists());
}
both_databases!(
    another_nodes_key_files_are_refused,
    key_files_must_be_the_logs
);

async fn deletions_are_published(kind: DbKind) {
    let db = TestDatabase::create(kind).await;
    let store = common::open_store(&db).await;
    let keys = tempfile::tempdir().unwrap();
    let log = TransparencyLog::load(store.clone(), keys.path()).unwrap();
    let directory = log.open_directory().await.unwrap();
    store.register("alice", None, &device(1), 1).await.unwrap();
    store.register("bob", None, &device(2), 1).await.unwrap();
    log.publish_round(&directory).await.unwrap();
    // The account's row is gone; the log still marks its name deleted.
    store.delete_account("alice", 2).await.unwrap();
    assert_eq!(
        log.publish_round(&directory).await.unwrap(),
        Round::Published {
            epoch: 2,
            accounts: 1
        }
    );
    assert_eq!(log.publish_round(&directory).await.unwrap(), Round::Idle);
    // A name deleted and taken again before the next epoch: one value for
    // it, the new account's.
    store.delete_account("bob", 3).await.unwrap();
    store.register("bob", None, &device(3), 3).await.unwrap();
    assert!(matches!(
        log.publish_round(&directory).await.unwrap(),
        Round::Published { epoch: 3, .. }
    ));
    check_lookup(&store, &log, &directory, "bob", &list(&[(1, 3)])).await;
    assert_eq!(audit_all(&store, &log).await, 3);
}
both_databases!(
    a_deleted_account_is_marked_deleted_in_the_log,
    deletions_are_published
);
