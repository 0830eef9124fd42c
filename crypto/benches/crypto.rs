//! Criterion benchmarks for `starling-crypto`, side by side with the
//! primitives it is built from and with vodozemac (Olm and Megolm).
//!
//! Groups (see `docs/PERFORMANCE.md` for the targets and the results):
//! - `primitives`: X25519, Ed25519, HMAC-SHA256, ChaCha20-Poly1305,
//!   ML-KEM-768, SHA-256 and BLAKE3 on their own: the floors the other groups are
//!   compared with.
//! - `setup`: X3DH and PQXDH session setup, both sides, and vodozemac's Olm
//!   session creation.
//! - `message`: one 256-byte message within a chain, and one that triggers a
//!   DH ratchet step, for starling and Olm; raw ChaCha20-Poly1305 for scale.
//! - `group`: one 256-byte Sender Key message against Megolm.
//! - `attachment`: 16 MiB attachment streams against raw ChaCha20-Poly1305.
//!
//! Our crate gets a seeded `ChaCha20Rng`; vodozemac uses its own RNG.
//! `crypto/benches/report.py` turns the results into the tables of
//! `docs/PERFORMANCE.md`.

use std::hint::black_box;
use std::time::Duration;

use chacha20poly1305::aead::{Aead, AeadInOut, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};
use criterion::{BatchSize, Criterion, SamplingMode, Throughput};
use ed25519_dalek::{Signer, SigningKey, Verifier};
use hmac::{Hmac, Mac};
use ml_kem::kem::{Decapsulate, Encapsulate};
use ml_kem::{KemCore, MlKem768};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};

use starling_crypto::attachment::{
    AttachmentDecryptor, AttachmentEncryptor, AttachmentInfo, HEADER_SIZE, SEALED_CHUNK,
    ciphertext_len,
};
use starling_crypto::group::{InboundGroupSession, OutboundGroupSession};
use starling_crypto::ratchet::{CiphertextMessage, PreKeyMessage, RatchetMessage, Session};
use starling_crypto::{IdentityKeyPair, PreKeyBundle, PreKeyStore};

use vodozemac::megolm::{
    GroupSession, InboundGroupSession as MegolmInbound, MegolmMessage,
    SessionConfig as MegolmConfig,
};
use vodozemac::olm::{Account, OlmMessage, PreKeyMessage as OlmPreKeyMessage, SessionConfig};

/// Size of the message payloads.
const MESSAGE_LEN: usize = 256;
/// Size of the attachment streamed in the `attachment` group.
const ATTACHMENT_LEN: usize = 16 * 1024 * 1024;
/// Slices the attachment is fed in, and the raw AEAD's chunk size.
const SLICE_LEN: usize = 64 * 1024;
/// Length of the associated data of one starling ratchet message:
/// "Starling_Message_v1" (19) || two identities (2 × 64) || ratchet key (32)
/// || counter (4) || previous counter (4). The raw AEAD line uses the same.
const RATCHET_AD_LEN: usize = 19 + 128 + 40;

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn random_bytes(rng: &mut ChaCha20Rng, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rng.fill_bytes(&mut bytes);
    bytes
}

/// The ratchet message inside a message expected to be a plain one.
fn ratchet(message: CiphertextMessage) -> RatchetMessage {
    match message {
        CiphertextMessage::Ratchet(message) => message,
        CiphertextMessage::PreKey(_) => panic!("expected a ratchet message, got a prekey message"),
    }
}

/// The prekey message inside a message expected to be one.
fn prekey(message: CiphertextMessage) -> PreKeyMessage {
    match message {
        CiphertextMessage::PreKey(message) => *message,
        CiphertextMessage::Ratchet(_) => panic!("expected a prekey message"),
    }
}

/// A responder with a signed prekey, one one-time X25519 prekey and one
/// one-time ML-KEM-768 prekey (sessions are PQXDH only).
struct Responder {
    identity: IdentityKeyPair,
    store: PreKeyStore,
}

