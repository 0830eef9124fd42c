//! Sealed sender end to end: the server double stores sealed envelopes
//! without a sender, and a receiver believes a sender only from a
//! certificate it checks. Each refused certificate is reported as
//! [`Event::SealedSenderRejected`], changes no session, and the sender's
//! next genuine message still decrypts.

use rand::rngs::OsRng;
use starling_crypto::IdentityKeyPair;
use starling_crypto::sealed::{self, SenderCertificate, ServerSigningKey};
use starling_protocol::frames::Envelope;

use super::{NOW, TestDevice, World, direct, process, receive, say, summary, take};
use crate::testing::{CERTIFICATE_TTL, run};

/// The inner transport bytes of a genuine envelope for `recipient`.
fn inner_of(recipient: &TestDevice, envelope: &Envelope) -> Vec<u8> {
    let authority = &recipient.transport().server().authority;
    authority
        .unseal(&recipient.account.identity, &envelope.content)
        .inner
        .to_vec()
}

/// The envelope again under another id, its inner bytes sealed by
/// `sealer` under `certificate`.
fn resealed(
    recipient: &TestDevice,
    genuine: &Envelope,
    sealer: &IdentityKeyPair,
    certificate: &SenderCertificate,
) -> Envelope {
    let inner = inner_of(recipient, genuine);
    let recipient_key = recipient.account.identity.public();
    let content =
        sealed::seal_single(sealer, recipient_key, certificate, &inner, &mut OsRng).expect("seals");
    Envelope {
        id: vec![0x5e; 16],
        content,
        ..genuine.clone()
    }
}

/// A valid certificate for `device` from the world's server.
fn certificate_for(
    world: &World,
    device: &TestDevice,
    identity: &IdentityKeyPair,
) -> SenderCertificate {
    world.server.authority.issue(
        device.username(),
        device.device_id(),
        identity.public(),
        NOW.unsigned_abs() + CERTIFICATE_TTL,
    )
}

/// Alice and bob with a session both have used, and alice's next message
/// to bob, not yet delivered.
fn pair(world: &mut World) -> (TestDevice, TestDevice, Envelope) {
    let mut alice = world.device("alice", 1);
    let mut bob = world.device("bob", 1);
    say(&mut alice, &direct("bob"), "one");
    assert_eq!(summary(&receive(&mut bob)), ["message alice: one"]);
    say(&mut bob, &direct("alice"), "ok");
    assert_eq!(summary(&receive(&mut alice)), ["message bob: ok"]);
    say(&mut alice, &direct("bob"), "two");
    let mut waiting = take(&bob);
    assert_eq!(waiting.len(), 1);
    (alice, bob, waiting.remove(0))
}

/// Bob refuses `forged` for `reason`, then reads the genuine message.
fn refused_then_read(bob: &mut TestDevice, forged: &Envelope, genuine: &Envelope, expected: &str) {
    assert_eq!(summary(&process(bob, forged)), [expected]);
    assert_eq!(summary(&process(bob, genuine)), ["message alice: two"]);
}

#[test]
fn the_server_stores_sealed_envelopes_without_a_sender() {
    let mut world = World::new();
    let (mut alice, bob, genuine) = pair(&mut world);
    assert!(sealed::is_sealed(&genuine.content));
    assert!(genuine.sender.is_empty());
    assert_eq!(genuine.sender_device, 0);
    assert_eq!(
        genuine.content.len(),
        1024,
        "a short text is padded to the smallest bucket"
    );
    say(&mut alice, &direct("bob"), &"y".repeat(100));
    assert_eq!(take(&bob)[0].content.len(), 1024, "as is a longer one");
}

#[test]
fn a_forged_certificate_is_refused_and_the_session_stays_usable() {
    let mut world = World::new();
    let (alice, mut bob, genuine) = pair(&mut world);
    let mut bytes = certificate_for(&world, &alice, &alice.account.identity).to_bytes();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let forged_certificate = SenderCertificate::from_bytes(&bytes).unwrap();
    let forged = resealed(&bob, &genuine, &alice.account.identity, &forged_certificate);
    refused_then_read(
        &mut bob,
        &forged,
        &genuine,
        "sealed sender bad_signature from alice.1",
    );
}

#[test]
fn an_expired_certificate_is_refused_and_the_session_stays_usable() {
    let mut world = World::new();
    let (alice, mut bob, genuine) = pair(&mut world);
    let expired = world.server.authority.issue(
        "alice",
        1,
        alice.account.identity.public(),
        NOW.unsigned_abs() - 1,
    );
    let forged = resealed(&bob, &genuine, &alice.account.identity, &expired);
    refused_then_read(
        &mut bob,
        &forged,
        &genuine,
        "sealed sender expired from alice.1",
    );
}

