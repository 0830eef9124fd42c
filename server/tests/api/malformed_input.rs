//! Malformed input over the HTTP API: bad JSON, bad fields, bad path
//! parameters and oversize bodies get a 4xx with a coded JSON error.

use axum::http::StatusCode;
use serde_json::json;
use starling_test_support::both_databases;

use crate::common::{DbKind, TestServer, b64};

async fn malformed_input(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    let cases: Vec<(&str, &str, Option<Vec<u8>>)> = vec![
        ("POST", "/v1/accounts", Some(b"{not json".to_vec())),
        ("POST", "/v1/accounts", Some(b"{\"username\": 5}".to_vec())),
        ("POST", "/v1/accounts", Some(b"[]".to_vec())),
        (
            "PUT",
            "/v1/keys",
            Some(b"{\"signed_prekey\": \"!!!\"}".to_vec()),
        ),
        (
            "PUT",
            "/v1/keys",
            Some(b"{\"one_time_prekeys\": [\"AAAA\"]}".to_vec()),
        ),
        ("PUT", "/v1/keys", Some(b"{\"unknown\": 1}".to_vec())),
        (
            "PUT",
            "/v1/messages/alice",
            Some(b"{\"envelopes\": []}".to_vec()),
        ),
        (
            "PUT",
            "/v1/messages/alice",
            Some(b"{\"envelopes\": [{\"device_id\": -1, \"content\": \"\"}]}".to_vec()),
        ),
        ("GET", "/v1/keys/alice/notanumber", None),
        ("DELETE", "/v1/devices/abc", None),
    ];
    for (method, path, body) in cases {
        let (status, json) = server
            .request_raw(method, path, Some(&alice.auth), body.clone())
            .await;
        assert!(
            status.is_client_error(),
            "{method} {path} {body:?} gave {status}"
        );
        assert!(
            json["code"].is_string() && json["reason"].is_string(),
            "{method} {path}: {json}"
        );
    }
    // Oversize envelope.
    let big = b64(&vec![0u8; 300 * 1024]);
    let _bob = server.register("bob", 2).await;
    let (status, json) = server
        .request(
            "PUT",
            "/v1/messages/bob",
            Some(&alice.auth),
            Some(json!({"envelopes": [{"device_id": 1, "content": big}]})),
        )
        .await;
    assert_eq!(
        (status, json["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("too_large"))
    );
    // Oversize body.
    let (status, _) = server
        .request_raw(
            "PUT",
            "/v1/messages/bob",
            Some(&alice.auth),
            Some(vec![b' '; 5 * 1024 * 1024]),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}
both_databases!(malformed_input_gets_a_coded_4xx, malformed_input);
