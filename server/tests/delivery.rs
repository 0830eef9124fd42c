//! Envelope delivery over the WebSocket against SQLite and PostgreSQL:
//! order, acknowledgement, redelivery after reconnect, durability across a
//! restart, expiry, and malformed frames.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::{DbKind, TestDatabase, TestServer, b64};
use serde_json::json;
use starling_server::frames::{self, client_frame, server_frame};
use starling_server::store::{NewEnvelope, Store, now_millis};
use starling_test_support::both_databases;

/// Sends `content` from `auth` to `to`'s device 1 over HTTP.
async fn send(server: &TestServer, auth: &str, to: &str, content: &[u8]) {
    server.send_to(auth, to, content).await;
}

async fn order_ack_and_redelivery(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    let bob = server.register("bob", 2).await;
    // Bob is offline: five envelopes queue.
    for i in 0..5u8 {
        send(&server, &alice.auth, "bob", &[i]).await;
    }
    let mut ws = server.ws(&bob.auth).await;
    let queued = ws.drain().await;
    assert_eq!(
        queued.iter().map(|e| e.content.clone()).collect::<Vec<_>>(),
        (0..5u8).map(|i| vec![i]).collect::<Vec<_>>()
    );
    assert!(
        queued
            .iter()
            .all(|e| e.sender == "alice" && e.sender_device == 1 && e.id.len() == 16)
    );
    // Live delivery while connected.
    send(&server, &alice.auth, "bob", b"live").await;
    let live = ws.next_envelope().await;
    assert_eq!(live.content, b"live");
    // Acknowledge the first three only, then reconnect.
    ws.ack(queued[..3].iter().map(|e| e.id.clone()).collect())
        .await;
    drop(ws);
    let mut ws = server.ws(&bob.auth).await;
    let again = ws.drain().await;
    let contents: Vec<Vec<u8>> = again.iter().map(|e| e.content.clone()).collect();
    assert_eq!(contents, vec![vec![3], vec![4], b"live".to_vec()]);
    ws.ack(again.iter().map(|e| e.id.clone()).collect()).await;
    drop(ws);
    let mut ws = server.ws(&bob.auth).await;
    assert!(
        ws.drain().await.is_empty(),
        "acknowledged envelopes never come back"
    );
    // The metrics count what happened, and name nobody.
    let (status, metrics) = server
        .request("GET", "/metrics", Some(&common::metrics_auth()), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let text = metrics.as_str().unwrap();
    assert!(text.contains("starling_envelopes_stored_total 6"), "{text}");
    assert!(
        text.contains("starling_envelopes_acknowledged_total 6"),
        "{text}"
    );
    // Closed sockets are counted down asynchronously: at least the open one.
    let connections: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("starling_websocket_connections "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(connections >= 1, "{text}");
    assert!(!text.contains("alice") && !text.contains("bob"));
}
both_databases!(delivery_order_and_acknowledgement, order_ack_and_redelivery);

async fn sealed_and_ws_send(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    let bob = server.register("bob", 2).await;
    let mut bob_ws = server.ws(&bob.auth).await;
    assert!(bob_ws.drain().await.is_empty());
    let mut alice_ws = server.ws(&alice.auth).await;
    alice_ws.drain().await;
    // Send over the WebSocket, sealed.
    alice_ws
        .send_frame(frames::ClientFrame {
            request_id: 7,
            body: Some(client_frame::Body::Send(frames::SendMessage {
                destination: "bob".into(),
                envelopes: vec![frames::OutgoingEnvelope {
                    device_id: 1,
                    content: b"sealed".to_vec(),
                }],
                sealed: true,
            })),
        })
        .await;
    let reply = alice_ws.next_frame().await;
    assert_eq!(reply.request_id, 7);
    let Some(server_frame::Body::Response(response)) = reply.body else {
        panic!("expected a response")
    };
    assert_eq!(response.status, 200);
    let envelope = bob_ws.next_envelope().await;
    assert_eq!(
        (
            envelope.content.as_slice(),
            envelope.sender.as_str(),
            envelope.sender_device
        ),
        (&b"sealed"[..], "", 0)
    );
    // A stale send over the WebSocket answers 409 with the device lists.
    alice_ws
        .send_frame(frames::ClientFrame {
            request_id: 8,
            body: Some(client_frame::Body::Send(frames::SendMessage {
                destination: "bob".into(),
                envelopes: vec![frames::OutgoingEnvelope {
                    device_id: 5,
                    content: b"x".to_vec(),
                }],
                sealed: false,
            })),
        })
        .await;
    let Some(server_frame::Body::Response(response)) = alice_ws.next_frame().await.body else {
        panic!()
    };
    assert_eq!(response.status, 409);
    let body: serde_json::Value = serde_json::from_str(&response.body_json).unwrap();
    assert_eq!(
        (
            body["missing_devices"].clone(),
            body["extra_devices"].clone()
        ),
        (json!([1]), json!([5]))
    );
}
both_databases!(websocket_send_and_sealed_sender, sealed_and_ws_send);

async fn malformed_frames(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    let mut ws = server.ws(&alice.auth).await;
    ws.drain().await;
    use futures_util::SinkExt;
    for garbage in [vec![0xff, 0xff, 0xff], vec![], vec![0x0a, 0x05, 1]] {
        ws.socket
            .send(tokio_tungstenite::tungstenite::Message::Binary(
                garbage.into(),
            ))
            .await
            .unwrap();
        let frame = ws.next_frame().await;
        assert!(
            matches!(frame.body, Some(server_frame::Body::Error(_))),
            "{frame:?}"
        );
    }
    ws.socket
        .send(tokio_tungstenite::tungstenite::Message::Text(
            "hello".into(),
        ))
        .await
        .unwrap();
    assert!(matches!(
        ws.next_frame().await.body,
        Some(server_frame::Body::Error(_))
    ));
    // Still usable.
    ws.send_frame(frames::ClientFrame {
        request_id: 3,
        body: Some(client_frame::Body::Ping(frames::Ping {})),
    })
    .await;
    let frame = ws.next_frame().await;
    assert_eq!(frame.request_id, 3);
    assert!(matches!(frame.body, Some(server_frame::Body::Response(r)) if r.status == 200));
}
both_databases!(malformed_frames_get_an_error_frame, malformed_frames);

async fn survive_restart_and_expire(kind: DbKind) {
    let db = TestDatabase::create(kind).await;
    let store = common::open_store(&db).await;
    let now = now_millis();
    // A device to address.
    let device = starling_server::store::NewDevice {
        credential_hash: [1; 32],
        identity_key: vec![1],
    };
    let account = store.register("bob", None, &device, now).await.unwrap();
    let hour = starling_server::store::accepted_hour(now);
    let envelope = |id: u8, created_at: i64| NewEnvelope {
        envelope_id: [id; 16],
        account_id: account,
        device_id: 1,
        sender: Some("alice".into()),
        sender_device: Some(1),
        created_at,
        content: vec![id; 10],
    };
    store
        .insert_envelopes(&[envelope(1, hour), envelope(2, hour - 3_600_000)])
        .await
        .unwrap();
    store.close().await;
    drop(store);
    // A new process opens the same database.
    let store = Store::open(Some(db.url()), db.dir()).await.unwrap();
    store.migrate().await.unwrap();
    let queued = store.envelopes_after(account, 1, 0, 10).await.unwrap();
    assert_eq!(queued.len(), 2);
    // Expiry drops what was accepted at or before the cutoff (now − TTL).
    assert_eq!(store.delete_expired(hour - 1).await.unwrap(), 1);
    let queued = store.envelopes_after(account, 1, 0, 10).await.unwrap();
    assert_eq!(
        queued
            .iter()
            .map(|e| e.envelope_id.clone())
            .collect::<Vec<_>>(),
        vec![vec![1u8; 16]]
    );
    assert_eq!(store.queue_stats().await.unwrap().count, 1);
}
both_databases!(
    envelopes_survive_restart_and_expire,
    survive_restart_and_expire
);

async fn removing_a_device_drops_its_queue(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    let bob = server.register("bob", 2).await;
    send(&server, &alice.auth, "bob", b"x").await;
    // Bob's new phone, linked as a manager, removes the old one.
    let (_, code) = server
        .request(
            "POST",
            "/v1/devices/link-code?manager=true",
            Some(&bob.auth),
            None,
        )
        .await;
    let identity = starling_crypto::IdentityKeyPair::generate(&mut rand_core::OsRng);
    let link = json!({
        "link_code": code["code"],
        "identity_key": b64(&identity.public().to_bytes()),
    });
    let (status, linked) = server
        .request("POST", "/v1/devices", None, Some(link))
        .await;
    assert_eq!(status, StatusCode::OK, "{linked}");
    let phone = format!("Bearer bob:2:{}", linked["credential"].as_str().unwrap());
    let (status, _) = server
        .request("DELETE", "/v1/devices/1", Some(&phone), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.state.store.queue_stats().await.unwrap().count, 0);
    let (status, _) = server
        .request("GET", "/v1/keys/count", Some(&bob.auth), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
both_databases!(device_removal, removing_a_device_drops_its_queue);

async fn acknowledging_what_was_not_delivered_deletes_nothing(kind: DbKind) {
    use starling_server::store::BatchOp;
    use starling_server::ws::MAX_IN_FLIGHT;
    let server = TestServer::start(kind).await;
    let bob = server.register("bob", 2).await;
    let bob_id = server
        .state
        .store
        .devices_of("bob")
        .await
        .unwrap()
        .unwrap()
        .0;
    // One envelope more than the window: the last waits in the queue.
    let count = u16::try_from(MAX_IN_FLIGHT + 1).unwrap();
    let queued: Vec<NewEnvelope> = (0..count).map(|i| common::envelope(bob_id, 1, i)).collect();
    let waiting = queued.last().unwrap().envelope_id.to_vec();
    server
        .state
        .writer
        .write(BatchOp::Insert(queued))
        .await
        .unwrap();
    let mut ws = server.ws(&bob.auth).await;
    let window = ws.drain().await;
    assert_eq!(window.len(), MAX_IN_FLIGHT);
    assert!(window.iter().all(|e| e.id != waiting));
    // Acknowledging the undelivered one, and ids that were never queued,
    // is answered but deletes nothing.
    ws.ack(vec![waiting.clone(), vec![7; 16], vec![8; 16]])
        .await;
    let stored = server
        .state
        .store
        .envelopes_after(bob_id, 1, 0, 1_000)
        .await
        .unwrap();
    assert_eq!(stored.len(), MAX_IN_FLIGHT + 1);
    // Acknowledging what was delivered deletes it, and the waiting one
    // comes next.
    ws.ack(window.iter().map(|e| e.id.clone()).collect()).await;
    let next = ws.next_envelope().await;
    assert_eq!(next.id, waiting);
    let stored = server
        .state
        .store
        .envelopes_after(bob_id, 1, 0, 1_000)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
}
both_databases!(
    acknowledgements_only_of_delivered_envelopes,
    acknowledging_what_was_not_delivered_deletes_nothing
);

async fn a_silent_websocket_is_closed(kind: DbKind) {
    let server = TestServer::start_with(kind, |c| c.connections.websocket_ping_seconds = 1).await;
    let bob = server.register("bob", 2).await;
    let mut ws = server.ws(&bob.auth).await;
    ws.drain().await;
    // Bob's client stops reading: it answers no ping, and is closed after
    // two intervals without a word from it.
    let open = || async {
        let (_, metrics) = server
            .request("GET", "/metrics", Some(&common::metrics_auth()), None)
            .await;
        starling_test_support::metrics::value(
            metrics.as_str().unwrap(),
            "starling_websocket_connections",
        )
    };
    assert_eq!(open().await, Some(1.0));
    starling_test_support::wait_until(
        std::time::Duration::from_secs(10),
        "the silent connection to be closed",
        || async { open().await == Some(0.0) },
    )
    .await;
    drop(ws);
}
both_databases!(silent_websockets_are_closed, a_silent_websocket_is_closed);

async fn a_websocket_that_stops_reading_is_dropped(kind: DbKind) {
    let server = TestServer::start_with(kind, |c| c.connections.websocket_ping_seconds = 1).await;
    let alice = server.register("alice", 1).await;
    let bob = server.register("bob", 2).await;
    let mut ws = server.ws(&bob.auth).await;
    ws.drain().await;
    // Bob's client stops reading while more is sent to him than the
    // socket buffers hold: the server's writes block, and the connection
    // is dropped once a step has waited two ping intervals.
    let content = b64(&vec![7u8; 200 * 1024]);
    for n in 0..80 {
        let (status, body) = server
            .request(
                "PUT",
                "/v1/messages/bob",
                Some(&alice.auth),
                Some(json!({ "envelopes": [{ "device_id": 1, "content": content }] })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "send {n}: {body}");
    }
    let metric = |name: &'static str| {
        let server = &server;
        async move {
            let (_, metrics) = server
                .request("GET", "/metrics", Some(&common::metrics_auth()), None)
                .await;
            starling_test_support::metrics::value(metrics.as_str().unwrap(), name)
        }
    };
    starling_test_support::wait_until(
        std::time::Duration::from_secs(15),
        "the stalled connection to be dropped",
        || async {
            metric("starling_websocket_connections").await == Some(0.0)
                && metric("starling_websockets_stalled_total").await == Some(1.0)
        },
    )
    .await;
    drop(ws);
}
both_databases!(
    websockets_that_stop_reading_are_dropped,
    a_websocket_that_stops_reading_is_dropped
);
