//! Replays the fuzz corpus under `crypto/fuzz/` as an ordinary test: every
//! file in `seeds/<target>/` and `regressions/<target>/` goes through the
//! same decode and decrypt calls as the cargo-fuzz target of that name, so a
//! crash the fuzzer once found stays fixed without a nightly toolchain.
//!
//! The fixtures (fixed sessions, attachments, safety numbers) come from the
//! fuzz crate's `src/fixture.rs`, included here by path: this test does not
//! depend on the fuzz crate, yet checks the seeds against the very sessions
//! the fuzzer uses. Seed names carry the expectation:
//! - `genuine_*`: the operation succeeds (decrypts, or matches);
//! - `valid_<kind>*`: the input decodes (as `<kind>` where the target has
//!   several decoders);
//! - anything else (every regression): only "no panic".
//!
//! Regenerate the seeds with `cargo run --example seed` in `crypto/fuzz`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

use starling_crypto::attachment::AttachmentDecryptor;
use starling_crypto::group::{GroupDecryptError, InboundGroupSession, SenderKeyDistribution};
use starling_crypto::prekeys::{KemPreKey, OneTimePreKey, SignedPreKey};
use starling_crypto::ratchet::{CiphertextMessage, PeerSessions, Session};
use starling_crypto::{IdentityKey, IdentityKeyPair, PreKeyBundle, PreKeyStore};

#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "../fuzz/src/fixture.rs"]
mod fixture;

use fixture::{AttachmentInput, Group, PairSnapshot, SEALED_EXPIRY, Sealed};
use starling_crypto::sealed::{
    SenderCertificate, ServerKeyChain, ServerSigningKey, TrustedServerKeys,
};

/// Every fuzz target; each must have seeds.
const TARGETS: [&str; 9] = [
    "decode_bundle",
    "decode_message",
    "decrypt_session",
    "decrypt_group",
    "decrypt_attachment",
    "decode_state",
    "scannable_fingerprint",
    "open_sealed",
    "decode_certificate",
];

/// What a file's name promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect<'a> {
    /// `genuine_*`: the operation succeeds.
    Genuine,
    /// `valid_<kind>*`: decodes as `<kind>`.
    Valid(&'a str),
    /// Anything else: no panic.
    NoPanic,
}

impl<'a> Expect<'a> {
    fn from_name(name: &'a str) -> Self {
        if name.starts_with("genuine_") {
            Self::Genuine
        } else if let Some(rest) = name.strip_prefix("valid_") {
            Self::Valid(rest.split('_').next().unwrap_or(rest))
        } else {
            Self::NoPanic
        }
    }
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `fuzz/<folder>/<target>/`, sorted; none if it is absent.
fn files(folder: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir().join(folder).join(target);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<(String, Vec<u8>)> = entries
        .map(|entry| entry.expect("readable folder").path())
        .filter(|path| path.is_file())
        .map(|path| {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("utf-8 file name")
                .to_owned();
            let bytes = fs::read(&path).expect("readable corpus file");
            (name, bytes)
        })
        .collect();
    files.sort();
    files
}

/// Seeds with their expectation, then regressions (no panic only).
fn corpus(target: &str) -> Vec<(String, Vec<u8>, bool)> {
    let seeds = files("seeds", target)
        .into_iter()
        .map(|(n, b)| (n, b, true));
    let regressions = files("regressions", target)
        .into_iter()
        .map(|(n, b)| (format!("regressions/{n}"), b, false));
    seeds.chain(regressions).collect()
}

fn expectation(name: &str, is_seed: bool) -> Expect<'_> {
    if is_seed {
        Expect::from_name(name)
    } else {
        Expect::NoPanic
    }
}

#[test]
fn every_target_has_seeds() {
    for target in TARGETS {
        let seeds = files("seeds", target);
        assert!(!seeds.is_empty(), "no seeds for {target}");
        assert!(
            seeds
                .iter()
                .any(|(name, _)| Expect::from_name(name) != Expect::NoPanic),
            "{target} has no seed that promises anything"
        );
    }
    let total: u64 = TARGETS
        .iter()
        .flat_map(|t| files("seeds", t))
        .map(|(_, bytes)| bytes.len() as u64)
        .sum();
    assert!(total < 2 * 1024 * 1024, "seeds take {total} bytes");
}

