//! Prekeys over the HTTP API: bundles start real sessions, one-time keys
//! run out into the last-resort bundle, a forged signature is refused, and
//! concurrent claims never hand out the same one-time key twice.

use axum::http::StatusCode;
use serde_json::json;
use starling_crypto::PreKeyBundle;
use starling_test_support::both_databases;

use crate::common::{DbKind, TestServer, b64};

async fn prekey_bundles(kind: DbKind) {
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
both_databases!(bundles, prekey_bundles);

async fn concurrent_claims(kind: DbKind) {
    // One requester claims 50 bundles here: above the per-pair limit.
    let server = std::sync::Arc::new(
        TestServer::start_with(kind, |c| c.messages.bundle_pair_burst = 100).await,
    );
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
both_databases!(prekey_claims_are_never_shared, concurrent_claims);

async fn pair_limits(kind: DbKind) {
    let server = TestServer::start_with(kind, |c| {
        c.messages.bundles_per_pair_per_hour = 1;
        c.messages.bundle_pair_burst = 3;
    })
    .await;
    let alice = server.register("alice", 1).await;
    let carol = server.register("carol", 3).await;
    let _bob = server.register("bob", 2).await;
    let _dave = server.register("dave", 4).await;
    let fetch = |auth: &str, of: &str| {
        let path = format!("/v1/keys/{of}/*");
        let auth = auth.to_owned();
        let server = &server;
        async move { server.request("GET", &path, Some(&auth), None).await.0 }
    };
    for _ in 0..3 {
        assert_eq!(fetch(&alice.auth, "bob").await, StatusCode::OK);
    }
    // Alice has taken what one account may take of bob's prekeys.
    assert_eq!(
        fetch(&alice.auth, "bob").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Carol may still fetch bob's, alice may still fetch dave's.
    assert_eq!(fetch(&carol.auth, "bob").await, StatusCode::OK);
    assert_eq!(fetch(&alice.auth, "dave").await, StatusCode::OK);
    // The refusal is counted, naming nobody.
    let (_, metrics) = server
        .request(
            "GET",
            "/metrics",
            Some(&crate::common::metrics_auth()),
            None,
        )
        .await;
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains("starling_prekey_bundle_fetches_refused_total 1"),
        "{text}"
    );
    assert!(!text.contains("alice") && !text.contains("bob"));
}
both_databases!(bundles_are_limited_per_pair_of_accounts, pair_limits);

async fn stored_prekey_caps(kind: DbKind) {
    let server = TestServer::start_with(kind, |c| {
        c.messages.max_stored_prekeys = 15;
        c.messages.prekey_upload_burst = 3;
    })
    .await;
    // Registering uploads 10 of each kind (the first upload).
    let mut bob = server.register("bob", 2).await;
    let body = |user: &mut crate::common::TestUser, count: usize| {
        json!({
            "one_time_prekeys": user.prekeys.generate_one_time_prekeys(count, &mut user.rng).unwrap()
                .iter().map(|k| b64(&k.to_bytes())).collect::<Vec<_>>(),
            "kem_prekeys": user.prekeys.generate_kem_prekeys(&user.identity, count, &mut user.rng).unwrap()
                .iter().map(|k| b64(&k.to_bytes())).collect::<Vec<_>>(),
        })
    };
    let upload = body(&mut bob, 10);
    let (status, reply) = server
        .request("PUT", "/v1/keys", Some(&bob.auth), Some(upload))
        .await;
    assert_eq!(
        (status, reply["code"].as_str()),
        (StatusCode::CONFLICT, Some("too_many_prekeys")),
        "{reply}"
    );
    let upload = body(&mut bob, 5);
    let (status, counts) = server
        .request("PUT", "/v1/keys", Some(&bob.auth), Some(upload))
        .await;
    assert_eq!(status, StatusCode::OK, "{counts}");
    assert_eq!(
        (counts["one_time"].as_u64(), counts["kem"].as_u64()),
        (Some(15), Some(15))
    );
    // Three uploads so far: the burst is spent.
    let upload = body(&mut bob, 0);
    let (status, _) = server
        .request("PUT", "/v1/keys", Some(&bob.auth), Some(upload))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}
both_databases!(
    stored_prekeys_are_capped_and_uploads_limited,
    stored_prekey_caps
);
