//! Deterministic fixtures shared by the fuzz targets, the seed generator
//! (`examples/seed.rs`) and the corpus replay test
//! (`crypto/tests/fuzz_corpus.rs`, which includes this file with `#[path]`,
//! so it may use only `starling_crypto`, `rand_chacha` and `rand_core`).
//!
//! Every key comes from a `ChaCha20Rng` with a fixed seed, so the same
//! library builds the same sessions every time, and the genuine messages in
//! `seeds/` keep decrypting against them. When the library's formats or key
//! derivations change, regenerate the seeds: `cargo run --example seed`.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use starling_crypto::attachment::{
    AttachmentDecryptor, AttachmentEncryptor, AttachmentError, AttachmentInfo, AttachmentKey,
    CHUNK_SIZE,
};
use starling_crypto::fingerprint::SafetyNumber;
use starling_crypto::group::{InboundGroupSession, OutboundGroupSession};
use starling_crypto::ratchet::{CiphertextMessage, PeerSessions};
use starling_crypto::sealed::{
    CertificateVerifier, SenderCertificate, ServerKeyChain, ServerSigningKey, TrustedServerKeys,
    open,
};
use starling_crypto::{IdentityKey, IdentityKeyPair, PreKeyBundle, PreKeyStore};

/// Seeds of the fixture's random number generators, one per use.
pub mod seeds {
    /// Alice, Bob and their sessions.
    pub const PAIR: u64 = 0x5374_6172_6c69_6e67;
    /// Carol, who starts new sessions with Bob in the seed corpus.
    pub const CAROL: u64 = PAIR + 1;
    /// What the responder's `decrypt` draws per fuzz run.
    pub const RESPONDER: u64 = PAIR + 2;
    /// The group sessions.
    pub const GROUP: u64 = PAIR + 3;
    /// The genuine attachments.
    pub const ATTACHMENT: u64 = PAIR + 4;
    /// The identities in the safety number.
    pub const FINGERPRINT: u64 = PAIR + 5;
    /// The server key, sender and recipient of sealed envelopes.
    pub const SEALED: u64 = PAIR + 6;
}

/// What sealed envelopes are checked against: the server key the recipient
/// pinned, the sender (with her certificate) and the recipient.
pub struct Sealed {
    /// The server's certificate key (id 1) and its successor (id 2).
    pub server: [ServerSigningKey; 2],
    /// Alice, who seals.
    pub alice: IdentityKeyPair,
    /// Bob, who opens.
    pub bob: IdentityKeyPair,
    /// Alice's certificate, signed by key 2, valid until [`SEALED_EXPIRY`].
    pub certificate: SenderCertificate,
}

/// Expiry of the fixture's certificate, ms since the Unix epoch.
pub const SEALED_EXPIRY: u64 = 1_800_000_000_000;

impl Sealed {
    /// The fixture, the same every time.
    pub fn build() -> Self {
        let mut rng = rng(seeds::SEALED);
        let first = ServerSigningKey::generate(1, &mut rng);
        let second = first.successor(2, &mut rng).expect("ids left");
        let alice = IdentityKeyPair::generate(&mut rng);
        let bob = IdentityKeyPair::generate(&mut rng);
        let certificate =
            SenderCertificate::issue(&second, "alice", 1, alice.public(), SEALED_EXPIRY)
                .expect("valid fields");
        Self {
            server: [first, second],
            alice,
            bob,
            certificate,
        }
    }

    /// The chain of both server keys.
    pub fn chain(&self) -> ServerKeyChain {
        ServerKeyChain::new(self.server.iter().map(|k| k.public().clone()).collect())
            .expect("endorsed chain")
    }

    /// Bob's verifier: key 1 pinned, key 2 accepted from the chain.
    pub fn verifier(&self) -> CertificateVerifier {
        let first = self.server[0].public();
        let mut trust =
            TrustedServerKeys::pin(first.id(), &first.public_key(), 1).expect("valid key");
        trust.advance(&self.chain(), 3).expect("endorsed");
        CertificateVerifier::new(trust)
    }

