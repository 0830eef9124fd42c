//! Access keys over the API: stored as a hash, set once with `if_absent`,
//! and the stranger policy published with the device list.

use axum::http::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};
use starling_test_support::both_databases;

use crate::common::{DbKind, TestServer, b64};

async fn access_keys(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    let bob = server.register("bob", 2).await;
    let put = |key: &[u8], strangers: bool, if_absent: bool| json!({ "access_key": b64(key), "sealed_from_strangers": strangers, "if_absent": if_absent });
    let (status, body) = server
        .request(
            "PUT",
            "/v1/accounts/access",
            Some(&bob.auth),
            Some(put(&[7; 16], false, true)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A second device racing to set its own first key is told.
    let (status, body) = server
        .request(
            "PUT",
            "/v1/accounts/access",
            Some(&bob.auth),
            Some(put(&[8; 16], false, true)),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("access_key_set"))
    );
    // The device that set it, asking again after a lost answer, is told
    // yes (and a stranger policy in that retry changes nothing).
    let (status, body) = server
        .request(
            "PUT",
            "/v1/accounts/access",
            Some(&bob.auth),
            Some(put(&[7; 16], true, true)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Only the hash is stored, and the first key stays.
    let record = server.state.store.access("bob").await.unwrap().unwrap();
    assert_eq!(record.key_hash, Some(Sha256::digest([7u8; 16]).into()));
    assert!(!record.sealed_from_strangers);
    // Not 16 bytes, or no credential: refused.
    let (status, _) = server
        .request(
            "PUT",
            "/v1/accounts/access",
            Some(&bob.auth),
            Some(put(&[7; 15], true, false)),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = server
        .request(
            "PUT",
            "/v1/accounts/access",
            None,
            Some(put(&[7; 16], true, false)),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Opening to strangers shows in the account's own device list, and in
    // no one else's view of it.
    assert_eq!(
        devices(&server, &bob.auth).await["sealed_from_strangers"],
        json!(false)
    );
    let (status, _) = server
        .request(
            "PUT",
            "/v1/accounts/access",
            Some(&bob.auth),
            Some(put(&[9; 16], true, false)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        devices(&server, &bob.auth).await["sealed_from_strangers"],
        json!(true)
    );
    assert_eq!(
        devices(&server, &alice.auth).await["sealed_from_strangers"],
        json!(false)
    );
    let record = server.state.store.access("bob").await.unwrap().unwrap();
    assert_eq!(record.key_hash, Some(Sha256::digest([9u8; 16]).into()));
}
both_databases!(
    access_keys_are_hashed_set_once_and_published_as_policy,
    access_keys
);

/// Bob's device list as the holder of `auth` fetches it.
async fn devices(server: &TestServer, auth: &str) -> serde_json::Value {
    server
        .request("GET", "/v1/accounts/bob/devices", Some(auth), None)
        .await
        .1
}
