//! A content decrypted and staged just before a crash is applied once on
//! the next start, without the server and without decrypting again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use prost::Message;
use starling_client::content::{self, Body};
use starling_client::store::{AccountRecord, InboxItem, Store};
use starling_client::{Client, Event, StoreKey};
use starling_crypto::ratchet::PeerSessions;
use starling_crypto::{IdentityKeyPair, PreKeyStore};
use zeroize::Zeroizing;

#[tokio::test]
async fn a_staged_envelope_is_applied_once_after_a_restart() {
    let home = tempfile::tempdir().unwrap();
    let key = StoreKey::from_bytes([3; 32]);
    let store = Store::open(home.path(), &key).await.unwrap();
    store
        .create_account(&AccountRecord {
            server_url: "https://127.0.0.1:1".into(),
            ca_fingerprint: None,
            username: "bob".into(),
            device_id: 1,
            credential: Zeroizing::new("secret".into()),
            identity: IdentityKeyPair::generate(&mut rand::rngs::OsRng),
            prekeys: PreKeyStore::new(),
        })
        .await
        .unwrap();
    // What a crash right after decrypting leaves: the advanced session and
    // the staged content, written together; nothing applied yet.
    let text = content::new_content(Body::Text(content::Text {
        body: "staged".into(),
    }));
    let item = InboxItem {
        envelope_id: vec![9; 16],
        sender: "alice".into(),
        sender_device: 1,
        pairwise: true,
        identity_changed: false,
        content: Zeroizing::new(text.encode_to_vec()),
    };
    store
        .save_sessions_with_inbox("alice", 1, &PeerSessions::new(), None, Some(&item))
        .await
        .unwrap();
    store.close().await;
    drop(store);

    let mut client = Client::open(home.path(), &key).await.unwrap();
    let events = client.apply_pending().await.unwrap();
    assert!(
        matches!(events.as_slice(), [Event::Message(m)] if m.body == "staged" && m.sender == "alice")
    );
    assert!(client.apply_pending().await.unwrap().is_empty());
    assert!(client.store().envelope_seen(&[9; 16]).await.unwrap());
    assert_eq!(client.history("alice", 10).await.unwrap().len(), 1);
}