impl Responder {
    fn new(rng: &mut ChaCha20Rng) -> Self {
        let identity = IdentityKeyPair::generate(rng);
        let mut store = PreKeyStore::new();
        store.generate_signed_prekey(&identity, 0, rng);
        store
            .generate_one_time_prekeys(1, rng)
            .expect("one one-time prekey fits");
        store
            .generate_kem_prekeys(&identity, 1, rng)
            .expect("one kem prekey fits");
        Self { identity, store }
    }

    fn bundle(&self) -> PreKeyBundle {
        self.store
            .bundle(&self.identity)
            .expect("signed prekey exists")
    }
}

/// Two starling sessions after a full handshake: A initiated, B accepted
/// and replied, A answered once more. A's next message to B is in-chain; B's
/// next message to A triggers a DH ratchet step at A.
fn starling_pair(rng: &mut ChaCha20Rng) -> (Session, Session) {
    let alice = IdentityKeyPair::generate(rng);
    let mut bob = Responder::new(rng);
    let mut a = Session::initiate(&alice, &bob.bundle(), rng).expect("initiate");
    let first = prekey(a.encrypt(b"hello").expect("encrypt"));
    let (mut b, _) = Session::accept(&bob.identity, &mut bob.store, &first, rng).expect("accept");
    let reply = ratchet(b.encrypt(b"reply").expect("encrypt"));
    a.decrypt(&reply, rng).expect("decrypt reply");
    assert!(!a.is_awaiting_reply());
    let again = ratchet(a.encrypt(b"again").expect("encrypt"));
    b.decrypt(&again, rng).expect("decrypt again");
    (a, b)
}

/// Two Olm sessions in the same state as [`starling_pair`].
fn olm_pair() -> (vodozemac::olm::Session, vodozemac::olm::Session) {
    let alice = Account::new();
    let mut bob = Account::new();
    bob.generate_one_time_keys(1);
    let otk = *bob.one_time_keys().values().next().expect("one-time key");
    bob.mark_keys_as_published();
    let mut a =
        alice.create_outbound_session(SessionConfig::version_2(), bob.curve25519_key(), otk);
    let OlmMessage::PreKey(first) = a.encrypt(b"hello") else {
        panic!("expected an Olm prekey message");
    };
    let mut b = bob
        .create_inbound_session(alice.curve25519_key(), &first)
        .expect("inbound session")
        .session;
    a.decrypt(&b.encrypt(b"reply")).expect("decrypt reply");
    let again = a.encrypt(b"again");
    assert!(matches!(again, OlmMessage::Normal(_)));
    b.decrypt(&again).expect("decrypt again");
    (a, b)
}

/// The public-key operations of a composite operation, done back to back
/// in one iteration: its floor, measured right next to it so that both see
/// the same machine load and a similarly cold cache.
struct Floor {
    secret: StaticSecret,
    peer: PublicKey,
    kem_dk: <MlKem768 as KemCore>::DecapsulationKey,
    kem_ek: <MlKem768 as KemCore>::EncapsulationKey,
    kem_ciphertext: ml_kem::Ciphertext<MlKem768>,
}

impl Floor {
    fn new(rng: &mut ChaCha20Rng) -> Self {
        let (kem_dk, kem_ek) = MlKem768::generate(rng);
        let (kem_ciphertext, _) = kem_ek.encapsulate(rng).expect("encapsulate");
        Self {
            secret: StaticSecret::random_from_rng(&mut *rng),
            peer: PublicKey::from(&StaticSecret::random_from_rng(&mut *rng)),
            kem_dk,
            kem_ek,
            kem_ciphertext,
        }
    }

