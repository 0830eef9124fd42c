//! Attachment blobs against SQLite and PostgreSQL: resumable upload, ranged
//! download, limits, and a 200 MiB round trip in bounded memory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{DbKind, TestServer};
use futures_util::StreamExt;
use serde_json::json;
use starling_test_support::both_databases;
use starling_test_support::http::oneshot;
use tower::ServiceExt;

/// Deterministic bytes of blob position `i`.
fn byte_at(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0]
}

/// The blob's bytes over `range`.
fn bytes(range: std::ops::Range<u64>) -> Vec<u8> {
    range.map(byte_at).collect()
}

/// Uploads `body` at `offset`; returns the status and the JSON body
/// (`null` if none).
async fn put(
    server: &TestServer,
    auth: &str,
    id: &str,
    offset: u64,
    body: Body,
) -> (StatusCode, serde_json::Value) {
    let request = Request::put(format!("/v1/attachments/{id}"))
        .header("authorization", auth)
        .header("upload-offset", offset.to_string())
        .body(body)
        .unwrap();
    let reply = oneshot(server.router(), request).await;
    (
        reply.status,
        serde_json::from_slice(&reply.bytes).unwrap_or(json!(null)),
    )
}

/// Creates an attachment of `size` bytes; returns its id.
async fn create(server: &TestServer, auth: &str, size: u64) -> String {
    let (status, body) = server
        .request(
            "POST",
            "/v1/attachments",
            Some(auth),
            Some(json!({ "size": size })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["id"].as_str().unwrap().to_string()
}

/// Downloads the attachment, or `range` of it; returns the status, the
/// bytes and the `Content-Range` header.
async fn get(
    server: &TestServer,
    auth: &str,
    id: &str,
    range: Option<&str>,
) -> (StatusCode, Vec<u8>, Option<String>) {
    let mut request = Request::get(format!("/v1/attachments/{id}")).header("authorization", auth);
    if let Some(range) = range {
        request = request.header("range", range);
    }
    let reply = oneshot(server.router(), request.body(Body::empty()).unwrap()).await;
    let content_range = reply.header("content-range").map(str::to_owned);
    (reply.status, reply.bytes.to_vec(), content_range)
}

async fn resumable_and_ranged(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    let bob = server.register("bob", 2).await;
    // The stored length of a 300,000-byte file (padded, then encrypted).
    let size = starling_crypto::attachment::stored_len(300_000).unwrap();
    let id = create(&server, &alice.auth, size).await;
    // Not downloadable before it is complete.
    assert_eq!(
        get(&server, &bob.auth, &id, None).await.0,
        StatusCode::CONFLICT
    );
    // The connection drops after 100,000 bytes: what arrived is kept.
    let first = bytes(0..100_000);
    let broken = futures_util::stream::iter(vec![
        Ok::<_, std::io::Error>(axum::body::Bytes::from(first)),
        Err(std::io::Error::other("connection reset")),
    ]);
    let (status, _) = put(&server, &alice.auth, &id, 0, Body::from_stream(broken)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, progress) = server
        .request(
            "GET",
            &format!("/v1/attachments/{id}/upload"),
            Some(&alice.auth),
            None,
        )
        .await;
    assert_eq!(
        (status, progress["received"].as_i64()),
        (StatusCode::OK, Some(100_000))
    );
    // Resuming at the wrong offset is refused; at the right one it works.
    let (status, body) = put(&server, &alice.auth, &id, 0, Body::from(bytes(0..10))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("wrong_offset"))
    );
    let (status, body) = put(
        &server,
        &bob.auth,
        &id,
        100_000,
        Body::from(bytes(100_000..size)),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = put(
        &server,
        &alice.auth,
        &id,
        100_000,
        Body::from(bytes(100_000..size)),
    )
    .await;
    assert_eq!(
        (status, body["received"].as_u64()),
        (StatusCode::OK, Some(size))
    );
    // More than announced is refused.
    let (status, _) = put(&server, &alice.auth, &id, size, Body::from(vec![1u8])).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Whole and ranged downloads, by another member.
    let (status, whole, _) = get(&server, &bob.auth, &id, None).await;
    assert_eq!((status, whole.len() as u64), (StatusCode::OK, size));
    assert!(whole == bytes(0..size));
    let (status, part, content_range) = get(&server, &bob.auth, &id, Some("bytes=1000-1999")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part, bytes(1000..2000));
    assert_eq!(
        content_range.as_deref(),
        Some(format!("bytes 1000-1999/{size}").as_str())
    );
    let (_, tail, _) = get(&server, &bob.auth, &id, Some("bytes=-10")).await;
    assert_eq!(tail, bytes(size - 10..size));
    assert_eq!(
        get(&server, &bob.auth, &id, Some("bytes=400000-")).await.0,
        StatusCode::BAD_REQUEST
    );
    // Limits and bad ids.
    let (status, _) = server
        .request(
            "POST",
            "/v1/attachments",
            Some(&alice.auth),
            Some(json!({ "size": 200u64 << 20 })),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        get(&server, &bob.auth, "xyz", None).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(&server, &bob.auth, &"00".repeat(16), None).await.0,
        StatusCode::NOT_FOUND
    );
    // Nothing has expired yet: the sweep keeps it.
    assert_eq!(
        starling_server::services::blobs::delete_expired(&server.state)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        get(&server, &bob.auth, &id, Some("bytes=0-0")).await.0,
        StatusCode::PARTIAL_CONTENT
    );
}
both_databases!(resumable_upload_and_ranged_download, resumable_and_ranged);

/// Peak resident memory of this process so far (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn large_blob_in_bounded_memory(kind: DbKind) {
    const SIZE: u64 = 200 << 20;
    const CHUNK: u64 = 256 << 10;
    let server = TestServer::start_with(kind, |c| c.attachments.max_bytes = SIZE).await;
    let alice = server.register("alice", 1).await;
    let stored = starling_crypto::attachment::stored_len(SIZE).unwrap();
    let id = create(&server, &alice.auth, stored).await;
    let before = peak_rss_kib();
    let upload =
        futures_util::stream::iter((0..stored).step_by(usize::try_from(CHUNK).unwrap()).map(
            move |i| {
                let end = (i + CHUNK).min(stored);
                Ok::<_, std::io::Error>(axum::body::Bytes::from(bytes(i..end)))
            },
        ));
    let (status, body) = put(&server, &alice.auth, &id, 0, Body::from_stream(upload)).await;
    assert_eq!(
        (status, body["received"].as_u64()),
        (StatusCode::OK, Some(stored)),
        "{body}"
    );
    let request = Request::get(format!("/v1/attachments/{id}"))
        .header("authorization", &alice.auth)
        .body(Body::empty())
        .unwrap();
    // Read as a stream, not collected: memory must stay bounded.
    let response = server.router().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut stream = response.into_body().into_data_stream();
    let mut position = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        assert!(
            chunk
                .iter()
                .enumerate()
                .all(|(i, b)| *b == byte_at(position + i as u64)),
            "byte mismatch near {position}"
        );
        position += chunk.len() as u64;
    }
    assert_eq!(position, stored);
    let growth_mib = (peak_rss_kib().saturating_sub(before)) / 1024;
    // Both database variants may run at once in this process: 200 MiB
    // buffered by either would show far above this bound.
    assert!(
        growth_mib < 96,
        "peak memory grew by {growth_mib} MiB streaming 200 MiB"
    );
}
both_databases!(
    large_blob_streams_in_bounded_memory,
    large_blob_in_bounded_memory
);

