//! Pairwise sessions across the public API: setup, ordering, limits, and
//! the security properties SPEC.md §11 claims (forward secrecy,
//! post-compromise security, replay and tamper rejection).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Device, FULL, Publish, established, rng, wire};
use rand::seq::SliceRandom;
use starling_crypto::ratchet::{
    CiphertextMessage, DecryptError, MAX_MESSAGE_GAP, PeerSessions, Session, SessionSetupError,
};
use starling_crypto::{IdentityKeyPair, PreKeyBundle, PreKeyStore};

#[test]
fn first_messages_are_prekey_messages_until_a_reply() {
    let mut rng = rng(1);
    let mut alice = Device::new(&mut rng, FULL);
    let mut bob = Device::new(&mut rng, FULL);
    alice.initiate(&bob, &mut rng);
    let m1 = alice.send(b"one");
    let m2 = alice.send(b"two");
    assert!(CiphertextMessage::from_bytes(&m1).unwrap().is_prekey());
    assert!(CiphertextMessage::from_bytes(&m2).unwrap().is_prekey());
    let received = bob.receive(&m1, &mut rng).unwrap();
    assert!(received.new_session);
    assert_eq!(received.sender, *alice.identity.public());
    // A later prekey message of the same session goes to that session.
    let received = bob.receive(&m2, &mut rng).unwrap();
    assert!(!received.new_session);
    assert_eq!(&received.plaintext[..], b"two");
    assert_eq!(bob.sessions.len(), 1);

    let reply = bob.send(b"three");
    assert!(!CiphertextMessage::from_bytes(&reply).unwrap().is_prekey());
    alice.receive(&reply, &mut rng).unwrap();
    let m4 = alice.send(b"four");
    assert!(!CiphertextMessage::from_bytes(&m4).unwrap().is_prekey());
    assert_eq!(&bob.receive(&m4, &mut rng).unwrap().plaintext[..], b"four");
    assert!(bob.sessions.active().unwrap().is_post_quantum());
}

#[test]
fn a_bundle_without_a_kem_prekey_is_refused() {
    let mut rng = rng(2);
    let publish = Publish {
        one_time: true,
        kem: false,
    };
    let alice = Device::new(&mut rng, FULL);
    let bob = Device::new(&mut rng, publish);
    let bundle = bob.bundle();
    assert!(!bundle.is_post_quantum());
    let mut sessions = PeerSessions::new();
    let refused = sessions.initiate(&alice.identity, &bundle, &mut rng);
    assert_eq!(refused, Err(SessionSetupError::MissingKemPreKey));
    assert!(sessions.is_empty());
    // The error names the likely cause for the person who sees it.
    let text = SessionSetupError::MissingKemPreKey.to_string();
    assert!(
        text.contains("ML-KEM") && text.contains("downgrade"),
        "{text}"
    );
}

#[test]
fn a_classical_initiation_is_refused() {
    // A genuine X3DH initiation, made by a release that still set up
    // classical sessions, to a device publishing no ML-KEM prekeys.
    let mut rng = rng(0x5833_4448);
    let classical = Publish {
        one_time: false,
        kem: false,
    };
    let _carol = Device::new(&mut rng, classical);
    let mut dave = Device::new(&mut rng, classical);
    let hex = include_str!("vectors/x3dh_initiation.hex").trim();
    let initiation = hex::decode(hex).unwrap();
    assert_eq!(
        dave.receive(&initiation, &mut rng).unwrap_err(),
        DecryptError::Setup(SessionSetupError::ClassicalInitiation)
    );
    assert!(dave.sessions.is_empty());
}

