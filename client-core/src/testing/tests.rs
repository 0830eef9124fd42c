//! The in-memory store checked against the conditions the shell's store
//! puts on each change (the same cases as its own tests in
//! `client-reference/src/store/`), so engine tests over [`Memory`] mean
//! what they would over the real store.

use std::collections::BTreeSet;

use starling_crypto::group::{InboundGroupSession, OutboundGroupSession};

use super::{Memory, run};
use crate::conversation::Conversation;
use crate::records::{GroupRecord, NewMessage};
use crate::storage::Storage;

fn c(key: &str) -> Conversation {
    Conversation::parse_key(key).unwrap()
}

fn message(id: u8, conversation: &str, sender: &str, outgoing: bool) -> NewMessage {
    NewMessage {
        message_id: vec![id; 16],
        conversation: c(conversation),
        sender: sender.into(),
        sender_device: 1,
        outgoing,
        kind: "text".into(),
        body: "original".into(),
        content: vec![1],
        sent_at: 0,
        received_at: 0,
        expires_at: None,
        attachment_file: None,
    }
}

#[test]
fn changes_apply_only_in_their_conversation_and_by_their_author() {
    let store = Memory::default();
    let (ours, carols) = (vec![1u8; 16], vec![2u8; 16]);
    assert!(run(store.insert_message(&message(1, "@bob", "alice", true))).unwrap());
    assert!(run(store.insert_message(&message(2, "@carol", "carol", false))).unwrap());
    // An id is recorded once, whatever the conversation.
    assert!(!run(store.insert_message(&message(1, "@carol", "carol", false))).unwrap());

    assert!(!run(store.react(&ours, &c("@mallory"), "mallory", Some("x"))).unwrap());
    assert!(
        run(store.mark_read(&c("@mallory"), std::slice::from_ref(&ours)))
            .unwrap()
            .is_empty()
    );
    assert!(!run(store.edit_message(&carols, &c("@bob"), "carol", "forged")).unwrap());
    assert!(!run(store.edit_message(&carols, &c("@carol"), "bob", "forged")).unwrap());
    assert!(!run(store.delete_message(&carols, &c("@carol"), "bob")).unwrap());
    // Only our own messages are marked read.
    assert!(
        run(store.mark_read(&c("@carol"), std::slice::from_ref(&carols)))
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.bodies(&c("@carol")), ["original"]);

    assert!(run(store.react(&ours, &c("@bob"), "bob", Some("👍"))).unwrap());
    let read = run(store.mark_read(&c("@bob"), std::slice::from_ref(&ours))).unwrap();
    assert_eq!(read, std::slice::from_ref(&ours));
    assert!(run(store.edit_message(&carols, &c("@carol"), "carol", "new")).unwrap());
    let quoted = run(store.quoted_message(&carols, &c("@carol"))).unwrap();
    assert_eq!(quoted, Some(("carol".to_owned(), "new".to_owned())));
    let kept = store.message(&ours).unwrap();
    assert!(kept.read && kept.reactions["bob"] == "👍");

    assert!(run(store.delete_message(&carols, &c("@carol"), "carol")).unwrap());
    let deleted = store.message(&carols).unwrap();
    assert!(
        deleted.deleted && deleted.message.body.is_empty() && deleted.message.content.is_empty()
    );
    assert!(
        run(store.quoted_message(&carols, &c("@carol")))
            .unwrap()
            .is_none()
    );
    assert!(!run(store.edit_message(&carols, &c("@carol"), "carol", "again")).unwrap());
    assert!(!run(store.react(&carols, &c("@carol"), "bob", Some("x"))).unwrap());
}

#[test]
fn sender_keys_follow_their_group() {
    let store = Memory::default();
    let rng = &mut rand::rngs::OsRng;
    let group = GroupRecord {
        group_id: vec![4; 16],
        name: "crew".into(),
        members: vec!["alice".into(), "bob".into()],
        revision: 1,
        active: true,
        expire_seconds: 0,
        member_changes: Default::default(),
    };
    let identity = starling_crypto::IdentityKeyPair::generate(rng);
    let outbound = OutboundGroupSession::new(identity.public(), &group.group_id, rng).unwrap();
    let holders = BTreeSet::from(["bob.1".to_owned(), "bob.2".to_owned()]);
    // An update of the group's row: nothing without the group.
    run(store.save_outbound_group_session(&group.group_id, &outbound, &holders)).unwrap();
    assert!(
        run(store.outbound_group_session(&group.group_id))
            .unwrap()
            .is_none()
    );
    run(store.save_group(&group)).unwrap();
    run(store.save_outbound_group_session(&group.group_id, &outbound, &holders)).unwrap();
    run(store.forget_distribution("bob", 2)).unwrap();
    let (_, kept) = run(store.outbound_group_session(&group.group_id))
        .unwrap()
        .unwrap();
    assert_eq!(kept, BTreeSet::from(["bob.1".to_owned()]));
    // Saving the group again keeps its session.
    run(store.save_group(&group)).unwrap();
    assert!(
        run(store.outbound_group_session(&group.group_id))
            .unwrap()
            .is_some()
    );
    run(store.reset_outbound_group_session(&group.group_id)).unwrap();
    assert!(
        run(store.outbound_group_session(&group.group_id))
            .unwrap()
            .is_none()
    );

    let distribution = outbound.distribution(&identity).unwrap();
    let inbound = InboundGroupSession::new(&distribution, identity.public()).unwrap();
    for (member, device) in [("alice", 1), ("bob", 1), ("bob", 2)] {
        let saved =
            store.save_inbound_group_session(&group.group_id, member, device, &inbound, None);
        run(saved).unwrap();
    }
    // Who holds a signing key, for refusing it from anyone else.
    let key = distribution.signing_key_bytes();
    let holders = run(store.group_signing_key_holders(&group.group_id, &key)).unwrap();
    assert_eq!(holders.len(), 3);
    assert!(
        run(store.group_signing_key_holders(&group.group_id, &[9; 32]))
            .unwrap()
            .is_empty()
    );
    let held = |member, device| {
        run(store.inbound_group_session(&group.group_id, member, device))
            .unwrap()
            .is_some()
    };
    run(store.drop_inbound_group_sessions(&group.group_id, Some("bob"))).unwrap();
    assert!(held("alice", 1) && !held("bob", 1) && !held("bob", 2));
    run(store.drop_inbound_group_sessions(&group.group_id, None)).unwrap();
    assert!(!held("alice", 1));
}