    /// Opens `data` as Bob, then verifies it an hour before expiry.
    pub fn bob_opens(
        &self,
        verifier: &mut CertificateVerifier,
        data: &[u8],
    ) -> Result<Vec<u8>, String> {
        let opened = open(&self.bob, data).map_err(|e| e.to_string())?;
        let certified = opened
            .verify(verifier, SEALED_EXPIRY - 3_600_000)
            .map_err(|e| e.to_string())?;
        if certified.sender.identity != self.alice.public().public_bytes() {
            return Err("certified a different sender".into());
        }
        Ok(certified.inner.to_vec())
    }
}

/// A generator with a fixed seed.
pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// The message Alice encrypts and drops after a fuzz input, so that the
/// check message never has a counter the seed corpus holds a genuine message
/// for (`genuine_next` is exactly this message).
pub const BURN_PLAINTEXT: &[u8] = b"burned: never delivered by the check";
/// The message that must still decrypt after any fuzz input.
pub const CHECK_PLAINTEXT: &[u8] = b"check: the session still works";

/// Alice's and Bob's identities. Decrypting never changes them, so they are
/// decoded once and shared by every run.
pub struct Identities {
    /// Alice, the initiator.
    pub alice: IdentityKeyPair,
    /// Bob, the responder.
    pub bob: IdentityKeyPair,
}

/// Alice and Bob with an established session (both directions used), Bob's
/// prekey store, and one skipped message key on Bob's side: the mutable
/// state of one run, restored from a [`PairSnapshot`].
pub struct Pair<'a> {
    /// Both identities.
    pub ids: &'a Identities,
    /// Alice's sessions with Bob.
    pub alice_sessions: PeerSessions,
    /// Bob's sessions with Alice.
    pub bob_sessions: PeerSessions,
    /// Bob's private prekeys.
    pub bob_prekeys: PreKeyStore,
}

/// The pair: identities decoded once, and the sessions and prekeys as bytes
/// (from `to_bytes`), restored afresh with `from_bytes` for every run.
pub struct PairSnapshot {
    ids: Identities,
    alice_sessions: Vec<u8>,
    bob_sessions: Vec<u8>,
    bob_prekeys: Vec<u8>,
}

/// Genuine messages made while the pair was built.
pub struct PairHistory {
    /// Alice's first message: the prekey message Bob accepted.
    pub first_prekey_message: Vec<u8>,
    /// A ratchet message Bob already decrypted.
    pub delivered: Vec<u8>,
    /// A ratchet message Bob never received (its key is skipped).
    pub skipped: Vec<u8>,
}