#[test]
fn conversation_both_ways_with_many_ratchet_steps() {
    let mut rng = rng(3);
    let (mut alice, mut bob) = established(&mut rng, FULL);
    for round in 0..50u32 {
        let burst = round % 4 + 1;
        for i in 0..burst {
            let text = format!("a{round}.{i}");
            let m = alice.send(text.as_bytes());
            assert_eq!(
                &bob.receive(&m, &mut rng).unwrap().plaintext[..],
                text.as_bytes()
            );
        }
        let text = format!("b{round}");
        let m = bob.send(text.as_bytes());
        assert_eq!(
            &alice.receive(&m, &mut rng).unwrap().plaintext[..],
            text.as_bytes()
        );
    }
}

#[test]
fn out_of_order_thousand_messages_decrypt_exactly_once() {
    let mut rng = rng(4);
    let (mut alice, mut bob) = established(&mut rng, FULL);
    let mut messages: Vec<(u32, Vec<u8>)> = (0..1000u32)
        .map(|i| (i, alice.send(&i.to_be_bytes())))
        .collect();
    messages.shuffle(&mut rng);
    for (i, bytes) in &messages {
        let received = bob.receive(bytes, &mut rng).unwrap();
        assert_eq!(&received.plaintext[..], &i.to_be_bytes());
    }
    for (_, bytes) in &messages {
        assert!(matches!(
            bob.receive(bytes, &mut rng),
            Err(DecryptError::DuplicateOrExpired { .. })
        ));
    }
    // Still a working session in both directions.
    let m = bob.send(b"after");
    assert_eq!(
        &alice.receive(&m, &mut rng).unwrap().plaintext[..],
        b"after"
    );
}

#[test]
fn out_of_order_across_ratchet_steps() {
    let mut rng = rng(5);
    let (mut alice, mut bob) = established(&mut rng, FULL);
    let early: Vec<Vec<u8>> = (0..3).map(|i| alice.send(&[i])).collect();
    bob.receive(&early[2], &mut rng).unwrap();
    let reply = bob.send(b"r");
    alice.receive(&reply, &mut rng).unwrap();
    let late = alice.send(b"late");
    // The new chain's message first, then the old chain's stragglers.
    assert_eq!(
        &bob.receive(&late, &mut rng).unwrap().plaintext[..],
        b"late"
    );
    assert_eq!(
        &bob.receive(&early[0], &mut rng).unwrap().plaintext[..],
        &[0]
    );
    assert_eq!(
        &bob.receive(&early[1], &mut rng).unwrap().plaintext[..],
        &[1]
    );
}

#[test]
fn gap_past_limit_fails_and_session_still_works() {
    let mut rng = rng(6);
    let (mut alice, mut bob) = established(&mut rng, FULL);
    let messages: Vec<Vec<u8>> = (0..=MAX_MESSAGE_GAP + 1)
        .map(|i| alice.send(&i.to_be_bytes()))
        .collect();
    let last = messages.last().unwrap();
    assert!(matches!(
        bob.receive(last, &mut rng),
        Err(DecryptError::TooFarAhead { .. })
    ));
    // Exactly at the limit is accepted.
    let at_limit = &messages[MAX_MESSAGE_GAP as usize];
    bob.receive(at_limit, &mut rng).unwrap();
    bob.receive(&messages[0], &mut rng).unwrap();
    bob.receive(last, &mut rng).unwrap();
    let m = bob.send(b"still here");
    assert_eq!(
        &alice.receive(&m, &mut rng).unwrap().plaintext[..],
        b"still here"
    );
}

#[test]
fn replayed_message_is_rejected() {
    let mut rng = rng(7);
    let (mut alice, mut bob) = established(&mut rng, FULL);
    let m = alice.send(b"once");
    bob.receive(&m, &mut rng).unwrap();
    assert_eq!(
        bob.receive(&m, &mut rng).unwrap_err(),
        DecryptError::DuplicateOrExpired { counter: 0 }
    );
}

