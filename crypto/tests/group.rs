//! Sender Keys across the public API: distribution through pairwise
//! sessions, bound to the sender's identity, signatures (checked before
//! decryption, by type, naming the sender), ordering limits, and rotation
//! on removal.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Device, FULL, rng, wire};
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use rand::seq::SliceRandom;
use starling_crypto::IdentityKeyPair;
use starling_crypto::group::{
    DistributionError, GroupDecryptError, GroupMessage, InboundGroupSession, MAX_GROUP_MESSAGE_GAP,
    OutboundGroupSession, SenderKeyDistribution, VerifiedGroupMessage,
};
use zeroize::Zeroizing;

const GROUP: &[u8] = b"group-7f3a";

/// Five members; each knows every other member's sender key.
struct Group {
    identities: Vec<IdentityKeyPair>,
    outbound: Vec<OutboundGroupSession>,
    /// inbound[reader][sender]
    inbound: Vec<Vec<Option<InboundGroupSession>>>,
}

impl Group {
    fn new(members: usize, rng: &mut rand_chacha::ChaCha20Rng) -> Self {
        let identities: Vec<IdentityKeyPair> = (0..members)
            .map(|_| IdentityKeyPair::generate(rng))
            .collect();
        let outbound: Vec<OutboundGroupSession> = identities
            .iter()
            .map(|identity| OutboundGroupSession::new(identity.public(), GROUP, rng).unwrap())
            .collect();
        let inbound = (0..members)
            .map(|reader| {
                (0..members)
                    .map(|sender| {
                        (reader != sender).then(|| {
                            let identity = &identities[sender];
                            let bytes = outbound[sender].distribution(identity).unwrap().to_bytes();
                            InboundGroupSession::new(
                                &SenderKeyDistribution::from_bytes(&bytes).unwrap(),
                                identity.public(),
                            )
                            .unwrap()
                        })
                    })
                    .collect()
            })
            .collect();
        Self {
            identities,
            outbound,
            inbound,
        }
    }

    /// Member `sender`'s current distribution, encoded.
    fn distribution(&self, sender: usize) -> Zeroizing<Vec<u8>> {
        self.outbound[sender]
            .distribution(&self.identities[sender])
            .unwrap()
            .to_bytes()
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
    let mut outbound = OutboundGroupSession::new(alice.identity.public(), GROUP, &mut rng).unwrap();
    let envelope = alice.send(&outbound.distribution(&alice.identity).unwrap().to_bytes());
    let received = bob.receive(&envelope, &mut rng).unwrap();
    // The identity the pairwise session authenticated binds the sender key.
    let mut inbound = InboundGroupSession::new(
        &SenderKeyDistribution::from_bytes(&received.plaintext).unwrap(),
        &received.sender,
    )
    .unwrap();
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
    let mut impostor =
        OutboundGroupSession::new(group.identities[2].public(), GROUP, &mut rng).unwrap();
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
    let mut other =
        OutboundGroupSession::new(group.identities[0].public(), b"other-group", &mut rng).unwrap();
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
        let identity = &group.identities[sender];
        let distribution = group.outbound[sender]
            .rotate(identity, &mut rng)
            .unwrap()
            .to_bytes();
        for reader in (0..4).filter(|r| *r != sender) {
            group.inbound[reader][sender]
                .as_mut()
                .unwrap()
                .add_distribution(
                    &SenderKeyDistribution::from_bytes(&distribution).unwrap(),
                    identity.public(),
                )
                .unwrap();
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
    assert_eq!(message.version, 3);
    // ChaCha20 alone: the signature, not a Poly1305 tag, authenticates.
    assert_eq!(message.ciphertext.len(), b"twelve bytes".len());
    for old in [1, 2] {
        let mut older = message.clone();
        older.version = old;
        assert!(matches!(
            group.read(1, 0, &wire::encode(&older)),
            Err(GroupDecryptError::Decode(_))
        ));
    }
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

    // A session with the same chain under another signing key or sender
    // refuses it too: `inbound`'s unit tests build one (no distribution
    // can make it any more).

    // Reader 1 never decrypted it and still can.
    assert_eq!(group.read(1, 0, &bytes).unwrap(), b"for sender 0's chain");
}

/// The Ed25519 secret of an identity, as its owner (here, a hostile
/// member) can use it outside the library.
fn signing_secret(identity: &IdentityKeyPair) -> SigningKey {
    #[derive(Clone, PartialEq, prost::Message)]
    struct State {
        #[prost(uint32, tag = "1")]
        version: u32,
        #[prost(bytes = "vec", tag = "2")]
        signing_secret: Vec<u8>,
    }
    let state: State = wire::decode(&identity.to_bytes());
    SigningKey::from_bytes(&state.signing_secret.try_into().unwrap())
}

/// The binding of a distribution, byte for byte as SPEC.md §7.2 lays it out.
fn binding(sender: &IdentityKeyPair, d: &wire::SenderKeyDistribution) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&2u32.to_be_bytes());
    out.extend_from_slice(&sender.public().public_bytes());
    out.push(u8::try_from(d.group_id.len()).unwrap());
    out.extend_from_slice(&d.group_id);
    out.extend_from_slice(&d.chain_id.to_be_bytes());
    out.extend_from_slice(&d.iteration.to_be_bytes());
    out.extend_from_slice(&d.signing_key);
    out
}

