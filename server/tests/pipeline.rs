//! The delivery pipeline against SQLite and PostgreSQL: a full window holds
//! live envelopes back behind queued ones, sends pipelined on one WebSocket
//! are stored in the order they were made, the group commit numbers
//! envelopes exactly as the queue reads them back, a failed batch leaves
//! nothing behind, one bad write fails alone, and a send from a device
//! removed (or an account disabled) after it authenticated is refused in
//! the commit itself.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::{DbKind, TestServer, b64, envelope};
use serde_json::json;
use starling_server::frames::{self, client_frame, server_frame};
use starling_server::store::{BatchOp, Destination, NewEnvelope, SendOp, SendRefusal, WriteError};
use starling_server::ws::MAX_IN_FLIGHT;
use starling_test_support::both_databases;

/// The account id of `username`.
async fn account_id(server: &TestServer, username: &str) -> i64 {
    server
        .state
        .store
        .devices_of(username)
        .await
        .unwrap()
        .unwrap()
        .0
}

/// Device 1's queue as the store reads it back: (sequence, envelope id).
async fn queue_of(server: &TestServer, account_id: i64) -> Vec<(i64, Vec<u8>)> {
    server
        .state
        .store
        .envelopes_after(account_id, 1, 0, 1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.envelope_id))
        .collect()
}