#[test]
fn a_certificate_of_an_unknown_key_is_refused_and_the_session_stays_usable() {
    let mut world = World::new();
    let (alice, mut bob, genuine) = pair(&mut world);
    let stranger = ServerSigningKey::generate(0, &mut OsRng)
        .successor(1, &mut OsRng)
        .unwrap();
    let expires = NOW.unsigned_abs() + CERTIFICATE_TTL;
    let unknown = SenderCertificate::issue(
        &stranger,
        "alice",
        1,
        alice.account.identity.public(),
        expires,
    )
    .unwrap();
    let forged = resealed(&bob, &genuine, &alice.account.identity, &unknown);
    refused_then_read(
        &mut bob,
        &forged,
        &genuine,
        "sealed sender unknown_signer from alice.1",
    );
}

#[test]
fn a_certificate_for_another_identity_is_refused_and_the_session_stays_usable() {
    let mut world = World::new();
    let (alice, mut bob, genuine) = pair(&mut world);
    // The server certifies a key of its own as alice's device, and seals
    // alice's message with it: the message decrypts under alice's real
    // identity, not the certified one.
    let impostor = IdentityKeyPair::generate(&mut OsRng);
    let certificate = certificate_for(&world, &alice, &impostor);
    let forged = resealed(&bob, &genuine, &impostor, &certificate);
    refused_then_read(
        &mut bob,
        &forged,
        &genuine,
        "sealed sender identity_mismatch from alice.1",
    );
    assert!(
        !summary(&receive(&mut bob))
            .iter()
            .any(|e| e.starts_with("identity changed"))
    );
}

#[test]
fn a_certificate_copied_onto_another_key_is_refused() {
    let mut world = World::new();
    let (alice, mut bob, genuine) = pair(&mut world);
    let impostor = IdentityKeyPair::generate(&mut OsRng);
    let copied = certificate_for(&world, &alice, &alice.account.identity);
    let forged = resealed(&bob, &genuine, &impostor, &copied);
    refused_then_read(
        &mut bob,
        &forged,
        &genuine,
        "sealed sender static_key_mismatch from .0",
    );
}

#[test]
fn a_certificate_naming_the_receiving_device_is_refused() {
    let mut world = World::new();
    let (_alice, mut bob, genuine) = pair(&mut world);
    let own = certificate_for(&world, &bob, &bob.account.identity);
    let forged = resealed(&bob, &genuine, &bob.account.identity, &own);
    refused_then_read(
        &mut bob,
        &forged,
        &genuine,
        "sealed sender self_send from bob.1",
    );
}

#[test]
fn a_group_message_under_another_identity_is_refused() {
    let mut world = World::new();
    let mut alice = world.device("alice", 1);
    let mut bob = world.device("bob", 1);
    let group = run(alice.create_group("crew", &["bob".to_owned()])).unwrap();
    receive(&mut bob);
    say(&mut alice, &group.conversation(), "two");
    let mut waiting = take(&bob);
    let genuine = waiting.pop().unwrap();
    for envelope in &waiting {
        process(&mut bob, envelope);
    }
    let impostor = IdentityKeyPair::generate(&mut OsRng);
    let certificate = certificate_for(&world, &alice, &impostor);
    let forged = resealed(&bob, &genuine, &impostor, &certificate);
    assert_eq!(
        summary(&process(&mut bob, &forged)),
        ["sealed sender identity_mismatch from alice.1"]
    );
    assert_eq!(
        summary(&process(&mut bob, &genuine)),
        ["message alice: two"]
    );
}

#[test]
fn a_certificate_the_server_issues_for_someone_else_is_not_sent_with() {
    let mut world = World::new();
    let mut alice = world.device("alice", 1);
    let _bob = world.device("bob", 1);
    // The server holds another identity for alice's device than hers.
    let impostor = IdentityKeyPair::generate(&mut OsRng);
    world.server.register("alice", 1, impostor.public().clone());
    let error = run(alice.send(&direct("bob"), super::text("hi"), None)).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("sender certificate this device refuses"),
        "{error}"
    );
}

#[test]
fn a_sealed_envelope_that_does_not_open_names_nobody_whatever_the_header_says() {
    let mut world = World::new();
    let (_alice, mut bob, genuine) = pair(&mut world);
    let mut spoofed = genuine.clone();
    spoofed.id = vec![0x5f; 16];
    spoofed.sender = "carol".into();
    spoofed.sender_device = 1;
    spoofed.content[40] ^= 1;
    assert_eq!(
        summary(&process(&mut bob, &spoofed)),
        ["unreadable from .0"]
    );
    assert_eq!(
        summary(&process(&mut bob, &genuine)),
        ["message alice: two"]
    );
}

#[test]
fn a_sealed_envelope_without_a_server_time_is_not_checked_against_time_zero() {
    let mut world = World::new();
    let (alice, mut bob, genuine) = pair(&mut world);
    // An expired certificate would pass at time 0.
    let expired = world.server.authority.issue(
        "alice",
        1,
        alice.account.identity.public(),
        NOW.unsigned_abs() - 1,
    );
    let mut forged = resealed(&bob, &genuine, &alice.account.identity, &expired);
    forged.server_timestamp = 0;
    assert_eq!(summary(&process(&mut bob, &forged)), ["unreadable from .0"]);
    assert_eq!(
        summary(&process(&mut bob, &genuine)),
        ["message alice: two"]
    );
}

