//! Files through the real server: a 100 MiB file, encrypted, uploaded,
//! downloaded and decrypted with bounded client memory and the right
//! digest; uploads and downloads resume where they broke off (both on
//! SQLite and on PostgreSQL); and saving a received file never overwrites
//! a file nor follows a symlink (SQLite only).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use rand::RngCore;
use sha2::{Digest, Sha256};
use starling_e2e::TestServer;
use starling_test_support::{DbKind, Wait, both_databases};

/// Peak resident memory of this process so far (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The size of the file sent.
const SIZE: usize = 100 * 1024 * 1024;

async fn a_100_mib_file_round_trips_with_bounded_memory(db: DbKind) {
    let server = TestServer::start(db).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("big.bin");
    let expected = starling_e2e::write_random_file(&source, SIZE);
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
    assert_eq!(<[u8; 32]>::from(digest.finalize()), expected);
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

/// Bytes the server holds for attachments (all blobs).
fn stored_attachment_bytes(server: &TestServer) -> u64 {
    fn walk(dir: &std::path::Path) -> u64 {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| {
                        let path = e.path();
                        if path.is_dir() {
                            walk(&path)
                        } else {
                            e.metadata().map(|m| m.len()).unwrap_or(0)
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(&server.data_dir().join("attachments"))
}

async fn transfers_resume_after_the_connection_drops(db: DbKind) {
    const SIZE: usize = 48 * 1024 * 1024;
    let mut server = TestServer::start(db).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("video.mp4");
    let mut contents = vec![0u8; SIZE];
    rand::rngs::OsRng.fill_bytes(&mut contents);
    std::fs::write(&source, &contents).unwrap();

    // The server dies in the middle of the upload and comes back.
    let upload = tokio::spawn(async move {
        let mut progress = Recorder::default();
        let id = alice
            .client
            .send_file(
                "bob",
                &source,
                starling_client::content::AttachmentKind::Video,
                "",
                &mut progress,
            )
            .await;
        (alice, id, progress)
    });
    // Checked often: the upload passes through this state quickly.
    Wait::new(Duration::from_secs(60), "20 MiB of the upload to be stored")
        .every(Duration::from_millis(5))
        .until(|| async { stored_attachment_bytes(&server) >= 20 * 1024 * 1024 })
        .await;
    assert!(
        stored_attachment_bytes(&server) < SIZE as u64,
        "the upload finished before the restart"
    );
    server.restart().await;
    let (_alice, sent, progress) = upload.await.unwrap();
    sent.expect("the upload resumed after the restart");
    assert!(progress.starts.len() >= 2, "{:?}", progress.starts);
    assert!(
        progress.starts[1..].iter().all(|&at| at > 0),
        "resumed, not restarted: {:?}",
        progress.starts
    );

    let received = bob.messages(1).await;
    assert_eq!(received[0].kind, "video");
    let id = hex::decode(&received[0].message_id).unwrap();
    // A download that broke after 10 MiB is resumed, not restarted: leave
    // the first 10 MiB of the blob where an interrupted download leaves it.
    let blob = server_blob(&server);
    let attachments = bob.home.path().join("attachments");
    std::fs::create_dir_all(&attachments).unwrap();
    let partial = attachments.join(format!("{}.part", hex::encode(&id)));
    std::fs::write(&partial, &blob[..10 * 1024 * 1024]).unwrap();
    let mut progress = Recorder::default();
    let out = dir.path().join("out.mp4");
    bob.client
        .save_attachment(&id, &out, &mut progress)
        .await
        .unwrap();
    assert_eq!(progress.starts.first(), Some(&(10 * 1024 * 1024)));
    assert!(std::fs::read(&out).unwrap() == contents);
    assert!(!partial.exists());
}

/// The one blob the server stores.
fn server_blob(server: &TestServer) -> Vec<u8> {
    fn find(dir: &std::path::Path) -> Option<std::path::PathBuf> {
        for entry in std::fs::read_dir(dir).ok()? {
            let path = entry.ok()?.path();
            if path.is_dir() {
                if let Some(found) = find(&path) {
                    return Some(found);
                }
            } else {
                return Some(path);
            }
        }
        None
    }
    std::fs::read(find(&server.data_dir().join("attachments")).unwrap()).unwrap()
}

/// Remembers where each attempt of a transfer started.
#[derive(Default)]
struct Recorder {
    starts: Vec<u64>,
}

impl starling_client::Progress for Recorder {
    fn start(&mut self, _total: u64, done: u64) {
        self.starts.push(done);
    }
    fn advance(&mut self, _bytes: u64) {}
    fn finish(&mut self) {}
}
both_databases!(resumable, transfers_resume_after_the_connection_drops);

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saving_never_overwrites_nor_follows_a_symlink() {
    let server = TestServer::start(DbKind::Sqlite).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("notes.txt");
    std::fs::write(&source, b"attachment body").unwrap();
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
    let id = hex::decode(&received[0].message_id).unwrap();

    let out = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"keep me").unwrap();
    std::os::unix::fs::symlink(&victim, out.path().join("notes.txt")).unwrap();
    let mut saved = Vec::new();
    for _ in 0..2 {
        saved.push(
            bob.client
                .save_attachment(&id, out.path(), &mut ())
                .await
                .unwrap(),
        );
    }
    // A file path that is taken gets a number too.
    let taken = out.path().join("notes (1).txt");
    saved.push(
        bob.client
            .save_attachment(&id, &taken, &mut ())
            .await
            .unwrap(),
    );
    assert_eq!(
        saved,
        [
            out.path().join("notes (1).txt"),
            out.path().join("notes (2).txt"),
            out.path().join("notes (1) (1).txt"),
        ]
    );
    for file in &saved {
        assert_eq!(std::fs::read(file).unwrap(), b"attachment body");
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
    let link = std::fs::symlink_metadata(out.path().join("notes.txt")).unwrap();
    assert!(link.file_type().is_symlink());
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        4,
        "no temporary files left"
    );
}
