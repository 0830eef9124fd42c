//! The HTTP API against SQLite and PostgreSQL: registration, auth, prekeys,
//! sends, and malformed input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::{Kind, TestServer, b64};
use serde_json::json;
use starling_crypto::PreKeyBundle;

async fn registration_rules(kind: Kind) {
    let server = TestServer::start(kind).await;
    let identity = |seed| {
        let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(seed);
        b64(&starling_crypto::IdentityKeyPair::generate(&mut rng)
            .public()
            .to_bytes())
    };
    let register = |username: &str, invite: Option<String>, key: String| {
        let mut body = json!({ "username": username, "identity_key": key });
        if let Some(invite) = invite {
            body["invite_code"] = json!(invite);
        }
        body
    };
    // No invite, wrong invite.
    let (status, body) = server
        .request(
            "POST",
            "/v1/accounts",
            None,
            Some(register("alice", None, identity(1))),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invite_required"))
    );
    let (status, _) = server
        .request(
            "POST",
            "/v1/accounts",
            None,
            Some(register("alice", Some("nope".into()), identity(1))),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A good invite works once.
    let invite = server.invite().await;
    let (status, body) = server
        .request(
            "POST",
            "/v1/accounts",
            None,
            Some(register("alice", Some(invite.clone()), identity(1))),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["device_id"], 1);
    let (status, _) = server
        .request(
            "POST",
            "/v1/accounts",
            None,
            Some(register("bob", Some(invite), identity(2))),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A taken username does not consume the invite.
    let invite = server.invite().await;
    let (status, body) = server
        .request(
            "POST",
            "/v1/accounts",
            None,
            Some(register("alice", Some(invite.clone()), identity(3))),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("username_taken"))
    );
    let (status, _) = server
        .request(
            "POST",
            "/v1/accounts",
            None,
            Some(register("carol", Some(invite), identity(3))),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Bad usernames and keys.
    for name in ["ab", "Alice", "al ice", "-alice", &"x".repeat(33)] {
        let (status, body) = server
            .request(
                "POST",
                "/v1/accounts",
                None,
                Some(register(name, Some(server.invite().await), identity(4))),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("bad_username")),
            "{name}"
        );
    }
    let (status, body) = server
        .request(
            "POST",
            "/v1/accounts",
            None,
            Some(register("dave", Some(server.invite().await), b64(&[1; 40]))),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_identity_key"))
    );
}
crate::both_databases!(registration, super::registration_rules);

async fn authentication(kind: Kind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    let (status, _) = server
        .request("GET", "/v1/keys/count", Some(&alice.auth), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    for bad in [
        None,
        Some("Bearer alice:1:wrong".to_string()),
        Some("Bearer alice:2:x".to_string()),
        Some("Bearer nobody:1:x".to_string()),
        Some("Basic abc".to_string()),
    ] {
        let (status, body) = server
            .request("GET", "/v1/keys/count", bad.as_deref(), None)
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthorized"))
        );
    }
    server
        .state
        .store
        .set_disabled("alice", true)
        .await
        .unwrap();
    let (status, _) = server
        .request("GET", "/v1/keys/count", Some(&alice.auth), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
crate::both_databases!(auth, super::authentication);

async fn prekey_bundles(kind: Kind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    let mut bob = server.register("bob", 2).await;
    let (status, counts) = server
        .request("GET", "/v1/keys/count", Some(&bob.auth), None)
        .await;
    assert_eq!(
        (status, counts),
        (StatusCode::OK, json!({ "one_time": 10, "kem": 10 }))
    );
    let mut one_time_ids = std::collections::HashSet::new();
    for _ in 0..12 {
        let (status, body) = server
            .request("GET", "/v1/keys/bob/*", Some(&alice.auth), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let bytes = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            body["devices"][0]["bundle"].as_str().unwrap(),
        )
        .unwrap();
        let bundle = PreKeyBundle::from_bytes(&bytes).unwrap();
        assert_eq!(bundle.identity(), bob.identity.public());
        assert!(
            bundle.is_post_quantum(),
            "last-resort key when one-time ones run out"
        );
        // A session can actually be started from it.
        let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(7);
        starling_crypto::ratchet::Session::initiate(&alice.identity, &bundle, &mut rng).unwrap();
        let encoded = bundle.to_bytes();
        one_time_ids.insert(encoded);
    }
    // Ten distinct bundles with one-time keys, then the same fallback
    // bundle (signed prekey + last-resort ML-KEM key) twice.
    assert_eq!(one_time_ids.len(), 11);
    let (_, counts) = server
        .request("GET", "/v1/keys/count", Some(&bob.auth), None)
        .await;
    assert_eq!(counts, json!({ "one_time": 0, "kem": 0 }));
    // A bad signature is refused on upload.
    let mut other_rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(99);
    let stranger = starling_crypto::IdentityKeyPair::generate(&mut other_rng);
    let mut foreign = starling_crypto::PreKeyStore::new();
    let signed = foreign.generate_signed_prekey(&stranger, 0, &mut other_rng);
    let (status, body) = server
        .request(
            "PUT",
            "/v1/keys",
            Some(&bob.auth),
            Some(json!({ "signed_prekey": b64(&signed.to_bytes()) })),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_prekey"))
    );
    let counts = bob.upload_prekeys(&server, 5).await;
    assert_eq!(counts, json!({ "one_time": 5, "kem": 5 }));
    let (status, _) = server
        .request("GET", "/v1/keys/nobody/*", Some(&alice.auth), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server
        .request("GET", "/v1/keys/bob/7", Some(&alice.auth), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
crate::both_databases!(bundles, super::prekey_bundles);

async fn concurrent_claims(kind: Kind) {
    let server = std::sync::Arc::new(TestServer::start(kind).await);
    let alice = server.register("alice", 1).await;
    let mut bob = server.register("bob", 2).await;
    for _ in 0..6 {
        bob.upload_prekeys(&server, 10).await; // 70 one-time keys in all
    }
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let server = server.clone();
        let auth = alice.auth.clone();
        tasks.push(tokio::spawn(async move {
            let (status, body) = server
                .request("GET", "/v1/keys/bob/1", Some(&auth), None)
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["devices"][0]["bundle"].as_str().unwrap().to_string()
        }));
    }
    let mut seen = std::collections::HashSet::new();
    for task in tasks {
        let bytes = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            task.await.unwrap(),
        )
        .unwrap();
        let bundle = PreKeyBundle::from_bytes(&bytes).unwrap();
        // Re-encode the one-time part: compare whole bundles, each must differ.
        assert!(
            seen.insert(bundle.to_bytes()),
            "a one-time prekey was handed out twice"
        );
    }
    let (_, counts) = server
        .request("GET", "/v1/keys/count", Some(&bob.auth), None)
        .await;
    assert_eq!(counts["one_time"], 20);
}
crate::both_databases!(prekey_claims_are_never_shared, super::concurrent_claims);

async fn stale_devices(kind: Kind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    let _bob = server.register("bob", 2).await;
    let send = |devices: Vec<u32>| json!({ "envelopes": devices.iter().map(|d| json!({"device_id": d, "content": b64(b"x")})).collect::<Vec<_>>() });
    let (status, body) = server
        .request(
            "PUT",
            "/v1/messages/bob",
            Some(&alice.auth),
            Some(send(vec![1, 2])),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "stale_devices");
    assert_eq!(body["extra_devices"], json!([2]));
    assert_eq!(body["missing_devices"], json!([]));
    let (status, body) = server
        .request(
            "PUT",
            "/v1/messages/bob",
            Some(&alice.auth),
            Some(send(vec![1])),
        )
        .await;
    assert_eq!((status, body["stored"].as_u64()), (StatusCode::OK, Some(1)));
    // Writing to one's own account excludes the sending device.
    let (status, body) = server
        .request(
            "PUT",
            "/v1/messages/alice",
            Some(&alice.auth),
            Some(send(vec![1])),
        )
        .await;
    assert_eq!(
        (status, &body["extra_devices"]),
        (StatusCode::CONFLICT, &json!([1]))
    );
    let (status, _) = server
        .request(
            "PUT",
            "/v1/messages/nobody",
            Some(&alice.auth),
            Some(send(vec![1])),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
crate::both_databases!(stale_device_lists_are_refused, super::stale_devices);

async fn malformed_input(kind: Kind) {
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
crate::both_databases!(malformed_input_gets_a_coded_4xx, super::malformed_input);

async fn audit_matches_inventory(kind: Kind) {
    let db = common::TestDb::new(kind).await;
    let store = db.store().await;
    let report = starling_server::audit::audit(&store).await.unwrap();
    assert!(
        report.undeclared.is_empty(),
        "undeclared: {:?}",
        report.undeclared
    );
    assert!(
        report.missing.is_empty(),
        "declared but absent: {:?}",
        report.missing
    );
    // The audit must be able to fail: an extra column is caught.
    let add = "ALTER TABLE accounts ADD COLUMN display_name TEXT";
    match kind {
        Kind::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            sqlx::query(add).execute(&pool).await.unwrap();
        }
        Kind::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::query(add).execute(&pool).await.unwrap();
        }
    }
    let report = starling_server::audit::audit(&store).await.unwrap();
    assert_eq!(
        report.undeclared,
        vec![("accounts".to_string(), "display_name".to_string())]
    );
    assert!(!report.passed());
}
crate::both_databases!(audit, super::audit_matches_inventory);

async fn directory_search(kind: Kind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    let csv = "username,display_name,title,department\n\
               mmueller,Maria Müller,Engineer,Platform\n\
               jsmith,John Smith,Director,Sales\n\
               kjones,Karen Jones,Analyst,Finance\n";
    let entries = starling_server::directory::parse_csv(csv.as_bytes()).unwrap();
    server.state.store.import_directory(&entries).await.unwrap();
    // Re-importing updates rather than duplicates.
    let updated = starling_server::directory::parse_csv(
        "username,display_name,title,department\njsmith,John Smith,VP,Sales\n".as_bytes(),
    )
    .unwrap();
    server.state.store.import_directory(&updated).await.unwrap();
    let (status, body) = server
        .request("GET", "/v1/directory?q=smi", Some(&alice.auth), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!([{ "username": "jsmith", "display_name": "John Smith", "title": "VP", "department": "Sales" }])
    );
    let (_, body) = server
        .request("GET", "/v1/directory?q=jnoes", Some(&alice.auth), None)
        .await;
    assert_eq!(body[0]["username"], "kjones");
    let (_, body) = server
        .request("GET", "/v1/directory?q=&limit=2", Some(&alice.auth), None)
        .await;
    assert_eq!(body.as_array().unwrap().len(), 2);
    let (status, _) = server
        .request("GET", "/v1/directory?q=smi", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = server
        .request("GET", "/v1/directory?limit=abc", Some(&alice.auth), None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_query"))
    );
}
crate::both_databases!(directory, super::directory_search);

async fn rate_limits(kind: Kind) {
    let server = TestServer::start_with(kind, |c| {
        c.messages.sends_per_second = 1;
        c.messages.send_burst = 3;
        c.messages.bundle_fetches_per_second = 1;
        c.messages.bundle_fetch_burst = 2;
    })
    .await;
    let alice = server.register("alice", 1).await;
    let carol = server.register("carol", 3).await;
    let _bob = server.register("bob", 2).await;
    let send = json!({ "envelopes": [{ "device_id": 1, "content": b64(b"x") }] });
    for _ in 0..3 {
        let (status, _) = server
            .request(
                "PUT",
                "/v1/messages/bob",
                Some(&alice.auth),
                Some(send.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, body) = server
        .request(
            "PUT",
            "/v1/messages/bob",
            Some(&alice.auth),
            Some(send.clone()),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );
    // Another device is not affected.
    let (status, _) = server
        .request("PUT", "/v1/messages/bob", Some(&carol.auth), Some(send))
        .await;
    assert_eq!(status, StatusCode::OK);
    for expected in [
        StatusCode::OK,
        StatusCode::OK,
        StatusCode::TOO_MANY_REQUESTS,
    ] {
        let (status, _) = server
            .request("GET", "/v1/keys/bob/*", Some(&alice.auth), None)
            .await;
        assert_eq!(status, expected);
    }
}
crate::both_databases!(rate_limited_devices_get_429, super::rate_limits);

async fn multi_recipient(kind: Kind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    let _bob = server.register("bob", 2).await;
    let _carol = server.register("carol", 3).await;
    let to = |name: &str, devices: &[u32]| json!({ "destination": name, "envelopes": devices.iter().map(|d| json!({"device_id": d, "content": b64(b"g")})).collect::<Vec<_>>() });
    // One stale destination refuses the whole send, naming every stale one.
    let (status, body) = server
        .request(
            "PUT",
            "/v1/messages",
            Some(&alice.auth),
            Some(json!({ "sends": [to("bob", &[1]), to("carol", &[1, 4])] })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body["accounts"],
        json!({ "carol": { "missing": [], "extra": [4] } })
    );
    assert_eq!(
        server.state.store.queue_stats().await.unwrap().count,
        0,
        "nothing stored"
    );
    let (status, body) = server
        .request(
            "PUT",
            "/v1/messages",
            Some(&alice.auth),
            Some(json!({ "sends": [to("bob", &[1]), to("carol", &[1])] })),
        )
        .await;
    assert_eq!((status, body["stored"].as_u64()), (StatusCode::OK, Some(2)));
    let (status, body) = server
        .request(
            "PUT",
            "/v1/messages",
            Some(&alice.auth),
            Some(json!({ "sends": [to("bob", &[1]), to("bob", &[1])] })),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("duplicate_destination"))
    );
    let (status, _) = server
        .request(
            "PUT",
            "/v1/messages",
            Some(&alice.auth),
            Some(json!({ "sends": [] })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
crate::both_databases!(multi_recipient_sends, super::multi_recipient);

async fn device_linking(kind: Kind) {
    let server = TestServer::start_with(kind, |c| c.messages.max_devices_per_account = 2).await;
    let alice = server.register("alice", 1).await;
    let bob = server.register("bob", 2).await;
    let new_identity = |seed| {
        let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(seed);
        b64(&starling_crypto::IdentityKeyPair::generate(&mut rng)
            .public()
            .to_bytes())
    };
    let (status, code) = server
        .request("POST", "/v1/devices/link-code", Some(&alice.auth), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let code = code["code"].as_str().unwrap().to_string();
    let link = json!({ "link_code": code, "identity_key": new_identity(10) });
    let (status, linked) = server
        .request("POST", "/v1/devices", None, Some(link.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{linked}");
    assert_eq!(
        (linked["username"].as_str(), linked["device_id"].as_u64()),
        (Some("alice"), Some(2))
    );
    // The code is single-use.
    let (status, _) = server
        .request("POST", "/v1/devices", None, Some(link))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The new device authenticates, and senders must now include it.
    let second = format!("Bearer alice:2:{}", linked["credential"].as_str().unwrap());
    let (status, devices) = server
        .request("GET", "/v1/accounts/alice/devices", Some(&second), None)
        .await;
    assert_eq!(
        (status, devices),
        (StatusCode::OK, json!({ "devices": [1, 2] }))
    );
    let one = json!({ "envelopes": [{ "device_id": 1, "content": b64(b"x") }] });
    let (status, body) = server
        .request("PUT", "/v1/messages/alice", Some(&bob.auth), Some(one))
        .await;
    assert_eq!(
        (status, &body["missing_devices"]),
        (StatusCode::CONFLICT, &json!([2]))
    );
    // The device limit holds.
    let (_, code) = server
        .request("POST", "/v1/devices/link-code", Some(&alice.auth), None)
        .await;
    let (status, body) = server
        .request(
            "POST",
            "/v1/devices",
            None,
            Some(json!({ "link_code": code["code"], "identity_key": new_identity(11) })),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("too_many_devices"))
    );
    let (status, _) = server
        .request(
            "POST",
            "/v1/devices",
            None,
            Some(json!({ "link_code": "nope", "identity_key": new_identity(12) })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = server
        .request("POST", "/v1/devices/link-code", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
crate::both_databases!(linking_a_device, super::device_linking);

async fn openapi_matches_the_router(kind: Kind) {
    let server = TestServer::start(kind).await;
    let (status, doc) = server.request("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 18);
    for (path, operations) in paths {
        let concrete = path
            .replace("{username}", "alice")
            .replace("{device_id}", "1")
            .replace("{device}", "1")
            .replace("{id}", &"00".repeat(16))
            .replace("{call_id}", "call-1");
        for method in operations.as_object().unwrap().keys() {
            let (status, body) = server
                .request_raw(&method.to_uppercase(), &concrete, None, None)
                .await;
            // A route the router lacks answers 404/405 with no JSON body.
            let unrouted = (status == StatusCode::NOT_FOUND
                || status == StatusCode::METHOD_NOT_ALLOWED)
                && !body["code"].is_string();
            assert!(
                !unrouted,
                "{method} {path} is documented but not routed ({status})"
            );
        }
    }
}
crate::both_databases!(openapi_document, super::openapi_matches_the_router);
