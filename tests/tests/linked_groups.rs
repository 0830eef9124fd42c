//! A device linked after a group was made: it gets the account's groups
//! from the account's other device and reads the group's next messages —
//! the real server binary and library clients, on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use starling_client::Event;
use starling_e2e::{TestServer, texts};
use starling_test_support::{DbKind, both_databases};

fn group_changed(events: &[Event]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::GroupChanged { .. }))
}

async fn a_device_linked_after_a_group_was_made_reads_it(db: DbKind) {
    let server = TestServer::start(db).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice
        .client
        .create_group("falcon", &["bob".to_owned()])
        .await
        .unwrap();
    bob.events_until(group_changed).await;
    bob.client.send_text("#falcon", "before").await.unwrap();
    assert_eq!(alice.messages(1).await[0].body, "before");

    let code = alice.client.link_code().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let key = starling_e2e::test_key("alice-2");
    let laptop = starling_client::Client::link(home.path(), &key, &server.config(), &code)
        .await
        .unwrap();
    let mut laptop = starling_e2e::TestClient::new(laptop, home, key);

    // The phone answers the laptop's request for the account's groups.
    alice.drain().await;
    laptop.events_until(group_changed).await;
    let groups = laptop.client.groups().await.unwrap();
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0].name, "falcon");
    assert!(groups[0].active);
    assert_eq!(groups[0].members, ["alice", "bob"]);

    // Bob's next message reaches the laptop with his key, and reads.
    bob.client.send_text("#falcon", "after").await.unwrap();
    let events = laptop.events_until(|e| !texts(e).is_empty()).await;
    assert_eq!(texts(&events), ["after"], "{events:?}");
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::DecryptionFailed { .. })),
        "{events:?}"
    );
    // And what the laptop writes, bob reads.
    laptop
        .client
        .send_text("#falcon", "from the laptop")
        .await
        .unwrap();
    let events = bob.events_until(|e| !texts(e).is_empty()).await;
    assert_eq!(texts(&events), ["from the laptop"]);
}
both_databases!(
    linked_group,
    a_device_linked_after_a_group_was_made_reads_it
);