#[test]
fn decode_bundle() {
    for (name, data, is_seed) in corpus("decode_bundle") {
        let bundle = PreKeyBundle::from_bytes(&data);
        if let Ok(bundle) = &bundle {
            let again = PreKeyBundle::from_bytes(&bundle.to_bytes());
            assert_eq!(again.as_ref(), Ok(bundle), "{name}: bundle round trip");
        }
        let identity = IdentityKey::from_bytes(&data);
        let signed = SignedPreKey::from_bytes(&data);
        let one_time = OneTimePreKey::from_bytes(&data);
        let kem = KemPreKey::from_bytes(&data);
        if let Ok(identity) = &identity {
            if let Ok(signed) = &signed {
                let _ = signed.verify(identity);
            }
            if let Ok(kem) = &kem {
                let _ = kem.verify(identity);
            }
        }
        match expectation(&name, is_seed) {
            Expect::Valid("bundle") => assert!(bundle.is_ok(), "{name}: {bundle:?}"),
            Expect::Valid("identity") => assert!(identity.is_ok(), "{name}: {identity:?}"),
            Expect::Valid("signed") => assert!(signed.is_ok(), "{name}: {signed:?}"),
            Expect::Valid("onetime") => assert!(one_time.is_ok(), "{name}: {one_time:?}"),
            Expect::Valid("kem") => assert!(kem.is_ok(), "{name}: {kem:?}"),
            Expect::NoPanic => {}
            other => panic!("{name}: no such expectation here: {other:?}"),
        }
    }
}

#[test]
fn decode_message() {
    for (name, data, is_seed) in corpus("decode_message") {
        let message = CiphertextMessage::from_bytes(&data);
        if let Ok(message) = &message {
            let encoded = message.to_bytes();
            let again = CiphertextMessage::from_bytes(&encoded).expect("re-encoding decodes");
            assert_eq!(&again, message, "{name}: round trip");
            assert_eq!(again.to_bytes(), encoded, "{name}: canonical encoding");
        }
        match expectation(&name, is_seed) {
            Expect::Valid(_) => assert!(message.is_ok(), "{name}: {message:?}"),
            Expect::NoPanic => {}
            Expect::Genuine => panic!("{name}: nothing to be genuine about here"),
        }
    }
}

#[test]
fn decrypt_session() {
    let (snapshot, _) = PairSnapshot::build();
    for (name, data, is_seed) in corpus("decrypt_session") {
        let mut pair = snapshot.restore();
        let outcome = pair.bob_receives(&data);
        if let Err(error) = pair.check_still_works() {
            panic!("{name}: after this input, {error}");
        }
        match expectation(&name, is_seed) {
            Expect::Genuine => {
                assert!(matches!(outcome, Some(Ok(_))), "{name}: {outcome:?}")
            }
            Expect::Valid(_) => assert!(outcome.is_some(), "{name}: does not decode"),
            Expect::NoPanic => {}
        }
    }
}

