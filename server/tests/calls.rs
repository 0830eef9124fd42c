//! Media relay join tokens and TURN credentials: issued to authenticated
//! devices only, verifiable offline with the published key, refused when
//! replayed, and naming neither the call nor the account.

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
        .request("POST", "/v1/calls/tokens", Some(&alice.auth), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{issued}");
    assert_eq!(issued["relay_url"], "udp://relay.example:3478");
    let token = issued["token"].as_str().unwrap();
    // The token names no one: neither the account nor the device is in it.
    let bytes = URL_SAFE_NO_PAD.decode(token).unwrap();
    assert_eq!(bytes.len(), 1 + 8 + 8 + 16 + 64);
    assert!(!bytes.windows(5).any(|w| w == b"alice"));
    let claims = relay.verify(token, now()).unwrap();
    assert!(claims.expires_at <= now() + 61);
    assert_eq!(relay.verify(token, now()), Err(TokenError::Replayed));
    assert_eq!(relay.verify(token, now() + 3600), Err(TokenError::Expired));

    // Only authenticated devices; the route naming a call is gone.
    let (status, _) = server.request("POST", "/v1/calls/tokens", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = server
        .request(
            "POST",
            "/v1/calls/standup-42/token",
            Some(&alice.auth),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A device fetches a bounded number of tokens.
    let mut limited = false;
    for _ in 0..30 {
        let (status, _) = server
            .request("POST", "/v1/calls/tokens", Some(&alice.auth), None)
            .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited = true;
            break;
        }
        assert_eq!(status, StatusCode::OK);
    }
    assert!(limited, "token fetches are limited per device");
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
    let (expiry, pseudonym) = username.split_once(':').unwrap();
    // 16 random bytes, not the account: TURN learns no one.
    assert_eq!(URL_SAFE_NO_PAD.decode(pseudonym).unwrap().len(), 16);
    assert!(!username.contains("alice"));
    let (_, again) = server
        .request("GET", "/v1/calls/turn", Some(&alice.auth), None)
        .await;
    assert_ne!(
        again["username"]
            .as_str()
            .unwrap()
            .split_once(':')
            .unwrap()
            .1,
        pseudonym
    );
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