impl PairSnapshot {
    /// Builds the pair and returns the messages exchanged on the way.
    pub fn build() -> (Self, PairHistory) {
        let mut rng = rng(seeds::PAIR);
        let alice = IdentityKeyPair::generate(&mut rng);
        let bob = IdentityKeyPair::generate(&mut rng);
        let mut bob_prekeys = PreKeyStore::new();
        bob_prekeys.generate_signed_prekey(&bob, 1_700_000_000, &mut rng);
        bob_prekeys
            .generate_one_time_prekeys(2, &mut rng)
            .expect("two one-time prekeys fit");
        bob_prekeys
            .generate_kem_prekeys(&bob, 1, &mut rng)
            .expect("one kem prekey fits");
        bob_prekeys.generate_last_resort_kem_prekey(&bob, 1_700_000_000, &mut rng);
        let bundle = bob_prekeys.bundle(&bob).expect("bob has a signed prekey");

        let mut alice_sessions = PeerSessions::new();
        alice_sessions
            .initiate(&alice, &bundle, &mut rng)
            .expect("alice initiates");
        let mut bob_sessions = PeerSessions::new();
        let mut deliver_to_bob = |sessions: &mut PeerSessions, wire: &[u8]| {
            let message = CiphertextMessage::from_bytes(wire).expect("genuine message decodes");
            sessions
                .decrypt(&bob, &mut bob_prekeys, &message, &mut rng)
                .expect("bob decrypts");
        };

        // Alice's prekey message; Bob accepts it and answers.
        let first_prekey_message = alice_sessions
            .encrypt(b"hello bob")
            .expect("alice encrypts")
            .to_bytes();
        deliver_to_bob(&mut bob_sessions, &first_prekey_message);
        let reply = bob_sessions.encrypt(b"hello alice").expect("bob encrypts");
        let mut alice_rng = self::rng(seeds::PAIR ^ 0xa11ce);
        alice_sessions
            .decrypt(&alice, &mut PreKeyStore::new(), &reply, &mut alice_rng)
            .expect("alice decrypts the reply");

        // Alice ratchets forward; Bob gets the first and third message only.
        let delivered = alice_sessions.encrypt(b"one").expect("encrypt").to_bytes();
        let skipped = alice_sessions.encrypt(b"two").expect("encrypt").to_bytes();
        let third = alice_sessions
            .encrypt(b"three")
            .expect("encrypt")
            .to_bytes();
        deliver_to_bob(&mut bob_sessions, &delivered);
        deliver_to_bob(&mut bob_sessions, &third);

        let snapshot = Self {
            ids: Identities { alice, bob },
            alice_sessions: alice_sessions.to_bytes().to_vec(),
            bob_sessions: bob_sessions.to_bytes().to_vec(),
            bob_prekeys: bob_prekeys.to_bytes().to_vec(),
        };
        let history = PairHistory {
            first_prekey_message,
            delivered,
            skipped,
        };
        (snapshot, history)
    }

    /// Decodes the mutable state.
    pub fn restore(&self) -> Pair<'_> {
        Pair {
            ids: &self.ids,
            alice_sessions: PeerSessions::from_bytes(&self.alice_sessions)
                .expect("alice's sessions restore"),
            bob_sessions: PeerSessions::from_bytes(&self.bob_sessions)
                .expect("bob's sessions restore"),
            bob_prekeys: PreKeyStore::from_bytes(&self.bob_prekeys).expect("bob's prekeys restore"),
        }
    }
}

impl Pair<'_> {
    /// Hands `wire` to Bob's `PeerSessions::decrypt`, as the fuzz target
    /// does with its input: `None` if it does not decode.
    pub fn bob_receives(&mut self, wire: &[u8]) -> Option<Result<Vec<u8>, String>> {
        let message = CiphertextMessage::from_bytes(wire).ok()?;
        let mut rng = rng(seeds::RESPONDER);
        Some(
            self.bob_sessions
                .decrypt(&self.ids.bob, &mut self.bob_prekeys, &message, &mut rng)
                .map(|d| d.plaintext.to_vec())
                .map_err(|e| e.to_string()),
        )
    }

    /// Alice's next message, [`BURN_PLAINTEXT`]: the counter a check burns.
    pub fn alice_next_message(&mut self) -> Vec<u8> {
        self.alice_sessions
            .encrypt(BURN_PLAINTEXT)
            .expect("alice encrypts")
            .to_bytes()
    }

    /// Alice burns one counter, then sends [`CHECK_PLAINTEXT`]; Bob must
    /// decrypt it. Returns what went wrong otherwise.
    pub fn check_still_works(&mut self) -> Result<(), String> {
        let _burned = self.alice_next_message();
        let check = self
            .alice_sessions
            .encrypt(CHECK_PLAINTEXT)
            .map_err(|e| format!("alice cannot encrypt: {e}"))?
            .to_bytes();
        match self.bob_receives(&check) {
            Some(Ok(plaintext)) if plaintext == CHECK_PLAINTEXT => Ok(()),
            Some(Ok(_)) => Err("the check message decrypted to something else".into()),
            Some(Err(e)) => Err(format!("bob cannot decrypt the check message: {e}")),
            None => Err("the check message does not decode".into()),
        }
    }

    /// Carol's first message to Bob from the bundle Bob would serve now
    /// (PQXDH: the remaining one-time prekey and the last-resort KEM key).
    pub fn carol_pqxdh_message(&self) -> Vec<u8> {
        let bundle = self
            .bob_prekeys
            .bundle(&self.ids.bob)
            .expect("signed prekey");
        carol_first_message(&bundle)
    }
}