    /// `dhs` variable-base X25519 DHs, `keygens` X25519 key generations,
    /// then one ML-KEM-768 encapsulation or decapsulation if asked.
    fn run(&self, dhs: usize, keygens: usize, kem: Kem, rng: &mut ChaCha20Rng) -> [u8; 32] {
        let mut acc = [0u8; 32];
        let mut absorb = |bytes: &[u8]| acc.iter_mut().zip(bytes).for_each(|(a, b)| *a ^= b);
        for _ in 0..dhs {
            absorb(
                black_box(&self.secret)
                    .diffie_hellman(black_box(&self.peer))
                    .as_bytes(),
            );
        }
        for _ in 0..keygens {
            absorb(PublicKey::from(&StaticSecret::random_from_rng(&mut *rng)).as_bytes());
        }
        match kem {
            Kem::None => {}
            Kem::Encapsulate => {
                absorb(&self.kem_ek.encapsulate(rng).expect("encapsulate").1);
            }
            Kem::Decapsulate => {
                absorb(
                    &self
                        .kem_dk
                        .decapsulate(black_box(&self.kem_ciphertext))
                        .expect("decapsulate"),
                );
            }
        }
        acc
    }
}

/// The ML-KEM operation in a [`Floor`].
#[derive(Clone, Copy)]
enum Kem {
    None,
    Encapsulate,
    Decapsulate,
}

fn primitives(c: &mut Criterion) {
    let mut rng = rng(1);
    let mut group = c.benchmark_group("primitives");

    let secret = StaticSecret::random_from_rng(&mut rng);
    let peer = PublicKey::from(&StaticSecret::random_from_rng(&mut rng));
    group.bench_function("x25519_dh", |b| {
        b.iter(|| black_box(&secret).diffie_hellman(black_box(&peer)))
    });
    group.bench_function("x25519_keygen", |b| {
        b.iter(|| {
            let secret = StaticSecret::random_from_rng(&mut rng);
            PublicKey::from(&secret)
        })
    });

    let signing = SigningKey::generate(&mut rng);
    let verifying = signing.verifying_key();
    let data = random_bytes(&mut rng, 64);
    let signature = signing.sign(&data);
    group.bench_function("ed25519_sign", |b| {
        b.iter(|| signing.sign(black_box(&data)))
    });
    group.bench_function("ed25519_verify", |b| {
        b.iter(|| {
            verifying
                .verify_strict(black_box(&data), black_box(&signature))
                .expect("valid signature")
        })
    });
    // RFC 8032's cofactorless check without the strict extras: what
    // vodozemac 0.9 uses by default, and what starling's strict rule costs
    // (it adds only a comparison of R with eight encodings, SPEC.md 1.4).
    group.bench_function("ed25519_verify_rfc8032", |b| {
        b.iter(|| {
            verifying
                .verify(black_box(&data), black_box(&signature))
                .expect("valid signature")
        })
    });

    let hmac_key = random_bytes(&mut rng, 32);
    group.bench_function("hmac_sha256_1b", |b| {
        b.iter(|| {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(black_box(&hmac_key))
                .expect("any key length");
            mac.update(black_box(&[1u8]));
            mac.finalize().into_bytes()
        })
    });

    let cipher =
        ChaCha20Poly1305::new_from_slice(&random_bytes(&mut rng, 32)).expect("32-byte key");
    let nonce = Nonce::from([7u8; 12]);
    let plaintext = random_bytes(&mut rng, MESSAGE_LEN);
    let ciphertext = cipher.encrypt(&nonce, &plaintext[..]).expect("encrypt");
    group.bench_function("aead_encrypt_256b", |b| {
        b.iter(|| {
            cipher
                .encrypt(&nonce, black_box(&plaintext[..]))
                .expect("encrypt")
        })
    });
    group.bench_function("aead_decrypt_256b", |b| {
        b.iter(|| {
            cipher
                .decrypt(&nonce, black_box(&ciphertext[..]))
                .expect("decrypt")
        })
    });

    let (dk, ek) = MlKem768::generate(&mut rng);
    let (kem_ciphertext, _) = ek.encapsulate(&mut rng).expect("encapsulate");
    group.bench_function("mlkem768_encaps", |b| {
        b.iter(|| ek.encapsulate(&mut rng).expect("encapsulate"))
    });
    group.bench_function("mlkem768_decaps", |b| {
        b.iter(|| {
            dk.decapsulate(black_box(&kem_ciphertext))
                .expect("decapsulate")
        })
    });

    let mib = random_bytes(&mut rng, 1024 * 1024);
    group.throughput(Throughput::Bytes(1024 * 1024));
    group.bench_function("sha256_1mib", |b| {
        b.iter(|| Sha256::digest(black_box(&mib)))
    });
    // The attachment digest, fed in 64 KiB slices as the streams feed it.
    group.bench_function("blake3_1mib", |b| {
        b.iter(|| {
            let mut hasher = blake3::Hasher::new();
            for slice in black_box(&mib).chunks(SLICE_LEN) {
                hasher.update(slice);
            }
            hasher.finalize()
        })
    });
    group.finish();
}

