//! Messages that refer to other messages, from what other people send:
//! a reply shows the quoted message from our own history (never the words
//! the sender put in the quote), and receipts, reactions, edits and
//! deletes only act within the conversation the message belongs to.
//! SQLite only, to keep CI short.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use starling_client::content::{self, Body};
use starling_e2e::{TestServer, message_count, texts};
use starling_test_support::DbKind;

/// A text body.
fn text(body: &str) -> Body {
    Body::Text(content::Text { body: body.into() })
}

/// A quote of `message_id` that forges its author and words.
fn quote(message_id: Vec<u8>) -> Option<content::Quote> {
    Some(content::Quote {
        message_id,
        author: "mallory".into(),
        text: "forged words".into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_show_the_quoted_message_from_our_history() {
    let server = TestServer::start(DbKind::Sqlite).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_and_reactions_stay_in_their_conversation() {
    let server = TestServer::start(DbKind::Sqlite).await;
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
