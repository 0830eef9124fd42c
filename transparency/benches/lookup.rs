//! Criterion benchmark of the client's check of a lookup proof
//! (`verify::verify_lookup`: three VRF verifications, three Merkle paths
//! and the device-list value), against a real akd directory in memory of
//! `STARLING_KT_ACCOUNTS` accounts (default 100,000), published
//! `STARLING_KT_BATCH` (default 10,000) to an epoch. It prints the size of
//! the encoded proof, how long each epoch of the set-up took to publish,
//! and how long an epoch of `STARLING_KT_BATCH` changed accounts takes, as
//! `docs/PERFORMANCE.md` reports them. Storage is akd's in-memory
//! database: the server's own storage adds its writes.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use akd::storage::StorageManager;
use akd::storage::memory::AsyncInMemoryDatabase;
use akd::{AzksParallelismConfig, Directory};
use criterion::Criterion;
use starling_protocol::Username;
use starling_transparency::verify::{self, LogPins, encode_lookup};
use starling_transparency::{
    CONFIGURATION_ID, DeviceEntry, DeviceList, LogConfig, LogSigningKey, LogView, RootStatement,
    VrfSecret, label,
};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn devices(index: usize) -> DeviceList {
    let fill = index.to_be_bytes()[7];
    DeviceList::new(vec![DeviceEntry {
        device_id: 1,
        identity: [fill; 64],
    }])
    .unwrap()
}

fn user(index: usize) -> Username {
    Username::parse(&format!("member{index}")).unwrap()
}

fn lookup(c: &mut Criterion) {
    let accounts = setting("STARLING_KT_ACCOUNTS", 100_000);
    let batch = setting("STARLING_KT_BATCH", 10_000).max(1);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let storage = StorageManager::new(AsyncInMemoryDatabase::new(), None, None, None);
    let log = runtime
        .block_on(Directory::<LogConfig, _, _>::new(
            storage,
            VrfSecret::from_bytes([0x5a; 32]),
            AzksParallelismConfig::default(),
        ))
        .unwrap();
    let mut published = 0;
    while published < accounts {
        let end = (published + batch).min(accounts);
        let updates = (published..end)
            .map(|i| (label(&user(i)), devices(i).value()))
            .collect();
        let started = Instant::now();
        runtime.block_on(log.publish(updates)).unwrap();
        eprintln!(
            "published accounts {published}..{end} in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        published = end;
    }
    // An epoch in which `batch` existing accounts change their devices
    // (each change adds two leaves: the new version and the old one's
    // stale marker).
    let changes = (0..batch.min(accounts))
        .map(|i| (label(&user(i)), devices(i + 1).value()))
        .collect();
    let started = Instant::now();
    runtime.block_on(log.publish(changes)).unwrap();
    eprintln!(
        "published {} changed accounts in {:.2} s",
        batch.min(accounts),
        started.elapsed().as_secs_f64()
    );
    let key = LogSigningKey::generate(&mut rand::rngs::OsRng);
    let hash = runtime.block_on(log.get_epoch_hash()).unwrap();
    let vrf = runtime.block_on(log.get_public_key()).unwrap();
    let pins = LogPins {
        log_key: key.public(),
        vrf_public_key: *vrf.as_bytes(),
    };
    let signed = key.sign(RootStatement {
        configuration: CONFIGURATION_ID,
        epoch: hash.epoch(),
        root: hash.hash(),
        vrf_public_key: pins.vrf_public_key,
        published_hour: 0,
    });
    let root = LogView::new(pins).accept_root(&signed).unwrap();
    let target = accounts / 2;
    let (proof, _) = runtime.block_on(log.lookup(label(&user(target)))).unwrap();
    let proof = encode_lookup(&proof).unwrap();
    eprintln!("lookup proof: {} bytes at {accounts} accounts", proof.len());
    let served = devices(target);
    let username = user(target);
    c.bench_function(&format!("verify_lookup_{accounts}"), |b| {
        b.iter(|| {
            verify::verify_lookup(&pins, &root, &username, black_box(&proof), &served).unwrap()
        })
    });
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    lookup(&mut c);
    c.final_summary();
}
