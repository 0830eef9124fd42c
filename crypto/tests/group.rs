//! Sender Keys across the public API: distribution through pairwise
//! sessions, signatures (checked before decryption, by type), ordering
//! limits, and rotation on removal.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Device, FULL, rng, wire};
use rand::seq::SliceRandom;
use starling_crypto::group::{
    GroupDecryptError, GroupMessage, InboundGroupSession, MAX_GROUP_MESSAGE_GAP,
    OutboundGroupSession, SenderKeyDistribution, VerifiedGroupMessage,
};
use zeroize::Zeroizing;

const GROUP: &[u8] = b"group-7f3a";

/// Five members; each knows every other member's sender key.
struct Group {
    outbound: Vec<OutboundGroupSession>,
    /// inbound[reader][sender]
    inbound: Vec<Vec<Option<InboundGroupSession>>>,
}

impl Group {
    fn new(members: usize, rng: &mut rand_chacha::ChaCha20Rng) -> Self {
        let outbound: Vec<OutboundGroupSession> = (0..members)
            .map(|_| OutboundGroupSession::new(GROUP, rng).unwrap())
            .collect();
        let inbound = (0..members)
            .map(|reader| {
                (0..members)
                    .map(|sender| {
                        (reader != sender).then(|| {
                            let bytes = outbound[sender].distribution().to_bytes();
                            InboundGroupSession::new(
                                &SenderKeyDistribution::from_bytes(&bytes).unwrap(),
                            )
                        })
                    })
                    .collect()
            })
            .collect();
        Self { outbound, inbound }
    }

    fn read(
        &mut self,
        reader: usize,
        sender: usize,
        bytes: &[u8],
    ) -> Result<Vec<u8>, GroupDecryptError> {
        self.inbound[reader][sender]
            .as_mut()
            .unwrap()
            .verify_and_decrypt(bytes)
            .map(|p| p.to_vec())
    }
}

#[test]
fn every_member_reads_every_other_member() {
    let mut rng = rng(1);
    let mut group = Group::new(5, &mut rng);
    for sender in 0..5 {
        let text = format!("from {sender}");
        let bytes = group.outbound[sender].encrypt(text.as_bytes()).unwrap();
        for reader in (0..5).filter(|r| *r != sender) {
            assert_eq!(group.read(reader, sender, &bytes).unwrap(), text.as_bytes());
        }
    }
}

#[test]
fn distribution_travels_inside_pairwise_sessions() {
    let mut rng = rng(2);
    let (mut alice, mut bob) = common::established(&mut rng, FULL);
    let mut outbound = OutboundGroupSession::new(GROUP, &mut rng).unwrap();
    let envelope = alice.send(&outbound.distribution().to_bytes());
    let received = bob.receive(&envelope, &mut rng).unwrap();
    let mut inbound =
        InboundGroupSession::new(&SenderKeyDistribution::from_bytes(&received.plaintext).unwrap());
    let message = outbound.encrypt(b"hello group").unwrap();
    assert_eq!(
        &inbound.verify_and_decrypt(&message).unwrap()[..],
        b"hello group"
    );
    let _ = Device::new(&mut rng, FULL);
}

#[test]
fn out_of_order_and_duplicates() {
    let mut rng = rng(3);
    let mut group = Group::new(2, &mut rng);
    let mut messages: Vec<(u32, Vec<u8>)> = (0..300u32)
        .map(|i| (i, group.outbound[0].encrypt(&i.to_be_bytes()).unwrap()))
        .collect();
    messages.shuffle(&mut rng);
    for (i, bytes) in &messages {
        assert_eq!(group.read(1, 0, bytes).unwrap(), i.to_be_bytes());
    }
    for (_, bytes) in &messages {
        assert!(matches!(
            group.read(1, 0, bytes),
            Err(GroupDecryptError::DuplicateOrExpired { .. })
        ));
    }
}

#[test]
fn gap_past_limit_is_refused_and_session_continues() {
    let mut rng = rng(4);
    let mut group = Group::new(2, &mut rng);
    let messages: Vec<Vec<u8>> = (0..=MAX_GROUP_MESSAGE_GAP + 1)
        .map(|i| group.outbound[0].encrypt(&i.to_be_bytes()).unwrap())
        .collect();
    assert!(matches!(
        group.read(1, 0, messages.last().unwrap()),
        Err(GroupDecryptError::TooFarAhead { .. })
    ));
    group.read(1, 0, &messages[0]).unwrap();
    group.read(1, 0, messages.last().unwrap()).unwrap();
}

