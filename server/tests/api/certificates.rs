//! Sealed sender's server side: the key clients pin at registration, the
//! chain they follow, and certificates that verify against it, also after
//! `admin rotate-sender-key`.

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use starling_crypto::IdentityKeyPair;
use starling_crypto::sealed::{
    CertificateVerifier, SenderCertificate, ServerKeyChain, TrustedServerKeys,
};
use starling_test_support::both_databases;

use crate::common::{DbKind, TestServer};

fn b64d(value: &serde_json::Value) -> Vec<u8> {
    STANDARD.decode(value.as_str().unwrap()).unwrap()
}

/// Alice registers through the API (to see the pinned key), with an
/// identity the test holds.
async fn register(server: &TestServer) -> (serde_json::Value, String, IdentityKeyPair) {
    let identity = IdentityKeyPair::generate(&mut rand::rngs::OsRng);
    let invite = server.invite().await;
    let body = serde_json::json!({
        "username": "alice",
        "invite_code": invite,
        "identity_key": STANDARD.encode(identity.public().to_bytes()),
    });
    let (status, registered) = server
        .request("POST", "/v1/accounts", None, Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{registered}");
    let auth = format!(
        "Bearer alice:1:{}",
        registered["credential"].as_str().unwrap()
    );
    (registered, auth, identity)
}

async fn certificate_verifies(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let (registered, auth, identity) = register(&server).await;
    let pin = &registered["server_key"];
    let trust = TrustedServerKeys::pin(
        u32::try_from(pin["id"].as_u64().unwrap()).unwrap(),
        &b64d(&pin["public_key"]),
        pin["created_at"].as_u64().unwrap(),
    )
    .unwrap();
    let (status, body) = server
        .request("GET", "/v1/certificate/sender", Some(&auth), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let certificate = SenderCertificate::from_bytes(&b64d(&body["certificate"])).unwrap();
    assert_eq!(
        certificate.expires_at(),
        body["expires_at"].as_u64().unwrap()
    );
    let now = u64::try_from(starling_server::store::now_millis()).unwrap();
    let sender = CertificateVerifier::new(trust)
        .verify(&certificate, now)
        .unwrap();
    assert_eq!(sender.username, "alice");
    assert_eq!(sender.device_id, 1);
    assert_eq!(sender.identity, identity.public().public_bytes());
    // A day, not more.
    assert!(certificate.expires_at() <= now + 24 * 3_600_000 + 60_000);
    // No credential, no certificate.
    let (status, _) = server
        .request("GET", "/v1/certificate/sender", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
both_databases!(
    the_issued_certificate_verifies_against_the_key_pinned_at_registration,
    certificate_verifies
);

async fn chain_survives_rotation(kind: DbKind) {
    let first = TestServer::start(kind).await;
    let (registered, _, _) = register(&first).await;
    let pin = registered["server_key"].clone();
    // The operator rotates; the server signs with the new key after a
    // restart (a new app on the same data folder and database).
    let dir = first.state.config.data_dir.clone();
    let id = starling_server::services::certificates::CertificateKeys::rotate(&dir).unwrap();
    assert_eq!(id, 2);
    let state =
        starling_server::AppState::new(first.state.store.clone(), (*first.state.config).clone())
            .unwrap();
    let router = starling_server::app(state);
    let reply = starling_test_support::http::oneshot(
        router.clone(),
        axum::http::Request::get("/v1/certificate/server-keys")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let chain = ServerKeyChain::from_bytes(&b64d(&reply.json()["chain"])).unwrap();
    let mut trust = TrustedServerKeys::pin(
        1,
        &b64d(&pin["public_key"]),
        pin["created_at"].as_u64().unwrap(),
    )
    .unwrap();
    let now = u64::try_from(starling_server::store::now_millis()).unwrap();
    assert_eq!(trust.advance(&chain, now), Ok(1));
    assert_eq!(trust.newest_id(), 2);
    let credential = registered["credential"].as_str().unwrap();
    let reply = starling_test_support::http::oneshot(
        router,
        axum::http::Request::get("/v1/certificate/sender")
            .header("authorization", format!("Bearer alice:1:{credential}"))
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let certificate = SenderCertificate::from_bytes(&b64d(&reply.json()["certificate"])).unwrap();
    assert_eq!(certificate.signer_key_id(), 2);
    CertificateVerifier::new(trust)
        .verify(&certificate, now)
        .unwrap();
}
both_databases!(
    the_key_chain_survives_admin_rotate_sender_key,
    chain_survives_rotation
);
