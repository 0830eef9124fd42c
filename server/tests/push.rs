//! Push wake-ups against SQLite and PostgreSQL: an offline device's
//! endpoint (a local HTTP server) gets a content-free POST, coalesced; a
//! connected device gets none; a 404 endpoint is dropped; internal
//! addresses are refused unless configured.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::post;
use common::{Kind, TestServer, b64};
use serde_json::json;

/// A local push endpoint recording the bodies it receives; `/gone`
/// answers 404.
async fn endpoint() -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    let router = axum::Router::new()
        .route(
            "/wake",
            post(move |body: axum::body::Bytes| {
                let sink = sink.clone();
                async move {
                    sink.lock().unwrap().push(body.to_vec());
                    StatusCode::CREATED
                }
            }),
        )
        .route("/gone", post(|| async { StatusCode::NOT_FOUND }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (base, received)
}

async fn wait_for(received: &Mutex<Vec<Vec<u8>>>, count: usize) {
    for _ in 0..100 {
        if received.lock().unwrap().len() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "expected {count} wake-ups, got {}",
        received.lock().unwrap().len()
    );
}

async fn wake_ups(kind: Kind) {
    let (base, received) = endpoint().await;
    let server = TestServer::start_with(kind, |c| {
        c.push.allow_private_addresses = true;
        c.push.allow_plain_http = true;
        c.push.min_interval_seconds = 3600;
    })
    .await;
    let alice = server.register("alice", 1).await;
    let bob = server.register("bob", 2).await;
    let carol = server.register("carol", 3).await;
    let (status, _) = server
        .request(
            "PUT",
            "/v1/push",
            Some(&bob.auth),
            Some(json!({ "endpoint": format!("{base}/wake") })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let send = |to: &'static str| {
        let body = json!({ "envelopes": [{ "device_id": 1, "content": b64(b"secret words") }] });
        let server = &server;
        let auth = alice.auth.clone();
        async move {
            let (status, _) = server
                .request(
                    "PUT",
                    &format!("/v1/messages/{to}"),
                    Some(&auth),
                    Some(body),
                )
                .await;
            assert_eq!(status, StatusCode::OK);
        }
    };
    send("bob").await;
    wait_for(&received, 1).await;
    assert_eq!(
        received.lock().unwrap()[0],
        Vec::<u8>::new(),
        "a wake-up carries nothing"
    );
    // Coalesced: more envelopes within the interval wake nobody again.
    send("bob").await;
    send("bob").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(received.lock().unwrap().len(), 1);

    // A connected device is woken over its socket, not by push.
    let (status, _) = server
        .request(
            "PUT",
            "/v1/push",
            Some(&carol.auth),
            Some(json!({ "endpoint": format!("{base}/wake") })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut ws = server.ws(&carol.auth).await;
    ws.drain().await;
    send("carol").await;
    ws.next_envelope().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(received.lock().unwrap().len(), 1);
    drop(ws);

    // A dead endpoint is dropped.
    let (status, _) = server
        .request(
            "PUT",
            "/v1/push",
            Some(&alice.auth),
            Some(json!({ "endpoint": format!("{base}/gone") })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let body = json!({ "envelopes": [{ "device_id": 1, "content": b64(b"x") }] });
    server
        .request("PUT", "/v1/messages/alice", Some(&bob.auth), Some(body))
        .await;
    for _ in 0..100 {
        if server
            .state
            .store
            .push_endpoint(1, 1)
            .await
            .unwrap()
            .is_none()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.state.store.push_endpoint(1, 1).await.unwrap(), None);
}
crate::both_databases!(offline_devices_get_a_content_free_wake_up, super::wake_ups);

async fn internal_endpoints_refused(kind: Kind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    for endpoint in [
        "https://127.0.0.1:8443/wake",
        "https://10.0.0.5/wake",
        "https://169.254.169.254/latest/meta-data",
        "https://localhost/wake",
        "https://[::1]/wake",
        "http://push.example/wake",
        "gopher://push.example/",
    ] {
        let (status, body) = server
            .request(
                "PUT",
                "/v1/push",
                Some(&alice.auth),
                Some(json!({ "endpoint": endpoint })),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("push_endpoint_refused")),
            "{endpoint}"
        );
    }
    assert_eq!(server.state.store.push_endpoint(1, 1).await.unwrap(), None);
}
crate::both_databases!(
    internal_push_endpoints_are_refused,
    super::internal_endpoints_refused
);
