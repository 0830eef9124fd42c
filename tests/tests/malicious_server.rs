//! The real clients against a server that misbehaves on purpose (a proxy
//! in front of the real server, `starling_e2e::MaliciousServer`): each
//! test has it do one thing a compromised operator could, and checks that
//! the clients refuse, warn the user, or are unaffected — never silently
//! degrade.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::Ordering;

use starling_client::Event;
use starling_e2e::{MaliciousServer, texts};
use starling_test_support::{DbKind, both_databases};

/// Every text bob receives within the wait, in order.
async fn texts_received(bob: &mut starling_e2e::TestClient, count: usize) -> Vec<String> {
    let events = bob
        .events_until(|events| starling_e2e::message_count(events) >= count)
        .await;
    texts(&events)
}

async fn duplicated_envelopes(db: DbKind) {
    let evil = MaliciousServer::start(db).await;
    let mut alice = evil.client("alice").await;
    let mut bob = evil.client("bob").await;
    evil.tamper
        .duplicate_envelopes
        .store(true, Ordering::Relaxed);
    for i in 0..3 {
        alice
            .client
            .send_text("bob", &format!("once {i}"))
            .await
            .unwrap();
    }
    // Each envelope arrives twice; each message is shown once, and no
    // duplicate is reported as a failure.
    let events = bob
        .events_until(|events| starling_e2e::message_count(events) >= 3)
        .await;
    let more = bob.events_until(|_| false).await;
    assert_eq!(texts(&events), ["once 0", "once 1", "once 2"]);
    assert!(evil.tamper.duplicated.load(Ordering::Relaxed) >= 3);
    assert!(
        texts(&more).is_empty(),
        "a duplicate was shown again: {:?}",
        texts(&more)
    );
    assert!(
        !events
            .iter()
            .chain(&more)
            .any(|e| matches!(e, Event::DecryptionFailed { .. })),
        "a duplicate was reported as undecryptable"
    );
    // The session still works both ways.
    bob.client.send_text("alice", "still here").await.unwrap();
    assert_eq!(texts_received(&mut alice, 1).await, ["still here"]);
}
both_databases!(duplicated_envelopes_are_shown_once, duplicated_envelopes);

async fn dropped_envelopes(db: DbKind) {
    let evil = MaliciousServer::start(db).await;
    let mut alice = evil.client("alice").await;
    let mut bob = evil.client("bob").await;
    // The proxy swallows the first two envelopes bob's connection is
    // sent; the server still holds them (bob never acknowledged them), so
    // a later connection gets them: nothing is lost, nothing reordered.
    evil.tamper.drop_next("bob:1", 2);
    for i in 0..3 {
        alice
            .client
            .send_text("bob", &format!("kept {i}"))
            .await
            .unwrap();
    }
    let mut received = Vec::new();
    for _ in 0..4 {
        received.extend(texts_received(&mut bob, 3 - received.len()).await);
        if received.len() >= 3 {
            break;
        }
    }
    let mut sorted = received.clone();
    sorted.sort();
    assert_eq!(sorted, ["kept 0", "kept 1", "kept 2"], "{received:?}");
    assert_eq!(evil.tamper.dropped.load(Ordering::Relaxed), 2);
    bob.client.send_text("alice", "all there").await.unwrap();
    assert_eq!(texts_received(&mut alice, 1).await, ["all there"]);
}
both_databases!(
    dropped_envelopes_arrive_on_a_later_connection,
    dropped_envelopes
);
