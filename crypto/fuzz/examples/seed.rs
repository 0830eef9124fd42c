//! Writes the seed corpus, `seeds/<target>/`, from the deterministic
//! fixtures: run `cargo run --release --example seed` in `crypto/fuzz`
//! after a change to the library's formats or key derivations, and commit
//! the result. Each run rewrites the folders exactly (same bytes).
//!
//! File names tell `crypto/tests/fuzz_corpus.rs` what to check:
//! - `genuine_*`: the target's operation succeeds (decrypts, or matches).
//! - `valid_<kind>*`: decodes (as `<kind>` where the target has several
//!   decoders); the operation itself may refuse it (a duplicate, say).

use std::fs;
use std::path::{Path, PathBuf};

use starling_crypto::PreKeyBundle;
use starling_crypto::PreKeyStore;
use starling_crypto::attachment::AttachmentInfo;
use starling_crypto_fuzz::fixture::{self, AttachmentInput, Group, PairSnapshot};
use starling_protocol::frames::{
    Acknowledge, ClientFrame, OutgoingEnvelope, Ping, SendMessage, client_frame,
};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let (snapshot, history) = PairSnapshot::build();
    let pair = snapshot.restore();
    let (group, group_history) = Group::build();

    // Prekeys and bundles.
    let mut rng = fixture::rng(fixture::seeds::PAIR);
    let owner = starling_crypto::IdentityKeyPair::generate(&mut rng);
    let mut store = PreKeyStore::new();
    let signed = store.generate_signed_prekey(&owner, 1_700_000_000, &mut rng);
    let one_time = store
        .generate_one_time_prekeys(1, &mut rng)
        .expect("fits")
        .remove(0);
    let kem = store
        .generate_kem_prekeys(&owner, 1, &mut rng)
        .expect("fits")
        .remove(0);
    let last_resort = store.generate_last_resort_kem_prekey(&owner, 1_700_000_000, &mut rng);
    let bundle = |one_time, kem| {
        PreKeyBundle::new(owner.public().clone(), signed.clone(), one_time, kem)
            .expect("own signatures verify")
            .to_bytes()
    };
    write(
        &root,
        "decode_bundle",
        &[
            (
                "valid_bundle_pq",
                bundle(Some(one_time.clone()), Some(kem.clone())),
            ),
            (
                "valid_bundle_last_resort",
                bundle(None, Some(last_resort.clone())),
            ),
            ("valid_bundle_x3dh", bundle(Some(one_time.clone()), None)),
            ("valid_bundle_signed_only", bundle(None, None)),
            ("valid_signed", signed.to_bytes()),
            ("valid_onetime", one_time.to_bytes()),
            ("valid_kem", kem.to_bytes()),
            ("valid_kem_last_resort", last_resort.to_bytes()),
            ("valid_identity", owner.public().to_bytes()),
        ],
    );

    // Pairwise messages.
    let next = snapshot.restore().alice_next_message();
    let mut tampered = next.clone();
    if let Some(last) = tampered.last_mut() {
        *last ^= 0x01;
    }
    write(
        &root,
        "decode_message",
        &[
            ("valid_prekey_pq", history.first_prekey_message.clone()),
            ("valid_prekey_last_resort", pair.carol_pqxdh_message()),
            ("valid_ratchet", history.delivered.clone()),
        ],
    );
    write(
        &root,
        "decrypt_session",
        &[
            ("genuine_next", next),
            ("genuine_skipped", history.skipped.clone()),
            ("genuine_carol_pqxdh", pair.carol_pqxdh_message()),
            (
                "valid_replayed_prekey",
                history.first_prekey_message.clone(),
            ),
            ("valid_duplicate", history.delivered.clone()),
            ("valid_tampered", tampered),
        ],
    );

    // Groups.
    let group_next = group.snapshot().restore().next_message();
    write(
        &root,
        "decrypt_group",
        &[
            ("genuine_next", group_next),
            ("genuine_skipped", group_history.skipped.clone()),
            (
                "genuine_skipped_old_chain",
                group_history.skipped_old_chain.clone(),
            ),
            ("valid_duplicate", group_history.delivered.clone()),
            ("valid_distribution", group_history.distribution.clone()),
            (
                "valid_distribution_rotated",
                group_history.rotated_distribution.clone(),
            ),
        ],
    );

    // Attachments: each genuine stream, fed in differently sized slices.
    let genuine: Vec<(Vec<u8>, AttachmentInfo)> = fixture::genuine_attachments();
    let input =
        |index: usize, sizes: &[u8]| AttachmentInput::encode(index, sizes, &genuine[index].0);
    write(
        &root,
        "decrypt_attachment",
        &[
            ("genuine_empty", input(0, &[])),
            ("genuine_short_bytewise", input(1, &[0x00])),
            ("genuine_short_sliced", input(1, &[0x02, 0x27, 0x00, 0x5f])),
            ("genuine_full_chunk", input(2, &[0x8f])),
            ("genuine_two_chunks", input(3, &[0xbf, 0x07])),
            ("genuine_two_chunks_whole", input(3, &[])),
        ],
    );

    // Local state.
    let alice_session = pair.alice_sessions.active().expect("alice has a session");
    let bob_session = pair.bob_sessions.active().expect("bob has a session");
    write(
        &root,
        "decode_state",
        &[
            ("valid_session_initiator", alice_session.to_bytes().to_vec()),
            ("valid_session_responder", bob_session.to_bytes().to_vec()),
            ("valid_peers", pair.bob_sessions.to_bytes().to_vec()),
            ("valid_prekeys", pair.bob_prekeys.to_bytes().to_vec()),
            ("valid_identity", pair.ids.bob.to_bytes().to_vec()),
            ("valid_outbound", group.outbound.to_bytes().to_vec()),
            ("valid_inbound", group.inbound.to_bytes().to_vec()),
        ],
    );

    // Safety numbers.
    let (alice_view, bob_view) = fixture::safety_numbers();
    write(
        &root,
        "scannable_fingerprint",
        &[
            ("genuine_peer", bob_view.scannable()),
            ("valid_own", alice_view.scannable()),
        ],
    );

    // The server's WebSocket frames (`server/tests/ws_frames.rs` sends
    // each over a real connection).
    let frame = |request_id, body| {
        prost::Message::encode_to_vec(&ClientFrame {
            request_id,
            body: Some(body),
        })
    };
    let send = frame(
        3,
        client_frame::Body::Send(SendMessage {
            destination: "bob".into(),
            envelopes: vec![
                OutgoingEnvelope {
                    device_id: 1,
                    content: vec![0x5a; 48],
                },
                OutgoingEnvelope {
                    device_id: 2,
                    content: vec![0xa5; 48],
                },
            ],
            sealed: true,
        }),
    );
    write(
        &root,
        "decode_ws_frame",
        &[
            (
                "valid_ack",
                frame(
                    1,
                    client_frame::Body::Ack(Acknowledge {
                        envelope_ids: vec![vec![0x11; 16], vec![0x22; 16]],
                    }),
                ),
            ),
            ("valid_send", send.clone()),
            ("valid_ping", frame(2, client_frame::Body::Ping(Ping {}))),
            // request id 4, then a field this server does not know
            (
                "valid_unknown_kind",
                vec![0x08, 0x04, 0x4a, 0x02, 0x08, 0x01],
            ),
            ("truncated_send", send[..send.len() / 2].to_vec()),
        ],
    );
    sealed_seeds(&root);
}