async fn a_stalled_upload_ends_and_can_resume(kind: DbKind) {
    let server = TestServer::start_with(kind, |c| c.connections.upload_stall_seconds = 1).await;
    let alice = server.register("alice", 1).await;
    // The stored length of a 200,000-byte file.
    assert_eq!(
        starling_crypto::attachment::stored_len(200_000),
        Some(200_776)
    );
    let id = create(&server, &alice.auth, 200_776).await;
    // 50,000 bytes, then nothing: the body neither ends nor fails.
    let stalled = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(
        axum::body::Bytes::from(bytes(0..50_000)),
    )])
    .chain(futures_util::stream::pending());
    let answered = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        put(&server, &alice.auth, &id, 0, Body::from_stream(stalled)),
    )
    .await
    .expect("a stalled upload is answered, not held open");
    assert_eq!(answered.0, StatusCode::OK);
    assert_eq!(answered.1["received"].as_i64(), Some(50_000));
    // The rest resumes where it stopped.
    let (status, body) = put(
        &server,
        &alice.auth,
        &id,
        50_000,
        Body::from(bytes(50_000..200_776)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
both_databases!(
    stalled_uploads_end_and_resume,
    a_stalled_upload_ends_and_can_resume
);

async fn a_trickling_upload_ends_and_can_resume(kind: DbKind) {
    let server = TestServer::start_with(kind, |c| c.connections.upload_stall_seconds = 1).await;
    let alice = server.register("alice", 1).await;
    let id = create(&server, &alice.auth, 200_776).await;
    // A kibibyte every 100 ms: never silent, but far below the least
    // progress an upload must make in each window (64 KiB).
    let trickle = futures_util::stream::unfold(0u64, |sent| async move {
        if sent >= 200_776 {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let end = (sent + 1024).min(200_776);
        let chunk = axum::body::Bytes::from(bytes(sent..end));
        Some((Ok::<_, std::io::Error>(chunk), end))
    });
    let answered = tokio::time::timeout(
        std::time::Duration::from_secs(6),
        put(&server, &alice.auth, &id, 0, Body::from_stream(trickle)),
    )
    .await
    .expect("a trickling upload is ended, not held open for its 20 s");
    assert_eq!(answered.0, StatusCode::OK);
    let received = answered.1["received"].as_u64().unwrap();
    assert!(received > 0 && received < 200_776, "{received}");
    let (status, body) = put(
        &server,
        &alice.auth,
        &id,
        received,
        Body::from(bytes(received..200_776)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
both_databases!(
    trickling_uploads_end_and_resume,
    a_trickling_upload_ends_and_can_resume
);
