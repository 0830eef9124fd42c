//! `starling-server admin` acting on live accounts, as an operator does
//! while the server runs: a member who lost every device gets a new first
//! device in the same account; a deleted account is gone, its name free
//! again, and the transparency log no longer claims its devices.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use starling_client::{Client, ClientError};
use starling_e2e::{TestClient, TestServer, test_key};
use starling_test_support::DbKind;

async fn register(server: &TestServer, username: &str, invite: &str) -> TestClient {
    let home = tempfile::tempdir().unwrap();
    let key = test_key(username);
    let client = Client::register(home.path(), &key, &server.config(), username, Some(invite))
        .await
        .unwrap();
    TestClient::new(client, home, key)
}

async fn a_member_who_lost_every_device_registers_again(db: DbKind) {
    let server = TestServer::start(db).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    bob.client.send_text("alice", "before").await.unwrap();
    alice.events_until(|e| !e.is_empty()).await;

    // An invite bound to her name issued earlier (a lost email, say).
    let earlier = server.admin(&["invite", "--username", "alice"]);
    let invite = server.admin(&["devices", "reset", "alice"]);
    let invite = invite.trim();
    assert_eq!(invite.len(), 32, "one invite code: {invite}");
    // The old device is refused.
    let refused = alice.client.receive(Some(Duration::from_secs(1))).await;
    assert!(
        matches!(
            refused,
            Err(ClientError::DeviceRemoved | ClientError::Server { status: 401, .. })
        ),
        "{refused:?}"
    );
    assert!(server.admin(&["list"]).contains("alice\t0 device(s)"));
    // The invite is bound to the name: nobody else registers with it.
    let home = tempfile::tempdir().unwrap();
    let taken = Client::register(
        home.path(),
        &test_key("mallory"),
        &server.config(),
        "mallory",
        Some(invite),
    )
    .await;
    assert!(taken.is_err());
    // Only the reset's invite takes the account, not the earlier one.
    let home = tempfile::tempdir().unwrap();
    let stale = Client::register(
        home.path(),
        &test_key("alice"),
        &server.config(),
        "alice",
        Some(earlier.trim()),
    )
    .await;
    assert!(stale.is_err(), "an earlier invite took the account");
    // Alice registers a new first device in her account: a new id.
    let mut again = register(&server, "alice", invite).await;
    assert_eq!(bob.client.api().devices("alice").await.unwrap(), vec![2]);
    // Bob (who had not verified her) reaches her new device, warned of
    // her new keys.
    bob.client.send_text("alice", "after").await.unwrap();
    again.events_until(|e| !e.is_empty()).await;
    let history = again.client.history("bob", 10).await.unwrap();
    assert!(history.iter().any(|m| m.body == "after"), "{history:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_who_lost_every_device_registers_again_sqlite() {
    a_member_who_lost_every_device_registers_again(DbKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_who_lost_every_device_registers_again_postgres() {
    a_member_who_lost_every_device_registers_again(DbKind::Postgres).await;
}

async fn a_deleted_account_is_gone_and_its_name_free(db: DbKind) {
    let server = TestServer::start(db).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice
        .client
        .send_text("bob", "queued for bob")
        .await
        .unwrap();
    let said = server.admin(&["delete", "bob"]);
    assert!(said.contains("bob deleted: 1 device(s)"), "{said}");
    assert!(!server.admin(&["list"]).contains("bob"));
    // His device is refused; sends to him find no account.
    assert!(
        bob.client
            .receive(Some(Duration::from_secs(1)))
            .await
            .is_err()
    );
    assert!(alice.client.send_text("bob", "gone?").await.is_err());
    // (The log marks the name deleted: server/tests/transparency_log.rs.)
    // The name is free again for a new invite.
    let invite = server.invite();
    let _new_bob = register(&server, "bob", &invite).await;
    assert!(server.admin(&["list"]).contains("bob\t1 device(s)"));
    // Deleting someone who does not exist is an error.
    let output = server.admin_output(&["delete", "nobody"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no account named nobody"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_account_is_gone_and_its_name_free_sqlite() {
    a_deleted_account_is_gone_and_its_name_free(DbKind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_account_is_gone_and_its_name_free_postgres() {
    a_deleted_account_is_gone_and_its_name_free(DbKind::Postgres).await;
}