#[test]
fn decrypt_group() {
    let snapshot = Group::build().0.snapshot();
    for (name, data, is_seed) in corpus("decrypt_group") {
        let mut group = snapshot.restore();
        let outcome = group.inbound.verify_and_decrypt(&data);
        if let Err(error) = group.check_still_works() {
            panic!("{name}: after this input, {error}");
        }
        let distribution = SenderKeyDistribution::from_bytes(&data);
        if let Ok(distribution) = &distribution {
            let encoded = distribution.to_bytes();
            let again = SenderKeyDistribution::from_bytes(&encoded).expect("re-encoding decodes");
            assert_eq!(*again.to_bytes(), *encoded, "{name}: canonical encoding");
            let sender = group.sender.public().clone();
            let fresh = InboundGroupSession::new(distribution, &sender);
            if is_seed && name.starts_with("valid_distribution") {
                assert!(fresh.is_ok(), "{name}: not bound to the sender: {fresh:?}");
            }
            let mut sessions = Vec::new();
            if let Ok(mut fresh) = fresh {
                let _ = fresh.verify_and_decrypt(&data);
                sessions.push(fresh);
            }
            let _ = group.inbound.add_distribution(distribution, &sender);
            for session in sessions.iter().chain([&group.inbound]) {
                let state = session.to_bytes();
                let restored = InboundGroupSession::from_bytes(&state).expect("state decodes");
                assert_eq!(*restored.to_bytes(), *state, "{name}: canonical state");
            }
        }
        match expectation(&name, is_seed) {
            Expect::Genuine => assert!(outcome.is_ok(), "{name}: {outcome:?}"),
            Expect::Valid("distribution") => {
                assert!(distribution.is_ok(), "{name}: {distribution:?}")
            }
            Expect::Valid(_) => assert!(
                !matches!(outcome, Err(GroupDecryptError::Decode(_))),
                "{name}: {outcome:?}"
            ),
            Expect::NoPanic => {}
        }
    }
}

#[test]
fn decrypt_attachment() {
    let genuine = fixture::genuine_attachments();
    let fixed = fixture::fixed_attachment_info();
    for (name, data, is_seed) in corpus("decrypt_attachment") {
        let input = AttachmentInput::parse(&data);
        let sliced = fixture::decrypt_in_slices(input.stream, &input.slice_lens, &fixed);
        let whole = AttachmentDecryptor::decrypt_all(input.stream, &fixed);
        assert_eq!(sliced, whole, "{name}: slicing changed the outcome");

        let (_, info) = &genuine[input.info_index];
        let sliced = fixture::decrypt_in_slices(input.stream, &input.slice_lens, info);
        let whole = AttachmentDecryptor::decrypt_all(input.stream, info);
        assert_eq!(sliced, whole, "{name}: slicing changed the outcome");
        if let Ok(plaintext) = &whole {
            assert_eq!(
                plaintext,
                &fixture::attachment_plaintext(input.info_index),
                "{name}"
            );
        }
        match expectation(&name, is_seed) {
            Expect::Genuine => assert!(whole.is_ok(), "{name}: {whole:?}"),
            Expect::NoPanic => {}
            Expect::Valid(_) => panic!("{name}: attachments have no decoder"),
        }
    }
}

#[test]
fn decode_state() {
    let owner = IdentityKeyPair::generate(&mut fixture::rng(fixture::seeds::PAIR));
    let group_sender = Group::build().0.sender;
    for (name, data, is_seed) in corpus("decode_state") {
        let session = Session::from_bytes(&data).map(|mut s| {
            let state = s.to_bytes();
            let again = Session::from_bytes(&state).expect("re-encoding decodes");
            assert_eq!(*again.to_bytes(), *state, "{name}: canonical session");
            let _ = s.encrypt(b"x");
        });
        let peers = PeerSessions::from_bytes(&data).map(|mut s| {
            let state = s.to_bytes();
            let again = PeerSessions::from_bytes(&state).expect("re-encoding decodes");
            assert_eq!(*again.to_bytes(), *state, "{name}: canonical sessions");
            let _ = s.encrypt(b"x");
        });
        let prekeys = PreKeyStore::from_bytes(&data).map(|s| {
            let state = s.to_bytes();
            let again = PreKeyStore::from_bytes(&state).expect("re-encoding decodes");
            assert_eq!(*again.to_bytes(), *state, "{name}: canonical store");
            let _ = s.bundle(&owner).map(|b| b.to_bytes());
        });
        let identity = IdentityKeyPair::from_bytes(&data).map(|s| {
            let state = s.to_bytes();
            let again = IdentityKeyPair::from_bytes(&state).expect("re-encoding decodes");
            assert_eq!(*again.to_bytes(), *state, "{name}: canonical identity");
        });
        let outbound =
            starling_crypto::group::OutboundGroupSession::from_bytes(&data).map(|mut s| {
                let state = s.to_bytes();
                let again = starling_crypto::group::OutboundGroupSession::from_bytes(&state)
                    .expect("re-encoding decodes");
                assert_eq!(*again.to_bytes(), *state, "{name}: canonical outbound");
                // Only the fixture's sender can sign for its outbound state.
                if let Ok(distribution) = s.distribution(&group_sender)
                    && let Ok(message) = s.encrypt(b"x")
                {
                    let mut inbound =
                        InboundGroupSession::new(&distribution, group_sender.public())
                            .expect("bound to the sender");
                    inbound
                        .verify_and_decrypt(&message)
                        .expect("a member decrypts");
                }
            });
        let inbound = InboundGroupSession::from_bytes(&data).map(|s| {
            let state = s.to_bytes();
            let again = InboundGroupSession::from_bytes(&state).expect("re-encoding decodes");
            assert_eq!(*again.to_bytes(), *state, "{name}: canonical inbound");
        });
        let ok = match expectation(&name, is_seed) {
            Expect::Valid("session") => session.is_ok(),
            Expect::Valid("peers") => peers.is_ok(),
            Expect::Valid("prekeys") => prekeys.is_ok(),
            Expect::Valid("identity") => identity.is_ok(),
            Expect::Valid("outbound") => outbound.is_ok(),
            Expect::Valid("inbound") => inbound.is_ok(),
            Expect::NoPanic => true,
            other => panic!("{name}: no such expectation here: {other:?}"),
        };
        assert!(ok, "{name} does not decode as promised");
    }
}