fn carol_first_message(bundle: &PreKeyBundle) -> Vec<u8> {
    let mut rng = rng(seeds::CAROL);
    let carol = IdentityKeyPair::generate(&mut rng);
    let mut sessions = PeerSessions::new();
    sessions
        .initiate(&carol, bundle, &mut rng)
        .expect("carol initiates");
    sessions
        .encrypt(b"hello bob, it's carol")
        .expect("carol encrypts")
        .to_bytes()
}

/// The group id of the group fixture.
pub const GROUP_ID: &[u8] = b"starling-fuzz-group";

/// A sender's outbound session and one member's inbound session for it,
/// after one rotation, with one skipped message in each chain.
pub struct Group {
    /// The sender's identity, which binds its distributions.
    pub sender: IdentityKeyPair,
    /// The sender's side.
    pub outbound: OutboundGroupSession,
    /// The receiving member's side.
    pub inbound: InboundGroupSession,
}

/// [`Group`] as bytes.
pub struct GroupSnapshot {
    sender: Vec<u8>,
    outbound: Vec<u8>,
    inbound: Vec<u8>,
}

/// Genuine group messages and distributions made while building [`Group`].
pub struct GroupHistory {
    /// The first distribution.
    pub distribution: Vec<u8>,
    /// The distribution after the rotation.
    pub rotated_distribution: Vec<u8>,
    /// A message the member already decrypted.
    pub delivered: Vec<u8>,
    /// A message of the first chain the member never received.
    pub skipped_old_chain: Vec<u8>,
    /// A message of the current chain the member never received.
    pub skipped: Vec<u8>,
}

impl Group {
    /// Builds the group fixture.
    pub fn build() -> (Self, GroupHistory) {
        let mut rng = rng(seeds::GROUP);
        let sender = IdentityKeyPair::generate(&mut rng);
        let mut outbound =
            OutboundGroupSession::new(sender.public(), GROUP_ID, &mut rng).expect("valid group id");
        let distribution = outbound
            .distribution(&sender)
            .expect("the sender's identity");
        let mut inbound =
            InboundGroupSession::new(&distribution, sender.public()).expect("bound to the sender");
        let delivered = outbound.encrypt(b"g0").expect("encrypt");
        let skipped_old_chain = outbound.encrypt(b"g1").expect("encrypt");
        let g2 = outbound.encrypt(b"g2").expect("encrypt");
        inbound.verify_and_decrypt(&delivered).expect("decrypt g0");
        inbound.verify_and_decrypt(&g2).expect("decrypt g2");

        let rotated = outbound
            .rotate(&sender, &mut rng)
            .expect("the sender's identity");
        inbound
            .add_distribution(&rotated, sender.public())
            .expect("bound to the sender");
        let h0 = outbound.encrypt(b"h0").expect("encrypt");
        let skipped = outbound.encrypt(b"h1").expect("encrypt");
        let h2 = outbound.encrypt(b"h2").expect("encrypt");
        inbound.verify_and_decrypt(&h0).expect("decrypt h0");
        inbound.verify_and_decrypt(&h2).expect("decrypt h2");

        let history = GroupHistory {
            distribution: distribution.to_bytes().to_vec(),
            rotated_distribution: rotated.to_bytes().to_vec(),
            delivered,
            skipped_old_chain,
            skipped,
        };
        (
            Self {
                sender,
                outbound,
                inbound,
            },
            history,
        )
    }

