//! The key transparency routes: registration answers only once the new
//! account is in a signed epoch, with the log's pins; the roots, the
//! audit steps, the proof beside every key and device-list fetch and an
//! account's newest version all verify under those pins with the
//! client's checks; and an operator's
//! edit of a device's key in the database does not change what the log
//! proves (so a client comparing the two catches it).

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use protobuf::Message as _;
use serde_json::Value;
use starling_protocol::Username;
use starling_test_support::both_databases;
use starling_transparency::history::verify_latest;
use starling_transparency::verify::{LogPins, verify_lookup};
use starling_transparency::{DeviceList, LogConfig, LogPublicKey, LogView, SignedRoot};

use crate::common::{self, DbKind, TestServer};

fn b64(value: &Value) -> Vec<u8> {
    STANDARD.decode(value.as_str().expect("a string")).unwrap()
}

fn pins(log: &Value) -> LogPins {
    LogPins {
        log_key: LogPublicKey::from_bytes(&b64(&log["log_key"])).unwrap(),
        vrf_public_key: b64(&log["vrf_public_key"]).try_into().unwrap(),
    }
}

/// Checks `proof` (a `transparency` block) for `username` under `pins`;
/// returns the device list it proves.
fn check(pins: &LogPins, username: &str, proof: &Value) -> DeviceList {
    let signed = SignedRoot::from_bytes(&b64(&proof["signed_root"])).unwrap();
    let root = LogView::new(*pins).accept_root(&signed).unwrap();
    let devices = DeviceList::from_bytes(&b64(&proof["devices"])).unwrap();
    let username = Username::parse(username).unwrap();
    verify_lookup(
        pins,
        &root,
        &username,
        &b64(&proof["lookup_proof"]),
        &devices,
    )
    .unwrap();
    devices
}

async fn fetches_are_proved(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let (alice, registered) = server.register_answered("alice", 1).await;
    let bob = server.register("bob", 2).await;
    let pins = pins(&registered["log"]);

    // The newest root verifies; so does the first, and every step between.
    let (_, latest) = server
        .request("GET", "/v1/transparency/root", None, None)
        .await;
    let signed = SignedRoot::from_bytes(&b64(&latest["signed_root"])).unwrap();
    LogView::new(pins).accept_root(&signed).unwrap();
    let (status, audit) = server
        .request("GET", "/v1/transparency/audit?from=0", None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let (_, genesis) = server
        .request("GET", "/v1/transparency/roots/0", None, None)
        .await;
    let mut previous = SignedRoot::from_bytes(&b64(&genesis["signed_root"])).unwrap();
    previous.verify(&pins.log_key).unwrap();
    let steps = audit["steps"].as_array().unwrap();
    assert!(!steps.is_empty(), "{audit} {genesis}");
    for step in steps {
        let current = SignedRoot::from_bytes(&b64(&step["signed_root"])).unwrap();
        current.verify(&pins.log_key).unwrap();
        let proto =
            akd::proto::specs::types::SingleAppendOnlyProof::parse_from_bytes(&b64(&step["proof"]))
                .unwrap();
        akd::auditor::audit_verify::<LogConfig>(
            vec![previous.statement.root, current.statement.root],
            akd::AppendOnlyProof {
                proofs: vec![akd::SingleAppendOnlyProof::try_from(&proto).unwrap()],
                epochs: vec![previous.statement.epoch],
            },
        )
        .await
        .unwrap();
        previous = current;
    }
    assert_eq!(Some(previous.statement.epoch), audit["latest"].as_u64());

    // Bob's fetch of alice's keys and devices carries a proof of her list,
    // which holds the identity her bundle is signed by.
    let (status, list) = server
        .request("GET", "/v1/accounts/alice/devices", Some(&bob.auth), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let devices = check(&pins, "alice", &list["transparency"]);
    assert_eq!(
        devices.identity(1).unwrap().as_slice(),
        alice.identity.public().public_bytes().as_slice()
    );
    let (status, list) = server
        .request("GET", "/v1/accounts/alice/devices", Some(&bob.auth), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(check(&pins, "alice", &list["transparency"]), devices);

    // Her newest version, with the proof of the most recent version,
    // which a contact checks once per version.
    let (status, latest) = server
        .request(
            "GET",
            "/v1/transparency/latest/alice",
            Some(&bob.auth),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{latest}");
    let signed = SignedRoot::from_bytes(&b64(&latest["signed_root"])).unwrap();
    let root = LogView::new(pins).accept_root(&signed).unwrap();
    let lists = latest["devices"].as_array().unwrap();
    assert_eq!(lists.len(), 1, "{latest}");
    let newest = verify_latest(
        &pins,
        &root,
        &Username::parse("alice").unwrap(),
        &b64(&latest["history_proof"]),
        &b64(&lists[0]),
    )
    .unwrap();
    assert_eq!(newest.version, 1);
    assert_eq!(newest.devices.as_ref(), Some(&devices));
    for (path, auth, status) in [
        (
            "/v1/transparency/latest/alice",
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/v1/transparency/latest/nobody",
            Some(bob.auth.as_str()),
            StatusCode::NOT_FOUND,
        ),
        (
            "/v1/transparency/latest/no%20one",
            Some(bob.auth.as_str()),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (got, body) = server.request("GET", path, auth, None).await;
        assert_eq!(got, status, "{path}: {body}");
    }

    // An operator swaps alice's key in the database: the log still proves
    // the key alice published (the keys themselves are the client's to
    // compare).
    let mallory = starling_crypto::IdentityKeyPair::generate(&mut rand::rngs::OsRng);
    let swapped = hex::encode(mallory.public().to_bytes());
    let sql = match kind {
        DbKind::Sqlite => format!("UPDATE devices SET identity_key = X'{swapped}'"),
        DbKind::Postgres => format!("UPDATE devices SET identity_key = '\\x{swapped}'"),
    };
    common::execute(&server.db, &sql).await;
    let (status, list) = server
        .request("GET", "/v1/accounts/alice/devices", Some(&bob.auth), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let devices = check(&pins, "alice", &list["transparency"]);
    assert_eq!(
        devices.identity(1).unwrap().as_slice(),
        alice.identity.public().public_bytes().as_slice()
    );
}
both_databases!(every_fetch_carries_a_proof, fetches_are_proved);

async fn malformed_requests(kind: DbKind) {
    let server = TestServer::start(kind).await;
    server.register("alice", 1).await;
    for (path, status) in [
        ("/v1/transparency/roots/999999", StatusCode::NOT_FOUND),
        ("/v1/transparency/roots/x", StatusCode::BAD_REQUEST),
        ("/v1/transparency/audit", StatusCode::BAD_REQUEST),
        ("/v1/transparency/audit?from=-1", StatusCode::BAD_REQUEST),
        ("/v1/transparency/audit?from=0&limit=0", StatusCode::OK),
        ("/v1/transparency/audit?from=999999", StatusCode::OK),
    ] {
        let (got, body) = server.request("GET", path, None, None).await;
        assert_eq!(got, status, "{path}: {body}");
        if got != StatusCode::OK {
            assert!(body["code"].is_string(), "{path}: {body}");
        }
    }
    let (_, past_the_end) = server
        .request("GET", "/v1/transparency/audit?from=999999", None, None)
        .await;
    assert!(past_the_end["steps"].as_array().unwrap().is_empty());
}
both_databases!(malformed_transparency_requests, malformed_requests);
