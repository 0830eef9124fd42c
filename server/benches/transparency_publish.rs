//! Publication of key transparency epochs on the server's own database:
//! akd's directory over `LogStorage` on a fresh SQLite file (or the
//! PostgreSQL database `DATABASE_URL` names, which must be empty), filled
//! with `STARLING_KT_ACCOUNTS` accounts (default 100,000) in epochs of
//! `STARLING_KT_BATCH` (default 10,000), then one epoch in which
//! `STARLING_KT_BATCH` of them change their device list. It prints how
//! long each publish took and, for the last, the append-only proof the
//! publisher makes after it, as `docs/PERFORMANCE.md` reports them.
//!
//! `cargo bench -p starling-server --bench transparency_publish`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Instant;

use akd::storage::StorageManager;
use akd::{AzksParallelismConfig, Directory};
use starling_protocol::Username;
use starling_server::store::Store;
use starling_server::transparency::storage::LogStorage;
use starling_transparency::{DeviceEntry, DeviceList, LogConfig, VrfSecret, label};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn devices(index: usize, generation: u8) -> DeviceList {
    let mut identity = [generation; 64];
    identity[..8].copy_from_slice(&index.to_be_bytes());
    DeviceList::new(vec![DeviceEntry {
        device_id: 1,
        identity,
    }])
    .unwrap()
}

fn user(index: usize) -> Username {
    Username::parse(&format!("member{index}")).unwrap()
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let accounts = setting("STARLING_KT_ACCOUNTS", 100_000);
    let batch = setting("STARLING_KT_BATCH", 10_000).max(1);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = std::env::var("DATABASE_URL").ok();
    runtime.block_on(async {
        let store = Store::open(url.as_deref(), dir.path()).await.unwrap();
        store.migrate().await.unwrap();
        println!(
            "database: {:?}, {accounts} accounts, epochs of {batch}",
            store.backend()
        );
        let storage = StorageManager::new(
            LogStorage::new(store.clone()),
            Some(std::time::Duration::from_secs(30 * 60)),
            Some(256 * 1024 * 1024),
            Some(std::time::Duration::from_secs(60)),
        );
        let log = Directory::<LogConfig, _, _>::new(
            storage,
            VrfSecret::from_bytes([0x5a; 32]),
            AzksParallelismConfig::default(),
        )
        .await
        .unwrap();
        let mut published = 0;
        while published < accounts {
            let end = (published + batch).min(accounts);
            let updates = (published..end)
                .map(|i| (label(&user(i)), devices(i, 1).value()))
                .collect();
            let started = Instant::now();
            let epoch = log.publish(updates).await.unwrap();
            println!(
                "set-up epoch {} ({} new accounts): {:.2} s",
                epoch.epoch(),
                end - published,
                started.elapsed().as_secs_f64()
            );
            published = end;
        }
        // Every tenth account changes, spread over the whole directory.
        let step = (accounts / batch).max(1);
        let updates = (0..accounts)
            .step_by(step)
            .take(batch)
            .map(|i| (label(&user(i)), devices(i, 2).value()))
            .collect::<Vec<_>>();
        let changed = updates.len();
        let started = Instant::now();
        let epoch = log.publish(updates).await.unwrap();
        let publish = started.elapsed();
        let started = Instant::now();
        let proof = log.audit(epoch.epoch() - 1, epoch.epoch()).await.unwrap();
        let audit = started.elapsed();
        let proof_bytes: usize = proof
            .proofs
            .iter()
            .map(|p| {
                use protobuf::Message as _;
                akd::proto::specs::types::SingleAppendOnlyProof::from(p)
                    .write_to_bytes()
                    .unwrap()
                    .len()
            })
            .sum();
        println!(
            "epoch {} of {changed} changed accounts: publish {:.2} s, append-only proof {:.2} s ({} KiB)",
            epoch.epoch(),
            publish.as_secs_f64(),
            audit.as_secs_f64(),
            proof_bytes / 1024
        );
    });
}
