//! Push wake-ups against SQLite and PostgreSQL: an offline device's
//! endpoint (a local HTTP server) gets a content-free POST, coalesced; a
//! connected device gets none; a 404 endpoint is dropped; internal
//! addresses are refused unless configured.
//!
//! A wake-up that must *not* happen is checked against one that must: with
//! one wake-up at a time (`max_concurrent = 1`), the server sends them in
//! the order the envelopes were committed, so once a later device's
//! wake-up has arrived, any for the earlier envelopes would have arrived
//! before it. With the default concurrency, a silent endpoint (a tarpit)
//! holds up nobody else's wake-ups.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::post;
use common::{DbKind, TestServer, b64};
use serde_json::json;
use starling_test_support::{both_databases, wait_until};

/// Wake-ups received: the name in the endpoint's path, and the body.
type WakeUps = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A local push endpoint recording the wake-ups it receives at
/// `/wake/{name}`; `/gone` answers 404.
async fn endpoint() -> (String, WakeUps) {
    let received = WakeUps::default();
    let sink = received.clone();
    let router = axum::Router::new()
        .route(
            "/wake/{name}",
            post(move |Path(name): Path<String>, body: axum::body::Bytes| {
                let sink = sink.clone();
                async move {
                    sink.lock().unwrap().push((name, body.to_vec()));
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

/// The names woken so far, in order.
fn woken(received: &Mutex<Vec<(String, Vec<u8>)>>) -> Vec<String> {
    received
        .lock()
        .unwrap()
        .iter()
        .map(|(name, _)| name.clone())
        .collect()
}

/// Waits until `name` has been woken.
async fn wait_for_wake_up(received: &Mutex<Vec<(String, Vec<u8>)>>, name: &str) {
    wait_until(
        Duration::from_secs(10),
        format!("{name}'s wake-up"),
        || async { woken(received).iter().any(|n| n == name) },
    )
    .await;
}

async fn wake_ups(kind: DbKind) {
    let (base, received) = endpoint().await;
    let server = TestServer::start_with(kind, |c| {
        c.push.allow_private_addresses = true;
        c.push.allow_plain_http = true;
        c.push.min_interval_seconds = 3600;
        c.push.max_concurrent = 1;
    })
    .await;
    let alice = server.register("alice", 1).await;
    let mut others = Vec::new();
    for (seed, name) in (2..).zip(["bob", "carol", "dave", "erin"]) {
        let user = server.register(name, seed).await;
        let (status, _) = server
            .request(
                "PUT",
                "/v1/push",
                Some(&user.auth),
                Some(json!({ "endpoint": format!("{base}/wake/{name}") })),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        others.push(user);
    }
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
    wait_for_wake_up(&received, "bob").await;
    assert_eq!(
        received.lock().unwrap()[0],
        ("bob".to_owned(), Vec::<u8>::new()),
        "a wake-up carries nothing"
    );
    // Coalesced: more envelopes within the interval wake nobody again.
    send("bob").await;
    send("bob").await;
    send("dave").await;
    wait_for_wake_up(&received, "dave").await;
    assert_eq!(woken(&received), ["bob", "dave"]);

    // A connected device is woken over its socket, not by push.
    let carol = &others[1];
    let mut ws = server.ws(&carol.auth).await;
    ws.drain().await;
    send("carol").await;
    ws.next_envelope().await;
    send("erin").await;
    wait_for_wake_up(&received, "erin").await;
    assert_eq!(woken(&received), ["bob", "dave", "erin"]);
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
        .request(
            "PUT",
            "/v1/messages/alice",
            Some(&others[0].auth),
            Some(body),
        )
        .await;
    wait_until(
        Duration::from_secs(10),
        "alice's endpoint to be dropped after its 404",
        || async {
            server
                .state
                .store
                .push_endpoint(1, 1)
                .await
                .unwrap()
                .is_none()
        },
    )
    .await;
}
both_databases!(offline_devices_get_a_content_free_wake_up, wake_ups);

async fn a_tarpit_endpoint_delays_nobody_else(kind: DbKind) {
    let (base, received) = endpoint().await;
    // Accepts connections and never answers.
    let tarpit = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tarpit_url = format!("http://{}/wake/tarpit", tarpit.local_addr().unwrap());
    let held = Arc::new(Mutex::new(Vec::new()));
    let holder = held.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = tarpit.accept().await {
            holder.lock().unwrap().push(socket);
        }
    });
    let server = TestServer::start_with(kind, |c| {
        c.push.allow_private_addresses = true;
        c.push.allow_plain_http = true;
        // Far longer than the test waits for bob's wake-up.
        c.push.timeout_seconds = 600;
    })
    .await;
    let alice = server.register("alice", 1).await;
    let stuck = server.register("stuck", 2).await;
    let bob = server.register("bob", 3).await;
    for (user, endpoint) in [(&stuck, tarpit_url), (&bob, format!("{base}/wake/bob"))] {
        let (status, _) = server
            .request(
                "PUT",
                "/v1/push",
                Some(&user.auth),
                Some(json!({ "endpoint": endpoint })),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    for to in ["stuck", "bob"] {
        let body = json!({ "envelopes": [{ "device_id": 1, "content": b64(b"x") }] });
        let (status, _) = server
            .request(
                "PUT",
                &format!("/v1/messages/{to}"),
                Some(&alice.auth),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    // The tarpit holds its wake-up, and bob is woken all the same.
    wait_until(
        Duration::from_secs(10),
        "the tarpit's connection",
        || async { !held.lock().unwrap().is_empty() },
    )
    .await;
    wait_for_wake_up(&received, "bob").await;
}
both_databases!(
    a_silent_endpoint_holds_up_no_other_wake_up,
    a_tarpit_endpoint_delays_nobody_else
);

async fn internal_endpoints_refused(kind: DbKind) {
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
both_databases!(
    internal_push_endpoints_are_refused,
    internal_endpoints_refused
);