#[test]
fn replayed_initiation_is_rejected() {
    for one_time in [true, false] {
        let mut rng = rng(8);
        let publish = Publish {
            one_time,
            kem: true,
        };
        let mut alice = Device::new(&mut rng, publish);
        let mut bob = Device::new(&mut rng, publish);
        alice.initiate(&bob, &mut rng);
        let first = alice.send(b"hi");
        bob.receive(&first, &mut rng).unwrap();
        // The attacker replays the initiation to a device that has lost the
        // session (or to a fresh session list): the prekeys refuse it.
        let CiphertextMessage::PreKey(initiation) = CiphertextMessage::from_bytes(&first).unwrap()
        else {
            panic!("expected a prekey message");
        };
        let error =
            Session::accept(&bob.identity, &mut bob.prekeys, &initiation, &mut rng).unwrap_err();
        if one_time {
            assert!(matches!(error, SessionSetupError::UnknownOneTimePreKey(_)));
        } else {
            assert_eq!(error, SessionSetupError::ReplayedInitiation);
        }
        // Within the existing session it is a duplicate.
        assert!(matches!(
            bob.receive(&first, &mut rng),
            Err(DecryptError::DuplicateOrExpired { .. })
        ));
    }
}

#[test]
fn failed_initiation_burns_no_prekey() {
    let mut rng = rng(9);
    let mut alice = Device::new(&mut rng, FULL);
    let mut bob = Device::new(&mut rng, FULL);
    alice.initiate(&bob, &mut rng);
    let first = alice.send(b"hi");
    let mut tampered: wire::CiphertextMessage = wire::decode(&first);
    let inner = tampered.prekey.as_mut().unwrap().message.as_mut().unwrap();
    inner.ciphertext[0] ^= 1;
    let before = bob.prekeys.one_time_prekey_count();
    assert_eq!(
        bob.receive(&wire::encode(&tampered), &mut rng).unwrap_err(),
        DecryptError::Setup(SessionSetupError::FirstMessageRejected)
    );
    assert_eq!(bob.prekeys.one_time_prekey_count(), before);
    assert!(bob.sessions.is_empty());
    assert_eq!(&bob.receive(&first, &mut rng).unwrap().plaintext[..], b"hi");
    assert_eq!(bob.prekeys.one_time_prekey_count(), before - 1);
}

#[test]
fn tampered_ciphertext_header_or_ad_is_rejected() {
    let mut rng = rng(10);
    let (mut alice, mut bob) = established(&mut rng, FULL);
    let original = alice.send(b"attack at dawn");
    let parsed: wire::CiphertextMessage = wire::decode(&original);
    let message = parsed.message.unwrap();
    let other_key = IdentityKeyPair::generate(&mut rng)
        .public()
        .dh_key_bytes()
        .to_vec();
    type Tamper = Box<dyn Fn(&mut wire::RatchetMessage)>;
    let tampers: Vec<(&str, Tamper)> = vec![
        ("ciphertext", Box::new(|m| m.ciphertext[3] ^= 0x80)),
        ("tag", Box::new(|m| *m.ciphertext.last_mut().unwrap() ^= 1)),
        ("counter", Box::new(|m| m.counter += 1)),
        ("previous counter", Box::new(|m| m.previous_counter += 1)),
        (
            "ratchet key",
            Box::new(move |m| m.ratchet_key = other_key.clone()),
        ),
        ("truncated", Box::new(|m| m.ciphertext.truncate(10))),
    ];
    for (what, tamper) in tampers {
        let mut forged = message.clone();
        tamper(&mut forged);
        let bytes = wire::encode(&wire::CiphertextMessage {
            prekey: None,
            message: Some(forged),
        });
        assert!(bob.receive(&bytes, &mut rng).is_err(), "{what} accepted");
    }
    // The associated data binds both identities: the same ciphertext in a
    // session between other identities with the same keys cannot open. A
    // prekey message claiming another initiator identity fails the same way.
    let mut carol = Device::new(&mut rng, FULL);
    carol.initiate(&bob, &mut rng);
    let from_carol = carol.send(b"hi");
    let mut forged: wire::CiphertextMessage = wire::decode(&from_carol);
    forged.prekey.as_mut().unwrap().initiator_identity =
        Some(wire::decode(&alice.identity.public().to_bytes()));
    let mut fresh_bob = PeerSessions::new();
    let message = CiphertextMessage::from_bytes(&wire::encode(&forged)).unwrap();
    assert!(
        fresh_bob
            .decrypt(&bob.identity, &mut bob.prekeys, &message, &mut rng)
            .is_err()
    );
    // Nothing was disturbed: the genuine message still decrypts.
    assert_eq!(
        &bob.receive(&original, &mut rng).unwrap().plaintext[..],
        b"attack at dawn"
    );
}

