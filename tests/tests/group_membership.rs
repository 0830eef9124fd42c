//! Group membership seen from the members' side, through the real
//! server: a member removed and added back reads the group again (and is
//! read), and a rename made without having seen a removal does not undo
//! it. SQLite only, to keep CI short.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use starling_e2e::{TestServer, message_count, texts};
use starling_test_support::DbKind;

/// Whether a message with `text` is among `events`.
fn has_text(events: &[starling_client::Event], text: &str) -> bool {
    texts(events).iter().any(|t| t == text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_added_back_reads_the_group_again() {
    let server = TestServer::start(DbKind::Sqlite).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    let mut carol = server.client("carol").await;
    alice
        .client
        .create_group("crew", &["bob".to_owned(), "carol".to_owned()])
        .await
        .unwrap();
    alice.client.send_text("#crew", "one").await.unwrap();
    assert!(has_text(
        &bob.events_until(|e| has_text(e, "one")).await,
        "one"
    ));
    assert!(has_text(
        &carol.events_until(|e| has_text(e, "one")).await,
        "one"
    ));
    carol.client.send_text("#crew", "two").await.unwrap();
    assert!(has_text(
        &bob.events_until(|e| has_text(e, "two")).await,
        "two"
    ));
    let _ = alice.drain().await;

    let bob_list = ["bob".to_owned()];
    alice
        .client
        .remove_members("crew", &bob_list)
        .await
        .unwrap();
    let _ = bob.drain().await;
    let _ = carol.drain().await;
    alice.client.add_members("crew", &bob_list).await.unwrap();
    let _ = bob.drain().await;
    let _ = carol.drain().await;

    // Every member's next message reaches bob again, and his reaches them.
    alice
        .client
        .send_text("#crew", "welcome back")
        .await
        .unwrap();
    carol.client.send_text("#crew", "hi again").await.unwrap();
    let events = bob
        .events_until(|e| has_text(e, "welcome back") && has_text(e, "hi again"))
        .await;
    assert!(has_text(&events, "welcome back"), "{events:?}");
    assert!(has_text(&events, "hi again"), "{events:?}");
    bob.client
        .send_text("#crew", "glad to be back")
        .await
        .unwrap();
    for member in [&mut alice, &mut carol] {
        let events = member
            .events_until(|e| has_text(e, "glad to be back"))
            .await;
        assert!(has_text(&events, "glad to be back"), "{events:?}");
    }
}

/// The members of the one group in `groups`.
fn members_of(groups: &[starling_client::store::GroupRecord]) -> Vec<String> {
    assert_eq!(groups.len(), 1);
    groups[0].members.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_rename_does_not_undo_a_removal() {
    let server = TestServer::start(DbKind::Sqlite).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    let mut carol = server.client("carol").await;
    let mut dave = server.client("dave").await;
    let others = ["bob", "carol", "dave"].map(str::to_owned);
    alice.client.create_group("crew", &others).await.unwrap();
    for member in [&mut bob, &mut carol, &mut dave] {
        member.events_until(|e| message_count(e) >= 1).await;
    }

    // Carol renames at revision 2 without having seen alice remove bob at
    // revision 2, then renames again at 3 with her list that still has bob.
    carol.client.rename_group("crew", "crew 2").await.unwrap();
    alice
        .client
        .remove_members("crew", &["bob".to_owned()])
        .await
        .unwrap();
    carol.client.rename_group("crew 2", "crew 3").await.unwrap();

    let expected = ["alice", "carol", "dave"].map(str::to_owned);
    // Dave gets all three updates, alice carol's two, carol alice's one.
    for (member, updates) in [(&mut dave, 3), (&mut alice, 2), (&mut carol, 1)] {
        member.events_until(|e| message_count(e) >= updates).await;
        let _ = member.drain().await;
        assert_eq!(members_of(&member.client.groups().await.unwrap()), expected);
    }
    let bobs = bob.client.groups().await.unwrap();
    let _ = bob.drain().await;
    assert!(!bob.client.groups().await.unwrap()[0].active, "{bobs:?}");
}
