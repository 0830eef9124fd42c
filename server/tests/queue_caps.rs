//! Per-device queue caps, against SQLite and PostgreSQL: once a device has
//! as many envelopes (or bytes) waiting as the server allows, senders are
//! told its queue is full, and nothing more is stored for it until it
//! fetches and acknowledges; the rest of a send is stored.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::{DbKind, TestServer, b64};
use serde_json::{Value, json};
use starling_test_support::both_databases;

async fn send_to(
    server: &TestServer,
    auth: &str,
    destination: &str,
    content: &[u8],
) -> (StatusCode, Value) {
    server
        .request(
            "PUT",
            &format!("/v1/messages/{destination}"),
            Some(auth),
            Some(json!({ "envelopes": [{ "device_id": 1, "content": b64(content) }] })),
        )
        .await
}

async fn a_full_queue_refuses_until_acknowledged(kind: DbKind) {
    let server = TestServer::start_with(kind, |config| {
        config.messages.max_queued_envelopes_per_device = 3;
    })
    .await;
    let alice = server.register("alice", 1).await;
    let bob = server.register("bob", 2).await;
    for n in 0..3 {
        let (status, body) = send_to(&server, &alice.auth, "bob", b"queued").await;
        assert_eq!(status, StatusCode::OK, "send {n}: {body}");
    }
    let (status, body) = send_to(&server, &alice.auth, "bob", b"one too many").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "queue_full");
    assert!(
        body["reason"].as_str().unwrap().contains("bob device 1"),
        "the refusal names the device: {body}"
    );
    assert_eq!(server.state.store.queue_stats().await.unwrap().count, 3);
    let metrics = server.state.metrics.render().unwrap();
    assert!(
        metrics.contains("starling_envelopes_refused_queue_full_total 1"),
        "{metrics}"
    );

    // Bob fetches and acknowledges one: there is room for one more.
    let mut ws = server.ws(&bob.auth).await;
    let delivered = ws.drain().await;
    assert_eq!(delivered.len(), 3);
    ws.ack(vec![delivered[0].id.clone()]).await;
    let (status, body) = send_to(&server, &alice.auth, "bob", b"room again").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = send_to(&server, &alice.auth, "bob", b"full again").await;
    assert_eq!(status, StatusCode::CONFLICT);
}
both_databases!(
    a_full_queue_refuses_sends_until_its_device_acknowledges,
    a_full_queue_refuses_until_acknowledged
);

async fn bytes_count_too(kind: DbKind) {
    let server = TestServer::start_with(kind, |config| {
        config.messages.max_queued_bytes_per_device = 100;
    })
    .await;
    let alice = server.register("alice", 1).await;
    server.register("bob", 2).await;
    let (status, body) = send_to(&server, &alice.auth, "bob", &[7; 60]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = send_to(&server, &alice.auth, "bob", &[7; 60]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "queue_full");
    let (status, body) = send_to(&server, &alice.auth, "bob", &[7; 40]).await;
    assert_eq!(status, StatusCode::OK, "what fits is stored: {body}");
}
both_databases!(
    a_queue_full_in_bytes_refuses_what_does_not_fit,
    bytes_count_too
);

async fn a_group_send_skips_only_the_full_device(kind: DbKind) {
    let server = TestServer::start_with(kind, |config| {
        config.messages.max_queued_envelopes_per_device = 1;
    })
    .await;
    let alice = server.register("alice", 1).await;
    server.register("bob", 2).await;
    server.register("carol", 3).await;
    let (status, _) = send_to(&server, &alice.auth, "bob", b"fills bob").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = server
        .request(
            "PUT",
            "/v1/messages",
            Some(&alice.auth),
            Some(json!({ "sends": [
                { "destination": "bob", "envelopes": [{ "device_id": 1, "content": b64(b"g") }] },
                { "destination": "carol", "envelopes": [{ "device_id": 1, "content": b64(b"g") }] },
            ] })),
        )
        .await;
    // One member who never fetches cannot stop the group's messages.
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["stored"], 1);
    assert_eq!(
        body["queue_full"],
        json!([{ "destination": "bob", "device_id": 1 }])
    );
    assert_eq!(server.state.store.queue_stats().await.unwrap().count, 2);
}
both_databases!(
    a_group_send_is_stored_for_all_but_the_full_device,
    a_group_send_skips_only_the_full_device
);