#[test]
fn non_contributory_key_is_rejected() {
    let mut rng = rng(11);
    let (mut alice, mut bob) = established(&mut rng, FULL);
    let m = alice.send(b"x");
    let mut parsed: wire::CiphertextMessage = wire::decode(&m);
    parsed.message.as_mut().unwrap().ratchet_key = vec![0; 32];
    assert_eq!(
        bob.receive(&wire::encode(&parsed), &mut rng).unwrap_err(),
        DecryptError::NonContributoryKey
    );
    let only_session = bob.sessions.active().unwrap().to_bytes();
    let mut session = Session::from_bytes(&only_session).unwrap();
    let CiphertextMessage::Ratchet(forged) =
        CiphertextMessage::from_bytes(&wire::encode(&parsed)).unwrap()
    else {
        panic!("expected a ratchet message");
    };
    assert_eq!(
        session.decrypt(&forged, &mut rng).unwrap_err(),
        DecryptError::NonContributoryKey
    );

    // An initiation whose base key has small order.
    let mut carol = Device::new(&mut rng, FULL);
    carol.initiate(&bob, &mut rng);
    let mut initiation: wire::CiphertextMessage = wire::decode(&carol.send(b"hi"));
    initiation.prekey.as_mut().unwrap().base_key = vec![0; 32];
    let CiphertextMessage::PreKey(initiation) =
        CiphertextMessage::from_bytes(&wire::encode(&initiation)).unwrap()
    else {
        panic!("expected a prekey message");
    };
    assert_eq!(
        Session::accept(&bob.identity, &mut bob.prekeys, &initiation, &mut rng).unwrap_err(),
        SessionSetupError::NonContributoryKey
    );
    bob.receive(&alice.send(b"fine"), &mut rng).unwrap();
}

#[test]
fn forward_secrecy_old_snapshot_cannot_decrypt_received_messages() {
    let mut rng = rng(12);
    let (mut alice, mut bob) = established(&mut rng, FULL);
    let sent: Vec<Vec<u8>> = (0..5u8).map(|i| alice.send(&[i; 40])).collect();
    for m in &sent {
        bob.receive(m, &mut rng).unwrap();
    }
    // An attacker who recorded the ciphertexts seizes Bob's state now.
    let snapshot = bob.sessions.to_bytes();
    let mut seized = PeerSessions::from_bytes(&snapshot).unwrap();
    let mut seized_prekeys = PreKeyStore::from_bytes(&bob.prekeys.to_bytes()).unwrap();
    for m in &sent {
        let message = CiphertextMessage::from_bytes(m).unwrap();
        assert!(
            seized
                .decrypt(&bob.identity, &mut seized_prekeys, &message, &mut rng)
                .is_err()
        );
    }
    // Same after a full ratchet round trip: the first message too.
    let reply = bob.send(b"r");
    alice.receive(&reply, &mut rng).unwrap();
    let first_of_new_chain = alice.send(b"secret");
    bob.receive(&first_of_new_chain, &mut rng).unwrap();
    let mut seized = PeerSessions::from_bytes(&bob.sessions.to_bytes()).unwrap();
    let message = CiphertextMessage::from_bytes(&first_of_new_chain).unwrap();
    assert!(
        seized
            .decrypt(&bob.identity, &mut seized_prekeys, &message, &mut rng)
            .is_err()
    );
}