#[test]
fn group_message_with_bad_signature_is_rejected() {
    let mut rng = rng(5);
    let mut group = Group::new(3, &mut rng);
    let genuine = group.outbound[0].encrypt(b"signed").unwrap();
    let tamper = |f: &dyn Fn(&mut wire::GroupMessage)| {
        let mut message: wire::GroupMessage = wire::decode(&genuine);
        f(&mut message);
        wire::encode(&message)
    };
    for forged in [
        tamper(&|m| m.signature[0] ^= 1),
        tamper(&|m| m.ciphertext[0] ^= 1),
        tamper(&|m| m.iteration += 1),
    ] {
        assert_eq!(
            group.read(1, 0, &forged).unwrap_err(),
            GroupDecryptError::BadSignature
        );
    }
    // A member who knows sender 0's chain key forges a message: it
    // decrypts fine with the chain key but the signature is not sender 0's.
    let mut impostor = OutboundGroupSession::new(GROUP, &mut rng).unwrap();
    let forged: wire::GroupMessage = wire::decode(&impostor.encrypt(b"fake").unwrap());
    let forged = tamper(&|m| {
        m.ciphertext = forged.ciphertext.clone();
        m.signature = forged.signature.clone();
    });
    assert_eq!(
        group.read(1, 0, &forged).unwrap_err(),
        GroupDecryptError::BadSignature
    );
    assert_eq!(group.read(1, 0, &genuine).unwrap(), b"signed");
}

#[test]
fn message_for_another_group_is_rejected() {
    let mut rng = rng(6);
    let mut group = Group::new(2, &mut rng);
    let mut other = OutboundGroupSession::new(b"other-group", &mut rng).unwrap();
    let bytes = other.encrypt(b"x").unwrap();
    assert_eq!(
        group.read(1, 0, &bytes).unwrap_err(),
        GroupDecryptError::WrongGroup
    );
}

#[test]
fn removed_member_cannot_read_after_rotation() {
    let mut rng = rng(7);
    let mut group = Group::new(5, &mut rng);
    let removed = 4;
    let before = group.outbound[0].encrypt(b"before").unwrap();
    assert_eq!(group.read(removed, 0, &before).unwrap(), b"before");
    // Member 4 leaves: every remaining member rotates and redistributes to
    // the remaining members only.
    for sender in 0..4 {
        let distribution = group.outbound[sender].rotate(&mut rng).to_bytes();
        for reader in (0..4).filter(|r| *r != sender) {
            group.inbound[reader][sender]
                .as_mut()
                .unwrap()
                .add_distribution(&SenderKeyDistribution::from_bytes(&distribution).unwrap());
        }
    }
    for sender in 0..4 {
        let after = group.outbound[sender].encrypt(b"after").unwrap();
        assert_eq!(
            group.read(removed, sender, &after).unwrap_err(),
            GroupDecryptError::UnknownChain
        );
        for reader in (0..4).filter(|r| *r != sender) {
            assert_eq!(group.read(reader, sender, &after).unwrap(), b"after");
        }
    }
}

#[test]
fn sessions_survive_serialisation() {
    let mut rng = rng(8);
    let mut group = Group::new(2, &mut rng);
    let early = group.outbound[0].encrypt(b"early").unwrap();
    let late = group.outbound[0].encrypt(b"late").unwrap();
    group.read(1, 0, &late).unwrap();
    let mut outbound = OutboundGroupSession::from_bytes(&group.outbound[0].to_bytes()).unwrap();
    let inbound = group.inbound[1][0].as_ref().unwrap().to_bytes();
    let mut inbound = InboundGroupSession::from_bytes(&inbound).unwrap();
    assert_eq!(&inbound.verify_and_decrypt(&early).unwrap()[..], b"early");
    let next = outbound.encrypt(b"next").unwrap();
    assert_eq!(&inbound.verify_and_decrypt(&next).unwrap()[..], b"next");
    assert!(format!("{outbound:?}").ends_with(".. }"));
}

#[test]
fn a_message_carries_no_tag_and_version_1_is_refused() {
    let mut rng = rng(41);
    let mut group = Group::new(2, &mut rng);
    let genuine = group.outbound[0].encrypt(b"twelve bytes").unwrap();
    let message: wire::GroupMessage = wire::decode(&genuine);
    assert_eq!(message.version, 2);
    // ChaCha20 alone: the signature, not a Poly1305 tag, authenticates.
    assert_eq!(message.ciphertext.len(), b"twelve bytes".len());
    let mut version_1 = message;
    version_1.version = 1;
    assert!(matches!(
        group.read(1, 0, &wire::encode(&version_1)),
        Err(GroupDecryptError::Decode(_))
    ));
    assert_eq!(group.read(1, 0, &genuine).unwrap(), b"twelve bytes");
}