fn prefixed(context: &[u8], bytes: &[u8]) -> Vec<u8> {
    [context, bytes].concat()
}

#[test]
fn a_distribution_is_signed_over_the_specified_binding() {
    let mut rng = rng(50);
    let group = Group::new(2, &mut rng);
    let d: wire::SenderKeyDistribution = wire::decode(&group.distribution(0));
    assert_eq!(d.version, 2);
    let binding = binding(&group.identities[0], &d);
    let identity =
        VerifyingKey::from_bytes(&group.identities[0].public().signing_key_bytes()).unwrap();
    let signature = |bytes: &[u8]| ed25519_dalek::Signature::from_slice(bytes).unwrap();
    identity
        .verify_strict(
            &prefixed(b"Starling_SenderKeyBinding_v2", &binding),
            &signature(&d.identity_signature),
        )
        .unwrap();
    let signing_key = VerifyingKey::from_bytes(&d.signing_key.clone().try_into().unwrap()).unwrap();
    signing_key
        .verify_strict(
            &prefixed(b"Starling_SenderKeyPossession_v2", &binding),
            &signature(&d.signing_key_signature),
        )
        .unwrap();
}

#[test]
fn a_member_cannot_pass_off_anothers_sender_key_as_its_own() {
    let mut rng = rng(51);
    let group = Group::new(3, &mut rng);
    let (alice, mallory) = (&group.identities[0], &group.identities[2]);
    let genuine: wire::SenderKeyDistribution = wire::decode(&group.distribution(0));

    // Mallory forwards Alice's distribution through her own pairwise
    // session: Bob checks it against Mallory's identity.
    let forwarded = SenderKeyDistribution::from_bytes(&wire::encode(&genuine)).unwrap();
    assert_eq!(
        InboundGroupSession::new(&forwarded, mallory.public()).unwrap_err(),
        DistributionError::NotSignedBySender
    );

    // Mallory copies Alice's chain and signing key into a distribution
    // she binds to herself with her identity key: she cannot sign for
    // Alice's signing key, with Alice's possession signature or her own.
    let mallory_signing = signing_secret(mallory);
    let mallory_chain = SigningKey::generate(&mut rng);
    let mut copied = wire::SenderKeyDistribution {
        identity_signature: Vec::new(),
        ..genuine.clone()
    };
    let binding = binding(mallory, &copied);
    copied.identity_signature = mallory_signing
        .sign(&prefixed(b"Starling_SenderKeyBinding_v2", &binding))
        .to_bytes()
        .to_vec();
    let own_possession = mallory_chain
        .sign(&prefixed(b"Starling_SenderKeyPossession_v2", &binding))
        .to_bytes()
        .to_vec();
    for possession in [genuine.signing_key_signature, own_possession] {
        let copied = wire::SenderKeyDistribution {
            signing_key_signature: possession,
            ..copied.clone()
        };
        let copied = SenderKeyDistribution::from_bytes(&wire::encode(&copied)).unwrap();
        assert_eq!(
            InboundGroupSession::new(&copied, mallory.public()).unwrap_err(),
            DistributionError::SigningKeyNotHeld
        );
        // Nor can she slip it into the session Bob holds for her.
        let mut bobs_mallory =
            InboundGroupSession::from_bytes(&group.inbound[1][2].as_ref().unwrap().to_bytes())
                .unwrap();
        assert_eq!(
            bobs_mallory
                .add_distribution(&copied, mallory.public())
                .unwrap_err(),
            DistributionError::SigningKeyNotHeld
        );
    }
    // Alice's own distribution, from Alice, is taken.
    InboundGroupSession::new(&forwarded, alice.public()).unwrap();
}

