//! Sender keys from other members: bound to the device that sent them,
//! refused (and reported) when they are not, or name a signing key another
//! member device holds, so no member can pass off another's messages as
//! its own.

use starling_crypto::group::{DistributionError, OutboundGroupSession, SenderKeyDistribution};

use super::*;
use crate::error::SenderKeyRefusal;

/// A fresh sender key of `device`'s identity for `group_id`, as the
/// distribution it would send.
pub(super) fn fresh_sender_key(device: &TestDevice, group_id: &[u8]) -> Vec<u8> {
    let identity = &device.account.identity;
    let mut rng = StdRng::seed_from_u64(99);
    let outbound = OutboundGroupSession::new(identity.public(), group_id, &mut rng).unwrap();
    outbound.distribution(identity).unwrap().to_bytes().to_vec()
}

/// `device`'s current sender key of `group`, as its distribution.
fn current_sender_key(device: &TestDevice, group: &GroupRecord) -> Vec<u8> {
    let (outbound, _) = run(device.storage().outbound_group_session(&group.group_id))
        .unwrap()
        .unwrap();
    outbound
        .distribution(&device.account.identity)
        .unwrap()
        .to_bytes()
        .to_vec()
}

/// A pairwise message giving `distribution` as a sender key of `group`.
pub(super) fn give_key(
    from: &mut TestDevice,
    to: &str,
    group: &GroupRecord,
    distribution: Vec<u8>,
) {
    let mut key = from.new_content(Body::SenderKey(content::SenderKey {
        distribution,
        group: None,
    }));
    key.group_id = group.group_id.clone();
    run(from.send_pairwise(&names(&[to]), &key)).unwrap();
}

/// A distribution is bound to its group: one naming another group is
/// refused, and reported.
#[test]
fn a_sender_key_of_another_group_is_not_stored() {
    let mut world = World::new();
    let (mut alice, mut bob, _carol, group) = crew(&mut world);
    let distribution = fresh_sender_key(&alice, &[5; 16]);
    assert_eq!(
        SenderKeyDistribution::from_bytes(&distribution)
            .unwrap()
            .group_id(),
        [5; 16]
    );
    give_key(&mut alice, "bob", &group, distribution);
    let events = receive(&mut bob);
    assert_eq!(summary(&events), ["refused key from alice.1"]);
    assert_eq!(refusal(&events), SenderKeyRefusal::WrongGroup.to_string());
    assert!(inbound(&bob, &group, "alice").is_none());
}

/// The reason of the one event, a refused sender key.
fn refusal(events: &[Event]) -> String {
    match events {
        [Event::SenderKeyRefused { reason, .. }] => reason.clone(),
        other => panic!("one refused key expected, got {:?}", summary(other)),
    }
}

/// Bob, a member, tries to pass alice's sender key off as his own with
/// carol, before and after carol has alice's, and then to send alice's
/// message as his.
#[test]
fn a_member_cannot_give_out_another_members_sender_key() {
    let mut world = World::new();
    let (mut alice, mut bob, mut carol, group) = crew(&mut world);
    let convo = group.conversation();
    say(&mut alice, &convo, "hi");
    receive(&mut bob);
    let alices_key = current_sender_key(&alice, &group);
    let mut from_alice = take(&carol);
    assert_eq!(from_alice.len(), 2);
    let alices_message = from_alice.pop().unwrap();

    // Before carol has alice's key: it is not bound to bob.
    give_key(&mut bob, "carol", &group, alices_key.clone());
    let events = receive(&mut carol);
    assert_eq!(summary(&events), ["refused key from bob.1"]);
    assert_eq!(
        refusal(&events),
        SenderKeyRefusal::NotBound(DistributionError::NotSignedBySender).to_string()
    );
    assert!(inbound(&carol, &group, "bob").is_none());
    // Alice's own key and message then arrive, and are hers.
    for envelope in from_alice.iter().chain([&alices_message]) {
        let events = process(&mut carol, envelope);
        if !events.is_empty() {
            assert_eq!(summary(&events), ["message alice: hi"]);
        }
    }
    assert!(inbound(&carol, &group, "alice").is_some());

    // After: the signing key is alice's already.
    give_key(&mut bob, "carol", &group, alices_key);
    let events = receive(&mut carol);
    assert_eq!(summary(&events), ["refused key from bob.1"]);
    assert_eq!(
        refusal(&events),
        SenderKeyRefusal::KeyOfAnotherSender {
            holder: "alice".into(),
            device: 1,
        }
        .to_string()
    );
    assert!(inbound(&carol, &group, "bob").is_none());

    // Alice's message, sent again with bob named in the server's header:
    // the sealed certificate, not the header, says who sent it, and a
    // replay of alice's message is unreadable.
    let resent = Envelope {
        id: vec![0xb0; 16],
        sender: "bob".into(),
        sender_device: 1,
        ..alices_message
    };
    assert_eq!(
        summary(&process(&mut carol, &resent)),
        ["unreadable from alice.1"]
    );
    let bodies = carol.storage().bodies(&convo);
    assert_eq!(bodies.iter().filter(|b| *b == "hi").count(), 1);
}
