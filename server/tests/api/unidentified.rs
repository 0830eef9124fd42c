//! Unidentified sends: sealed envelopes with no credential, authorised by
//! the destination's access key (or its choice to take sealed envelopes
//! from strangers), stored with no sender. A wrong key, no key and an
//! account that does not exist are answered alike.

use axum::http::StatusCode;
use serde_json::{Value, json};
use starling_test_support::both_databases;
use starling_test_support::http::JsonRequest;

use crate::common::{DbKind, TestServer, b64};

/// A sealed envelope (0x31, a bucket long) for device 1.
fn sealed_body() -> Value {
    let content = [vec![0x31], vec![7; 1023]].concat();
    json!({ "envelopes": [{ "device_id": 1, "content": b64(&content) }] })
}

/// `PUT /v1/messages/{to}` with no credential, and the access key header
/// when given.
async fn unidentified(
    server: &TestServer,
    to: &str,
    key: Option<&[u8]>,
    body: Value,
) -> (StatusCode, Value) {
    let mut request = JsonRequest::put(format!("/v1/messages/{to}")).json(&body);
    if let Some(key) = key {
        request = request.header("Unidentified-Access-Key", &b64(key));
    }
    server.send(request).await.into_pair()
}

async fn set_access(server: &TestServer, auth: &str, key: &[u8], strangers: bool) {
    let body =
        json!({ "access_key": b64(key), "sealed_from_strangers": strangers, "if_absent": false });
    let (status, body) = server
        .request("PUT", "/v1/accounts/access", Some(auth), Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn senders(server: &TestServer) -> Vec<(Option<String>, Option<i64>)> {
    crate::common::rows(
        &server.db,
        "SELECT sender, sender_device FROM envelopes ORDER BY seq",
    )
    .await
}

async fn access_keys_authorise(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let bob = server.register("bob", 2).await;
    server.register("carol", 3).await;
    set_access(&server, &bob.auth, &[7; 16], false).await;

    // The right key: stored, with no sender.
    let (status, body) = unidentified(&server, "bob", Some(&[7; 16]), sealed_body()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["stored"], 1);
    assert_eq!(senders(&server).await, vec![(None, None)]);

    // A wrong key, none, and an account that does not exist: one answer.
    for (to, key) in [
        ("bob", Some(&[8u8; 16][..])),
        ("bob", None),
        ("carol", None),
        ("nobody", Some(&[7u8; 16][..])),
    ] {
        let (status, body) = unidentified(&server, to, key, sealed_body()).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("bad_access_key")),
            "{to}: {body}"
        );
    }
    assert_eq!(senders(&server).await.len(), 1);

    // An account open to strangers takes sealed envelopes without a key.
    let carol = server.register("dave", 4).await;
    set_access(&server, &carol.auth, &[9; 16], true).await;
    let (status, body) = unidentified(&server, "dave", None, sealed_body()).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let metrics = server.state.metrics.render().unwrap();
    assert!(
        metrics.contains("starling_sends_unidentified_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("starling_sends_refused_access_total 4"),
        "{metrics}"
    );
}
both_databases!(
    an_access_key_authorises_a_send_without_a_credential,
    access_keys_authorise
);

async fn unsealed_refused(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let bob = server.register("bob", 2).await;
    set_access(&server, &bob.auth, &[7; 16], true).await;
    let body = json!({ "envelopes": [{ "device_id": 1, "content": b64(b"\x0a\x03abc") }] });
    let (status, body) = unidentified(&server, "bob", Some(&[7; 16]), body).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsealed_unidentified")),
        "{body}"
    );
    assert!(senders(&server).await.is_empty());
}
both_databases!(a_send_without_a_credential_must_be_sealed, unsealed_refused);

