//! Criterion benchmarks of sealed sender (`starling_crypto::sealed`),
//! against the floor of its own Diffie-Hellman and AEAD work measured in
//! place, as `docs/PERFORMANCE.md` reports them.
//!
//! Group `sealed`:
//! - `v1_seal_open_256b`: one 256-byte inner message sealed for one device,
//!   opened, and its certificate verified by a verifier that has seen the
//!   certificate before (every message after a conversation's first).
//! - `v1_first_message_256b`: the same with a fresh verifier, so one
//!   Ed25519 verification more.
//! - `v1_ops_256b`: the floor: 1 X25519 key generation, 4 X25519 DH, and
//!   ChaCha20-Poly1305 sealing and opening of the 32-byte static key and of
//!   the padded plaintext of the same envelope.
//! - `v2_seal_1dev`, `v2_seal_10dev`: one multi-recipient seal for 1 and 10
//!   devices; each added device costs 2 X25519 DH and two hashes.
//!
//! `crypto/benches/report.py` turns the results into the ratios.

use std::hint::black_box;
use std::time::Duration;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use criterion::Criterion;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use x25519_dalek::{PublicKey, StaticSecret};

use starling_crypto::IdentityKeyPair;
use starling_crypto::sealed::{
    CertificateVerifier, ENVELOPE_OVERHEAD, SenderCertificate, ServerSigningKey, TrustedServerKeys,
    open, seal_multi, seal_single,
};

/// Size of the inner message.
const INNER_LEN: usize = 256;

struct Parties {
    rng: ChaCha20Rng,
    alice: IdentityKeyPair,
    bob: IdentityKeyPair,
    certificate: SenderCertificate,
    trust: TrustedServerKeys,
}

impl Parties {
    /// Alice seals `inner` for Bob; Bob opens it and verifies the
    /// certificate with `verifier`.
    fn round_trip(&mut self, inner: &[u8], verifier: &mut CertificateVerifier) -> usize {
        let envelope = seal_single(
            &self.alice,
            self.bob.public(),
            &self.certificate,
            inner,
            &mut self.rng,
        )
        .expect("seal");
        let certified = open(&self.bob, &envelope)
            .expect("open")
            .verify(verifier, 0)
            .expect("verify");
        certified.inner.len()
    }
}

fn parties() -> Parties {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let server = ServerSigningKey::generate(0, &mut rng);
    let alice = IdentityKeyPair::generate(&mut rng);
    let bob = IdentityKeyPair::generate(&mut rng);
    let certificate = SenderCertificate::issue(&server, "alice", 1, alice.public(), u64::MAX)
        .expect("valid certificate");
    let public = server.public();
    let trust = TrustedServerKeys::pin(public.id(), &public.public_key(), 0).expect("valid key");
    Parties {
        rng,
        alice,
        bob,
        certificate,
        trust,
    }
}

/// The X25519 and AEAD work of one v1 seal and open, on the lengths the
/// real envelope has.
struct Floor {
    secret: StaticSecret,
    peer: PublicKey,
    cipher: ChaCha20Poly1305,
    padded: Vec<u8>,
}

impl Floor {
    fn new(rng: &mut ChaCha20Rng, envelope_len: usize) -> Self {
        Self {
            secret: StaticSecret::random_from_rng(&mut *rng),
            peer: PublicKey::from(&StaticSecret::random_from_rng(&mut *rng)),
            cipher: ChaCha20Poly1305::new(&[7u8; 32].into()),
            padded: vec![0x5a; envelope_len - ENVELOPE_OVERHEAD],
        }
    }

    fn run(&self, rng: &mut ChaCha20Rng) -> usize {
        let ephemeral = PublicKey::from(&StaticSecret::random_from_rng(&mut *rng));
        let mut total = ephemeral.as_bytes()[0] as usize;
        for _ in 0..4 {
            total += black_box(&self.secret)
                .diffie_hellman(black_box(&self.peer))
                .as_bytes()[0] as usize;
        }
        let nonce = Nonce::default();
        let aad = [0x31u8; 81];
        for (plaintext, aad) in [(&[1u8; 32][..], &aad[..33]), (&self.padded[..], &aad[..])] {
            let sealed = self
                .cipher
                .encrypt(
                    &nonce,
                    Payload {
                        msg: black_box(plaintext),
                        aad,
                    },
                )
                .expect("encrypt");
            let opened = self
                .cipher
                .decrypt(&nonce, Payload { msg: &sealed, aad })
                .expect("decrypt");
            total += opened.len();
        }
        total
    }
}

fn sealed(c: &mut Criterion) {
    let mut p = parties();
    let mut group = c.benchmark_group("sealed");
    let inner = vec![0x42u8; INNER_LEN];
    let mut verifier = CertificateVerifier::new(p.trust.clone());

    group.bench_function("v1_seal_open_256b", |b| {
        b.iter(|| p.round_trip(black_box(&inner), &mut verifier))
    });
    group.bench_function("v1_first_message_256b", |b| {
        b.iter(|| {
            let mut fresh = CertificateVerifier::new(p.trust.clone());
            p.round_trip(black_box(&inner), &mut fresh)
        })
    });

    let envelope_len = seal_single(&p.alice, p.bob.public(), &p.certificate, &inner, &mut p.rng)
        .expect("seal")
        .len();
    let floor = Floor::new(&mut p.rng, envelope_len);
    group.bench_function("v1_ops_256b", |b| b.iter(|| floor.run(&mut p.rng)));

    let devices: Vec<IdentityKeyPair> = (0..10)
        .map(|_| IdentityKeyPair::generate(&mut p.rng))
        .collect();
    let keys: Vec<_> = devices.iter().map(IdentityKeyPair::public).collect();
    for (name, count) in [("v2_seal_1dev", 1), ("v2_seal_10dev", 10)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                seal_multi(
                    &p.alice,
                    &keys[..count],
                    &p.certificate,
                    black_box(&inner),
                    &mut p.rng,
                )
                .expect("seal")
            })
        });
    }
    group.finish();
}

/// What `criterion_group!` and `criterion_main!` would generate, written
/// out so that every item is documented.
fn main() {
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    sealed(&mut criterion);
    criterion.final_summary();
}
