//! The client's checks against a real akd directory (in memory): a lookup
//! proof for the device list the log holds verifies; another list, another
//! account's proof, a root of another key or log, an older root and a
//! second root for one epoch are each refused with their own error; so
//! are an older version's proof and a proof of version 0 (on which akd
//! itself would panic). And
//! the test vectors: a fixed VRF key and three publishes give fixed roots,
//! so a change of akd's configuration or of our encodings fails here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use akd::storage::StorageManager;
use akd::storage::memory::AsyncInMemoryDatabase;
use akd::{AzksParallelismConfig, Directory};
use starling_protocol::Username;
use starling_transparency::verify::{self, LogPins, encode_lookup};
use starling_transparency::{
    CONFIGURATION_ID, DeviceEntry, DeviceList, LogConfig, LogSigningKey, LogView, RootStatement,
    SignedRoot, TransparencyError, VrfSecret, label,
};

/// A fixed VRF secret, for the vectors.
const VRF_SECRET: [u8; 32] = [0x5a; 32];

type Log = Directory<LogConfig, AsyncInMemoryDatabase, VrfSecret>;

async fn log() -> Log {
    let storage = StorageManager::new_no_cache(AsyncInMemoryDatabase::new());
    Directory::new(
        storage,
        VrfSecret::from_bytes(VRF_SECRET),
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

async fn pins(log: &Log, key: &LogSigningKey) -> LogPins {
    let vrf = log.get_public_key().await.unwrap();
    LogPins {
        log_key: key.public(),
        vrf_public_key: *vrf.as_bytes(),
    }
}

async fn signed_root(log: &Log, key: &LogSigningKey, pins: &LogPins) -> SignedRoot {
    let hash = log.get_epoch_hash().await.unwrap();
    key.sign(RootStatement {
        configuration: CONFIGURATION_ID,
        epoch: hash.epoch(),
        root: hash.hash(),
        vrf_public_key: pins.vrf_public_key,
        published_hour: 493_000,
    })
}

/// Alice with one device, then bob, then alice with a second device.
async fn three_epochs(log: &Log) {
    let alice = label(&user("alice"));
    log.publish(vec![(alice.clone(), devices(&[(1, 1)]).value())])
        .await
        .unwrap();
    log.publish(vec![(label(&user("bob")), devices(&[(1, 2)]).value())])
        .await
        .unwrap();
    log.publish(vec![(alice, devices(&[(1, 1), (2, 3)]).value())])
        .await
        .unwrap();
}

#[tokio::test]
async fn a_lookup_of_the_logged_devices_verifies() {
    let log = log().await;
    let key = LogSigningKey::generate(&mut rand::rngs::OsRng);
    three_epochs(&log).await;
    let pins = pins(&log, &key).await;
    let view = LogView::new(pins);
    let root = view
        .accept_root(&signed_root(&log, &key, &pins).await)
        .unwrap();
    assert_eq!(root.epoch(), 3);

    let (proof, _) = log.lookup(label(&user("alice"))).await.unwrap();
    let proof = encode_lookup(&proof).unwrap();
    let current = devices(&[(1, 1), (2, 3)]);
    let found = verify::verify_lookup(&pins, &root, &user("alice"), &proof, &current).unwrap();
    assert_eq!((found.version, found.published), (2, 3));
    assert_eq!(found.devices, current);

    // Alice's old list, a list with a swapped key, a list with a device
    // added by the server: not what the log holds.
    for served in [
        devices(&[(1, 1)]),
        devices(&[(1, 9), (2, 3)]),
        devices(&[(1, 1), (2, 3), (3, 4)]),
    ] {
        assert_eq!(
            verify::verify_lookup(&pins, &root, &user("alice"), &proof, &served),
            Err(TransparencyError::NotInLog {
                username: "alice".into()
            })
        );
    }
    // Bob's proof passed off as alice's.
    let (bobs, _) = log.lookup(label(&user("bob"))).await.unwrap();
    let bobs = encode_lookup(&bobs).unwrap();
    assert!(matches!(
        verify::verify_lookup(&pins, &root, &user("alice"), &bobs, &devices(&[(1, 2)])),
        Err(TransparencyError::BadProof(_))
    ));
    // Garbage, and a proof cut short.
    assert!(matches!(
        verify::verify_lookup(&pins, &root, &user("alice"), b"garbage", &current),
        Err(TransparencyError::MalformedProof(_) | TransparencyError::BadProof(_))
    ));
    assert!(
        verify::verify_lookup(
            &pins,
            &root,
            &user("alice"),
            &proof[..proof.len() / 2],
            &current
        )
        .is_err()
    );
}

#[tokio::test]
async fn a_proof_against_another_root_fails() {
    let log = log().await;
    let key = LogSigningKey::generate(&mut rand::rngs::OsRng);
    three_epochs(&log).await;
    let pins = pins(&log, &key).await;
    let (proof, _) = log.lookup(label(&user("alice"))).await.unwrap();
    let proof = encode_lookup(&proof).unwrap();
    // A root the server signed, but not the one the proof is against.
    let mut statement = signed_root(&log, &key, &pins).await.statement;
    statement.root[0] ^= 1;
    let root = LogView::new(pins)
        .accept_root(&key.sign(statement))
        .unwrap();
    let current = devices(&[(1, 1), (2, 3)]);
    assert!(matches!(
        verify::verify_lookup(&pins, &root, &user("alice"), &proof, &current),
        Err(TransparencyError::BadProof(_))
    ));
}

#[tokio::test]
async fn roots_of_another_key_log_or_time_are_refused() {
    let log = log().await;
    let key = LogSigningKey::generate(&mut rand::rngs::OsRng);
    three_epochs(&log).await;
    let pins = pins(&log, &key).await;
    let signed = signed_root(&log, &key, &pins).await;
    let mut view = LogView::new(pins);

    let stranger = LogSigningKey::generate(&mut rand::rngs::OsRng);
    assert_eq!(
        view.accept_root(&stranger.sign(signed.statement)),
        Err(TransparencyError::BadRootSignature { epoch: 3 })
    );
    let mut other_vrf = signed.statement;
    other_vrf.vrf_public_key[0] ^= 1;
    assert_eq!(
        view.accept_root(&key.sign(other_vrf)),
        Err(TransparencyError::OtherLog { epoch: 3 })
    );

    let root = view.accept_root(&signed).unwrap();
    assert_eq!(view.audit_from(&root), None, "the first root is taken");
    view.advance(root);
    assert_eq!(view.newest(), Some((3, root.root())));

    let mut older = signed.statement;
    older.epoch = 2;
    assert_eq!(
        view.accept_root(&key.sign(older)),
        Err(TransparencyError::Rollback { served: 2, seen: 3 })
    );
    let mut forked = signed.statement;
    forked.root[5] ^= 1;
    assert_eq!(
        view.accept_root(&key.sign(forked)),
        Err(TransparencyError::Fork { epoch: 3 })
    );
    let mut newer = signed.statement;
    newer.epoch = 4;
    let newer = view.accept_root(&key.sign(newer)).unwrap();
    assert_eq!(view.audit_from(&newer), Some((3, root.root())));
}

#[tokio::test]
async fn the_vectors_hold() {
    let log = log().await;
    let vrf = log.get_public_key().await.unwrap();
    let mut roots = Vec::new();
    let alice = label(&user("alice"));
    for update in [
        (alice.clone(), devices(&[(1, 1)]).value()),
        (label(&user("bob")), devices(&[(1, 2)]).value()),
        (alice, devices(&[(1, 1), (2, 3)]).value()),
    ] {
        roots.push(hex::encode(log.publish(vec![update]).await.unwrap().hash()));
    }
    let value = hex::encode(&devices(&[(1, 1), (2, 3)]).value().0);
    let key = LogSigningKey::from_bytes(&[0x11; 32]);
    let statement = RootStatement {
        configuration: CONFIGURATION_ID,
        epoch: 3,
        root: [0x33; 32],
        vrf_public_key: [0x44; 32],
        published_hour: 493_000,
    };
    let signed = hex::encode(key.sign(statement).to_bytes());
    let got = format!(
        "vrf {}\nroots {roots:?}\nvalue {value}\nsigned {signed}",
        hex::encode(vrf.as_bytes())
    );
    let expected = include_str!("vectors.txt");
    assert_eq!(got.trim(), expected.trim(), "\n{got}");
}

#[tokio::test]
async fn an_old_version_and_version_zero_are_refused() {
    let log = log().await;
    let key = LogSigningKey::generate(&mut rand::rngs::OsRng);
    let alice = label(&user("alice"));
    log.publish(vec![(alice.clone(), devices(&[(1, 1)]).value())])
        .await
        .unwrap();
    let (first, _) = log.lookup(alice.clone()).await.unwrap();
    three_epochs(&log).await;
    let pins = pins(&log, &key).await;
    let root = LogView::new(pins)
        .accept_root(&signed_root(&log, &key, &pins).await)
        .unwrap();

    // Alice's first list, with its own proof from when it was current:
    // the log has marked that version stale since.
    let old = encode_lookup(&first).unwrap();
    assert!(matches!(
        verify::verify_lookup(&pins, &root, &user("alice"), &old, &devices(&[(1, 1)])),
        Err(TransparencyError::BadProof(_))
    ));

    let (current, _) = log.lookup(alice).await.unwrap();
    let mut zero = current;
    zero.version = 0;
    let zero = encode_lookup(&zero).unwrap();
    assert_eq!(
        verify::verify_lookup(
            &pins,
            &root,
            &user("alice"),
            &zero,
            &devices(&[(1, 1), (2, 3)])
        ),
        Err(TransparencyError::MalformedProof("version 0".into()))
    );
}
