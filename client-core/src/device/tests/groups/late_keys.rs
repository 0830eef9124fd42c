//! Sender keys that come late: a device linked after a group was made
//! learns the group and reads it, a group message that arrives before its
//! sender's key waits for it (and asks for it), and key requests are
//! answered only for members, once per interval.

use super::*;
use crate::clock::FixedClock;
use crate::device::{HELD_FOR_MILLIS, KEY_REQUEST_INTERVAL_MILLIS};

/// A key request for `group` from `from` to `to`'s account.
fn ask(from: &mut TestDevice, to: &str, group: &GroupRecord) {
    let mut request = from.new_content(Body::SenderKeyRequest(content::SenderKeyRequest {}));
    request.group_id = group.group_id.clone();
    run(from.send_pairwise(&[to.to_owned()], &request)).unwrap();
}

#[test]
fn a_device_linked_after_the_group_was_made_learns_it_from_the_next_message() {
    let mut world = World::new();
    let (mut alice, mut bob, mut carol, group) = crew(&mut world);
    let convo = group.conversation();
    say(&mut bob, &convo, "before");
    receive(&mut alice);
    receive(&mut carol);

    let mut alice2 = world.device("alice", 2);
    say(&mut bob, &convo, "after");
    let events = receive(&mut alice2);
    assert_eq!(
        summary(&events),
        ["group crew [alice bob carol]", "message bob: after"]
    );
    assert_eq!(known(&alice2, &group).members, group.members);
    assert!(known(&alice2, &group).active);
    // And it writes to the group like any member device.
    say(&mut alice2, &convo, "from two");
    assert!(
        summary(&receive(&mut bob)).contains(&"message alice: from two".to_owned()),
        "bob reads alice's new device"
    );
    assert!(summary(&receive(&mut carol)).contains(&"message alice: from two".to_owned()));
}

#[test]
fn a_linked_device_asks_its_account_for_the_groups_and_their_keys() {
    let mut world = World::new();
    let (mut alice, mut bob, _carol, group) = crew(&mut world);
    let quiet = run(alice.create_group("quiet", &names(&["bob"]))).unwrap();
    receive(&mut bob);
    let convo = group.conversation();
    say(&mut alice, &convo, "one");

    let mut alice2 = world.linked_device(&alice, 2);
    run(alice2.request_group_sync()).unwrap();
    alice.forget_own_devices();
    assert!(receive(&mut alice).is_empty());
    let events = receive(&mut alice2);
    let mut changed: Vec<String> = summary(&events);
    changed.sort();
    assert_eq!(
        changed,
        ["group crew [alice bob carol]", "group quiet [alice bob]"]
    );
    assert_eq!(known(&alice2, &quiet).members, names(&["alice", "bob"]));
    // Alice's key of crew came too (none of quiet: she never wrote there),
    // so her first device's next message reads as sent.
    assert!(inbound(&alice2, &group, "alice").is_some());
    assert!(inbound(&alice2, &quiet, "alice").is_none());
    say(&mut alice, &convo, "two");
    let events = receive(&mut alice2);
    assert!(only_message(&events).outgoing);
    // Asked again at once: not answered.
    run(alice2.request_group_sync()).unwrap();
    assert!(receive(&mut alice).is_empty());
    assert!(receive(&mut alice2).is_empty());
}

