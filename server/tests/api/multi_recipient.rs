//! Multi-recipient uploads (`PUT /v1/multi-recipient`): one sealed
//! envelope for many devices, uploaded once. Each device's row is the
//! assembled `0x32 ‖ C ‖ AT ‖ E ‖ ct`, stored with no sender, with or
//! without a credential; every check of a per-device send still applies.

use axum::http::StatusCode;
use serde_json::{Value, json};
use starling_test_support::both_databases;
use starling_test_support::http::JsonRequest;

use crate::common::{DbKind, TestServer, b64};

/// `E` and `ct` of a 1024-byte (bucket) multi-recipient envelope.
const E: [u8; 32] = [5; 32];
const CT_LEN: usize = 1024 - 81;

/// An upload of one shared ciphertext to device 1 of each destination,
/// each device with its own `C` (and the destination's access key when
/// given).
fn upload(destinations: &[(&str, Option<[u8; 16]>)], ct_len: usize) -> Value {
    let recipients: Vec<Value> = destinations
        .iter()
        .enumerate()
        .map(|(i, (to, key))| {
            let c = [u8::try_from(i + 1).unwrap(); 32];
            let mut recipient = json!({
                "destination": to,
                "devices": [{ "device_id": 1, "c": b64(&c), "at": b64(&[9; 16]) }],
            });
            if let Some(key) = key {
                recipient["access_key"] = json!(b64(key));
            }
            recipient
        })
        .collect();
    json!({
        "ephemeral_public": b64(&E),
        "ciphertext": b64(&vec![7; ct_len]),
        "recipients": recipients,
    })
}

async fn put(server: &TestServer, auth: Option<&str>, body: &Value) -> (StatusCode, Value) {
    let mut request = JsonRequest::put("/v1/multi-recipient").json(body);
    if let Some(auth) = auth {
        request = request.header("Authorization", auth);
    }
    server.send(request).await.into_pair()
}

async fn stored(server: &TestServer) -> Vec<(Vec<u8>, Option<String>)> {
    crate::common::rows(
        &server.db,
        "SELECT content, sender FROM envelopes ORDER BY seq",
    )
    .await
}

async fn one_upload_yields_a_row_per_device(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    let bob = server.register("bob", 2).await;
    server.register("carol", 3).await;

    // With a credential: one row per device, each its own C, no sender.
    let body = upload(&[("bob", None), ("carol", None)], CT_LEN);
    let (status, answer) = put(&server, Some(&alice.auth), &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["stored"], 2);
    let rows = stored(&server).await;
    assert_eq!(rows.len(), 2);
    for (i, (content, sender)) in rows.iter().enumerate() {
        let c = [u8::try_from(i + 1).unwrap(); 32];
        let expected = [&[0x32][..], &c, &[9; 16], &E, &vec![7; CT_LEN]].concat();
        assert_eq!(content, &expected);
        assert_eq!(content.len(), 1024);
        assert_eq!(sender, &None);
    }

    // Without one: each destination's access key decides.
    let body = json!({ "access_key": b64(&[4; 16]), "sealed_from_strangers": false });
    let (status, _) = server
        .request("PUT", "/v1/accounts/access", Some(&bob.auth), Some(body))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = put(&server, None, &upload(&[("bob", Some([4; 16]))], CT_LEN)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = put(&server, None, &upload(&[("bob", Some([3; 16]))], CT_LEN)).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("bad_access_key"))
    );
    assert_eq!(stored(&server).await.len(), 3);
    assert!(stored(&server).await.iter().all(|(_, s)| s.is_none()));

    // A key with a credential is a mistake, not a way to name oneself.
    let body = upload(&[("bob", Some([4; 16]))], CT_LEN);
    let (status, _) = put(&server, Some(&alice.auth), &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
both_databases!(multi_recipient_rows, one_upload_yields_a_row_per_device);

async fn malformed_stale_and_oversized_uploads_are_refused(kind: DbKind) {
    let server = TestServer::start_with(kind, |c| c.max_request_bytes = 32 * 1024).await;
    let alice = server.register("alice", 1).await;
    server.register("bob", 2).await;

    // A copy that is not a padding bucket.
    let body = upload(&[("bob", None)], CT_LEN - 1);
    let (status, answer) = put(&server, Some(&alice.auth), &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    // C of the wrong length.
    let mut body = upload(&[("bob", None)], CT_LEN);
    body["recipients"][0]["devices"][0]["c"] = json!(b64(&[1; 31]));
    let (status, answer) = put(&server, Some(&alice.auth), &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    // A device list the account does not have.
    let mut body = upload(&[("bob", None)], CT_LEN);
    body["recipients"][0]["devices"][0]["device_id"] = json!(2);
    let (status, answer) = put(&server, Some(&alice.auth), &body).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::CONFLICT, Some("stale_devices")),
        "{answer}"
    );
    // A small upload that would make the server build too much: 200
    // copies of 1024 bytes against 4 × 32 KiB.
    let names: Vec<String> = (0..200).map(|i| format!("user{i}")).collect();
    let many: Vec<(&str, Option<[u8; 16]>)> = names.iter().map(|n| (n.as_str(), None)).collect();
    let (status, answer) = put(&server, Some(&alice.auth), &upload(&many, CT_LEN)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert!(stored(&server).await.is_empty());
}
both_databases!(
    multi_recipient_refusals,
    malformed_stale_and_oversized_uploads_are_refused
);
