//! Overload, against SQLite and PostgreSQL: when the group-commit writer is
//! behind, a device that already has a send waiting is refused at once
//! with 503 `server_busy` and `Retry-After` (HTTP and WebSocket alike),
//! nothing of it is stored, while a device with nothing waiting still has
//! its send stored, and acknowledgements still go through. The writer is
//! made "behind" by setting the mark at zero queued writes and holding it
//! on a lock another connection takes on the database; with the default
//! mark, the same sends are stored.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::{DbKind, JsonRequest, TestServer, WriterHold, b64, envelope};
use serde_json::json;
use starling_server::frames::{self, client_frame, server_frame};
use starling_test_support::both_databases;

/// A send over the WebSocket, not waiting for its answer.
async fn ws_send_frame(ws: &mut common::Ws, request_id: u64, destination: &str) {
    ws.send_frame(frames::ClientFrame {
        request_id,
        body: Some(client_frame::Body::Send(frames::SendMessage {
            destination: destination.into(),
            envelopes: vec![frames::OutgoingEnvelope {
                device_id: 1,
                content: b"over the socket".to_vec(),
            }],
            sealed: true,
        })),
    })
    .await;
}

/// The response to `request_id`: its status and body.
async fn ws_response(ws: &mut common::Ws, request_id: u64) -> (u32, serde_json::Value) {
    loop {
        let frame = ws.next_frame().await;
        if let Some(server_frame::Body::Response(r)) = frame.body
            && frame.request_id == request_id
        {
            return (r.status, serde_json::from_str(&r.body_json).unwrap());
        }
    }
}

/// A send over the WebSocket; returns the response's status and body.
async fn ws_send(ws: &mut common::Ws, destination: &str) -> (u32, serde_json::Value) {
    ws_send_frame(ws, 7, destination).await;
    ws_response(ws, 7).await
}

/// Envelopes queued on the server, for anyone.
async fn queued(server: &TestServer) -> i64 {
    server.state.store.queue_stats().await.unwrap().count
}

async fn busy_writer_refuses_sends(kind: DbKind) {
    let server = TestServer::start_with(kind, |config| {
        config.messages.busy_at_queued_writes = 0;
    })
    .await;
    let alice = server.register("alice", 1).await;
    let bob = server.register("bob", 2).await;
    server.register("carol", 3).await;
    let mut alice_ws = server.ws(&alice.auth).await;
    alice_ws.drain().await;

    // Alice has a send waiting for the held writer.
    let hold = WriterHold::take(&server).await;
    ws_send_frame(&mut alice_ws, 1, "bob").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // HTTP: 503, a stable code, and when to come back.
    let body = json!({ "envelopes": [{ "device_id": 1, "content": b64(b"hello") }] });
    let reply = server
        .send(
            JsonRequest::put("/v1/messages/bob")
                .auth(Some(&alice.auth))
                .json(&body),
        )
        .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reply.header("retry-after"),
        Some("1"),
        "a busy refusal says when to retry"
    );
    let (status, body) = server
        .request(
            "PUT",
            "/v1/messages",
            Some(&alice.auth),
            Some(json!({ "sends": [{ "destination": "bob",
                "envelopes": [{ "device_id": 1, "content": b64(b"group") }] }] })),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "server_busy");
    assert_eq!(body["retry_after_secs"], 1);

    // The WebSocket: the same refusal in the response frame, and the
    // connection stays usable.
    ws_send_frame(&mut alice_ws, 2, "bob").await;
    let (status, body) = ws_response(&mut alice_ws, 2).await;
    assert_eq!(status, 503);
    assert_eq!(body["code"], "server_busy");
    assert_eq!(body["retry_after_secs"], 1);

    // Bob has nothing waiting: his send is queued, not refused, and
    // stored once the writer goes on.
    let to_carol = JsonRequest::put("/v1/messages/carol")
        .auth(Some(&bob.auth))
        .json(&json!({ "envelopes": [{ "device_id": 1, "content": b64(b"fair") }] }));
    let bobs_send = tokio::spawn(to_carol.oneshot(server.router()));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    hold.release().await;
    let (status, body) = bobs_send.await.unwrap().into_pair();
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = ws_response(&mut alice_ws, 1).await;
    assert_eq!(status, 200, "{body}");

    // Only the two sends admitted were stored.
    assert_eq!(queued(&server).await, 2);
    let metrics = server.state.metrics.render().unwrap();
    assert!(
        metrics.contains("starling_sends_refused_busy_total 3"),
        "{metrics}"
    );

    // Acknowledgements are never refused: an envelope queued for bob is
    // delivered, acknowledged and deleted.
    let (bob_id, _) = server.state.store.devices_of("bob").await.unwrap().unwrap();
    server
        .state
        .store
        .insert_envelopes(&[envelope(bob_id, 1, 0)])
        .await
        .unwrap();
    let mut bob_ws = server.ws(&bob.auth).await;
    let delivered = bob_ws.drain().await;
    assert_eq!(delivered.len(), 2);
    bob_ws
        .ack(delivered.iter().map(|e| e.id.clone()).collect())
        .await;
    assert_eq!(queued(&server).await, 1, "carol's envelope is left");
}
both_databases!(
    a_busy_writer_refuses_sends_and_stores_nothing,
    busy_writer_refuses_sends
);

async fn default_mark_stores(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    server.register("bob", 2).await;
    let mut alice_ws = server.ws(&alice.auth).await;
    alice_ws.drain().await;
    let (status, body) = ws_send(&mut alice_ws, "bob").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(queued(&server).await, 1);
}
both_databases!(with_room_in_the_queue_sends_are_stored, default_mark_stores);

async fn busy_refusals_spend_no_rate_limit(kind: DbKind) {
    let server = TestServer::start_with(kind, |config| {
        config.messages.busy_at_queued_writes = 0;
        config.messages.sends_per_second = 1;
        config.messages.send_burst = 2;
    })
    .await;
    let alice = server.register("alice", 1).await;
    server.register("bob", 2).await;
    let mut alice_ws = server.ws(&alice.auth).await;
    alice_ws.drain().await;
    let hold = WriterHold::take(&server).await;
    ws_send_frame(&mut alice_ws, 1, "bob").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // Twice the burst: were busy refusals spending tokens, the third send
    // would be refused as rate-limited (429) instead of busy.
    for attempt in 0..4 {
        let (status, body) = server
            .request(
                "PUT",
                "/v1/messages/bob",
                Some(&alice.auth),
                Some(json!({ "envelopes": [{ "device_id": 1, "content": b64(b"hi") }] })),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "attempt {attempt}: {body}"
        );
        assert_eq!(body["code"], "server_busy");
    }
    hold.release().await;
    let (status, body) = ws_response(&mut alice_ws, 1).await;
    assert_eq!(status, 200, "{body}");
}
both_databases!(
    busy_refusals_leave_the_rate_limit_untouched,
    busy_refusals_spend_no_rate_limit
);
