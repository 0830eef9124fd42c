//! `/metrics` answers only the scraper holding the configured token, and
//! not at all without one: the TLS port faces every member.

use axum::http::StatusCode;
use starling_test_support::both_databases;

use crate::common::{DbKind, TestServer, metrics_auth};

async fn metrics_need_the_token(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    let (status, _) = server.request("GET", "/metrics", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A member's own credential is no scraper's token.
    let (status, _) = server
        .request("GET", "/metrics", Some(&alice.auth), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = server
        .request("GET", "/metrics", Some("Bearer test-metrics-tokeN"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = server
        .request("GET", "/metrics", Some(&metrics_auth()), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.as_str()
            .unwrap()
            .contains("starling_registrations_total 1")
    );

    let closed = TestServer::start_with(kind, |c| c.metrics.token = None).await;
    let (status, _) = closed
        .request("GET", "/metrics", Some(&metrics_auth()), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
both_databases!(metrics_answer_only_the_token, metrics_need_the_token);
