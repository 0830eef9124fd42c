//! Naming conversations without a server: what a person types resolves to
//! a person or a group, a bare name that could be either is refused, and a
//! reply's quote is found by its message id within its conversation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use starling_client::store::{AccountRecord, GroupRecord, NewMessage, Store};
use starling_client::{Client, ClientError, Conversation, GroupId, StoreKey};
use starling_crypto::{IdentityKeyPair, PreKeyStore};
use zeroize::Zeroizing;

fn group(id: u8, name: &str) -> GroupRecord {
    GroupRecord {
        group_id: vec![id; 16],
        name: name.into(),
        members: vec!["alice".into(), "eve".into()],
        revision: 1,
        active: true,
        expire_seconds: 0,
        member_changes: Default::default(),
    }
}

fn message(id: u8, conversation: &Conversation, sender: &str, body: &str) -> NewMessage {
    NewMessage {
        message_id: vec![id; 16],
        conversation: conversation.clone(),
        sender: sender.into(),
        sender_device: 1,
        outgoing: false,
        kind: "text".into(),
        body: body.into(),
        content: Vec::new(),
        sent_at: 0,
        received_at: 0,
        expires_at: None,
        attachment_file: None,
    }
}

/// A home of alice's with two groups: "bob" and "Bob's fan club".
async fn alices_home() -> (tempfile::TempDir, Client) {
    let home = tempfile::tempdir().unwrap();
    let key = StoreKey::from_bytes([5; 32]);
    let store = Store::open(home.path(), &key).await.unwrap();
    store
        .create_account(&AccountRecord {
            server_url: "https://127.0.0.1:1".into(),
            ca_fingerprint: None,
            username: "alice".into(),
            device_id: 1,
            credential: Zeroizing::new("secret".into()),
            identity: IdentityKeyPair::generate(&mut rand::rngs::OsRng),
            prekeys: PreKeyStore::new(),
        })
        .await
        .unwrap();
    store.save_group(&group(0xab, "bob")).await.unwrap();
    store
        .save_group(&group(0xcd, "Bob's fan club"))
        .await
        .unwrap();
    store.close().await;
    drop(store);
    let client = Client::open(home.path(), &key).await.unwrap();
    (home, client)
}

#[tokio::test]
async fn names_resolve_to_a_person_or_a_group() {
    let (_home, client) = alices_home().await;
    let bob = client.resolve("@bob").await.unwrap();
    assert_eq!(bob, "@bob");
    assert_eq!(bob.username().unwrap().as_str(), "bob");
    let group_bob = Conversation::Group(GroupId::from_bytes(vec![0xab; 16]));
    assert_eq!(client.resolve("#bob").await.unwrap(), group_bob);
    assert_eq!(client.resolve("#abab").await.unwrap(), group_bob);
    assert_eq!(
        client.resolve("Bob's fan club").await.unwrap().to_key(),
        format!("#{}", "cd".repeat(16))
    );
    assert_eq!(client.resolve("carol").await.unwrap(), "@carol");

    match client.resolve("bob").await {
        Err(error @ ClientError::AmbiguousName(_)) => {
            let reason = error.to_string();
            assert!(
                reason.contains("@bob") && reason.contains("#bob"),
                "{reason}"
            );
        }
        other => panic!("expected an ambiguity error, got {other:?}"),
    }
    assert!(matches!(
        client.resolve("@Carol!").await,
        Err(ClientError::BadUsername { .. })
    ));
    assert!(matches!(
        client.resolve("No Such Group").await,
        Err(ClientError::UnknownGroup(_))
    ));
}

#[tokio::test]
async fn a_quote_is_found_by_its_id_in_its_conversation_only() {
    let (_home, client) = alices_home().await;
    let bob = client.resolve("@bob").await.unwrap();
    let carol = client.resolve("@carol").await.unwrap();
    let store = client.store();
    store
        .insert_message(&message(1, &bob, "bob", "the real words"))
        .await
        .unwrap();
    store
        .insert_message(&message(2, &carol, "carol", "carol only"))
        .await
        .unwrap();
    assert_eq!(
        store.quoted_message(&[1; 16], &bob).await.unwrap(),
        Some(("bob".to_owned(), "the real words".to_owned()))
    );
    assert_eq!(store.quoted_message(&[2; 16], &bob).await.unwrap(), None);
    assert_eq!(store.quoted_message(&[3; 16], &bob).await.unwrap(), None);
    let history = client.history(&bob, 10).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].conversation, bob);
    assert_eq!(
        serde_json::to_value(&history[0]).unwrap()["conversation"],
        "@bob"
    );
}
