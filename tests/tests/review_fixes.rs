//! What a client does with what other people send it, through the real
//! server: replies show the quoted message from our own history, saved
//! attachments never overwrite, receipts and reactions stay in their
//! conversation, re-added members read the group again, and a removal
//! is not undone by a concurrent change. SQLite only, to keep CI short.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use starling_client::content::{self, Body};
use starling_e2e::{Db, TestServer, message_count, texts};

fn text(body: &str) -> Body {
    Body::Text(content::Text { body: body.into() })
}

fn quote(message_id: Vec<u8>) -> Option<content::Quote> {
    Some(content::Quote {
        message_id,
        author: "mallory".into(),
        text: "forged words".into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_show_the_quoted_message_from_our_history() {
    let server = TestServer::start(Db::Sqlite).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    let mut carol = server.client("carol").await;
    let original = alice
        .client
        .send_text("bob", "the real words")
        .await
        .unwrap();
    let elsewhere = carol.client.send_text("bob", "carol only").await.unwrap();
    assert_eq!(bob.messages(2).await.len(), 2);

    let replies = [
        (original, "reply one"),
        (elsewhere, "reply two"),
        (vec![7; 16], "reply three"),
    ];
    for (quoted, body) in replies {
        alice
            .client
            .send_with_quote("bob", text(body), quote(quoted))
            .await
            .unwrap();
    }
    let shown = texts(&bob.events_until(|e| message_count(e) >= 3).await);
    assert_eq!(
        shown,
        [
            "[reply to alice: \"the real words\"] reply one",
            "[reply to (unknown message)] reply two",
            "[reply to (unknown message)] reply three",
        ]
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saving_never_overwrites_nor_follows_a_symlink() {
    let server = TestServer::start(Db::Sqlite).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("notes.txt");
    std::fs::write(&source, b"attachment body").unwrap();
    alice
        .client
        .send_file("bob", &source, content::AttachmentKind::File, "", &mut ())
        .await
        .unwrap();
    let received = bob.messages(1).await;
    let id = hex::decode(&received[0].message_id).unwrap();

    let out = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"keep me").unwrap();
    std::os::unix::fs::symlink(&victim, out.path().join("notes.txt")).unwrap();
    let mut saved = Vec::new();
    for _ in 0..2 {
        saved.push(
            bob.client
                .save_attachment(&id, out.path(), &mut ())
                .await
                .unwrap(),
        );
    }
    // A file path that is taken gets a number too.
    let taken = out.path().join("notes (1).txt");
    saved.push(
        bob.client
            .save_attachment(&id, &taken, &mut ())
            .await
            .unwrap(),
    );
    assert_eq!(
        saved,
        [
            out.path().join("notes (1).txt"),
            out.path().join("notes (2).txt"),
            out.path().join("notes (1) (1).txt"),
        ]
    );
    for file in &saved {
        assert_eq!(std::fs::read(file).unwrap(), b"attachment body");
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
    let link = std::fs::symlink_metadata(out.path().join("notes.txt")).unwrap();
    assert!(link.file_type().is_symlink());
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        4,
        "no temporary files left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_and_reactions_stay_in_their_conversation() {
    let server = TestServer::start(Db::Sqlite).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    let mut mallory = server.client("mallory").await;
    let to_bob = alice.client.send_text("bob", "for bob only").await.unwrap();
    bob.messages(1).await;

    // Mallory knows the id but is not part of that conversation.
    let forged = [
        Body::ReadReceipt(content::ReadReceipt {
            message_ids: vec![to_bob.clone()],
        }),
        Body::Reaction(content::Reaction {
            message_id: to_bob.clone(),
            emoji: "💩".into(),
            remove: false,
        }),
        Body::Edit(content::Edit {
            message_id: to_bob.clone(),
            body: "forged".into(),
        }),
        Body::Delete(content::Delete {
            message_id: to_bob.clone(),
        }),
    ];
    for body in forged {
        mallory.client.send_body("alice", body).await.unwrap();
    }
    mallory.client.send_text("alice", "done").await.unwrap();
    let events = alice.events_until(|e| message_count(e) >= 1).await;
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, starling_client::Event::Updated { .. })),
        "{events:?}"
    );
    let history = alice.client.history("bob", 10).await.unwrap();
    assert_eq!(history[0].body, "for bob only");
    assert!(history[0].reactions.is_empty() && !history[0].read);

    // Bob, in the conversation, can react and mark it read.
    bob.client
        .send_body(
            "alice",
            Body::Reaction(content::Reaction {
                message_id: to_bob.clone(),
                emoji: "👍".into(),
                remove: false,
            }),
        )
        .await
        .unwrap();
    bob.client
        .send_body(
            "alice",
            Body::ReadReceipt(content::ReadReceipt {
                message_ids: vec![to_bob],
            }),
        )
        .await
        .unwrap();
    let updates = |events: &[starling_client::Event]| {
        events
            .iter()
            .filter(|e| matches!(e, starling_client::Event::Updated { .. }))
            .count()
    };
    let events = alice.events_until(|e| updates(e) >= 2).await;
    assert_eq!(updates(&events), 2, "{events:?}");
    let history = alice.client.history("bob", 10).await.unwrap();
    assert_eq!(history[0].reactions["bob"], "👍");
    assert!(history[0].read);
}

fn has_text(events: &[starling_client::Event], text: &str) -> bool {
    texts(events).iter().any(|t| t == text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_added_back_reads_the_group_again() {
    let server = TestServer::start(Db::Sqlite).await;
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

fn members_of(groups: &[starling_client::store::GroupRecord]) -> Vec<String> {
    assert_eq!(groups.len(), 1);
    groups[0].members.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_rename_does_not_undo_a_removal() {
    let server = TestServer::start(Db::Sqlite).await;
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
