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
