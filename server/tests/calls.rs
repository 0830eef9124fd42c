//! Media relay join tokens and TURN credentials: issued to authenticated
//! devices only, verifiable offline with the published key, refused when
//! forged, replayed or for a malformed call id.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::{DbKind, TestServer};
use hmac::Mac;
use starling_call_token::{TokenError, TokenVerifier};
use starling_test_support::both_databases;

/// Seconds since the Unix epoch.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn join_tokens_verify_offline_once(kind: DbKind) {
    let server = TestServer::start_with(kind, |c| {
        c.calls.relay_url = Some("udp://relay.example:3478".into());
    })
    .await;
    let alice = server.register("alice", 1).await;
    let (status, key) = server
        .request("GET", "/v1/calls/token-key", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let key: [u8; 32] = URL_SAFE_NO_PAD
        .decode(key["public_key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let mut relay = TokenVerifier::new(&key).unwrap();

    let (status, issued) = server
        .request(
            "POST",
            "/v1/calls/standup-42/token",
            Some(&alice.auth),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{issued}");
    assert_eq!(issued["relay_url"], "udp://relay.example:3478");
    let token = issued["token"].as_str().unwrap();
    let claims = relay.verify(token, now()).unwrap();
    assert_eq!(claims.call_id, "standup-42");
    assert_eq!(claims.username, "alice");
    assert_eq!(claims.device_id, 1);
    assert!(claims.expires_at <= now() + 61);
    assert_eq!(relay.verify(token, now()), Err(TokenError::Replayed));
    assert_eq!(relay.verify(token, now() + 3600), Err(TokenError::Expired));

    // Only authenticated devices, only well-formed call ids.
    let (status, _) = server
        .request("POST", "/v1/calls/standup-42/token", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = server
        .request("POST", "/v1/calls/bad%20id/token", Some(&alice.auth), None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_call_id"))
    );
    let long = "x".repeat(65);
    let (status, _) = server
        .request(
            "POST",
            &format!("/v1/calls/{long}/token"),
            Some(&alice.auth),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
both_databases!(join_tokens, join_tokens_verify_offline_once);

async fn turn_credentials_follow_coturns_rest_scheme(kind: DbKind) {
    let plain = TestServer::start(kind).await;
    let alice = plain.register("alice", 1).await;
    let (status, _) = plain
        .request("GET", "/v1/calls/turn", Some(&alice.auth), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    drop(plain);

    let server = TestServer::start_with(kind, |c| {
        c.calls.turn_secret = Some(starling_server::config::Secret("s3cret".into()));
        c.calls.turn_urls = vec!["turn:turn.example:3478?transport=udp".into()];
        c.calls.turn_ttl_seconds = 600;
    })
    .await;
    let alice = server.register("alice", 1).await;
    let (status, _) = server.request("GET", "/v1/calls/turn", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, creds) = server
        .request("GET", "/v1/calls/turn", Some(&alice.auth), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let username = creds["username"].as_str().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, "alice");
    let expiry: u64 = expiry.parse().unwrap();
    assert!(expiry > now() + 500 && expiry <= now() + 601);
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(b"s3cret").unwrap();
    mac.update(username.as_bytes());
    assert_eq!(
        creds["password"],
        STANDARD.encode(mac.finalize().into_bytes())
    );
    assert_eq!(creds["urls"][0], "turn:turn.example:3478?transport=udp");
    // The secret never appears in the configuration's debug output.
    assert!(!format!("{:?}", server.state.config).contains("s3cret"));
}
both_databases!(turn, turn_credentials_follow_coturns_rest_scheme);