#[test]
fn post_compromise_security_after_one_round_trip() {
    let mut rng = rng(13);
    let (mut alice, mut bob) = established(&mut rng, FULL);
    // The attacker steals Bob's whole state, then only listens.
    let mut attacker = PeerSessions::from_bytes(&bob.sessions.to_bytes()).unwrap();
    let mut attacker_prekeys = PreKeyStore::from_bytes(&bob.prekeys.to_bytes()).unwrap();
    let attacker_identity = IdentityKeyPair::from_bytes(&bob.identity.to_bytes()).unwrap();
    let mut attacker_reads = |bytes: &[u8], rng: &mut rand_chacha::ChaCha20Rng| {
        let message = CiphertextMessage::from_bytes(bytes).unwrap();
        attacker
            .decrypt(&attacker_identity, &mut attacker_prekeys, &message, rng)
            .is_ok()
    };
    // Right after the theft the attacker can read Alice's next message:
    // the compromise is real.
    let m1 = alice.send(b"compromised");
    assert!(attacker_reads(&m1, &mut rng));
    bob.receive(&m1, &mut rng).unwrap();
    // One round trip with fresh ratchet keys heals the session.
    let b1 = bob.send(b"b1");
    alice.receive(&b1, &mut rng).unwrap();
    let a2 = alice.send(b"healed");
    assert!(!attacker_reads(&a2, &mut rng));
    assert_eq!(
        &bob.receive(&a2, &mut rng).unwrap().plaintext[..],
        b"healed"
    );
    for i in 0..3u8 {
        let m = alice.send(&[i]);
        assert!(!attacker_reads(&m, &mut rng));
        bob.receive(&m, &mut rng).unwrap();
    }
}

#[test]
fn a_stripped_initiation_is_refused_and_the_real_one_still_works() {
    let mut rng = rng(14);
    let mut alice = Device::new(&mut rng, FULL);
    let mut bob = Device::new(&mut rng, FULL);
    alice.initiate(&bob, &mut rng);
    let first = alice.send(b"pq");
    // A downgrade: strip the ML-KEM part, keep every EC key. Refused as
    // classical before any key is derived.
    let mut stripped: wire::CiphertextMessage = wire::decode(&first);
    let prekey = stripped.prekey.as_mut().unwrap();
    prekey.kem_prekey_id = None;
    prekey.kem_ciphertext.clear();
    assert_eq!(
        bob.receive(&wire::encode(&stripped), &mut rng).unwrap_err(),
        DecryptError::Setup(SessionSetupError::ClassicalInitiation)
    );
    let received = bob.receive(&first, &mut rng).unwrap();
    assert_eq!(&received.plaintext[..], b"pq");
    assert!(bob.sessions.active().unwrap().is_post_quantum());
}

#[test]
fn simultaneous_initiation_converges() {
    for seed in 0..8 {
        let mut rng = rng(100 + seed);
        let mut alice = Device::new(&mut rng, FULL);
        let mut bob = Device::new(&mut rng, FULL);
        alice.initiate(&bob, &mut rng);
        bob.initiate(&alice, &mut rng);
        let from_alice = alice.send(b"a0");
        let from_bob = bob.send(b"b0");
        // Both initiations cross in flight.
        assert_eq!(
            &bob.receive(&from_alice, &mut rng).unwrap().plaintext[..],
            b"a0"
        );
        assert_eq!(
            &alice.receive(&from_bob, &mut rng).unwrap().plaintext[..],
            b"b0"
        );
        let active = |d: &Device| d.sessions.active().unwrap().id();
        assert_eq!(active(&alice), active(&bob), "seed {seed}");
        for i in 0..3u8 {
            let m = alice.send(&[i]);
            bob.receive(&m, &mut rng).unwrap();
            let m = bob.send(&[i]);
            alice.receive(&m, &mut rng).unwrap();
        }
        assert_eq!(active(&alice), active(&bob));
        assert!(!alice.sessions.active().unwrap().is_awaiting_reply());
    }
}

