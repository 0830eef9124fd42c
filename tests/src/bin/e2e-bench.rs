//! Client-side figures against the real server, side by side in one run:
//! registration of a new account until it can be messaged (it waits for
//! the transparency log's epoch holding it), time to first message with a
//! new contact (bundle fetch with its log proofs + PQXDH + send +
//! receive), and that from the start of the contact's registration,
//! against a message in an existing session; and a 100 MiB file sent end
//! to end encrypted against a plain HTTP upload and download of the same
//! bytes to the same server.
//!
//! `cargo build --release -p starling-server -p starling-e2e && target/release/e2e-bench`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use starling_e2e::{DbKind, TestServer};
use tokio::io::AsyncWriteExt;

/// The size of the transferred file.
const FILE_SIZE: usize = 100 * 1024 * 1024;

/// The median of `samples`.
fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The 90th percentile of `samples`.
fn p90(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() * 9 / 10]
}

/// Time to a first message with a new contact against a next message.
async fn first_messages(server: &TestServer, rounds: usize) {
    let mut register = Vec::new();
    let mut from_register = Vec::new();
    let mut first = Vec::new();
    let mut next = Vec::new();
    for round in 0..rounds {
        let mut alice = server.client(&format!("alice{round}")).await;
        let registering = Instant::now();
        let mut bob = server.client(&format!("bob{round}")).await;
        register.push(registering.elapsed());
        let _ = &mut alice;
        let start = Instant::now();
        alice
            .client
            .send_text(&format!("bob{round}"), "first message")
            .await
            .unwrap();
        assert_eq!(bob.messages(1).await.len(), 1);
        first.push(start.elapsed());
        from_register.push(registering.elapsed());
        let start = Instant::now();
        alice
            .client
            .send_text(&format!("bob{round}"), "second message")
            .await
            .unwrap();
        assert_eq!(bob.messages(1).await.len(), 1);
        next.push(start.elapsed());
    }
    let (m1, m2) = (median(first.clone()), median(next.clone()));
    println!(
        "| registration of a new account (until it can be messaged) | {:.1} ms | {:.1} ms |",
        median(register.clone()).as_secs_f64() * 1e3,
        p90(register).as_secs_f64() * 1e3
    );
    println!(
        "| a new account registers, then receives its first message | {:.1} ms | {:.1} ms |",
        median(from_register.clone()).as_secs_f64() * 1e3,
        p90(from_register).as_secs_f64() * 1e3
    );
    println!(
        "| time to first message, new contact (fetch bundle, PQXDH, send, receive) | {:.1} ms | {:.1} ms |",
        m1.as_secs_f64() * 1e3,
        p90(first).as_secs_f64() * 1e3
    );
    println!(
        "| next message, existing session (send, receive) | {:.1} ms | {:.1} ms |",
        m2.as_secs_f64() * 1e3,
        p90(next).as_secs_f64() * 1e3
    );
    println!(
        "| ratio first / next | {:.2}× | |",
        m1.as_secs_f64() / m2.as_secs_f64()
    );
}

/// Uploads and downloads `source` as a plain attachment blob; returns
/// the time taken.
async fn plain_http(
    server: &TestServer,
    http: &reqwest::Client,
    auth: &str,
    source: &std::path::Path,
    target: &std::path::Path,
) -> Duration {
    // The server stores only padded stream lengths: the plain upload sends
    // the file and then zeros up to the length its encryption would have.
    let size = starling_crypto::attachment::stored_len(FILE_SIZE as u64).unwrap();
    let start = Instant::now();
    let created: serde_json::Value = http
        .post(format!("{}/v1/attachments", server.url))
        .header("authorization", auth)
        .json(&serde_json::json!({ "size": size }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let file = tokio::fs::File::open(source).await.unwrap();
    let padded = tokio::io::AsyncReadExt::chain(
        file,
        tokio::io::AsyncReadExt::take(tokio::io::repeat(0), size - FILE_SIZE as u64),
    );
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
        padded,
        64 * 1024,
    ));
    let status = http
        .put(format!("{}/v1/attachments/{id}", server.url))
        .header("authorization", auth)
        .header("upload-offset", "0")
        .header("content-length", size.to_string())
        .body(body)
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success());
    let response = http
        .get(format!("{}/v1/attachments/{id}", server.url))
        .header("authorization", auth)
        .send()
        .await
        .unwrap();
    let mut out = tokio::fs::File::create(target).await.unwrap();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        out.write_all(&chunk.unwrap()).await.unwrap();
    }
    out.sync_all().await.unwrap();
    start.elapsed()
}

/// A 100 MiB file end to end encrypted against plain HTTP.
async fn transfers(server: &TestServer, rounds: usize) {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("big.bin");
    starling_e2e::write_random_file(&source, FILE_SIZE);
    let mut alice = server.client("filesender").await;
    let mut bob = server.client("filereceiver").await;
    let credentials = alice.client.api().credentials().unwrap().clone();
    let auth = format!(
        "Bearer {}:{}:{}",
        credentials.username, credentials.device_id, &*credentials.secret
    );
    let tls = starling_client::tls::client_config(Some(&server.fingerprint)).unwrap();
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .unwrap();
    let mut encrypted = Vec::new();
    let mut plain = Vec::new();
    for round in 0..rounds {
        let plain_out = dir.path().join(format!("plain-{round}"));
        plain.push(plain_http(server, &http, &auth, &source, &plain_out).await);
        std::fs::remove_file(&plain_out).unwrap();

        let start = Instant::now();
        alice
            .client
            .send_file(
                "filereceiver",
                &source,
                starling_client::content::AttachmentKind::File,
                "",
                &mut (),
            )
            .await
            .unwrap();
        let received = bob.messages(1).await;
        let id = hex::decode(&received[0].message_id).unwrap();
        let out = dir.path().join(format!("enc-{round}"));
        bob.client
            .save_attachment(&id, &out, &mut ())
            .await
            .unwrap();
        encrypted.push(start.elapsed());
        std::fs::remove_file(&out).unwrap();
    }
    let mib = FILE_SIZE as f64 / (1024.0 * 1024.0);
    let (e, p) = (median(encrypted), median(plain));
    println!(
        "| 100 MiB end-to-end encrypted (encrypt, upload, send, receive, download, verify, decrypt) | {:.2} s | {:.0} MiB/s |",
        e.as_secs_f64(),
        mib / e.as_secs_f64()
    );
    println!(
        "| 100 MiB plain HTTP upload + download, same server | {:.2} s | {:.0} MiB/s |",
        p.as_secs_f64(),
        mib / p.as_secs_f64()
    );
    println!(
        "| throughput ratio encrypted / plain | {:.2}× | |",
        p.as_secs_f64() / e.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    for db in [DbKind::Sqlite, DbKind::Postgres] {
        let server = TestServer::start_with(db, "warn").await;
        println!("\n### {db:?}\n\n| measure | median | p90 / rate |\n|---|---:|---:|");
        first_messages(&server, rounds).await;
        transfers(&server, 3).await;
    }
}
