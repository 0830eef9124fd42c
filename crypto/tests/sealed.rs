//! Sealed sender (SPEC §15): round trips for one and many devices, each
//! refusal the receiver must make, tampering anywhere, and known-answer
//! vectors (`vectors/sealed_sender_v1.json`; regenerate after a deliberate
//! format change with `STARLING_WRITE_VECTORS=1`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::rng;
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use starling_crypto::IdentityKeyPair;
use starling_crypto::padding::{envelope_bucket, is_envelope_bucket};
use starling_crypto::sealed::{
    CertificateError, CertificateVerifier, SenderCertificate, ServerKeyChain, ServerSigningKey,
    TrustedServerKeys, UnsealError, access_key, is_sealed, open, seal_multi, seal_single,
};

const HOUR: u64 = 3_600_000;

struct World {
    rng: ChaCha20Rng,
    server: ServerSigningKey,
    alice: IdentityKeyPair,
    bob: IdentityKeyPair,
    certificate: SenderCertificate,
}

impl World {
    fn new(seed: u64) -> Self {
        let mut rng = rng(seed);
        let server = ServerSigningKey::generate(0, &mut rng);
        let alice = IdentityKeyPair::generate(&mut rng);
        let bob = IdentityKeyPair::generate(&mut rng);
        let certificate =
            SenderCertificate::issue(&server, "alice", 1, alice.public(), 24 * HOUR).unwrap();
        Self {
            rng,
            server,
            alice,
            bob,
            certificate,
        }
    }

    fn verifier(&self) -> CertificateVerifier {
        let public = self.server.public();
        CertificateVerifier::new(
            TrustedServerKeys::pin(public.id(), &public.public_key(), public.created_at()).unwrap(),
        )
    }

    fn seal_to_bob(&mut self, inner: &[u8]) -> Vec<u8> {
        seal_single(
            &self.alice,
            self.bob.public(),
            &self.certificate,
            inner,
            &mut self.rng,
        )
        .unwrap()
    }
}

#[test]
fn sealed_v1_round_trip() {
    let mut w = World::new(1);
    let envelope = w.seal_to_bob(b"inner ratchet message");
    assert!(is_sealed(&envelope));
    assert_eq!(envelope.len(), 1024);
    let certified = open(&w.bob, &envelope)
        .unwrap()
        .verify(&mut w.verifier(), HOUR)
        .unwrap();
    assert_eq!(certified.sender.username, "alice");
    assert_eq!(certified.sender.device_id, 1);
    assert_eq!(certified.sender.identity, w.alice.public().public_bytes());
    assert_eq!(&certified.inner[..], b"inner ratchet message");
}

#[test]
fn one_and_a_hundred_characters_seal_to_the_same_length() {
    let mut w = World::new(2);
    let short = w.seal_to_bob(b"x");
    let long = w.seal_to_bob(&[b'y'; 100]);
    assert_eq!(short.len(), long.len());
    let large = w.seal_to_bob(&[0u8; 5000]);
    assert!(is_envelope_bucket(large.len() as u64));
    assert!(large.len() > 5000);
}

#[test]
fn only_the_recipient_can_open() {
    let mut w = World::new(3);
    let envelope = w.seal_to_bob(b"for bob");
    assert_eq!(open(&w.alice, &envelope).unwrap_err(), UnsealError::Decrypt);
}

#[test]
fn static_key_mismatch_is_refused() {
    // Mallory copies alice's certificate (it travels inside envelopes alice
    // sends her) and seals with her own identity: the static layer proves
    // the envelope was sealed by mallory's key, which the certificate does
    // not name.
    let mut w = World::new(4);
    let mallory = IdentityKeyPair::generate(&mut w.rng);
    let envelope = seal_single(
        &mallory,
        w.bob.public(),
        &w.certificate,
        b"claims to be alice",
        &mut w.rng,
    )
    .unwrap();
    assert_eq!(
        open(&w.bob, &envelope).unwrap_err(),
        UnsealError::StaticKeyMismatch
    );
    let multi = seal_multi(
        &mallory,
        &[w.bob.public()],
        &w.certificate,
        b"claims to be alice",
        &mut w.rng,
    )
    .unwrap();
    assert_eq!(
        open(&w.bob, &multi.envelope(0).unwrap()).unwrap_err(),
        UnsealError::StaticKeyMismatch
    );
}

