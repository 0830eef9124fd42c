//! Accounts over the HTTP API: registration with invite codes and the
//! username and key rules, bearer authentication and disabled accounts,
//! linking a second device, and the staff directory search.

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use starling_test_support::both_databases;

use crate::common::{DbKind, TestServer, b64};

async fn registration_rules(kind: DbKind) {
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
both_databases!(registration, registration_rules);

async fn authentication(kind: DbKind) {
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
        .set_disabled("alice", true, 0)
        .await
        .unwrap();
    let (status, _) = server
        .request("GET", "/v1/keys/count", Some(&alice.auth), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
both_databases!(auth, authentication);

async fn device_linking(kind: DbKind) {
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
    assert_eq!(status, StatusCode::OK, "{devices}");
    assert_eq!(devices["devices"], json!([1, 2]));
    assert_eq!(devices["sealed_from_strangers"], json!(false));
    // The link answered once the log held the new device.
    let proved = starling_transparency::DeviceList::from_bytes(
        &STANDARD
            .decode(devices["transparency"]["devices"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let ids: Vec<u32> = proved.entries().iter().map(|e| e.device_id).collect();
    assert_eq!(ids, [1, 2]);
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
both_databases!(linking_a_device, device_linking);

async fn directory_search(kind: DbKind) {
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
both_databases!(directory, directory_search);

async fn directory_names_need_their_invite(kind: DbKind) {
    let server = TestServer::start_with(kind, |c| c.registration.open = true).await;
    let csv = "username,display_name,title,department\nmmueller,Maria Müller,Engineer,Platform\n";
    let entries = starling_server::directory::parse_csv(csv.as_bytes()).unwrap();
    server.state.store.import_directory(&entries).await.unwrap();
    let register = |username: &str, invite: Option<String>, seed: u64| {
        let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(seed);
        let identity = starling_crypto::IdentityKeyPair::generate(&mut rng);
        let mut body = json!({
            "username": username,
            "identity_key": b64(&identity.public().to_bytes()),
        });
        if let Some(code) = invite {
            body["invite_code"] = json!(code);
        }
        let server = &server;
        async move {
            server
                .request("POST", "/v1/accounts", None, Some(body))
                .await
        }
    };
    let reserved = |(status, body): (StatusCode, serde_json::Value)| {
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(
            body["reason"].as_str().unwrap().contains("directory"),
            "{body}"
        );
    };
    // Neither open registration nor a plain invite takes a published name.
    reserved(register("mmueller", None, 1).await);
    reserved(register("mmueller", Some(server.invite().await), 2).await);
    // An invite bound to the name registers it, and nothing else.
    let code = "bound-invite-code";
    let hash = starling_server::auth::hash_secret(code);
    server
        .state
        .store
        .create_invite_for(&hash, i64::MAX, "mmueller")
        .await
        .unwrap();
    let (status, body) = register("mallory", Some(code.into()), 3).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = register("mmueller", Some(code.into()), 4).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Names outside the directory register as before.
    let (status, body) = register("visitor", None, 5).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
both_databases!(
    directory_names_are_reserved_for_bound_invites,
    directory_names_need_their_invite
);

async fn expired_codes_are_purged(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    let store = &server.state.store;
    let (account_id, _) = store.devices_of("alice").await.unwrap().unwrap();
    store.create_invites(&[[1; 32]], 100).await.unwrap();
    store.create_invites(&[[2; 32]], i64::MAX).await.unwrap();
    store
        .create_link_code(&[3; 32], (account_id, 1), 100, false, None)
        .await
        .unwrap();
    let (status, _) = server
        .request("POST", "/v1/devices/link-code", Some(&alice.auth), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    // The two that expired go; the live invite and link code stay.
    assert_eq!(store.purge_expired_codes(1_000).await.unwrap(), 2);
    assert_eq!(store.purge_expired_codes(1_000).await.unwrap(), 0);
}
both_databases!(
    expired_invites_and_link_codes_are_purged,
    expired_codes_are_purged
);

async fn concurrent_registrations(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let mut invites = Vec::new();
    for _ in 0..24 {
        invites.push(server.invite().await);
    }
    let mut registering = tokio::task::JoinSet::new();
    for (index, invite) in invites.into_iter().enumerate() {
        let router = server.router();
        let identity = starling_crypto::IdentityKeyPair::generate(&mut rand_core::OsRng);
        let body = json!({
            "username": format!("member{index}"),
            "invite_code": invite,
            "identity_key": b64(&identity.public().to_bytes()),
        });
        registering.spawn(
            crate::common::JsonRequest::post("/v1/accounts")
                .json(&body)
                .oneshot(router),
        );
    }
    while let Some(reply) = registering.join_next().await {
        let (status, body) = reply.unwrap().into_pair();
        // A write transaction that read first must not fail to take the
        // lock when another registration committed meanwhile (SQLite).
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}
both_databases!(
    concurrent_registrations_all_succeed,
    concurrent_registrations
);
