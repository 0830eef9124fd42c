//! The HTTP API in front of a running engine task: status codes, reasons,
//! headers, and metrics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use starling_call_token::TokenSigner;
use starling_media_relay::EngineConfig;
use starling_media_relay::net::{MetricsToken, Relay, RelayOptions};
use tower::ServiceExt;

const METRICS_TOKEN: &str = "relay-metrics-token";

/// `GET /metrics` with the scraper's token.
fn metrics_request() -> Request<Body> {
    Request::get("/metrics")
        .header("authorization", format!("Bearer {METRICS_TOKEN}"))
        .body(Body::empty())
        .unwrap()
}

async fn relay(signer: &TokenSigner) -> axum::Router {
    let options = RelayOptions {
        http_listen: Some("127.0.0.1:0".parse().unwrap()),
        udp_listen: "127.0.0.1:0".parse().unwrap(),
        tcp_listen: None,
        max_tcp_connections: 0,
        engine: EngineConfig::new("127.0.0.1:40000".parse().unwrap()),
        token_key: signer.public_key(),
        metrics_token: Some(MetricsToken(METRICS_TOKEN.into())),
    };
    Relay::bind(options).await.unwrap().router()
}

fn offer() -> String {
    let addr = "127.0.0.1:40001".parse().unwrap();
    common::Client::new(addr, common::Spec::av(1), Instant::now()).1
}

async fn call(
    app: &axum::Router,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

fn join(call_id: &str, token: Option<&str>, offer: &str) -> Request<Body> {
    let mut builder = Request::post(format!("/v1/calls/{call_id}/join"))
        .header("content-type", "application/sdp");
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder.body(Body::from(offer.to_owned())).unwrap()
}

#[tokio::test]
async fn join_and_leave_over_http() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let signer = TokenSigner::generate(&mut rng);
    let app = relay(&signer).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = signer.issue(now, 60, &mut rng).unwrap();

    let (status, _, body) = call(&app, join("call-1", None, &offer())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("\"missing_token\""), "{body}");

    let (status, headers, answer) = call(&app, join("call-1", Some(&token), &offer())).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(headers["content-type"], "application/sdp");
    assert!(answer.starts_with("v=0"));
    assert!(answer.contains("a=ice-lite"));
    assert!(answer.contains("127.0.0.1 40000 typ host"));
    let location = headers["location"].to_str().unwrap().to_owned();
    let key = headers["starling-participant"].to_str().unwrap();
    assert!(location.ends_with(key));

    let (status, _, body) = call(&app, join("call-1", Some(&token), &offer())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("already used"), "{body}");

    let refused = call(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(refused.0, StatusCode::UNAUTHORIZED);
    let metrics = call(&app, metrics_request()).await.2;
    assert!(
        metrics.contains("starling_relay_participants 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("starling_relay_join_refusals_total{code=\"replayed_token\"} 1"),
        "{metrics}"
    );

    let delete = || {
        Request::delete(location.as_str())
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(call(&app, delete()).await.0, StatusCode::NO_CONTENT);
    assert_eq!(call(&app, delete()).await.0, StatusCode::NOT_FOUND);
    let metrics = call(&app, metrics_request()).await.2;
    assert!(
        metrics.contains("starling_relay_participants 0"),
        "{metrics}"
    );
}