#[test]
fn decryption_takes_only_a_verified_message() {
    // The signature of `decrypt` is the guarantee: it takes a
    // `VerifiedGroupMessage`, which only `GroupMessage::verify` makes (the
    // `compile_fail` examples on both show the rest).
    type Decrypt = fn(
        &mut InboundGroupSession,
        VerifiedGroupMessage,
    ) -> Result<Zeroizing<Vec<u8>>, GroupDecryptError>;
    let _: Decrypt = InboundGroupSession::decrypt;

    let mut rng = rng(42);
    let mut group = Group::new(2, &mut rng);
    let bytes = group.outbound[0].encrypt(b"verified").unwrap();
    let inbound = group.inbound[1][0].as_mut().unwrap();
    let message = GroupMessage::from_bytes(&bytes).unwrap();
    assert!(format!("{message:?}").ends_with(".. }"));
    let verified = message.verify(inbound).unwrap();
    assert!(format!("{verified:?}").ends_with(".. }"));
    assert_eq!(&inbound.decrypt(verified).unwrap()[..], b"verified");

    // A forged signature stops at `verify`, and the session is unchanged.
    let mut forged: wire::GroupMessage = wire::decode(&group.outbound[0].encrypt(b"x").unwrap());
    forged.signature[0] ^= 1;
    let forged = GroupMessage::from_bytes(&wire::encode(&forged)).unwrap();
    assert_eq!(
        forged.verify(inbound).unwrap_err(),
        GroupDecryptError::BadSignature
    );
    let genuine = group.outbound[0].encrypt(b"still works").unwrap();
    assert_eq!(group.read(1, 0, &genuine).unwrap(), b"still works");
}

#[test]
fn a_message_verified_against_another_session_is_refused() {
    let mut rng = rng(43);
    let mut group = Group::new(3, &mut rng);
    let bytes = group.outbound[0].encrypt(b"for sender 0's chain").unwrap();

    // Verified against reader 1's session for sender 0, it decrypts in
    // reader 2's session for sender 0: same chain, same signing key.
    let verified = GroupMessage::from_bytes(&bytes)
        .unwrap()
        .verify(group.inbound[1][0].as_ref().unwrap())
        .unwrap();
    let plaintext = group.inbound[2][0].as_mut().unwrap().decrypt(verified);
    assert_eq!(&plaintext.unwrap()[..], b"for sender 0's chain");

    // A session that holds another chain does not know it.
    let verified = GroupMessage::from_bytes(&bytes)
        .unwrap()
        .verify(group.inbound[1][0].as_ref().unwrap())
        .unwrap();
    assert_eq!(
        group.inbound[1][2]
            .as_mut()
            .unwrap()
            .decrypt(verified)
            .unwrap_err(),
        GroupDecryptError::UnknownChain
    );

    // A session with the same chain under another signing key (from a
    // distribution forged by a member) refuses it, whether verified
    // elsewhere or against itself.
    let genuine: wire::SenderKeyDistribution =
        wire::decode(&group.outbound[0].distribution().to_bytes());
    let impostor = OutboundGroupSession::new(GROUP, &mut rng).unwrap();
    let impostor: wire::SenderKeyDistribution = wire::decode(&impostor.distribution().to_bytes());
    let forged = wire::SenderKeyDistribution {
        signing_key: impostor.signing_key,
        ..genuine
    };
    let mut forged = InboundGroupSession::new(
        &SenderKeyDistribution::from_bytes(&wire::encode(&forged)).unwrap(),
    );
    let verified = GroupMessage::from_bytes(&bytes)
        .unwrap()
        .verify(group.inbound[1][0].as_ref().unwrap())
        .unwrap();
    assert_eq!(
        forged.decrypt(verified).unwrap_err(),
        GroupDecryptError::VerifiedWithAnotherKey
    );
    assert_eq!(
        GroupMessage::from_bytes(&bytes)
            .unwrap()
            .verify(&forged)
            .unwrap_err(),
        GroupDecryptError::BadSignature
    );
    // Reader 1 never decrypted it and still can.
    assert_eq!(group.read(1, 0, &bytes).unwrap(), b"for sender 0's chain");
}