#[test]
fn scannable_fingerprint() {
    let (number, _) = fixture::safety_numbers();
    for (name, data, is_seed) in corpus("scannable_fingerprint") {
        let matched = number.matches_scanned(&data);
        if let Ok(text) = std::str::from_utf8(&data) {
            let _ = number.matches_digits(text);
        }
        match expectation(&name, is_seed) {
            Expect::Genuine => assert_eq!(matched, Ok(true), "{name}"),
            Expect::Valid(_) => assert!(matched.is_ok(), "{name}: {matched:?}"),
            Expect::NoPanic => {}
        }
    }
}

#[test]
fn open_sealed() {
    let sealed = Sealed::build();
    for (name, data, is_seed) in corpus("open_sealed") {
        let outcome = sealed.bob_opens(&mut sealed.verifier(), &data);
        match expectation(&name, is_seed) {
            Expect::Genuine => assert!(outcome.is_ok(), "{name}: {outcome:?}"),
            Expect::NoPanic => assert!(!is_seed || outcome.is_err(), "{name} opened"),
            Expect::Valid(_) => panic!("{name}: sealed envelopes have no decoder alone"),
        }
    }
}

#[test]
fn decode_certificate() {
    let sealed = Sealed::build();
    for (name, data, is_seed) in corpus("decode_certificate") {
        let certificate = SenderCertificate::from_bytes(&data);
        if let Ok(certificate) = &certificate {
            let again = SenderCertificate::from_bytes(&certificate.to_bytes());
            assert_eq!(again.as_ref(), Ok(certificate), "{name}: round trip");
            if sealed.verifier().verify(certificate, SEALED_EXPIRY).is_ok() {
                assert_eq!(certificate, &sealed.certificate, "{name}: verified");
            }
        }
        let chain = ServerKeyChain::from_bytes(&data);
        if let Ok(chain) = &chain {
            let mut trust = sealed.verifier().trust().clone();
            let _ = trust.advance(chain, 0);
        }
        let trust = TrustedServerKeys::from_bytes(&data);
        let key = ServerSigningKey::from_bytes(&data);
        let ok = match expectation(&name, is_seed) {
            Expect::Valid("certificate") => certificate.is_ok(),
            Expect::Valid("chain") => chain.is_ok(),
            Expect::Valid("trust") => trust.is_ok(),
            Expect::Valid("signingkey") => key.is_ok(),
            Expect::NoPanic => true,
            other => panic!("{name}: no such expectation here: {other:?}"),
        };
        assert!(ok, "{name} does not decode as promised");
    }
}