#[test]
fn reinstalled_peer_gets_a_new_active_session() {
    let mut rng = rng(15);
    let (mut alice, mut bob) = established(&mut rng, FULL);
    let old = alice.sessions.active().unwrap().id();
    // Alice loses everything but her identity and starts over.
    alice.sessions = PeerSessions::new();
    alice.initiate(&bob, &mut rng);
    let m = alice.send(b"again");
    assert!(bob.receive(&m, &mut rng).unwrap().new_session);
    assert_ne!(bob.sessions.active().unwrap().id(), old);
    let reply = bob.send(b"welcome back");
    assert_eq!(
        &alice.receive(&reply, &mut rng).unwrap().plaintext[..],
        b"welcome back"
    );
}

#[test]
fn sessions_survive_serialisation_mid_conversation() {
    let mut rng = rng(16);
    let (mut alice, mut bob) = established(&mut rng, FULL);
    let pending: Vec<Vec<u8>> = (0..4u8).map(|i| alice.send(&[i])).collect();
    bob.receive(&pending[3], &mut rng).unwrap(); // leaves skipped keys
    alice.sessions = PeerSessions::from_bytes(&alice.sessions.to_bytes()).unwrap();
    bob.sessions = PeerSessions::from_bytes(&bob.sessions.to_bytes()).unwrap();
    bob.prekeys = PreKeyStore::from_bytes(&bob.prekeys.to_bytes()).unwrap();
    alice.identity = IdentityKeyPair::from_bytes(&alice.identity.to_bytes()).unwrap();
    for i in 0..3u8 {
        assert_eq!(
            &bob.receive(&pending[usize::from(i)], &mut rng)
                .unwrap()
                .plaintext[..],
            &[i]
        );
    }
    let m = bob.send(b"ok");
    assert_eq!(&alice.receive(&m, &mut rng).unwrap().plaintext[..], b"ok");
}

#[test]
fn bad_bundle_signature_is_typed_error() {
    use starling_crypto::keys::SignatureError;
    use starling_crypto::prekeys::BundleError;
    let mut rng = rng(17);
    let bob = Device::new(&mut rng, FULL);
    let genuine = bob.bundle().to_bytes();
    let tamper = |f: &dyn Fn(&mut wire::PreKeyBundle)| {
        let mut bundle: wire::PreKeyBundle = wire::decode(&genuine);
        f(&mut bundle);
        PreKeyBundle::from_bytes(&wire::encode(&bundle))
    };
    let bad_signature = |e: Result<PreKeyBundle, BundleError>| {
        matches!(
            e,
            Err(BundleError::Signature(SignatureError::BadSignature(_)))
        )
    };
    assert!(bad_signature(tamper(&|b| b
        .signed_prekey
        .as_mut()
        .unwrap()
        .signature[0] ^= 1)));
    assert!(bad_signature(tamper(&|b| b
        .signed_prekey
        .as_mut()
        .unwrap()
        .public_key[0] ^= 1)));
    assert!(bad_signature(tamper(&|b| b
        .signed_prekey
        .as_mut()
        .unwrap()
        .id += 1)));
    assert!(bad_signature(tamper(&|b| b
        .kem_prekey
        .as_mut()
        .unwrap()
        .signature[5] ^= 1)));
    assert!(bad_signature(tamper(&|b| b
        .kem_prekey
        .as_mut()
        .unwrap()
        .last_resort ^= true)));
    assert!(bad_signature(tamper(&|b| b
        .identity
        .as_mut()
        .unwrap()
        .dh_key[0] ^= 1)));
    // Another identity presenting Bob's prekeys.
    let mallory = IdentityKeyPair::generate(&mut rng);
    assert!(bad_signature(tamper(&|b| {
        b.identity = Some(wire::decode(&mallory.public().to_bytes()));
    })));
    assert!(matches!(
        tamper(&|b| b.signed_prekey = None),
        Err(BundleError::Decode(_))
    ));
    assert!(matches!(
        tamper(&|b| b.version = 9),
        Err(BundleError::Decode(_))
    ));
    assert!(PreKeyBundle::from_bytes(&genuine).is_ok());
}

