//! The anonymous WebSocket (`/v1/ws/unidentified`), over real
//! connections on SQLite and PostgreSQL: an unidentified send on it is
//! authorised by the destination's access key and stored with no sender,
//! answered as the HTTP route answers; it never delivers an envelope and
//! takes no device's frames; the upgrade refuses a credential; and the
//! device socket refuses an unidentified send rather than tie it to its
//! device. Past the writer's busy mark, a connection with a send waiting
//! reads its next one only once that is answered, so pipelined sends wait
//! instead of being refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::{DbKind, TestServer, WriterHold, Ws, b64};
use futures_util::StreamExt;
use serde_json::{Value, json};
use starling_server::frames::{self, client_frame};
use starling_test_support::both_databases;

/// A sealed envelope (0x31, a bucket long) for device 1.
fn sealed() -> Vec<frames::OutgoingEnvelope> {
    vec![frames::OutgoingEnvelope {
        device_id: 1,
        content: [vec![0x31], vec![7; 1023]].concat(),
    }]
}

fn unidentified(request_id: u64, to: &str, key: &[u8]) -> frames::ClientFrame {
    frames::ClientFrame {
        request_id,
        body: Some(client_frame::Body::UnidentifiedSend(
            frames::UnidentifiedSend {
                destination: to.into(),
                envelopes: sealed(),
                access_key: key.to_vec(),
            },
        )),
    }
}

async fn set_access(server: &TestServer, auth: &str, key: &[u8]) {
    let body =
        json!({ "access_key": b64(key), "sealed_from_strangers": false, "if_absent": false });
    let (status, body) = server
        .request("PUT", "/v1/accounts/access", Some(auth), Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn senders(server: &TestServer) -> Vec<(Option<String>, Option<i64>)> {
    common::rows(
        &server.db,
        "SELECT sender, sender_device FROM envelopes ORDER BY seq",
    )
    .await
}

async fn sends_and_never_delivers(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let bob = server.register("bob", 2).await;
    set_access(&server, &bob.auth, &[7; 16]).await;
    let mut anonymous = Ws::connect_unidentified(server.addr).await;

    // The right key: stored with no sender, answered as by HTTP.
    anonymous.send_frame(unidentified(1, "bob", &[7; 16])).await;
    let (status, body) = anonymous.answer(1).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["stored"], 1);
    assert_eq!(senders(&server).await, vec![(None, None)]);

    // A wrong key, none, and no such account: one answer; a key of the
    // wrong length is malformed.
    for (id, to, key) in [
        (2, "bob", &[8u8; 16][..]),
        (3, "bob", &[][..]),
        (4, "nobody", &[7u8; 16][..]),
    ] {
        anonymous.send_frame(unidentified(id, to, key)).await;
        let (status, body) = anonymous.answer(id).await;
        assert_eq!(status, 401, "{to}: {body}");
        assert!(body.contains("bad_access_key"), "{body}");
    }
    anonymous.send_frame(unidentified(5, "bob", &[7; 3])).await;
    assert_eq!(anonymous.answer(5).await.0, 400);

    // A device's frames have no place here.
    for (id, body) in [
        (
            6,
            client_frame::Body::Ack(frames::Acknowledge {
                envelope_ids: vec![vec![0; 16]],
            }),
        ),
        (
            7,
            client_frame::Body::Send(frames::SendMessage {
                destination: "bob".into(),
                envelopes: sealed(),
                sealed: true,
            }),
        ),
    ] {
        anonymous
            .send_frame(frames::ClientFrame {
                request_id: id,
                body: Some(body),
            })
            .await;
        assert_eq!(anonymous.answer(id).await, (0, "bad_frame".into()));
    }
    anonymous
        .send_frame(frames::ClientFrame {
            request_id: 8,
            body: Some(client_frame::Body::Ping(frames::Ping {})),
        })
        .await;
    assert_eq!(anonymous.answer(8).await.0, 200);
    assert_eq!(senders(&server).await.len(), 1);

    // Bob gets the envelope on his own socket, naming no sender; the
    // anonymous socket got no envelope, and says nothing more.
    let mut ws = server.ws(&bob.auth).await;
    let envelopes = ws.drain().await;
    assert_eq!(envelopes.len(), 1);
    assert_eq!(
        (envelopes[0].sender.as_str(), envelopes[0].sender_device),
        ("", 0)
    );
    let quiet = tokio::time::timeout(Duration::from_millis(300), anonymous.socket.next()).await;
    assert!(quiet.is_err(), "the anonymous socket sent {quiet:?}");

    let metrics = server.state.metrics.render().unwrap();
    assert!(
        metrics.contains("starling_sends_unidentified_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("starling_unidentified_websocket_connections 1"),
        "{metrics}"
    );
}
both_databases!(
    unidentified_socket_sends_and_never_delivers,
    sends_and_never_delivers
);

async fn device_socket_refuses(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    let bob = server.register("bob", 2).await;
    set_access(&server, &bob.auth, &[7; 16]).await;
    let mut ws = server.ws(&alice.auth).await;
    ws.drain().await;
    ws.send_frame(unidentified(1, "bob", &[7; 16])).await;
    assert_eq!(ws.answer(1).await, (0, "bad_frame".into()));
    assert!(senders(&server).await.is_empty());
}
both_databases!(
    the_device_socket_refuses_unidentified_sends,
    device_socket_refuses
);

async fn credential_refused(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{}/v1/ws/unidentified",
            server.addr
        ))
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", alice.auth.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::BAD_REQUEST);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default());
            assert!(body.contains("bad_upgrade"), "{body}");
        }
        other => panic!("the upgrade with a credential was not refused: {other:?}"),
    }
}
both_databases!(
    the_anonymous_socket_refuses_a_credential,
    credential_refused
);

async fn waits_instead_of_refusing(kind: DbKind) {
    // Every queued write is past the mark: a second send while one waits
    // would be refused as busy, were it read.
    let server = TestServer::start_with(kind, |config| {
        config.messages.busy_at_queued_writes = 0;
    })
    .await;
    let bob = server.register("bob", 2).await;
    set_access(&server, &bob.auth, &[7; 16]).await;
    let mut anonymous = Ws::connect_unidentified(server.addr).await;

    let hold = WriterHold::take(&server).await;
    for id in 1..=3 {
        anonymous
            .send_frame(unidentified(id, "bob", &[7; 16]))
            .await;
    }
    // Nothing is answered while the first waits for the held writer.
    let early = tokio::time::timeout(Duration::from_millis(500), anonymous.next_frame()).await;
    assert!(
        early.is_err(),
        "answered while the writer was held: {early:?}"
    );
    hold.release().await;
    for id in 1..=3 {
        let (status, body) = anonymous.answer(id).await;
        assert_eq!(status, 200, "send {id}: {body}");
    }
    assert_eq!(senders(&server).await, vec![(None, None); 3]);
    let metrics = server.state.metrics.render().unwrap();
    assert!(
        metrics.contains("starling_sends_refused_busy_total 0"),
        "{metrics}"
    );
}
both_databases!(
    past_the_busy_mark_the_anonymous_socket_waits_instead_of_refusing,
    waits_instead_of_refusing
);
