//! Safeguards of the reference client against confusion and misuse: a
//! group name chosen by someone else never captures a message meant for a
//! person, and one home is never used by two clients at once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use starling_client::{Client, ClientError, Event};
use starling_e2e::{TestServer, texts};
use starling_test_support::DbKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_named_like_a_person_never_captures_their_messages() {
    let server = TestServer::start(DbKind::Sqlite).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    let mut eve = server.client("eve").await;
    eve.client
        .create_group("bob", &["alice".to_string()])
        .await
        .unwrap();
    alice
        .events_until(|e| e.iter().any(|e| matches!(e, Event::GroupChanged { .. })))
        .await;

    let ambiguous = alice.client.send_text("bob", "for bob only").await;
    match ambiguous {
        Err(error @ ClientError::AmbiguousName(_)) => {
            // The message tells the person how to say which one they mean.
            let reason = error.to_string();
            assert!(
                reason.contains("@bob") && reason.contains("#bob"),
                "{reason}"
            );
        }
        other => panic!("expected an ambiguity error, got {other:?}"),
    }
    alice
        .client
        .send_text("@bob", "for bob only")
        .await
        .unwrap();
    assert_eq!(
        texts(&bob.events_until(|e| !texts(e).is_empty()).await),
        ["for bob only"]
    );
    alice
        .client
        .send_text("#bob", "to the group")
        .await
        .unwrap();
    assert_eq!(
        texts(&eve.events_until(|e| !texts(e).is_empty()).await),
        ["to the group"]
    );
    assert!(texts(&bob.drain().await).is_empty());
    // A name that cannot be a username still finds the group.
    eve.client
        .rename_group("#bob", "Bob's fan club")
        .await
        .unwrap();
    alice
        .events_until(|e| e.iter().any(|e| matches!(e, Event::GroupChanged { .. })))
        .await;
    alice
        .client
        .send_text("Bob's fan club", "renamed")
        .await
        .unwrap();
    assert_eq!(
        texts(&eve.events_until(|e| !texts(e).is_empty()).await),
        ["renamed"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_in_use_cannot_be_opened_a_second_time() {
    let server = TestServer::start(DbKind::Sqlite).await;
    let alice = server.client("alice").await;
    let second = Client::open(alice.home.path(), &alice.key).await;
    assert!(matches!(second, Err(ClientError::HomeInUse)), "{second:?}");
    let (home, key) = alice.close_into_home().await;
    let reopened = Client::open(home.path(), &key).await.unwrap();
    assert_eq!(reopened.username(), "alice");
}