fn setup(c: &mut Criterion) {
    let mut rng = rng(2);
    let mut group = c.benchmark_group("setup");
    let alice = IdentityKeyPair::generate(&mut rng);
    let floor = Floor::new(&mut rng);

    {
        let (kind, encaps, decaps) = ("pqxdh", Kem::Encapsulate, Kem::Decapsulate);
        let bob = Responder::new(&mut rng);
        let bundle = bob.bundle();
        assert!(bundle.is_post_quantum());
        let bundle_bytes = bundle.to_bytes();

        group.bench_function(format!("{kind}_initiate"), |b| {
            b.iter(|| Session::initiate(&alice, black_box(&bundle), &mut rng).expect("initiate"))
        });
        // DH(IK_A, SPK), DH(EK, IK_B), DH(EK, SPK), DH(EK, OPK) and
        // DH(ratchet key, SPK); EK and the ratchet key generated; with
        // PQXDH, one encapsulation.
        group.bench_function(format!("{kind}_initiate_ops"), |b| {
            b.iter(|| floor.run(5, 2, encaps, &mut rng))
        });
        // Where the bundle's signatures are verified.
        group.bench_function(format!("{kind}_bundle_decode"), |b| {
            b.iter(|| PreKeyBundle::from_bytes(black_box(&bundle_bytes)).expect("valid bundle"))
        });

        let mut initiator = Session::initiate(&alice, &bundle, &mut rng).expect("initiate");
        let wire = initiator.encrypt(b"hello").expect("encrypt").to_bytes();
        let first = prekey(CiphertextMessage::from_bytes(&wire).expect("decode"));
        assert!(first.is_post_quantum());
        let store_bytes = bob.store.to_bytes();
        group.bench_function(format!("{kind}_accept"), |b| {
            b.iter_batched_ref(
                || PreKeyStore::from_bytes(&store_bytes).expect("store decodes"),
                |store| Session::accept(&bob.identity, store, &first, &mut rng).expect("accept"),
                BatchSize::SmallInput,
            )
        });
        // The four X3DH DHs, the receiving step's DH, the new ratchet key's
        // DH and its generation; with PQXDH, one decapsulation.
        group.bench_function(format!("{kind}_accept_ops"), |b| {
            b.iter(|| floor.run(6, 1, decaps, &mut rng))
        });
        // Where the initiator identity's self-signature is verified.
        group.bench_function("prekey_message_decode", |b| {
            b.iter(|| CiphertextMessage::from_bytes(black_box(&wire)).expect("decode"))
        });
    }

    let olm_alice = Account::new();
    let mut olm_bob = Account::new();
    olm_bob.generate_one_time_keys(1);
    let otk = *olm_bob
        .one_time_keys()
        .values()
        .next()
        .expect("one-time key");
    let bob_key = olm_bob.curve25519_key();
    group.bench_function("olm_outbound", |b| {
        b.iter(|| {
            olm_alice.create_outbound_session(
                SessionConfig::version_2(),
                black_box(bob_key),
                black_box(otk),
            )
        })
    });
    let alice_key = olm_alice.curve25519_key();
    group.bench_function("olm_inbound", |b| {
        b.iter_batched_ref(
            || -> (Account, OlmPreKeyMessage) {
                let mut bob = Account::new();
                bob.generate_one_time_keys(1);
                let otk = *bob.one_time_keys().values().next().expect("one-time key");
                let mut session = olm_alice.create_outbound_session(
                    SessionConfig::version_2(),
                    bob.curve25519_key(),
                    otk,
                );
                let OlmMessage::PreKey(message) = session.encrypt(b"hello") else {
                    panic!("expected an Olm prekey message");
                };
                (bob, message)
            },
            |(bob, message)| {
                bob.create_inbound_session(alice_key, message)
                    .expect("inbound session")
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn message(c: &mut Criterion) {
    let mut rng = rng(3);
    let mut group = c.benchmark_group("message");
    let payload = random_bytes(&mut rng, MESSAGE_LEN);

    // In-chain: A sends, B receives, no ratchet step.
    let (mut a, mut b) = starling_pair(&mut rng);
    for expected in 1..4 {
        let message = ratchet(a.encrypt(&payload).expect("encrypt"));
        assert_eq!(message.counter(), expected, "message stays in A's chain");
        b.decrypt(&message, &mut rng).expect("decrypt");
    }
    group.bench_function("starling_in_chain", |bench| {
        bench.iter(|| {
            let message = ratchet(a.encrypt(black_box(&payload)).expect("encrypt"));
            b.decrypt(&message, &mut rng).expect("decrypt")
        })
    });

    let (mut olm_a, mut olm_b) = olm_pair();
    group.bench_function("olm_in_chain", |bench| {
        bench.iter(|| {
            let message = olm_a.encrypt(black_box(&payload));
            olm_b.decrypt(&message).expect("decrypt")
        })
    });

    // The AEAD work of one starling message, with its associated data size.
    let cipher =
        ChaCha20Poly1305::new_from_slice(&random_bytes(&mut rng, 32)).expect("32-byte key");
    let nonce = Nonce::from([9u8; 12]);
    let ad = random_bytes(&mut rng, RATCHET_AD_LEN);
    group.bench_function("aead_in_chain", |bench| {
        bench.iter(|| {
            let sealed = cipher
                .encrypt(
                    &nonce,
                    Payload {
                        msg: black_box(&payload),
                        aad: &ad,
                    },
                )
                .expect("encrypt");
            cipher
                .decrypt(
                    &nonce,
                    Payload {
                        msg: &sealed,
                        aad: &ad,
                    },
                )
                .expect("decrypt")
        })
    });

    // Ping-pong: every message answers the previous one, so every receive
    // starts a new chain. After `starling_pair`, B speaks next.
    let (mut a, mut b) = starling_pair(&mut rng);
    let mut b_speaks = true;
    let mut step = |rng: &mut ChaCha20Rng| {
        let (sender, receiver) = if b_speaks {
            (&mut b, &mut a)
        } else {
            (&mut a, &mut b)
        };
        b_speaks = !b_speaks;
        let message = ratchet(sender.encrypt(black_box(&payload)).expect("encrypt"));
        let counter = message.counter();
        receiver.decrypt(&message, rng).expect("decrypt");
        counter
    };
    for _ in 0..4 {
        assert_eq!(
            step(&mut rng),
            0,
            "each ping-pong message opens a new chain"
        );
    }
    // The receiver's DH with the new ratchet key, its own new key and the
    // DH with that: what a receive-side ratchet step costs in X25519.
    let floor = Floor::new(&mut rng);
    group.bench_function("ratchet_step_ops", |bench| {
        bench.iter(|| floor.run(2, 1, Kem::None, &mut rng))
    });
    group.bench_function("starling_ratchet_step", |bench| {
        bench.iter(|| step(&mut rng))
    });

    let (mut olm_a, mut olm_b) = olm_pair();
    let mut b_speaks = true;
    group.bench_function("olm_ratchet_step", |bench| {
        bench.iter(|| {
            let (sender, receiver) = if b_speaks {
                (&mut olm_b, &mut olm_a)
            } else {
                (&mut olm_a, &mut olm_b)
            };
            b_speaks = !b_speaks;
            let message = sender.encrypt(black_box(&payload));
            receiver.decrypt(&message).expect("decrypt")
        })
    });
    group.finish();
}

fn group(c: &mut Criterion) {
    let mut rng = rng(4);
    let mut group = c.benchmark_group("group");
    let payload = random_bytes(&mut rng, MESSAGE_LEN);

    let sender = IdentityKeyPair::generate(&mut rng);
    let mut outbound =
        OutboundGroupSession::new(sender.public(), b"bench group", &mut rng).expect("group id");
    let distribution = outbound.distribution(&sender).expect("our identity");
    let mut inbound =
        InboundGroupSession::new(&distribution, sender.public()).expect("bound to the sender");
    group.bench_function("sender_key", |b| {
        b.iter(|| {
            let wire = outbound.encrypt(black_box(&payload)).expect("encrypt");
            inbound.verify_and_decrypt(&wire).expect("decrypt")
        })
    });

    // Starling's group API is bytes in, bytes out; Megolm's is made to
    // match by encoding and decoding the message.
    let mut megolm = GroupSession::new(MegolmConfig::version_2());
    let mut megolm_inbound = MegolmInbound::new(&megolm.session_key(), MegolmConfig::version_2());
    group.bench_function("megolm", |b| {
        b.iter(|| {
            let wire = megolm.encrypt(black_box(&payload)).to_bytes();
            let message = MegolmMessage::from_bytes(&wire).expect("decode");
            megolm_inbound.decrypt(&message).expect("decrypt")
        })
    });
    group.finish();
}

/// Raw ChaCha20-Poly1305 nonce for chunk `index`.
fn chunk_nonce(index: usize) -> Nonce {
    let mut nonce = [0u8; 12];
    let index = u32::try_from(index).expect("chunk index fits in u32");
    nonce[8..].copy_from_slice(&index.to_be_bytes());
    Nonce::from(nonce)
}

/// Encrypts `plaintext` in 64 KiB pieces with `update_into`, each sealed
/// into `out` (reused) and handed to `sink` before the next one.
fn encrypt_piecewise(
    plaintext: &[u8],
    rng: &mut ChaCha20Rng,
    out: &mut [u8],
    mut sink: impl FnMut(&[u8]),
) -> AttachmentInfo {
    let mut encryptor = AttachmentEncryptor::new(rng);
    for slice in plaintext.chunks(SLICE_LEN) {
        let written = encryptor.update_into(slice, out).expect("update");
        sink(&out[..written]);
    }
    let mut last = Vec::with_capacity(SLICE_LEN);
    let info = encryptor.finish(&mut last).expect("finish");
    sink(&last);
    info
}

/// Decrypts `ciphertext` as a reader that knows the format does: the
/// header, then whole sealed chunks, each opened with `update_into` into
/// `out` (reused) and handed to `sink` before the next one.
fn decrypt_piecewise(
    ciphertext: &[u8],
    info: &AttachmentInfo,
    out: &mut [u8],
    mut sink: impl FnMut(&[u8]),
) {
    let mut decryptor = AttachmentDecryptor::new(info);
    let (header, body) = ciphertext.split_at(HEADER_SIZE);
    for slice in std::iter::once(header).chain(body.chunks(SEALED_CHUNK)) {
        let written = decryptor.update_into(slice, out).expect("update");
        sink(&out[..written]);
    }
    let mut last = Vec::with_capacity(SLICE_LEN);
    decryptor.finish(&mut last).expect("finish");
    sink(&last);
}

fn attachment(c: &mut Criterion) {
    let mut rng = rng(5);
    let mut group = c.benchmark_group("attachment");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Bytes(ATTACHMENT_LEN as u64));

    let plaintext = random_bytes(&mut rng, ATTACHMENT_LEN);
    let sealed_len =
        usize::try_from(ciphertext_len(ATTACHMENT_LEN as u64)).expect("fits in memory");
    let mut out = Vec::with_capacity(sealed_len);
    group.bench_function("stream_encrypt", |b| {
        b.iter(|| {
            out.clear();
            let mut encryptor = AttachmentEncryptor::new(&mut rng);
            for slice in plaintext.chunks(SLICE_LEN) {
                encryptor.update(slice, &mut out).expect("update");
            }
            encryptor.finish(&mut out).expect("finish")
        })
    });

    // The client's file-to-file loop: each 64 KiB piece sealed into one
    // reused buffer and handed on (to a file there) before the next.
    let mut piece = vec![0u8; AttachmentEncryptor::max_update_len(SLICE_LEN)];
    let mut checked = Vec::new();
    let info = encrypt_piecewise(&plaintext, &mut rng, &mut piece, |sealed| {
        checked.extend_from_slice(sealed)
    });
    assert_eq!(
        AttachmentDecryptor::decrypt_all(&checked, &info).expect("decrypt"),
        plaintext
    );
    group.bench_function("stream_encrypt_into", |b| {
        b.iter(|| {
            encrypt_piecewise(&plaintext, &mut rng, &mut piece, |sealed| {
                black_box(sealed);
            })
        })
    });

    let cipher =
        ChaCha20Poly1305::new_from_slice(&random_bytes(&mut rng, 32)).expect("32-byte key");
    let mut buffer = plaintext.clone();
    let mut tags = vec![Tag::default(); ATTACHMENT_LEN.div_ceil(SLICE_LEN)];
    group.bench_function("raw_encrypt", |b| {
        b.iter(|| {
            for (index, (chunk, tag)) in buffer.chunks_mut(SLICE_LEN).zip(&mut tags).enumerate() {
                *tag = cipher
                    .encrypt_inout_detached(&chunk_nonce(index), b"", chunk.into())
                    .expect("encrypt");
            }
        })
    });

    let (ciphertext, info): (Vec<u8>, AttachmentInfo) =
        AttachmentEncryptor::encrypt_all(&plaintext, &mut rng).expect("encrypt");
    let mut decrypted = Vec::with_capacity(ATTACHMENT_LEN);
    group.bench_function("stream_decrypt", |b| {
        b.iter(|| {
            decrypted.clear();
            let mut decryptor = AttachmentDecryptor::new(&info);
            for slice in ciphertext.chunks(SLICE_LEN) {
                decryptor.update(slice, &mut decrypted).expect("update");
            }
            decryptor.finish(&mut decrypted).expect("finish");
        })
    });
    // Empty when a filter skipped the benchmark.
    assert!(
        decrypted.is_empty() || decrypted == plaintext,
        "stream decryption changed the bytes"
    );
    // The client's loop again: the header, then whole sealed chunks, each
    // opened into one reused buffer.
    let mut piece = vec![0u8; AttachmentDecryptor::max_update_len(SEALED_CHUNK)];
    let mut checked = Vec::new();
    decrypt_piecewise(&ciphertext, &info, &mut piece, |opened| {
        checked.extend_from_slice(opened)
    });
    assert_eq!(checked, plaintext, "piecewise decryption changed the bytes");
    group.bench_function("stream_decrypt_into", |b| {
        b.iter(|| {
            decrypt_piecewise(&ciphertext, &info, &mut piece, |opened| {
                black_box(opened);
            })
        })
    });

    // Fresh ciphertext and tags for the raw decryption, which works in place
    // on a copy made outside the timing.
    let mut raw_sealed = plaintext.clone();
    for (index, (chunk, tag)) in raw_sealed.chunks_mut(SLICE_LEN).zip(&mut tags).enumerate() {
        *tag = cipher
            .encrypt_inout_detached(&chunk_nonce(index), b"", chunk.into())
            .expect("encrypt");
    }
    group.bench_function("raw_decrypt", |b| {
        b.iter_batched_ref(
            || raw_sealed.clone(),
            |buffer| {
                for (index, (chunk, tag)) in buffer.chunks_mut(SLICE_LEN).zip(&tags).enumerate() {
                    cipher
                        .decrypt_inout_detached(&chunk_nonce(index), b"", chunk.into(), tag)
                        .expect("decrypt");
                }
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

/// What `criterion_group!` and `criterion_main!` would generate, written
/// out so that every item is documented (the workspace warns on
/// `missing_docs`).
fn main() {
    let mut criterion = config().configure_from_args();
    primitives(&mut criterion);
    setup(&mut criterion);
    message(&mut criterion);
    group(&mut criterion);
    attachment(&mut criterion);
    criterion.final_summary();
}
