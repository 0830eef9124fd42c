//! Groups: a group reaches its members through control messages, its
//! messages go out once under the sender's Sender Key, and whoever is no
//! longer a member device (removed, left, or a device gone) cannot read
//! what follows, because every remaining sender rotates its key.

use std::collections::BTreeSet;

use starling_crypto::group::{InboundGroupSession, OutboundGroupSession};

use super::*;
use crate::content::{GroupControl, group_control::Action};
use crate::error::DeviceError;
use crate::records::GroupRecord;
use crate::storage::Storage;

mod late_keys;
mod sender_keys;

use sender_keys::{fresh_sender_key, give_key};

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Alice's group "crew" with bob and carol, as all three know it.
fn crew(world: &mut World) -> (TestDevice, TestDevice, TestDevice, GroupRecord) {
    let mut alice = world.device("alice", 1);
    let mut bob = world.device("bob", 1);
    let mut carol = world.device("carol", 1);
    let group = run(alice.create_group("crew", &names(&["bob", "carol"]))).unwrap();
    for member in [&mut bob, &mut carol] {
        assert_eq!(
            summary(&receive(member)),
            [
                "message alice: group \"crew\": alice, bob, carol",
                "group crew [alice bob carol]"
            ]
        );
    }
    (alice, bob, carol, group)
}

/// The Sender Key message a group envelope for `device` carries.
fn group_message(device: &TestDevice, envelope: &Envelope) -> Vec<u8> {
    let authority = &device.transport().server().authority;
    let certified = authority.unseal(&device.account.identity, &envelope.content);
    let wrapped = content::Transport::decode(certified.inner.as_slice()).unwrap();
    match wrapped.body {
        Some(transport::Body::Group(group)) => group.message,
        other => panic!("not a group envelope: {other:?}"),
    }
}

/// The sender key `device` holds of `member`'s device 1 in `group`.
fn inbound(device: &TestDevice, group: &GroupRecord, member: &str) -> Option<InboundGroupSession> {
    run(device
        .storage()
        .inbound_group_session(&group.group_id, member, 1))
    .unwrap()
}

/// The member devices holding `device`'s current sender key of `group`.
fn holders(device: &TestDevice, group: &GroupRecord) -> Option<BTreeSet<String>> {
    let outbound = device.storage().outbound.borrow();
    outbound.get(&group.group_id).map(|(_, h)| h.clone())
}

