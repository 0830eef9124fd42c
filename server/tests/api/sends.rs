//! Sends over the HTTP API: device lists that are stale are refused with
//! what is missing and extra, a send to several accounts is stored whole
//! or not at all, and sends and bundle fetches are rate-limited per device.

use axum::http::StatusCode;
use serde_json::json;
use starling_test_support::both_databases;

use crate::common::{DbKind, TestServer, b64};

async fn stale_devices(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    let _bob = server.register("bob", 2).await;
    let send = |devices: Vec<u32>| json!({ "envelopes": devices.iter().map(|d| json!({"device_id": d, "content": b64(b"x")})).collect::<Vec<_>>() });
    let (status, body) = server
        .request(
            "PUT",
            "/v1/messages/bob",
            Some(&alice.auth),
            Some(send(vec![1, 2])),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "stale_devices");
    assert_eq!(body["extra_devices"], json!([2]));
    assert_eq!(body["missing_devices"], json!([]));
    let (status, body) = server
        .request(
            "PUT",
            "/v1/messages/bob",
            Some(&alice.auth),
            Some(send(vec![1])),
        )
        .await;
    assert_eq!((status, body["stored"].as_u64()), (StatusCode::OK, Some(1)));
    // Writing to one's own account excludes the sending device.
    let (status, body) = server
        .request(
            "PUT",
            "/v1/messages/alice",
            Some(&alice.auth),
            Some(send(vec![1])),
        )
        .await;
    assert_eq!(
        (status, &body["extra_devices"]),
        (StatusCode::CONFLICT, &json!([1]))
    );
    let (status, _) = server
        .request(
            "PUT",
            "/v1/messages/nobody",
            Some(&alice.auth),
            Some(send(vec![1])),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
both_databases!(stale_device_lists_are_refused, stale_devices);

async fn multi_recipient(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    let _bob = server.register("bob", 2).await;
    let _carol = server.register("carol", 3).await;
    let to = |name: &str, devices: &[u32]| json!({ "destination": name, "envelopes": devices.iter().map(|d| json!({"device_id": d, "content": b64(b"g")})).collect::<Vec<_>>() });
    // One stale destination refuses the whole send, naming every stale one.
    let (status, body) = server
        .request(
            "PUT",
            "/v1/messages",
            Some(&alice.auth),
            Some(json!({ "sends": [to("bob", &[1]), to("carol", &[1, 4])] })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body["accounts"],
        json!({ "carol": { "missing": [], "extra": [4] } })
    );
    assert_eq!(
        server.state.store.queue_stats().await.unwrap().count,
        0,
        "nothing stored"
    );
    let (status, body) = server
        .request(
            "PUT",
            "/v1/messages",
            Some(&alice.auth),
            Some(json!({ "sends": [to("bob", &[1]), to("carol", &[1])] })),
        )
        .await;
    assert_eq!((status, body["stored"].as_u64()), (StatusCode::OK, Some(2)));
    let (status, body) = server
        .request(
            "PUT",
            "/v1/messages",
            Some(&alice.auth),
            Some(json!({ "sends": [to("bob", &[1]), to("bob", &[1])] })),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("duplicate_destination"))
    );
    let (status, _) = server
        .request(
            "PUT",
            "/v1/messages",
            Some(&alice.auth),
            Some(json!({ "sends": [] })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
both_databases!(multi_recipient_sends, multi_recipient);

async fn rate_limits(kind: DbKind) {
    let server = TestServer::start_with(kind, |c| {
        c.messages.sends_per_second = 1;
        c.messages.send_burst = 3;
        c.messages.bundle_fetches_per_second = 1;
        c.messages.bundle_fetch_burst = 2;
    })
    .await;
    let alice = server.register("alice", 1).await;
    let carol = server.register("carol", 3).await;
    let _bob = server.register("bob", 2).await;
    let send = json!({ "envelopes": [{ "device_id": 1, "content": b64(b"x") }] });
    for _ in 0..3 {
        let (status, _) = server
            .request(
                "PUT",
                "/v1/messages/bob",
                Some(&alice.auth),
                Some(send.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, body) = server
        .request(
            "PUT",
            "/v1/messages/bob",
            Some(&alice.auth),
            Some(send.clone()),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );
    // Another device is not affected.
    let (status, _) = server
        .request("PUT", "/v1/messages/bob", Some(&carol.auth), Some(send))
        .await;
    assert_eq!(status, StatusCode::OK);
    for expected in [
        StatusCode::OK,
        StatusCode::OK,
        StatusCode::TOO_MANY_REQUESTS,
    ] {
        let (status, _) = server
            .request("GET", "/v1/keys/bob/*", Some(&alice.auth), None)
            .await;
        assert_eq!(status, expected);
    }
}
both_databases!(rate_limited_devices_get_429, rate_limits);

async fn malformed_destinations(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    let bob = server.register("bob", 2).await;
    let one = json!({ "envelopes": [{ "device_id": 1, "content": b64(b"x") }] });
    // A NUL byte (or any name the username rule refuses) is a 400 before
    // it reaches the database, on both.
    let (status, body) = server
        .request(
            "PUT",
            "/v1/messages/bo%00b",
            Some(&alice.auth),
            Some(one.clone()),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_username")),
        "{body}"
    );
    let to = |name: &str| json!({ "destination": name, "envelopes": [{ "device_id": 1, "content": b64(b"g") }] });
    let (status, body) = server
        .request(
            "PUT",
            "/v1/messages",
            Some(&alice.auth),
            Some(json!({ "sends": [to("bob"), to("ca\u{0}rol")] })),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_username")),
        "{body}"
    );
    // Others' sends go on being stored.
    let (status, body) = server
        .request("PUT", "/v1/messages/alice", Some(&bob.auth), Some(one))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(server.state.store.queue_stats().await.unwrap().count, 1);
}
both_databases!(
    malformed_destinations_are_refused_before_the_database,
    malformed_destinations
);

async fn per_recipient_tokens(kind: DbKind) {
    let server = TestServer::start_with(kind, |c| {
        c.messages.sends_per_second = 1;
        c.messages.send_burst = 3;
    })
    .await;
    let alice = server.register("alice", 1).await;
    for (seed, name) in (2..).zip(["bob", "carol", "dave", "erin"]) {
        server.register(name, seed).await;
    }
    let to = |name: &str| json!({ "destination": name, "envelopes": [{ "device_id": 1, "content": b64(b"g") }] });
    let many = |names: &[&str]| json!({ "sends": names.iter().map(|n| to(n)).collect::<Vec<_>>() });
    // Two recipients cost two of the burst's three tokens...
    let (status, body) = server
        .request(
            "PUT",
            "/v1/messages",
            Some(&alice.auth),
            Some(many(&["bob", "carol"])),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // ...so two more do not fit.
    let (status, body) = server
        .request(
            "PUT",
            "/v1/messages",
            Some(&alice.auth),
            Some(many(&["dave", "erin"])),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")),
        "{body}"
    );
}
both_databases!(
    a_multi_recipient_send_spends_a_token_per_recipient,
    per_recipient_tokens
);

/// The senders stored with bob's queued envelopes, oldest first.
async fn stored_senders(server: &TestServer) -> Vec<(Option<String>, Option<i64>)> {
    crate::common::rows(
        &server.db,
        "SELECT sender, sender_device FROM envelopes ORDER BY seq",
    )
    .await
}

async fn sealed_content_without_sender(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    server.register("bob", 2).await;
    let send = |content: Vec<u8>, sealed: bool| json!({ "envelopes": [{ "device_id": 1, "content": b64(&content) }], "sealed": sealed });
    // A sealed envelope (0x31, a bucket long) sent without the flag, a
    // multi-recipient one (0x32), and an ordinary unsealed send.
    for (content, flag) in [
        ([vec![0x31], vec![7; 1023]].concat(), false),
        ([vec![0x32], vec![7; 1087]].concat(), false),
        (b"\x0a\x03abc".to_vec(), false),
    ] {
        let (status, body) = server
            .request(
                "PUT",
                "/v1/messages/bob",
                Some(&alice.auth),
                Some(send(content, flag)),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(
        stored_senders(&server).await,
        vec![
            (None, None),
            (None, None),
            (Some("alice".to_owned()), Some(1)),
        ]
    );
}
both_databases!(
    sealed_content_has_no_sender_even_unflagged,
    sealed_content_without_sender
);

async fn mixed_request(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    server.register("bob", 1).await;
    server.register("carol", 1).await;
    let sealed = [vec![0x31], vec![7; 1023]].concat();
    let body = json!({ "sends": [
        { "destination": "bob", "envelopes": [{ "device_id": 1, "content": b64(&sealed) }] },
        { "destination": "carol", "envelopes": [{ "device_id": 1, "content": b64(b"\x0a\x03abc") }] },
    ], "sealed": false });
    let (status, body) = server
        .request("PUT", "/v1/messages", Some(&alice.auth), Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        stored_senders(&server).await,
        vec![(None, None), (None, None)],
        "a row beside a sealed one of the same request would name its sender"
    );
}
both_databases!(
    one_sealed_envelope_makes_the_whole_request_sender_free,
    mixed_request
);

async fn unpadded_sealed(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    server.register("bob", 2).await;
    for len in [1, 1023, 1025, 2000] {
        let content = [vec![0x31], vec![7; len - 1]].concat();
        let body =
            json!({ "envelopes": [{ "device_id": 1, "content": b64(&content) }], "sealed": true });
        let (status, body) = server
            .request("PUT", "/v1/messages/bob", Some(&alice.auth), Some(body))
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("unpadded_envelope")),
            "{len}: {body}"
        );
    }
    assert!(stored_senders(&server).await.is_empty());
}
both_databases!(unpadded_sealed_envelope_refused, unpadded_sealed);