#[test]
fn a_device_none_of_ours_linked_is_not_given_our_groups() {
    let mut world = World::new();
    let (mut alice, _bob, _carol, group) = crew(&mut world);
    say(&mut alice, &group.conversation(), "one");
    // The server adds a device to alice's account, with no certificate.
    let mut planted = world.device("alice", 9);
    run(planted.request_group_sync()).unwrap();
    alice.forget_own_devices();
    assert!(receive(&mut alice).is_empty());
    assert!(summary(&receive(&mut planted)).is_empty());
    assert!(
        run(planted.storage().group(&group.group_id))
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_planted_device_cannot_vouch_for_the_next_one() {
    let mut world = World::new();
    let (mut alice, _bob, _carol, group) = crew(&mut world);
    say(&mut alice, &group.conversation(), "one");
    // The server plants a device, which alice's phone is warned of when
    // it first writes, then links another with it.
    let mut planted = world.device("alice", 9);
    say(&mut planted, &direct("bob"), "hello");
    alice.forget_own_devices();
    receive(&mut alice);
    let mut next = world.linked_device(&planted, 10);
    run(next.request_group_sync()).unwrap();
    alice.forget_own_devices();
    assert!(receive(&mut alice).is_empty());
    let got = summary(&receive(&mut next));
    assert!(got.is_empty(), "{got:?}");
    assert!(
        run(next.storage().group(&group.group_id))
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_sender_key_does_not_change_a_group_the_device_knows() {
    let mut world = World::new();
    let (mut alice, mut bob, _carol, group) = crew(&mut world);
    // Bob sends alice his key with a made-up state: eve added.
    let mut state = crate::device::held::group_state(&group);
    state.revision += 1;
    state.members.push("eve".to_owned());
    let mut key = bob.new_content(Body::SenderKey(content::SenderKey {
        distribution: Vec::new(),
        group: Some(state),
    }));
    key.group_id = group.group_id.clone();
    run(bob.send_pairwise(&names(&["alice"]), &key)).unwrap();
    receive(&mut alice);
    assert_eq!(known(&alice, &group).members, group.members);
}

#[test]
fn a_message_whose_key_was_lost_waits_asks_and_is_read_when_it_comes() {
    let mut world = World::new();
    let (mut alice, mut bob, mut carol, group) = crew(&mut world);
    let convo = group.conversation();
    say(&mut alice, &convo, "one");
    receive(&mut carol);
    // The key's envelope never reaches bob.
    let mut to_bob = take(&bob);
    assert_eq!(to_bob.len(), 2);
    let message = to_bob.pop().unwrap();
    assert_eq!(
        summary(&process(&mut bob, &message)),
        ["waiting for key from alice.1"]
    );
    assert_eq!(bob.storage().held.borrow().len(), 1);
    // Alice wrote on meanwhile: her key has moved past "one".
    say(&mut alice, &convo, "two");
    receive(&mut carol);
    // Bob asked her; her answer is the key as bob was first given it.
    assert_eq!(world.server.waiting("alice", 1), 1);
    assert!(receive(&mut alice).is_empty());
    let events = receive(&mut bob);
    assert_eq!(
        summary(&events),
        [
            "waiting for key from alice.1",
            "message alice: one",
            "message alice: two"
        ],
        "\"two\" came before the answer, and waited too"
    );
    assert!(bob.storage().held.borrow().is_empty());
    say(&mut alice, &convo, "three");
    assert_eq!(summary(&receive(&mut bob)), ["message alice: three"]);
}

#[test]
fn key_requests_are_answered_for_members_only_and_once_per_interval() {
    let mut world = World::new();
    let (mut alice, mut bob, _carol, group) = crew(&mut world);
    let mut dave = world.device("dave", 1);
    say(&mut alice, &group.conversation(), "one");
    receive(&mut bob);

    ask(&mut dave, "alice", &group);
    receive(&mut alice);
    assert_eq!(world.server.waiting("dave", 1), 0, "dave is no member");

    ask(&mut bob, "alice", &group);
    ask(&mut bob, "alice", &group);
    receive(&mut alice);
    assert_eq!(world.server.waiting("bob", 1), 1, "one answer");
    assert!(receive(&mut bob).is_empty(), "bob had the key already");

    alice.clock = FixedClock(NOW + KEY_REQUEST_INTERVAL_MILLIS);
    ask(&mut bob, "alice", &group);
    receive(&mut alice);
    assert_eq!(world.server.waiting("bob", 1), 1, "answered again later");
}

#[test]
fn a_message_whose_key_never_comes_is_reported_after_seven_days() {
    let mut world = World::new();
    let (mut alice, mut bob, _carol, group) = crew(&mut world);
    let convo = group.conversation();
    say(&mut alice, &convo, "one");
    say(&mut alice, &convo, "two");
    // The key's envelope never reaches bob, nor does any answer.
    let to_bob = take(&bob);
    assert_eq!(to_bob.len(), 3);
    assert_eq!(
        summary(&process(&mut bob, &to_bob[1])),
        ["waiting for key from alice.1"]
    );
    // A week later, the second message is delivered.
    bob.clock = FixedClock(NOW + HELD_FOR_MILLIS + 1);
    assert_eq!(
        summary(&process(&mut bob, &to_bob[2])),
        ["unreadable from alice.1", "waiting for key from alice.1"]
    );
    assert_eq!(bob.storage().held.borrow().len(), 1);
}

#[test]
fn a_group_we_left_holds_nothing() {
    let mut world = World::new();
    let (mut alice, mut bob, mut carol, group) = crew(&mut world);
    let convo = group.conversation();
    run(bob.leave_group(&group.id())).unwrap();
    receive(&mut alice);
    receive(&mut carol);
    say(&mut carol, &convo, "after");
    assert_eq!(world.server.waiting("bob", 1), 0);
    // Carol's message, as a server would hand it to bob unsealed.
    let for_alice = take(&alice).pop().unwrap();
    let replayed = Envelope {
        id: vec![0xcd; 16],
        sender: "carol".into(),
        sender_device: 1,
        server_timestamp: 0,
        content: content::Transport {
            body: Some(transport::Body::Group(content::GroupCiphertext {
                group_id: group.group_id,
                message: group_message(&alice, &for_alice),
            })),
        }
        .encode_to_vec(),
    };
    assert_eq!(
        summary(&process(&mut bob, &replayed)),
        ["unreadable from carol.1"]
    );
    assert!(bob.storage().held.borrow().is_empty());
    assert_eq!(world.server.waiting("carol", 1), 0, "nothing asked");
}