#[test]
fn forged_expired_and_unknown_certificates_are_refused() {
    let mut w = World::new(5);
    let mut verifier = w.verifier();
    // Expired: checked against the time the envelope reached the server.
    let envelope = w.seal_to_bob(b"late");
    let expired = open(&w.bob, &envelope)
        .unwrap()
        .verify(&mut verifier, 25 * HOUR)
        .unwrap_err();
    assert!(matches!(
        expired,
        UnsealError::Certificate(CertificateError::Expired { .. })
    ));
    // Unknown: a key the client never pinned, even with the same id.
    let rogue = ServerSigningKey::generate(0, &mut w.rng);
    w.certificate = SenderCertificate::issue(&rogue, "alice", 1, w.alice.public(), HOUR).unwrap();
    let envelope = w.seal_to_bob(b"rogue");
    assert_eq!(
        open(&w.bob, &envelope)
            .unwrap()
            .verify(&mut verifier, 0)
            .unwrap_err(),
        UnsealError::Certificate(CertificateError::BadSignature)
    );
    let successor = rogue.successor(0, &mut w.rng).unwrap();
    w.certificate =
        SenderCertificate::issue(&successor, "alice", 1, w.alice.public(), HOUR).unwrap();
    let envelope = w.seal_to_bob(b"rogue successor");
    assert_eq!(
        open(&w.bob, &envelope)
            .unwrap()
            .verify(&mut verifier, 0)
            .unwrap_err(),
        UnsealError::Certificate(CertificateError::UnknownSigner(2))
    );
}

#[test]
fn v2_each_device_opens() {
    let mut w = World::new(6);
    let bob2 = IdentityKeyPair::generate(&mut w.rng);
    let carol = IdentityKeyPair::generate(&mut w.rng);
    let recipients = [w.bob.public(), bob2.public(), carol.public()];
    let seal = seal_multi(
        &w.alice,
        &recipients,
        &w.certificate,
        b"to the group",
        &mut w.rng,
    )
    .unwrap();
    let single_len = w.seal_to_bob(b"to the group").len();
    let mut verifier = w.verifier();
    for (index, device) in [&w.bob, &bob2, &carol].into_iter().enumerate() {
        let envelope = seal.envelope(index).unwrap();
        assert_eq!(envelope.len(), single_len);
        let certified = open(device, &envelope)
            .unwrap()
            .verify(&mut verifier, 0)
            .unwrap();
        assert_eq!(&certified.inner[..], b"to the group");
        assert_eq!(certified.sender.username, "alice");
    }
    // A header meant for one device does not open for another.
    assert_eq!(
        open(&carol, &seal.envelope(0).unwrap()).unwrap_err(),
        UnsealError::Decrypt
    );
    assert!(seal.envelope(3).is_none());
}

#[test]
fn v2_wrong_at_refused() {
    let mut w = World::new(7);
    let mut seal = seal_multi(
        &w.alice,
        &[w.bob.public()],
        &w.certificate,
        b"x",
        &mut w.rng,
    )
    .unwrap();
    seal.recipients[0].at[0] ^= 1;
    assert_eq!(
        open(&w.bob, &seal.envelope(0).unwrap()).unwrap_err(),
        UnsealError::StaticKeyMismatch
    );
}

#[test]
fn v2_e_mismatch_refused() {
    // An ephemeral key that does not derive from the message secret is
    // refused before anything is decrypted (the re-addressing and content
    // substitution a recipient could try are unit tests of `multi.rs`).
    let mut w = World::new(8);
    let mut seal = seal_multi(
        &w.alice,
        &[w.bob.public()],
        &w.certificate,
        b"x",
        &mut w.rng,
    )
    .unwrap();
    seal.ephemeral[5] ^= 1;
    assert_eq!(
        open(&w.bob, &seal.envelope(0).unwrap()).unwrap_err(),
        UnsealError::Decrypt
    );
}

#[test]
fn lengths_and_versions_are_checked_first() {
    let w = World::new(9);
    assert_eq!(open(&w.bob, &[]).unwrap_err(), UnsealError::NotABucket(0));
    assert_eq!(
        open(&w.bob, &[0x0a; 1024]).unwrap_err(),
        UnsealError::UnknownVersion(0x0a)
    );
    assert_eq!(
        open(&w.bob, &[0x33; 1024]).unwrap_err(),
        UnsealError::UnknownVersion(0x33)
    );
    assert_eq!(
        open(&w.bob, &[0x31; 1023]).unwrap_err(),
        UnsealError::NotABucket(1023)
    );
    assert_eq!(
        open(&w.bob, &[0x31; 1025]).unwrap_err(),
        UnsealError::NotABucket(1025)
    );
    assert!(!is_sealed(&[0x0a, 1, 2]));
}

#[test]
fn access_keys_are_sixteen_bytes_and_differ_per_profile() {
    assert_ne!(access_key(&[1; 32]), access_key(&[2; 32]));
    assert_eq!(access_key(&[1; 32]), access_key(&[1; 32]));
}