#[test]
fn once_a_contact_shared_their_profile_key_we_send_without_our_credential() {
    let mut world = World::new();
    let (mut alice, mut bob, genuine) = pair(&mut world);
    assert_eq!(
        summary(&process(&mut bob, &genuine)),
        ["message alice: two"]
    );
    // Bob's reply carried his profile key: alice now holds it, and each
    // side's key is the one the server checks.
    assert!(alice.storage().profile_keys.borrow().contains_key("bob"));
    assert!(bob.storage().profile_keys.borrow().contains_key("alice"));
    let before = world.server.unidentified_envelopes();
    say(&mut alice, &direct("bob"), "three");
    assert_eq!(world.server.unidentified_envelopes(), before + 1);
    let waiting = take(&bob);
    assert!(waiting.iter().all(|e| e.sender.is_empty()));
    let events: Vec<_> = waiting.iter().flat_map(|e| process(&mut bob, e)).collect();
    assert_eq!(summary(&events), ["message alice: three"]);
}

#[test]
fn a_refused_access_key_is_forgotten_and_the_message_still_arrives() {
    let mut world = World::new();
    let (mut alice, mut bob, genuine) = pair(&mut world);
    process(&mut bob, &genuine);
    assert!(alice.storage().profile_keys.borrow().contains_key("bob"));
    // Bob's account key changed on the server (another device of his
    // set a new one): alice's copy is refused.
    world.server.set_access_key("bob", [0xee; 16]);
    let before = world.server.unidentified_envelopes();
    say(&mut alice, &direct("bob"), "three");
    assert_eq!(world.server.unidentified_envelopes(), before);
    assert!(!alice.storage().profile_keys.borrow().contains_key("bob"));
    assert_eq!(summary(&receive(&mut bob)), ["message alice: three"]);
}

#[test]
fn a_device_linked_later_adopts_the_account_s_profile_key() {
    let mut world = World::new();
    let mut alice = world.device("alice", 1);
    let mut bob = world.device("bob", 1);
    say(&mut alice, &direct("bob"), "one");
    receive(&mut bob);
    let mut alice2 = world.device("alice", 2);
    alice.forget_own_devices();
    say(&mut alice, &direct("bob"), "two");
    receive(&mut alice2);
    let first = alice.storage().sealed.borrow().profile_key.clone();
    assert!(first.is_some());
    assert_eq!(alice2.storage().sealed.borrow().profile_key, first);
}

#[test]
fn an_account_open_to_strangers_takes_a_stale_access_key() {
    let mut world = World::new();
    let (mut alice, mut bob, genuine) = pair(&mut world);
    process(&mut bob, &genuine);
    run(bob.set_sealed_from_strangers(true)).expect("bob opens to strangers");
    // Bob's key changes again, but his account now takes any key: alice's
    // stale one is not refused, so she never falls back to her credential.
    world.server.set_access_key("bob", [0xee; 16]);
    let before = world.server.unidentified_envelopes();
    say(&mut alice, &direct("bob"), "three");
    assert_eq!(world.server.unidentified_envelopes(), before + 1);
    assert!(alice.storage().profile_keys.borrow().contains_key("bob"));
    assert_eq!(summary(&receive(&mut bob)), ["message alice: three"]);
    // Closed again: the stale key is refused and alice falls back.
    run(bob.set_sealed_from_strangers(false)).expect("bob closes");
    world.server.set_access_key("bob", [0xee; 16]);
    let before = world.server.unidentified_envelopes();
    say(&mut alice, &direct("bob"), "four");
    assert_eq!(world.server.unidentified_envelopes(), before);
    assert_eq!(summary(&receive(&mut bob)), ["message alice: four"]);
}

#[test]
fn a_lost_answer_to_the_first_access_key_leaves_no_orphan_key() {
    let mut world = World::new();
    let mut alice = world.device("alice", 1);
    world.server.lose_next_access_answer();
    // The server took alice's key, but she never heard so.
    assert!(run(alice.profile_key()).is_err());
    let held = world
        .server
        .access_key("alice")
        .expect("the server took it");
    let saved = alice.storage().sealed.borrow().profile_key.clone();
    assert!(saved.is_some(), "the key was saved before it was offered");
    // Asking again offers the same key, which the server takes again.
    let key = run(alice.profile_key())
        .expect("the retry is answered")
        .expect("alice has the account's key");
    assert_eq!(sealed::access_key(&key), held);
    assert_eq!(world.server.access_key("alice"), Some(held));
    assert!(!alice.storage().sealed.borrow().profile_key_pending);
}
