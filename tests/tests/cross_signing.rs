//! Cross-signed links (`crypto/SPEC.md` §2.5): a device an account's own
//! device linked keeps the account verified for contacts who verified it;
//! a device nobody of the account vouched for still warns and blocks. The
//! real server binary and library clients, on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use starling_client::{Client, ClientError};
use starling_e2e::{TestClient, TestServer, texts};
use starling_test_support::{DbKind, both_databases};

/// Bob and alice have written to each other, and bob verified alice.
async fn verified_pair(server: &TestServer) -> (TestClient, TestClient) {
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    bob.client.send_text("alice", "hi").await.unwrap();
    alice.messages(1).await;
    alice.client.send_text("bob", "hello").await.unwrap();
    bob.messages(1).await;
    bob.client.verify("alice", None).await.unwrap();
    (alice, bob)
}

async fn link(server: &TestServer, code: &str, name: &str) -> TestClient {
    let home = tempfile::tempdir().unwrap();
    let key = starling_e2e::test_key(name);
    let client = Client::link(home.path(), &key, &server.config(), code)
        .await
        .unwrap();
    TestClient::new(client, home, key)
}

async fn assert_still_verified(bob: &mut TestClient) {
    let number = bob.client.safety_number("alice").await.unwrap();
    assert!(number.verified && !number.identity_changed, "{number:?}");
    let warnings = bob.client.warnings().await.unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
}

async fn a_device_linked_by_a_verified_device_keeps_the_account_verified(db: DbKind) {
    let server = TestServer::start(db).await;
    let (mut alice, mut bob) = verified_pair(&server).await;
    let code = alice.client.link_code().await.unwrap();
    let mut laptop = link(&server, &code, "alice-laptop").await;

    // Bob learns of the laptop from the server and sends to it at once.
    bob.client
        .send_text("alice", "to both of you")
        .await
        .unwrap();
    assert_still_verified(&mut bob).await;
    assert_eq!(
        texts(&laptop.events_until(|e| !texts(e).is_empty()).await),
        ["to both of you"]
    );
    // The phone vouched for the laptop itself: nothing to warn it of once
    // it meets it (the laptop's request for the account's groups, and the
    // copy of what the phone sends).
    alice.drain().await;
    alice.client.send_text("bob", "seen").await.unwrap();
    let phone = alice.client.warnings().await.unwrap();
    assert!(
        !phone.iter().any(|(_, text)| text.contains("was linked")),
        "{phone:?}"
    );

    // A device whose code lost its secret is vouched for by nobody: the
    // safety number changed, and bob may not send until he compares it.
    let (server_part, _secret) = alice
        .client
        .link_code()
        .await
        .unwrap()
        .split_once('.')
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .unwrap();
    let _tablet = link(&server, &server_part, "alice-tablet").await;
    let blocked = bob.client.send_text("alice", "who is this?").await;
    assert!(
        matches!(blocked, Err(ClientError::UntrustedIdentity(ref u)) if u == "alice"),
        "{blocked:?}"
    );
    let warnings = bob.client.warnings().await.unwrap();
    assert!(
        warnings
            .iter()
            .any(|(u, text)| u == "alice" && text.contains("safety number changed")),
        "{warnings:?}"
    );
}
both_databases!(
    bundles,
    a_device_linked_by_a_verified_device_keeps_the_account_verified
);

async fn a_linked_device_that_writes_first_keeps_the_account_verified(db: DbKind) {
    let server = TestServer::start(db).await;
    let (alice, mut bob) = verified_pair(&server).await;
    let code = alice.client.link_code().await.unwrap();
    let mut laptop = link(&server, &code, "alice-laptop").await;

    // Bob meets the laptop through its first message, not a fetch.
    laptop
        .client
        .send_text("bob", "from the laptop")
        .await
        .unwrap();
    assert_eq!(
        texts(&bob.events_until(|e| !texts(e).is_empty()).await),
        ["from the laptop"]
    );
    assert_still_verified(&mut bob).await;
    bob.client.send_text("alice", "got it").await.unwrap();
    assert_still_verified(&mut bob).await;
}
both_databases!(
    first_message,
    a_linked_device_that_writes_first_keeps_the_account_verified
);
