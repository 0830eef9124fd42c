//! A 100 MiB file, encrypted, uploaded, downloaded and decrypted through
//! the real server with bounded client memory and the right digest, on
//! SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;

use rand::RngCore;
use sha2::{Digest, Sha256};
use starling_e2e::{Db, TestServer, both_databases};

/// Peak resident memory of this process so far (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

const SIZE: usize = 100 * 1024 * 1024;

async fn a_100_mib_file_round_trips_with_bounded_memory(db: Db) {
    let server = TestServer::start(db).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("big.bin");
    let mut digest = Sha256::new();
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&source).unwrap());
        let mut chunk = vec![0u8; 1024 * 1024];
        for _ in 0..SIZE / chunk.len() {
            rand::rngs::OsRng.fill_bytes(&mut chunk);
            digest.update(&chunk);
            file.write_all(&chunk).unwrap();
        }
    }
    let expected = digest.finalize();
    let before = peak_rss_kib();

    alice
        .client
        .send_file(
            "bob",
            &source,
            starling_client::content::AttachmentKind::File,
            "",
            &mut (),
        )
        .await
        .unwrap();
    let received = bob.messages(1).await;
    assert_eq!(received[0].kind, "file");
    let id = hex::decode(&received[0].message_id).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let saved = bob
        .client
        .save_attachment(&id, &out, &mut ())
        .await
        .unwrap();
    let growth_mib = (peak_rss_kib().saturating_sub(before)) / 1024;

    let mut digest = Sha256::new();
    let mut file = std::fs::File::open(&saved).unwrap();
    std::io::copy(&mut file, &mut digest).unwrap();
    assert_eq!(digest.finalize(), expected);
    assert_eq!(saved.file_name().unwrap(), "big.bin");
    // Both clients ran in this process; the file is 100 MiB.
    assert!(
        growth_mib < 48,
        "peak memory grew by {growth_mib} MiB for a 100 MiB file"
    );

    // The blob stays encrypted in bob's home; only the saved copy is plain.
    let cached = bob.home.path().join("attachments").join(hex::encode(&id));
    assert!(cached.exists());
    let mut head = vec![0u8; 4096];
    std::io::Read::read_exact(&mut std::fs::File::open(&cached).unwrap(), &mut head).unwrap();
    let mut plain = vec![0u8; 4096];
    std::io::Read::read_exact(&mut std::fs::File::open(&source).unwrap(), &mut plain).unwrap();
    assert_ne!(head, plain);
}
both_databases!(large_file, a_100_mib_file_round_trips_with_bounded_memory);