fn set(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// The group as `device` knows it.
fn known(device: &TestDevice, group: &GroupRecord) -> GroupRecord {
    device.storage().groups.borrow()[&group.group_id].clone()
}

#[test]
fn a_new_group_reaches_its_members_and_its_messages_decrypt() {
    let mut world = World::new();
    let (mut alice, mut bob, mut carol, group) = crew(&mut world);
    assert_eq!(group.members, names(&["alice", "bob", "carol"]));
    assert_eq!((group.revision, group.active), (1, true));
    assert_eq!(known(&bob, &group), known(&carol, &group));
    assert_eq!(known(&bob, &group).members, group.members);

    let convo = group.conversation();
    let id = say(&mut alice, &convo, "hi all");
    let to_bob = take(&bob);
    let to_carol = take(&carol);
    // Each gets the sender key (pairwise), then the one ciphertext all
    // members get.
    assert_eq!((to_bob.len(), to_carol.len()), (2, 2));
    assert_eq!(
        group_message(&bob, &to_bob[1]),
        group_message(&carol, &to_carol[1])
    );
    for (member, envelopes) in [(&mut bob, to_bob), (&mut carol, to_carol)] {
        let events: Vec<Event> = envelopes.iter().flat_map(|e| process(member, e)).collect();
        let entry = only_message(&events);
        assert_eq!(entry.message_id, hex::encode(&id));
        assert_eq!(entry.conversation, convo);
        assert_eq!(entry.conversation_name, "crew");
        assert_eq!(
            (entry.sender.as_str(), entry.body.as_str()),
            ("alice", "hi all")
        );
    }
    assert_eq!(holders(&alice, &group), Some(set(&["bob.1", "carol.1"])));

    // The key is given once: the next message is one envelope each.
    say(&mut alice, &convo, "again");
    assert_eq!(world.server.waiting("bob", 1), 1);
    assert_eq!(summary(&receive(&mut bob)), ["message alice: again"]);
    say(&mut bob, &convo, "hi alice");
    assert_eq!(summary(&receive(&mut alice)), ["message bob: hi alice"]);
    assert_eq!(
        summary(&receive(&mut carol)),
        ["message alice: again", "message bob: hi alice"]
    );
}

#[test]
fn a_rename_reaches_every_member() {
    let mut world = World::new();
    let (mut alice, mut bob, _carol, group) = crew(&mut world);
    let group = run(alice.rename_group(&group.id(), "crew 2")).unwrap();
    assert_eq!(group.revision, 2);
    assert_eq!(
        summary(&receive(&mut bob)),
        [
            "message alice: group \"crew 2\": alice, bob, carol",
            "group crew 2 [alice bob carol]"
        ]
    );
    say(&mut alice, &group.conversation(), "new name");
    let events = receive(&mut bob);
    assert_eq!(only_message(&events).conversation_name, "crew 2");
}

#[test]
fn a_removed_member_cannot_read_what_follows() {
    let mut world = World::new();
    let (mut alice, mut bob, mut carol, group) = crew(&mut world);
    let convo = group.conversation();
    say(&mut alice, &convo, "before");
    say(&mut carol, &convo, "me too");
    assert_eq!(
        summary(&receive(&mut bob)),
        ["message alice: before", "message carol: me too"]
    );
    receive(&mut alice);
    receive(&mut carol);
    // What bob holds before he is removed.
    let mut alices_old = inbound(&bob, &group, "alice").unwrap();
    let mut carols_old = inbound(&bob, &group, "carol").unwrap();

    let group = run(alice.remove_members(&group.id(), &names(&["bob"]))).unwrap();
    assert_eq!(group.members, names(&["alice", "carol"]));
    assert_eq!(
        summary(&receive(&mut bob)),
        [
            "message alice: group \"crew\": alice, carol",
            "group crew [alice carol] inactive"
        ]
    );
    assert!(inbound(&bob, &group, "alice").is_none());
    assert!(inbound(&bob, &group, "carol").is_none());
    assert_eq!(
        summary(&receive(&mut carol)),
        [
            "message alice: group \"crew\": alice, carol",
            "group crew [alice carol]"
        ]
    );
    assert!(inbound(&carol, &group, "bob").is_none());

    say(&mut alice, &convo, "after");
    assert_eq!(world.server.waiting("bob", 1), 0);
    let to_carol = take(&carol);
    let leaked = to_carol.last().unwrap();
    // Were it leaked to bob, he could read it neither now nor with the key
    // he kept.
    let mut copy = leaked.clone();
    copy.id = vec![0xcc; 16];
    assert_eq!(
        summary(&process(&mut bob, &copy)),
        ["unreadable from .0"],
        "sealed to carol, it does not even open for bob"
    );
    assert!(
        alices_old
            .verify_and_decrypt(&group_message(&carol, leaked))
            .is_err()
    );
    let events: Vec<Event> = to_carol
        .iter()
        .flat_map(|e| process(&mut carol, e))
        .collect();
    assert_eq!(summary(&events), ["message alice: after"]);
    assert_eq!(holders(&alice, &group), Some(set(&["carol.1"])));

    // Carol started a new key of her own too.
    say(&mut carol, &convo, "carol after");
    let to_alice = take(&alice);
    assert!(
        carols_old
            .verify_and_decrypt(&group_message(&alice, to_alice.last().unwrap()))
            .is_err()
    );
    let events: Vec<Event> = to_alice
        .iter()
        .flat_map(|e| process(&mut alice, e))
        .collect();
    assert_eq!(summary(&events), ["message carol: carol after"]);
    assert_eq!(world.server.waiting("bob", 1), 0);

    // Bob cannot send to the group any more.
    let refused = run(bob.send(&convo, text("hello?"), None));
    assert!(
        matches!(refused, Err(DeviceError::NotAMember(_))),
        "{refused:?}"
    );
}

#[test]
fn removing_a_member_keeps_the_keys_of_our_other_devices() {
    let mut world = World::new();
    let (mut alice, _bob, _carol, group) = crew(&mut world);
    // Alice's device 2 has given device 1 its sender key.
    let mut rng = StdRng::seed_from_u64(99);
    let second = IdentityKeyPair::generate(&mut rng);
    let theirs = OutboundGroupSession::new(second.public(), &group.group_id, &mut rng).unwrap();
    let distribution = theirs.distribution(&second).unwrap();
    let session = InboundGroupSession::new(&distribution, second.public()).unwrap();
    run(alice
        .storage()
        .save_inbound_group_session(&group.group_id, "alice", 2, &session, None))
    .unwrap();
    // Naming ourselves among those to remove removes only the others.
    let group = run(alice.remove_members(&group.id(), &names(&["alice", "bob"]))).unwrap();
    assert_eq!(group.members, names(&["alice", "carol"]));
    let kept = run(alice
        .storage()
        .inbound_group_session(&group.group_id, "alice", 2))
    .unwrap();
    assert!(kept.is_some(), "our other device's key was dropped");
}

#[test]
fn a_member_added_back_gets_the_new_key() {
    let mut world = World::new();
    let (mut alice, mut bob, mut carol, group) = crew(&mut world);
    let convo = group.conversation();
    let group = run(alice.remove_members(&group.id(), &names(&["bob"]))).unwrap();
    receive(&mut bob);
    receive(&mut carol);
    say(&mut alice, &convo, "without bob");
    receive(&mut carol);

    let group = run(alice.add_members(&group.id(), &names(&["bob"]))).unwrap();
    assert_eq!((group.revision, group.members.len()), (3, 3));
    assert_eq!(
        summary(&receive(&mut bob)),
        [
            "message alice: group \"crew\": alice, bob, carol",
            "group crew [alice bob carol]"
        ]
    );
    assert!(known(&bob, &group).active);
    say(&mut alice, &convo, "welcome back");
    assert_eq!(summary(&receive(&mut bob)), ["message alice: welcome back"]);
    assert_eq!(bob.storage().bodies(&convo).last().unwrap(), "welcome back");
    assert!(
        !bob.storage()
            .bodies(&convo)
            .contains(&"without bob".to_owned())
    );
}

#[test]
fn a_member_who_leaves_is_dropped_and_the_keys_rotate() {
    let mut world = World::new();
    let (mut alice, mut bob, mut carol, group) = crew(&mut world);
    let convo = group.conversation();
    say(&mut alice, &convo, "hi");
    say(&mut bob, &convo, "bye soon");
    receive(&mut alice);
    receive(&mut bob);
    receive(&mut carol);
    assert!(inbound(&alice, &group, "bob").is_some());

    run(bob.leave_group(&group.id())).unwrap();
    let left = known(&bob, &group);
    assert!(!left.active);
    assert_eq!(left.members, names(&["alice", "carol"]));
    assert!(inbound(&bob, &group, "alice").is_none());
    assert!(holders(&bob, &group).is_none());

    assert_eq!(
        summary(&receive(&mut alice)),
        ["message bob: left the group", "group crew [alice carol]"]
    );
    assert!(inbound(&alice, &group, "bob").is_none());
    assert!(holders(&alice, &group).is_none());
    say(&mut alice, &convo, "just us");
    assert_eq!(holders(&alice, &group), Some(set(&["carol.1"])));
    assert_eq!(world.server.waiting("bob", 1), 0);
    assert_eq!(
        summary(&receive(&mut carol)),
        [
            "message bob: left the group",
            "group crew [alice carol]",
            "message alice: just us"
        ]
    );
    let refused = run(bob.send(&convo, text("?"), None));
    assert!(
        matches!(refused, Err(DeviceError::NotAMember(_))),
        "{refused:?}"
    );
}

#[test]
fn a_device_gone_from_a_member_makes_the_key_rotate() {
    let mut world = World::new();
    let mut alice = world.device("alice", 1);
    let mut bob = world.device("bob", 1);
    let mut bob2 = world.device("bob", 2);
    let group = run(alice.create_group("pair", &names(&["bob"]))).unwrap();
    receive(&mut bob);
    receive(&mut bob2);
    let convo = group.conversation();
    say(&mut alice, &convo, "one");
    assert_eq!(summary(&receive(&mut bob2)), ["message alice: one"]);
    receive(&mut bob);
    assert_eq!(holders(&alice, &group), Some(set(&["bob.1", "bob.2"])));
    let mut kept = inbound(&bob2, &group, "alice").unwrap();

    // Bob's second device is removed (perhaps stolen); alice learns it
    // from the server's answer to her next send.
    world.server.remove_device("bob", 2);
    say(&mut alice, &convo, "two");
    assert_eq!(holders(&alice, &group), Some(set(&["bob.1"])));
    let to_bob = take(&bob);
    assert_eq!(to_bob.len(), 2, "a new sender key, then the message");
    assert!(
        kept.verify_and_decrypt(&group_message(&bob, &to_bob[1]))
            .is_err()
    );
    let events: Vec<Event> = to_bob.iter().flat_map(|e| process(&mut bob, e)).collect();
    assert_eq!(summary(&events), ["message alice: two"]);
}

#[test]
fn a_session_reset_makes_us_give_our_key_again() {
    let mut world = World::new();
    let (mut alice, mut bob, mut carol, group) = crew(&mut world);
    let convo = group.conversation();
    say(&mut alice, &convo, "one");
    receive(&mut bob);
    receive(&mut carol);
    assert_eq!(holders(&alice, &group), Some(set(&["bob.1", "carol.1"])));

    // Bob could not read something of alice's and reset their session.
    process(&mut bob, &garbage(1, "alice", 1));
    run(bob.reset_session("alice")).unwrap();
    assert!(receive(&mut alice).is_empty());
    assert_eq!(holders(&alice, &group), Some(set(&["carol.1"])));

    say(&mut alice, &convo, "two");
    // The same key, given again to bob only.
    assert_eq!(world.server.waiting("carol", 1), 1);
    assert_eq!(world.server.waiting("bob", 1), 2);
    assert_eq!(summary(&receive(&mut bob)), ["message alice: two"]);
    assert_eq!(summary(&receive(&mut carol)), ["message alice: two"]);
    assert_eq!(holders(&alice, &group), Some(set(&["bob.1", "carol.1"])));
}

#[test]
fn an_edit_from_another_member_is_ignored() {
    let mut world = World::new();
    let (mut alice, mut bob, mut carol, group) = crew(&mut world);
    let convo = group.conversation();
    let id = say(&mut bob, &convo, "plan A");
    receive(&mut alice);
    receive(&mut carol);
    let edit = |body: &str| {
        Body::Edit(content::Edit {
            message_id: id.clone(),
            body: body.to_owned(),
        })
    };

    run(carol.send(&convo, edit("plan C"), None)).unwrap();
    assert!(receive(&mut alice).is_empty());
    assert_eq!(alice.storage().message(&id).unwrap().message.body, "plan A");

    run(bob.send(&convo, edit("plan B"), None)).unwrap();
    assert_eq!(summary(&receive(&mut alice)), ["updated edited"]);
    assert_eq!(alice.storage().message(&id).unwrap().message.body, "plan B");
}

/// A control message for `group_id` from mallory: she is in, alice out.
fn control(n: u8, group_id: &[u8], members: &[&str]) -> content::Content {
    content::Content {
        message_id: vec![n; 16],
        group_id: group_id.to_vec(),
        body: Some(Body::GroupControl(GroupControl {
            action: Action::Update.into(),
            name: "pwned".into(),
            members: names(members),
            revision: 9,
            added: names(&["mallory"]),
            removed: names(&["alice"]),
        })),
        ..Default::default()
    }
}

#[test]
fn control_messages_and_keys_from_outside_the_group_are_ignored() {
    let mut world = World::new();
    let (_alice, mut bob, _carol, group) = crew(&mut world);
    let mut mallory = world.device("mallory", 1);
    let before = known(&bob, &group);
    // She is no member of the group she names.
    let forged = control(1, &group.group_id, &["bob", "carol", "mallory"]);
    run(mallory.send_pairwise(&names(&["bob"]), &forged)).unwrap();
    assert!(receive(&mut bob).is_empty());
    assert_eq!(known(&bob, &group), before);

    // Nor can she hand out a sender key for it.
    let distribution = fresh_sender_key(&mallory, &group.group_id);
    give_key(&mut mallory, "bob", &group, distribution);
    assert!(receive(&mut bob).is_empty());
    assert!(inbound(&bob, &group, "mallory").is_none());

    // A new group must name bob, and have a proper id.
    let elsewhere = control(2, &[7; 16], &["carol", "mallory"]);
    let short = control(3, &[7; 15], &["bob", "mallory"]);
    run(mallory.send_pairwise(&names(&["bob"]), &elsewhere)).unwrap();
    run(mallory.send_pairwise(&names(&["bob"]), &short)).unwrap();
    assert!(receive(&mut bob).is_empty());
    assert_eq!(bob.storage().groups.borrow().len(), 1);
    // Anyone may start a group with bob, though.
    let invitation = control(4, &[8; 16], &["bob", "mallory"]);
    run(mallory.send_pairwise(&names(&["bob"]), &invitation)).unwrap();
    assert_eq!(
        summary(&receive(&mut bob)),
        [
            "message mallory: group \"pwned\": bob, mallory",
            "group pwned [bob mallory]"
        ]
    );
    assert_eq!(bob.storage().groups.borrow().len(), 2);
}

#[test]
fn a_group_message_naming_another_group_is_refused() {
    let mut world = World::new();
    let (mut alice, mut bob, _carol, group) = crew(&mut world);
    let other = run(alice.create_group("other", &names(&["bob"]))).unwrap();
    receive(&mut bob);
    say(&mut alice, &group.conversation(), "hi");
    receive(&mut bob);

    // Alice's key of `group`, over a content that says `other`.
    let (mut outbound, _) = run(alice.storage().outbound_group_session(&group.group_id))
        .unwrap()
        .unwrap();
    let mut inner = alice.new_content(text("misfiled"));
    inner.group_id = other.group_id.clone();
    let message = outbound.encrypt(&inner.encode_to_vec()).unwrap();
    let envelope = Envelope {
        id: vec![0xab; 16],
        sender: "alice".into(),
        sender_device: 1,
        server_timestamp: 0,
        content: content::Transport {
            body: Some(transport::Body::Group(content::GroupCiphertext {
                group_id: group.group_id,
                message,
            })),
        }
        .encode_to_vec(),
    };
    assert_eq!(
        summary(&process(&mut bob, &envelope)),
        ["unreadable from alice.1"]
    );
    assert!(
        !bob.storage()
            .bodies(&other.conversation())
            .contains(&"misfiled".to_owned())
    );
}

#[test]
fn our_other_device_follows_the_group_and_sees_our_messages_as_sent() {
    let mut world = World::new();
    let mut alice = world.device("alice", 1);
    let mut alice2 = world.device("alice", 2);
    let mut bob = world.device("bob", 1);
    let group = run(alice.create_group("pair", &names(&["bob"]))).unwrap();
    assert_eq!(
        summary(&receive(&mut alice2)),
        [
            "message alice: group \"pair\": alice, bob",
            "group pair [alice bob]"
        ]
    );
    receive(&mut bob);
    let convo = group.conversation();

    say(&mut alice, &convo, "from one");
    let events = receive(&mut alice2);
    let entry = only_message(&events);
    assert!(entry.outgoing);
    assert_eq!(
        (entry.sender_device, entry.conversation.clone()),
        (1, convo.clone())
    );
    assert_eq!(summary(&receive(&mut bob)), ["message alice: from one"]);
    assert_eq!(holders(&alice, &group), Some(set(&["alice.2", "bob.1"])));

    say(&mut alice2, &convo, "from two");
    let events = receive(&mut alice);
    assert!(only_message(&events).outgoing);
    // Bob meets alice's second device only now: a device added to a
    // known account changes the safety number.
    assert_eq!(
        summary(&receive(&mut bob)),
        ["identity changed alice", "message alice: from two"]
    );
}