    /// Encodes both sessions.
    pub fn snapshot(&self) -> GroupSnapshot {
        GroupSnapshot {
            sender: self.sender.to_bytes().to_vec(),
            outbound: self.outbound.to_bytes().to_vec(),
            inbound: self.inbound.to_bytes().to_vec(),
        }
    }

    /// The sender's next message, [`BURN_PLAINTEXT`].
    pub fn next_message(&mut self) -> Vec<u8> {
        self.outbound.encrypt(BURN_PLAINTEXT).expect("encrypt")
    }

    /// The sender burns one iteration, then sends [`CHECK_PLAINTEXT`]; the
    /// member must decrypt it.
    pub fn check_still_works(&mut self) -> Result<(), String> {
        let _burned = self.next_message();
        let check = self
            .outbound
            .encrypt(CHECK_PLAINTEXT)
            .map_err(|e| format!("cannot encrypt: {e}"))?;
        match self.inbound.verify_and_decrypt(&check) {
            Ok(plaintext) if plaintext[..] == *CHECK_PLAINTEXT => Ok(()),
            Ok(_) => Err("the check message decrypted to something else".into()),
            Err(e) => Err(format!("the member cannot decrypt the check message: {e}")),
        }
    }
}

impl GroupSnapshot {
    /// Decodes both sessions.
    pub fn restore(&self) -> Group {
        Group {
            sender: IdentityKeyPair::from_bytes(&self.sender).expect("identity restores"),
            outbound: OutboundGroupSession::from_bytes(&self.outbound).expect("outbound restores"),
            inbound: InboundGroupSession::from_bytes(&self.inbound).expect("inbound restores"),
        }
    }
}

/// Plaintext lengths of the genuine attachments: empty, one short chunk,
/// exactly one full chunk (then an empty last chunk), and two chunks.
pub const ATTACHMENT_LENGTHS: [usize; 4] = [0, 1_000, CHUNK_SIZE, CHUNK_SIZE + 1_000];

/// The plaintext of genuine attachment `index`.
pub fn attachment_plaintext(index: usize) -> Vec<u8> {
    let len = ATTACHMENT_LENGTHS[index % ATTACHMENT_LENGTHS.len()];
    (0..len)
        .map(|i| u8::try_from(i % 251).unwrap_or(0) ^ 0x5a)
        .collect()
}

/// Genuine attachments: (ciphertext, info) for each of [`ATTACHMENT_LENGTHS`].
pub fn genuine_attachments() -> Vec<(Vec<u8>, AttachmentInfo)> {
    let mut rng = rng(seeds::ATTACHMENT);
    (0..ATTACHMENT_LENGTHS.len())
        .map(|index| {
            AttachmentEncryptor::encrypt_all(&attachment_plaintext(index), &mut rng)
                .expect("attachment encrypts")
        })
        .collect()
}

/// An info no ciphertext matches: arbitrary key, digest and length.
pub fn fixed_attachment_info() -> AttachmentInfo {
    AttachmentInfo {
        key: AttachmentKey::from_bytes(&[0x42; 32]),
        digest: [0x17; 32],
        plaintext_len: 1_000,
    }
}

/// A `decrypt_attachment` input, split: which genuine attachment's info to
/// use, the sizes of the slices to feed, and the stream itself.
///
/// Layout: byte 0 holds the info index (bits 0–1) and the number `k` of
/// slice-size bytes (bits 2–4); the next `k` bytes are the sizes (see
/// [`slice_len`]), used in turn; the rest is the stream.
pub struct AttachmentInput<'a> {
    /// Index into [`genuine_attachments`].
    pub info_index: usize,
    /// Slice sizes, used cyclically; empty means one slice.
    pub slice_lens: Vec<usize>,
    /// The ciphertext stream.
    pub stream: &'a [u8],
}