#[test]
fn kem_key_that_is_not_reduced_is_refused() {
    let mut rng = rng(18);
    let bob = Device::new(&mut rng, FULL);
    let mut bundle: wire::PreKeyBundle = wire::decode(&bob.bundle().to_bytes());
    // 0xFFF in the first 12-bit coefficient exceeds q = 3329.
    let key = &mut bundle.kem_prekey.as_mut().unwrap().public_key;
    key[0] = 0xFF;
    key[1] |= 0x0F;
    assert!(PreKeyBundle::from_bytes(&wire::encode(&bundle)).is_err());
}

#[test]
fn debug_output_redacts_secrets() {
    let mut rng = rng(19);
    let (alice, bob) = established(&mut rng, FULL);
    let secret_hex = |bytes: &[u8]| hex::encode(&bytes[bytes.len().saturating_sub(8)..]);
    let identity_state = alice.identity.to_bytes();
    let session_state = alice.sessions.to_bytes();
    let outputs = [
        format!("{:?}", alice.identity),
        format!("{:?}", alice.sessions),
        format!("{:?}", bob.prekeys),
        format!("{:#?}", alice.sessions.active().unwrap()),
    ];
    for output in &outputs {
        assert!(!output.contains(&secret_hex(&identity_state)));
        assert!(!output.contains(&secret_hex(&session_state)));
        assert!(output.contains(".."), "{output}");
    }
    assert_eq!(
        format!("{:?}", bob.prekeys),
        "PreKeyStore { signed_prekeys: 1, one_time_prekeys: 4, kem_prekeys: 2, .. }"
    );
}

#[test]
fn straggler_from_a_closed_chain_decrypts_once() {
    // Bob sends two messages, ratchets after Alice's reply, sends a third;
    // Alice receives the third first, then the two stragglers, then replays.
    let mut rng = rng(20);
    let (mut alice, mut bob) = established(&mut rng, FULL);
    let b1 = bob.send(b"b1");
    let b2 = bob.send(b"b2");
    let a1 = alice.send(b"a1");
    bob.receive(&a1, &mut rng).unwrap();
    let b3 = bob.send(b"b3");
    for m in [&b3, &b1, &b2] {
        alice.receive(m, &mut rng).unwrap();
    }
    for m in [&b3, &b1, &b2] {
        assert!(matches!(
            alice.receive(m, &mut rng),
            Err(DecryptError::DuplicateOrExpired { .. })
        ));
    }
}

#[test]
fn session_recovers_when_more_than_the_gap_was_lost_before_a_ratchet() {
    let mut rng = rng(21);
    let (mut alice, mut bob) = established(&mut rng, FULL);
    // Bob's messages 0..=MAX_MESSAGE_GAP+1 are all lost.
    for i in 0..=MAX_MESSAGE_GAP + 1 {
        let _ = bob.send(&i.to_be_bytes());
    }
    // Alice writes, Bob ratchets and answers on a new chain: Alice must
    // accept the new chain even though the old one cannot be caught up.
    let a = alice.send(b"anyone there?");
    bob.receive(&a, &mut rng).unwrap();
    let b = bob.send(b"yes");
    assert_eq!(&alice.receive(&b, &mut rng).unwrap().plaintext[..], b"yes");
    let a = alice.send(b"good");
    assert_eq!(&bob.receive(&a, &mut rng).unwrap().plaintext[..], b"good");
}
