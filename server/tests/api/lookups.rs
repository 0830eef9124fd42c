//! Lookups (device lists, key histories, directory searches) and
//! whole-directory copies are rate-limited per device, so that one
//! account cannot keep the server computing proofs and copies for it.

use axum::http::StatusCode;
use starling_server::limits::DIRECTORY_COPIES_PER_HOUR;
use starling_test_support::both_databases;

use crate::common::{DbKind, TestServer};

async fn lookups_are_limited(kind: DbKind) {
    // A small burst and a slow refill, so that the test is not a race.
    let server = TestServer::start_with(kind, |config| {
        config.messages.lookups_per_second = 1;
        config.messages.lookup_burst = 20;
    })
    .await;
    let alice = server.register("alice", 1).await;
    let bob = server.register("bob", 2).await;

    // The whole directory: a few copies an hour.
    for _ in 0..DIRECTORY_COPIES_PER_HOUR.1 {
        let (status, body) = server
            .request("GET", "/v1/directory/all", Some(&alice.auth), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = server
        .request("GET", "/v1/directory/all", Some(&alice.auth), None)
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["code"], "rate_limited");

    // Lookups share one bucket: searches use it up for device lists too.
    let mut answered = 0;
    loop {
        let (status, body) = server
            .request("GET", "/v1/directory?q=bob", Some(&alice.auth), None)
            .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(body["code"], "rate_limited");
            break;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        answered += 1;
        assert!(answered < 1000, "never limited");
    }
    assert!(answered >= 20, "limited after {answered}");
    let (status, body) = server
        .request("GET", "/v1/accounts/bob/devices", Some(&alice.auth), None)
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");

    // Another device has buckets of its own.
    let (status, body) = server
        .request("GET", "/v1/accounts/alice/devices", Some(&bob.auth), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server
        .request("GET", "/v1/directory/all", Some(&bob.auth), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

both_databases!(lookups_are_rate_limited_per_device, lookups_are_limited);