/// Length of a slice from its size byte: `(b & 31) + 1` times `4^(b >> 5)`,
/// from 1 byte to 512 KiB.
pub fn slice_len(byte: u8) -> usize {
    (usize::from(byte & 0x1f) + 1) << (2 * usize::from(byte >> 5))
}

impl<'a> AttachmentInput<'a> {
    /// Splits a fuzz input.
    pub fn parse(data: &'a [u8]) -> Self {
        let Some((&control, rest)) = data.split_first() else {
            return Self {
                info_index: 0,
                slice_lens: Vec::new(),
                stream: data,
            };
        };
        let count = usize::from((control >> 2) & 0x07).min(rest.len());
        let (sizes, stream) = rest.split_at(count);
        Self {
            info_index: usize::from(control & 0x03),
            slice_lens: sizes.iter().map(|&b| slice_len(b)).collect(),
            stream,
        }
    }

    /// Builds an input: the inverse of [`Self::parse`] for `info_index < 4`
    /// and at most seven size bytes.
    pub fn encode(info_index: usize, size_bytes: &[u8], stream: &[u8]) -> Vec<u8> {
        let index = u8::try_from(info_index).ok().filter(|i| *i < 4);
        let count = u8::try_from(size_bytes.len()).ok().filter(|n| *n < 8);
        let control = index.expect("info index below 4") | (count.expect("at most 7 sizes") << 2);
        let mut out = vec![control];
        out.extend_from_slice(size_bytes);
        out.extend_from_slice(stream);
        out
    }
}

/// Feeds `stream` to a decryptor in slices of `slice_lens` (cyclically),
/// with an empty update first and last, then finishes. Slices go in turn
/// through `update` (appending to a `Vec`) and `update_into` (into a
/// buffer of `max_update_len`).
pub fn decrypt_in_slices(
    stream: &[u8],
    slice_lens: &[usize],
    info: &AttachmentInfo,
) -> Result<Vec<u8>, AttachmentError> {
    let mut decryptor = AttachmentDecryptor::new(info);
    let mut out = Vec::new();
    let mut buffer = Vec::new();
    decryptor.update(&[], &mut out)?;
    let mut rest = stream;
    let mut sizes = slice_lens.iter().cycle();
    let mut into = false;
    while !rest.is_empty() {
        let take = sizes.next().copied().unwrap_or(rest.len()).min(rest.len());
        let (slice, tail) = rest.split_at(take);
        if into {
            buffer.resize(AttachmentDecryptor::max_update_len(slice.len()), 0);
            let written = decryptor.update_into(slice, &mut buffer)?;
            out.extend_from_slice(&buffer[..written]);
        } else {
            decryptor.update(slice, &mut out)?;
        }
        into = !into;
        rest = tail;
    }
    decryptor.update(&[], &mut out)?;
    decryptor.finish(&mut out)?;
    Ok(out)
}

/// Identities of the safety-number fixture: Alice has two devices, Bob one.
pub fn fingerprint_identities() -> (Vec<IdentityKey>, Vec<IdentityKey>) {
    let mut rng = rng(seeds::FINGERPRINT);
    let mut identity = || IdentityKeyPair::generate(&mut rng).public().clone();
    let alice = vec![identity(), identity()];
    let bob = vec![identity()];
    (alice, bob)
}

/// Account ids of the safety-number fixture.
pub const ALICE_ID: &[u8] = b"@alice:starling.example";
/// See [`ALICE_ID`].
pub const BOB_ID: &[u8] = b"@bob:starling.example";

/// Alice's view of the safety number (the one the fuzz target compares
/// against) and Bob's view (whose scannable payload matches Alice's).
pub fn safety_numbers() -> (SafetyNumber, SafetyNumber) {
    let (alice, bob) = fingerprint_identities();
    let alice_view = SafetyNumber::new(ALICE_ID, &alice, BOB_ID, &bob);
    let bob_view = SafetyNumber::new(BOB_ID, &bob, ALICE_ID, &alice);
    (alice_view, bob_view)
}