#[test]
fn a_message_resent_as_another_senders_does_not_verify() {
    let mut rng = rng(52);
    let mut group = Group::new(3, &mut rng);
    let alices = group.outbound[0].encrypt(b"from alice").unwrap();
    // Mallory sends Alice's ciphertext as her own: Bob looks it up in the
    // session he holds for Mallory, which has no chain of Alice's.
    assert_eq!(
        group.read(1, 2, &alices).unwrap_err(),
        GroupDecryptError::UnknownChain
    );
    // The signature names Alice: checked as Mallory's (SPEC.md §7.5
    // layout), it fails even under Alice's signing key.
    let message: wire::GroupMessage = wire::decode(&alices);
    let d: wire::SenderKeyDistribution = wire::decode(&group.distribution(0));
    let signing_key = VerifyingKey::from_bytes(&d.signing_key.try_into().unwrap()).unwrap();
    let signed_as = |sender: &IdentityKeyPair| {
        let mut signed = b"Starling_GroupMessage_v3".to_vec();
        signed.extend_from_slice(&3u32.to_be_bytes());
        signed.extend_from_slice(&sender.public().public_bytes());
        signed.push(u8::try_from(message.group_id.len()).unwrap());
        signed.extend_from_slice(&message.group_id);
        signed.extend_from_slice(&message.chain_id.to_be_bytes());
        signed.extend_from_slice(&message.iteration.to_be_bytes());
        signed.extend_from_slice(&message.ciphertext);
        signed
    };
    let signature = ed25519_dalek::Signature::from_slice(&message.signature).unwrap();
    signing_key
        .verify(&signed_as(&group.identities[0]), &signature)
        .unwrap();
    assert!(
        signing_key
            .verify(&signed_as(&group.identities[2]), &signature)
            .is_err()
    );
    assert_eq!(group.read(1, 0, &alices).unwrap(), b"from alice");
}

#[test]
fn a_version_1_distribution_is_refused() {
    let mut rng = rng(53);
    let group = Group::new(2, &mut rng);
    let genuine: wire::SenderKeyDistribution = wire::decode(&group.distribution(0));
    // Version 1 as it was: the same fields, no signatures.
    let version_1 = wire::SenderKeyDistribution {
        version: 1,
        identity_signature: Vec::new(),
        signing_key_signature: Vec::new(),
        ..genuine.clone()
    };
    // Or relabelled, signatures kept.
    let relabelled = wire::SenderKeyDistribution {
        version: 1,
        ..genuine
    };
    for old in [version_1, relabelled] {
        assert_eq!(
            SenderKeyDistribution::from_bytes(&wire::encode(&old)).unwrap_err(),
            starling_crypto::DecodeError::UnsupportedVersion(1)
        );
    }
}

#[test]
fn a_distribution_is_refused_from_another_sender_or_group() {
    let mut rng = rng(54);
    let mut group = Group::new(3, &mut rng);
    let alices = SenderKeyDistribution::from_bytes(&group.distribution(0)).unwrap();
    let bobs_carol = group.inbound[1][2].as_mut().unwrap();
    // Bob's session for Carol takes nothing of Alice's, even genuine.
    assert_eq!(
        bobs_carol
            .add_distribution(&alices, group.identities[0].public())
            .unwrap_err(),
        DistributionError::WrongSender
    );
    assert!(bobs_carol.is_from(group.identities[2].public()));
    let identity = &group.identities[2];
    let other = OutboundGroupSession::new(identity.public(), b"other", &mut rng).unwrap();
    assert_eq!(
        bobs_carol
            .add_distribution(&other.distribution(identity).unwrap(), identity.public())
            .unwrap_err(),
        DistributionError::WrongGroup
    );
    // A distribution signed by the identity is made only for it.
    assert!(matches!(
        group.outbound[0].distribution(&group.identities[1]),
        Err(starling_crypto::group::GroupEncryptError::WrongIdentity)
    ));
    let carols = group.outbound[2].encrypt(b"still carol").unwrap();
    assert_eq!(group.read(1, 2, &carols).unwrap(), b"still carol");
}
