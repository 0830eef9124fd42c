//! Revocation and device management: a removed device or a disabled
//! account loses its live WebSocket within seconds (also when the disable
//! comes from another process, through the database), a removed device's
//! id never names a new device, and only manager devices link and remove
//! devices.

use std::time::Duration;

use axum::http::StatusCode;
use futures_util::StreamExt;
use serde_json::{Value, json};
use starling_server::revocation::spawn_revocations;
use starling_server::ws::CLOSE_REVOKED;
use starling_test_support::both_databases;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{DbKind, TestServer, Ws, b64, open_store};

/// The most a revoked connection may stay open.
const REVOKED_WITHIN: Duration = Duration::from_secs(5);

/// A fresh public identity key.
fn identity(seed: u64) -> String {
    let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(seed);
    b64(&starling_crypto::IdentityKeyPair::generate(&mut rng)
        .public()
        .to_bytes())
}

/// Links a device to the account `auth` manages (as a manager when asked);
/// returns its id and bearer value.
async fn link(server: &TestServer, auth: &str, manager: bool, seed: u64) -> (u64, String) {
    let path = if manager {
        "/v1/devices/link-code?manager=true"
    } else {
        "/v1/devices/link-code"
    };
    let (status, code) = server.request("POST", path, Some(auth), None).await;
    assert_eq!(status, StatusCode::OK, "{code}");
    let body = json!({ "link_code": code["code"], "identity_key": identity(seed) });
    let (status, linked) = server
        .request("POST", "/v1/devices", None, Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{linked}");
    let id = linked["device_id"].as_u64().unwrap();
    let username = linked["username"].as_str().unwrap();
    let secret = linked["credential"].as_str().unwrap();
    (id, format!("Bearer {username}:{id}:{secret}"))
}

/// Waits for the server to close `ws` as revoked; panics if it stays open
/// longer than [`REVOKED_WITHIN`] or closes otherwise.
async fn expect_revoked(ws: &mut Ws) {
    let closed = tokio::time::timeout(REVOKED_WITHIN, async {
        loop {
            match ws.socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .expect("the revoked connection stayed open");
    assert_eq!(closed, Some(CLOSE_REVOKED));
}

async fn a_removed_device_is_cut_off_and_its_id_never_returns(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    let (second, second_auth) = link(&server, &alice.auth, false, 10).await;
    assert_eq!(second, 2);
    let mut ws = server.ws(&second_auth).await;
    ws.drain().await;

    let (status, body) = server
        .request("DELETE", "/v1/devices/2", Some(&alice.auth), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    expect_revoked(&mut ws).await;
    let (status, body) = server
        .request(
            "GET",
            "/v1/accounts/alice/devices",
            Some(&second_auth),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The removed device, and only it, is told why.
    assert_eq!(body["code"], "device_removed", "{body}");
    assert_eq!(body["reason"], "this device was removed from the account");
    let guessed = format!("Bearer alice:2:{}", "A".repeat(43));
    let (status, body) = server
        .request("GET", "/v1/accounts/alice/devices", Some(&guessed), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "unauthorized", "{body}");

    // The next device gets a new id: nothing meant for device 2 reaches it.
    let (third, _) = link(&server, &alice.auth, false, 11).await;
    assert_eq!(third, 3);
    let (_, devices) = server
        .request("GET", "/v1/accounts/alice/devices", Some(&alice.auth), None)
        .await;
    assert_eq!(devices["devices"], json!([1, 3]));
    assert_eq!(devices["sealed_from_strangers"], json!(false));
}
both_databases!(
    removed_device,
    a_removed_device_is_cut_off_and_its_id_never_returns
);

async fn disabling_from_another_process_closes_every_connection(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let poller = spawn_revocations(server.state.clone(), Duration::from_millis(200));
    let alice = server.register("alice", 1).await;
    let bob = server.register("bob", 2).await;
    let (_, second_auth) = link(&server, &alice.auth, false, 10).await;
    let mut first = server.ws(&alice.auth).await;
    let mut second = server.ws(&second_auth).await;
    let mut other = server.ws(&bob.auth).await;
    for ws in [&mut first, &mut second, &mut other] {
        ws.drain().await;
    }

    // Another process: its own connection to the database, no registry.
    let admin = open_store(&server.db).await;
    let now = starling_server::store::now_millis();
    assert!(admin.set_disabled("alice", true, now).await.unwrap());
    expect_revoked(&mut first).await;
    expect_revoked(&mut second).await;

    // Bob's connection is untouched and keeps working.
    let (status, _) = server
        .request("GET", "/v1/accounts/bob/devices", Some(&bob.auth), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let ping = tokio::time::timeout(Duration::from_millis(500), other.socket.next()).await;
    assert!(ping.is_err(), "bob's connection changed: {ping:?}");
    poller.abort();
}
both_databases!(
    disabled_elsewhere,
    disabling_from_another_process_closes_every_connection
);

async fn only_managers_link_and_remove_devices(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    let (_, plain) = link(&server, &alice.auth, false, 10).await;
    let refused = |(status, body): (StatusCode, Value)| {
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(
            body["reason"].as_str().unwrap().contains("manager"),
            "{body}"
        );
    };
    // A device linked plainly may do neither.
    refused(
        server
            .request("POST", "/v1/devices/link-code", Some(&plain), None)
            .await,
    );
    refused(
        server
            .request("DELETE", "/v1/devices/1", Some(&plain), None)
            .await,
    );
    // A manager may link another manager, who may remove the first.
    let (manager_id, manager) = link(&server, &alice.auth, true, 11).await;
    let (status, body) = server
        .request("DELETE", "/v1/devices/1", Some(&manager), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // No device removes itself.
    let (status, _) = server
        .request(
            "DELETE",
            &format!("/v1/devices/{manager_id}"),
            Some(&manager),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A code dies with the device that issued it: a removed (stolen)
    // manager cannot use one it asked for before.
    let (status, code) = server
        .request(
            "POST",
            "/v1/devices/link-code?manager=true",
            Some(&manager),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{code}");
    let (_, second_manager) = link(&server, &manager, true, 12).await;
    let (status, body) = server
        .request(
            "DELETE",
            &format!("/v1/devices/{manager_id}"),
            Some(&second_manager),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body = json!({ "link_code": code["code"], "identity_key": identity(13) });
    let (status, _) = server
        .request("POST", "/v1/devices", None, Some(body))
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the removed device's code still works"
    );
    // A plain device cannot make itself a manager through a code.
    refused(
        server
            .request(
                "POST",
                "/v1/devices/link-code?manager=true",
                Some(&plain),
                None,
            )
            .await,
    );
}
both_databases!(managers, only_managers_link_and_remove_devices);