async fn many_destinations(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let bob = server.register("bob", 2).await;
    let carol = server.register("carol", 3).await;
    set_access(&server, &bob.auth, &[7; 16], false).await;
    set_access(&server, &carol.auth, &[8; 16], false).await;
    let content = b64(&[vec![0x32], vec![7; 1023]].concat());
    let send = |bob_key: &[u8]| {
        json!({ "sends": [
            { "destination": "bob", "access_key": b64(bob_key), "envelopes": [{ "device_id": 1, "content": content }] },
            { "destination": "carol", "access_key": b64(&[8; 16]), "envelopes": [{ "device_id": 1, "content": content }] },
        ] })
    };
    let (status, body) = server
        .send(JsonRequest::put("/v1/messages").json(&send(&[9; 16])))
        .await
        .into_pair();
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("bad_access_key")),
        "{body}"
    );
    assert!(body["reason"].as_str().unwrap().contains("bob"), "{body}");
    assert!(
        senders(&server).await.is_empty(),
        "nothing of a refused send is stored"
    );
    let (status, body) = server
        .send(JsonRequest::put("/v1/messages").json(&send(&[7; 16])))
        .await
        .into_pair();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(senders(&server).await, vec![(None, None), (None, None)]);
}
both_databases!(
    each_destination_of_an_unidentified_send_has_its_own_key,
    many_destinations
);

async fn stale_lists(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let bob = server.register("bob", 2).await;
    set_access(&server, &bob.auth, &[7; 16], false).await;
    // Bob has one device; naming two is stale, as for anyone.
    let content = b64(&[vec![0x31], vec![7; 1023]].concat());
    let body = json!({ "envelopes": [
        { "device_id": 1, "content": content },
        { "device_id": 2, "content": content },
    ] });
    let (status, body) = unidentified(&server, "bob", Some(&[7; 16]), body).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("stale_devices")),
        "{body}"
    );
    assert_eq!(body["extra_devices"], json!([2]));
}
both_databases!(
    an_unidentified_sender_is_told_of_stale_device_lists,
    stale_lists
);

async fn guessing_is_limited(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let bob = server.register("bob", 2).await;
    set_access(&server, &bob.auth, &[7; 16], false).await;
    let (_, burst) = starling_server::limits::ACCESS_REFUSAL_RATE;
    // Refusals for bob run dry, whatever keys are tried (the bucket
    // refills meanwhile, so a few more than its size).
    let mut refused = None;
    for attempt in 0..burst * 3 {
        let mut guess = [0u8; 16];
        guess[..4].copy_from_slice(&attempt.to_be_bytes());
        let (status, body) = unidentified(&server, "bob", Some(&guess), sealed_body()).await;
        match status {
            StatusCode::UNAUTHORIZED => continue,
            _ => {
                refused = Some((attempt, status, body["code"].clone()));
                break;
            }
        }
    }
    let (attempt, status, code) = refused.expect("guessing was never limited");
    assert!(attempt >= burst, "limited after {attempt}");
    assert_eq!(
        (status, code),
        (StatusCode::TOO_MANY_REQUESTS, json!("rate_limited"))
    );
    // Wrong keys used up nothing of bob's: the right key still goes in.
    let (status, body) = unidentified(&server, "bob", Some(&[7; 16]), sealed_body()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
both_databases!(
    guessing_access_keys_is_limited_and_drains_nothing_of_the_destination,
    guessing_is_limited
);

async fn key_change_at_once(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let bob = server.register("bob", 2).await;
    set_access(&server, &bob.auth, &[7; 16], false).await;
    let (status, _) = unidentified(&server, "bob", Some(&[7; 16]), sealed_body()).await;
    assert_eq!(status, StatusCode::OK);
    // Bob's record is now cached; a new key replaces it at once.
    set_access(&server, &bob.auth, &[9; 16], false).await;
    let (status, body) = unidentified(&server, "bob", Some(&[7; 16]), sealed_body()).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the old key still went in: {body}"
    );
    let (status, body) = unidentified(&server, "bob", Some(&[9; 16]), sealed_body()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
both_databases!(
    a_new_access_key_replaces_the_old_at_once,
    key_change_at_once
);