async fn full_window_keeps_order(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    let bob = server.register("bob", 2).await;
    let bob_id = account_id(&server, "bob").await;
    let queued = u16::try_from(MAX_IN_FLIGHT + 20).unwrap();
    let envelopes: Vec<NewEnvelope> = (0..queued).map(|i| envelope(bob_id, 1, i)).collect();
    server
        .state
        .store
        .insert_envelopes(&envelopes)
        .await
        .unwrap();

    // On connect: exactly one window, oldest first.
    let mut ws = server.ws(&bob.auth).await;
    let window = ws.drain().await;
    let contents: Vec<Vec<u8>> = window.iter().map(|e| e.content.clone()).collect();
    let expected: Vec<Vec<u8>> = (0..u16::try_from(MAX_IN_FLIGHT).unwrap())
        .map(|i| i.to_be_bytes().to_vec())
        .collect();
    assert_eq!(contents, expected);

    // A live send while the window is full waits behind the queue.
    let body = json!({ "envelopes": [{ "device_id": 1, "content": b64(b"live") }] });
    let (status, body) = server
        .request("PUT", "/v1/messages/bob", Some(&alice.auth), Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Half the window acknowledged: the 20 still queued come first, then
    // the live one.
    ws.ack(
        window[..MAX_IN_FLIGHT / 2]
            .iter()
            .map(|e| e.id.clone())
            .collect(),
    )
    .await;
    let mut next = Vec::new();
    for _ in 0..21 {
        next.push(ws.next_envelope().await.content);
    }
    let mut expected: Vec<Vec<u8>> = (u16::try_from(MAX_IN_FLIGHT).unwrap()..queued)
        .map(|i| i.to_be_bytes().to_vec())
        .collect();
    expected.push(b"live".to_vec());
    assert_eq!(next, expected);
}
both_databases!(a_full_window_keeps_queue_order, full_window_keeps_order);

async fn pipelined_sends_keep_order(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    let bob = server.register("bob", 2).await;
    let mut alice_ws = server.ws(&alice.auth).await;
    alice_ws.drain().await;
    // Twenty sends without waiting for any answer, and one stale send in
    // the middle, which alone is refused.
    for request_id in 1..=20u64 {
        let device_id = if request_id == 10 { 9 } else { 1 };
        alice_ws
            .send_frame(frames::ClientFrame {
                request_id,
                body: Some(client_frame::Body::Send(frames::SendMessage {
                    destination: "bob".into(),
                    envelopes: vec![frames::OutgoingEnvelope {
                        device_id,
                        content: vec![u8::try_from(request_id).unwrap()],
                    }],
                    sealed: false,
                })),
            })
            .await;
    }
    let mut answers = std::collections::BTreeMap::new();
    while answers.len() < 20 {
        let frame = alice_ws.next_frame().await;
        if let Some(server_frame::Body::Response(response)) = frame.body {
            answers.insert(frame.request_id, response.status);
        }
    }
    let expected: std::collections::BTreeMap<u64, u32> = (1..=20u64)
        .map(|id| (id, if id == 10 { 409 } else { 200 }))
        .collect();
    assert_eq!(answers, expected);
    let mut bob_ws = server.ws(&bob.auth).await;
    let contents: Vec<Vec<u8>> = bob_ws
        .drain()
        .await
        .into_iter()
        .map(|e| e.content)
        .collect();
    let expected: Vec<Vec<u8>> = (1..=20u8).filter(|i| *i != 10).map(|i| vec![i]).collect();
    assert_eq!(contents, expected);
}
both_databases!(pipelined_sends_keep_their_order, pipelined_sends_keep_order);

async fn batch_numbers_match_the_queue(kind: DbKind) {
    let server = TestServer::start(kind).await;
    server.register("bob", 2).await;
    let bob_id = account_id(&server, "bob").await;
    // Enough rows for several multi-row statements, in one transaction.
    let first: Vec<NewEnvelope> = (0..150).map(|i| envelope(bob_id, 1, i)).collect();
    let second: Vec<NewEnvelope> = (150..300).map(|i| envelope(bob_id, 1, i)).collect();
    let ops = [BatchOp::Insert(first), BatchOp::Insert(second)];
    let outcome = server
        .state
        .store
        .apply_batch(&ops.iter().collect::<Vec<_>>())
        .await
        .unwrap();
    let committed: Vec<(i64, Vec<u8>)> = outcome
        .committed
        .iter()
        .map(|c| (c.envelope.seq, c.envelope.envelope_id.clone()))
        .collect();
    let read = queue_of(&server, bob_id).await;
    assert_eq!(committed.len(), 300);
    assert_eq!(committed, read);
    // Queue order is the order of the operations and of their envelopes.
    let indices: Vec<u16> = read
        .iter()
        .map(|(_, id)| u16::from_be_bytes([id[0], id[1]]))
        .collect();
    assert_eq!(indices, (0..300).collect::<Vec<_>>());
}
both_databases!(
    batch_sequence_numbers_match_the_queue,
    batch_numbers_match_the_queue
);

async fn failed_batch_leaves_nothing(kind: DbKind) {
    let server = TestServer::start(kind).await;
    server.register("bob", 2).await;
    let bob_id = account_id(&server, "bob").await;
    let store = &server.state.store;
    let good: Vec<NewEnvelope> = (0..3).map(|i| envelope(bob_id, 1, i)).collect();
    // The second operation repeats an envelope id of the first.
    let ops = [
        BatchOp::Insert(good.clone()),
        BatchOp::Insert(vec![envelope(bob_id, 1, 0)]),
    ];
    assert!(
        store
            .apply_batch(&ops.iter().collect::<Vec<_>>())
            .await
            .is_err()
    );
    assert!(queue_of(&server, bob_id).await.is_empty());
    // The store goes on working.
    store.insert_envelopes(&good).await.unwrap();
    assert_eq!(queue_of(&server, bob_id).await.len(), 3);
}
both_databases!(a_failed_batch_leaves_nothing, failed_batch_leaves_nothing);

async fn one_bad_write_fails_alone(kind: DbKind) {
    let server = TestServer::start(kind).await;
    server.register("bob", 2).await;
    let bob_id = account_id(&server, "bob").await;
    let writer = &server.state.writer;
    // Queued together, so that the writer is likely to fold them into one
    // batch and has to apply them one by one after it fails.
    let mut commits = Vec::new();
    for op in [
        BatchOp::Insert(vec![envelope(bob_id, 1, 0)]),
        BatchOp::Insert(vec![envelope(bob_id, 1, 0)]),
        BatchOp::Insert(vec![envelope(bob_id, 1, 1)]),
    ] {
        commits.push(writer.enqueue(op).await.unwrap());
    }
    let mut results = Vec::new();
    for commit in commits {
        results.push(commit.await);
    }
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(
        matches!(results[1], Err(WriteError::Failed(_))),
        "{:?}",
        results[1]
    );
    assert!(results[2].is_ok(), "{:?}", results[2]);
    let stored: Vec<Vec<u8>> = queue_of(&server, bob_id)
        .await
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    assert_eq!(
        stored,
        vec![
            envelope(bob_id, 1, 0).envelope_id.to_vec(),
            envelope(bob_id, 1, 1).envelope_id.to_vec()
        ]
    );
}
both_databases!(
    one_bad_write_fails_alone_and_the_others_are_stored,
    one_bad_write_fails_alone
);

/// A send of one envelope from `sender` to bob's device 1.
fn send_to_bob(sender: (i64, u32), index: u16) -> BatchOp {
    let mut envelope = envelope(0, 1, index);
    envelope.sender = Some("alice".into());
    envelope.sender_device = Some(sender.1);
    BatchOp::Send(SendOp {
        sender: Some(sender),
        destinations: vec![Destination {
            username: "bob".into(),
            envelopes: vec![envelope],
        }],
    })
}

async fn revoked_senders_are_refused_in_the_commit(kind: DbKind) {
    let server = TestServer::start(kind).await;
    server.register("alice", 1).await;
    server.register("bob", 2).await;
    let alice_id = account_id(&server, "alice").await;
    let bob_id = account_id(&server, "bob").await;
    let writer = &server.state.writer;
    // Device 1 exists; device 9 never did (or was removed).
    writer.write(send_to_bob((alice_id, 1), 0)).await.unwrap();
    let refused = writer.write(send_to_bob((alice_id, 9), 1)).await;
    assert!(
        matches!(
            refused,
            Err(WriteError::Refused(SendRefusal::SenderRevoked))
        ),
        "{refused:?}"
    );
    // Disabled after authenticating: the commit reads the account again.
    let store = &server.state.store;
    assert!(store.set_disabled("alice", true, 0).await.unwrap());
    let refused = writer.write(send_to_bob((alice_id, 1), 2)).await;
    assert!(
        matches!(
            refused,
            Err(WriteError::Refused(SendRefusal::SenderRevoked))
        ),
        "{refused:?}"
    );
    let stored = queue_of(&server, bob_id).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
}
both_databases!(
    revoked_senders_are_refused,
    revoked_senders_are_refused_in_the_commit
);