/// Seeds of the sealed-sender targets.
fn sealed_seeds(root: &Path) {
    use starling_crypto::sealed::{TrustedServerKeys, seal_multi, seal_single};
    let sealed = fixture::Sealed::build();
    let mut rng = fixture::rng(fixture::seeds::SEALED + 100);
    let single = seal_single(
        &sealed.alice,
        sealed.bob.public(),
        &sealed.certificate,
        b"seed: sealed",
        &mut rng,
    )
    .expect("seals");
    let multi = seal_multi(
        &sealed.alice,
        &[sealed.bob.public()],
        &sealed.certificate,
        b"seed: sealed to many",
        &mut rng,
    )
    .expect("seals")
    .envelope(0)
    .expect("one device");
    let mallory = starling_crypto::IdentityKeyPair::generate(&mut rng);
    let copied_certificate = seal_single(
        &mallory,
        sealed.bob.public(),
        &sealed.certificate,
        b"seed: not alice",
        &mut rng,
    )
    .expect("seals");
    write(
        root,
        "open_sealed",
        &[
            ("genuine_single", single.clone()),
            ("genuine_multi", multi),
            ("copied_certificate", copied_certificate),
            ("truncated", single[..single.len() - 1].to_vec()),
        ],
    );
    let first = sealed.server[0].public();
    let trust = TrustedServerKeys::pin(first.id(), &first.public_key(), 1).expect("valid");
    write(
        root,
        "decode_certificate",
        &[
            ("valid_certificate", sealed.certificate.to_bytes()),
            ("valid_chain", sealed.chain().to_bytes()),
            ("valid_trust", trust.to_bytes()),
            ("valid_signingkey", sealed.server[1].to_bytes().to_vec()),
        ],
    );
}

/// Replaces the contents of `root/target` with `files`.
fn write(root: &Path, target: &str, files: &[(&str, Vec<u8>)]) {
    let dir: PathBuf = root.join(target);
    if dir.exists() {
        fs::remove_dir_all(&dir).expect("remove old seeds");
    }
    fs::create_dir_all(&dir).expect("create seed folder");
    for (name, bytes) in files {
        fs::write(dir.join(name), bytes).expect("write seed");
    }
    println!("{target}: {} seeds", files.len());
}
