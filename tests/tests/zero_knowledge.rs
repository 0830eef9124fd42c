//! The server learns no content: after a scenario whose messages, group
//! name, file name and file contents carry random markers, no byte the
//! server wrote (database with WAL and journal, attachment folder, TLS
//! folder, its log at debug level) contains any marker — raw, hex or
//! base64. A planted plaintext envelope proves the scan finds what is
//! there. The rows still queued at the end are sealed, padded and name
//! no sender; only the planted legacy row does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore;
use starling_client::Event;
use starling_e2e::TestServer;
use starling_test_support::DbKind;

/// A random marker, recognisable in any file it ends up in.
fn marker(label: &str) -> String {
    let mut bytes = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("ZK{label}{}", hex::encode(bytes))
}

/// Every form a marker could take in a file: raw, hex (both cases), and
/// the stable middle of its base64 at each of the three alignments.
fn encodings(marker: &str) -> Vec<Vec<u8>> {
    let raw = marker.as_bytes();
    let mut forms = vec![
        raw.to_vec(),
        hex::encode(raw).into_bytes(),
        hex::encode_upper(raw).into_bytes(),
    ];
    for shift in 0..3 {
        let mut shifted = vec![0u8; shift];
        shifted.extend_from_slice(raw);
        for encoded in [STANDARD.encode(&shifted), URL_SAFE_NO_PAD.encode(&shifted)] {
            let middle = &encoded[4..encoded.len() - 4];
            forms.push(middle.as_bytes().to_vec());
        }
    }
    forms
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// (file, marker) for every marker found in any file under `dir`.
fn scan(dir: &Path, markers: &[String]) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    files_under(dir, &mut files);
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().ends_with("starling.db")),
        "{files:?}"
    );
    let mut found = Vec::new();
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        for marker in markers {
            if encodings(marker)
                .iter()
                .any(|form| bytes.windows(form.len()).any(|w| w == form.as_slice()))
            {
                found.push((file.clone(), marker.clone()));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_stores_no_content_and_the_scan_would_notice_if_it_did() {
    let mut server = TestServer::start_with(DbKind::Sqlite, "debug").await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    let mut carol = server.client("carol").await;
    let markers: Vec<String> = [
        "dm", "reply", "group", "groupmsg", "filename", "filebody", "caption",
    ]
    .iter()
    .map(|l| marker(l))
    .collect();
    let [
        dm,
        reply,
        group_name,
        group_message,
        file_name,
        file_body,
        caption,
    ] = markers.clone().try_into().unwrap();

    alice
        .client
        .send_text("bob", &format!("hello {dm}"))
        .await
        .unwrap();
    bob.messages(1).await;
    bob.client.send_text("alice", &reply).await.unwrap();
    alice.messages(1).await;
    alice
        .client
        .create_group(&group_name, &["bob".to_string(), "carol".to_string()])
        .await
        .unwrap();
    for member in [&mut bob, &mut carol] {
        member
            .events_until(|e| e.iter().any(|e| matches!(e, Event::GroupChanged { .. })))
            .await;
    }
    carol
        .client
        .send_text(&group_name, &group_message)
        .await
        .unwrap();
    alice.messages(1).await;
    bob.messages(1).await;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{file_name}.txt"));
    let contents = format!("{file_body}\n").repeat(20_000);
    std::fs::write(&path, &contents).unwrap();
    alice
        .client
        .send_file(
            "bob",
            &path,
            starling_client::content::AttachmentKind::File,
            &caption,
            &mut (),
        )
        .await
        .unwrap();
    let received = bob.messages(1).await;
    let saved = bob
        .client
        .save_attachment(
            &hex::decode(&received[0].message_id).unwrap(),
            dir.path().join("out").as_path(),
            &mut (),
        )
        .await;
    assert_eq!(std::fs::read_to_string(saved.unwrap()).unwrap(), contents);
    // The clients did see every marker (the scenario is not vacuous).
    let history = bob.client.search(&dm, None).await.unwrap();
    assert_eq!(history.len(), 1);

    // Carol is offline for one more message: its row stays queued, and
    // must name no sender.
    alice
        .client
        .send_text("carol", &format!("later {dm}"))
        .await
        .unwrap();

    // The test of the test: a plaintext marker sent as an envelope, without
    // encryption, straight through the API. Nobody receives it, so it stays.
    let planted = marker("planted");
    let outcome = alice
        .client
        .api()
        .send("carol", &[(1, planted.clone().into_bytes())])
        .await
        .unwrap();
    assert!(matches!(outcome, starling_client::api::SendOutcome::Stored));
    queued_rows_are_sealed_and_sender_free(&server, &planted).await;

    server.stop();
    let mut all = markers.clone();
    all.push(planted.clone());
    let found = scan(server.dir(), &all);
    assert!(
        found.iter().any(|(_, m)| *m == planted),
        "the scan missed the planted marker: {found:?}"
    );
    let leaks: Vec<_> = found.iter().filter(|(_, m)| *m != planted).collect();
    assert!(
        leaks.is_empty(),
        "content reached the server's files: {leaks:?}"
    );
}

/// Every queued row but the planted one is sealed, padded and names no
/// sender; the planted (unsealed) one does, which shows the columns are
/// read.
async fn queued_rows_are_sealed_and_sender_free(server: &TestServer, planted: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(server.database_url())
        .await
        .unwrap();
    let rows: Vec<(Option<String>, Option<i64>, Vec<u8>)> =
        sqlx::query_as("SELECT sender, sender_device, content FROM envelopes")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let (legacy, sealed): (Vec<_>, Vec<_>) = rows
        .iter()
        .partition(|(_, _, content)| content == planted.as_bytes());
    assert_eq!(legacy.len(), 1);
    assert_eq!(legacy[0].0.as_deref(), Some("alice"));
    assert!(!sealed.is_empty(), "carol's message is queued");
    for (sender, device, content) in sealed {
        assert_eq!((sender, device), (&None, &None));
        assert!(starling_crypto::sealed::is_sealed(content));
        assert!(starling_crypto::padding::is_envelope_bucket(
            content.len() as u64
        ));
        for name in ["alice", "carol"] {
            for form in [name.as_bytes().to_vec(), hex::encode(name).into_bytes()] {
                assert!(!content.windows(form.len()).any(|w| w == form.as_slice()));
            }
        }
    }
    // Closed now, while the server still holds the database: the last
    // connection to close checkpoints and deletes the write-ahead log,
    // which must not happen under the scan.
    conn.close().await.unwrap();
}

#[test]
fn every_encoding_of_a_marker_is_recognised() {
    let m = "ZKtest0123456789abcdef";
    for prefix in ["", "x", "xy", "xyz"] {
        let text = format!("{prefix}{m}tail");
        let encoded = STANDARD.encode(text.as_bytes());
        assert!(
            encodings(m).iter().any(|f| encoded
                .as_bytes()
                .windows(f.len())
                .any(|w| w == f.as_slice())),
            "{prefix}"
        );
    }
    let hexed = hex::encode(format!("a{m}b"));
    assert!(
        encodings(m)
            .iter()
            .any(|f| hexed.as_bytes().windows(f.len()).any(|w| w == f.as_slice()))
    );
}