/// One way to alter an envelope in transit.
#[derive(Debug, Clone)]
enum Tamper {
    Flip { index: usize, bit: u8 },
    Truncate(usize),
    Append(usize),
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        (0usize..1024, 0u8..8).prop_map(|(index, bit)| Tamper::Flip { index, bit }),
        (1usize..1024).prop_map(Tamper::Truncate),
        (1usize..128).prop_map(Tamper::Append),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any change to a sealed envelope, single or multi, is refused before
    /// the certificate is looked at: nothing about a sender is believed.
    #[test]
    fn tampered_envelopes_never_open(multi in any::<bool>(), change in tamper(), seed in any::<u64>()) {
        let mut w = World::new(seed);
        let mut envelope = if multi {
            seal_multi(&w.alice, &[w.bob.public()], &w.certificate, b"m", &mut w.rng)
                .unwrap()
                .envelope(0)
                .unwrap()
        } else {
            w.seal_to_bob(b"m")
        };
        match change {
            Tamper::Flip { index, bit } => envelope[index % 1024] ^= 1 << bit,
            Tamper::Truncate(n) => envelope.truncate(1024 - n),
            Tamper::Append(n) => envelope.extend(std::iter::repeat_n(0, n)),
        }
        prop_assert!(open(&w.bob, &envelope).is_err());
    }
}

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/sealed_sender_v1.json")
}

/// The parties of the vectors, drawn in this order from one seed.
struct Parties {
    rng: ChaCha20Rng,
    first: ServerSigningKey,
    second: ServerSigningKey,
    alice: IdentityKeyPair,
    bob: IdentityKeyPair,
    bob2: IdentityKeyPair,
}

fn parties() -> Parties {
    let mut rng = rng(0x5345_414c);
    let first = ServerSigningKey::generate(1_800_000_000_000, &mut rng);
    let second = first.successor(1_800_000_000_001, &mut rng).unwrap();
    let alice = IdentityKeyPair::generate(&mut rng);
    let bob = IdentityKeyPair::generate(&mut rng);
    let bob2 = IdentityKeyPair::generate(&mut rng);
    Parties {
        rng,
        first,
        second,
        alice,
        bob,
        bob2,
    }
}

/// The scripted scenario behind the vectors, every value in hex.
fn produce() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut put = |name: &str, bytes: &[u8]| {
        out.insert(name.to_string(), hex::encode(bytes));
    };
    let Parties {
        mut rng,
        first,
        second,
        alice,
        bob,
        bob2,
    } = parties();
    let chain = ServerKeyChain::new(vec![first.public().clone(), second.public().clone()]).unwrap();
    put("server_key_chain", &chain.to_bytes());
    put("alice_identity", &alice.public().to_bytes());
    put("bob_identity", &bob.public().to_bytes());
    put("bob2_identity", &bob2.public().to_bytes());
    let certificate =
        SenderCertificate::issue(&second, "alice", 1, alice.public(), 1_800_086_400_000).unwrap();
    put("sender_certificate", &certificate.to_bytes());
    let single = seal_single(
        &alice,
        bob.public(),
        &certificate,
        b"vector: sealed",
        &mut rng,
    )
    .unwrap();
    put("sealed_v1", &single);
    let multi = seal_multi(
        &alice,
        &[bob.public(), bob2.public()],
        &certificate,
        b"vector: sealed to two",
        &mut rng,
    )
    .unwrap();
    put("sealed_v2_device_1", &multi.envelope(0).unwrap());
    put("sealed_v2_device_2", &multi.envelope(1).unwrap());
    put("access_key", &access_key(&[7; 32]));
    let padme: Vec<u8> = [100u64, 1025, 1700, 5000, 1_000_000]
        .iter()
        .flat_map(|&n| envelope_bucket(n).unwrap().to_be_bytes())
        .collect();
    put("envelope_buckets", &padme);
    out
}

#[test]
fn sealed_sender_vectors() {
    let produced = produce();
    let path = vectors_path();
    if std::env::var_os("STARLING_WRITE_VECTORS").is_some() {
        let json = serde_json::to_string_pretty(&produced).unwrap();
        std::fs::write(&path, json + "\n").unwrap();
        return;
    }
    let stored: BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("vectors file missing"))
            .unwrap();
    assert_eq!(stored, produced);
    // The stored envelopes open with the parties' secrets (drawn from the
    // same seed) and their certificate verifies through the stored chain.
    let bytes = |name: &str| hex::decode(&stored[name]).unwrap();
    let chain = ServerKeyChain::from_bytes(&bytes("server_key_chain")).unwrap();
    let first = &chain.keys()[0];
    let mut trust =
        TrustedServerKeys::pin(first.id(), &first.public_key(), first.created_at()).unwrap();
    assert_eq!(trust.advance(&chain, 1_800_000_000_002), Ok(1));
    let certificate = SenderCertificate::from_bytes(&bytes("sender_certificate")).unwrap();
    certificate.verify(&trust, 1_800_000_000_002).unwrap();
    let p = parties();
    let mut verifier = CertificateVerifier::new(trust);
    for (device, name, inner) in [
        (&p.bob, "sealed_v1", &b"vector: sealed"[..]),
        (&p.bob, "sealed_v2_device_1", b"vector: sealed to two"),
        (&p.bob2, "sealed_v2_device_2", b"vector: sealed to two"),
    ] {
        let certified = open(device, &bytes(name))
            .unwrap()
            .verify(&mut verifier, 1_800_000_000_002)
            .unwrap();
        assert_eq!(&certified.inner[..], inner, "{name}");
        assert_eq!(certified.sender.identity, p.alice.public().public_bytes());
    }
}
