//! Property tests: any interleaving of sends and deliveries between two
//! parties decrypts correctly and exactly once; any flipped bit in a message
//! is rejected and leaves the session working.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{FULL, established, established_with_handshake, rng, wire};
use proptest::prelude::*;
use proptest::sample::Index;
use starling_crypto::ratchet::{DecryptError, MAX_RECEIVER_CHAINS};

#[derive(Debug, Clone)]
enum Op {
    /// One side encrypts a message of some length.
    Send { from_alice: bool, len: u8 },
    /// One pending message towards one side is delivered, picked anywhere
    /// in its queue (so delivery order is arbitrary).
    Deliver { to_alice: bool, pick: Index },
}

/// The sender's ratchet key in a message's header.
fn ratchet_key(bytes: &[u8]) -> Vec<u8> {
    let message: wire::CiphertextMessage = wire::decode(bytes);
    match (message.prekey, message.message) {
        (Some(prekey), _) => prekey.message.unwrap().ratchet_key,
        (None, Some(ratchet)) => ratchet.ratchet_key,
        (None, None) => panic!("empty message"),
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<bool>(), any::<u8>()).prop_map(|(from_alice, len)| Op::Send { from_alice, len }),
        (any::<bool>(), any::<Index>()).prop_map(|(to_alice, pick)| Op::Deliver { to_alice, pick }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_interleaving_decrypts(ops in prop::collection::vec(op(), 1..80), seed in any::<u64>()) {
        let mut rng = rng(seed);
        let (mut alice, mut bob, [first, reply]) = established_with_handshake(&mut rng, FULL);
        // Pending messages towards alice [0] and towards bob [1].
        let mut queues: [Vec<(Vec<u8>, Vec<u8>)>; 2] = [Vec::new(), Vec::new()];
        // The peer's ratchet keys each side has received, oldest first: its
        // receiving chains are the newest MAX_RECEIVER_CHAINS of them.
        let mut chains = [vec![ratchet_key(&reply)], vec![ratchet_key(&first)]];
        let mut counter = 0u32;
        let deliver = |to_alice: bool, index: usize, queues: &mut [Vec<(Vec<u8>, Vec<u8>)>; 2],
                           chains: &mut [Vec<Vec<u8>>; 2],
                           alice: &mut common::Device, bob: &mut common::Device,
                           rng: &mut rand_chacha::ChaCha20Rng| {
            let queue = &mut queues[usize::from(!to_alice)];
            let (bytes, expected) = queue.remove(index);
            let receiver = if to_alice { alice } else { bob };
            let chains = &mut chains[usize::from(!to_alice)];
            let key = ratchet_key(&bytes);
            match chains.iter().position(|k| *k == key) {
                // Delayed across more DH ratchet steps than the receiver
                // keeps chains: lost by design (SPEC §6.9, Appendix A).
                Some(at) if chains.len() - at > MAX_RECEIVER_CHAINS => {
                    let error = receiver.receive(&bytes, rng).expect_err("chain was dropped");
                    assert_eq!(error, DecryptError::Authentication);
                    return;
                }
                Some(_) => {}
                None => chains.push(key),
            }
            let received = receiver.receive(&bytes, rng).expect("decrypts");
            assert_eq!(&received.plaintext[..], &expected[..]);
            // Exactly once.
            assert!(receiver.receive(&bytes, rng).is_err());
        };
        for op in ops {
            match op {
                Op::Send { from_alice, len } => {
                    counter += 1;
                    let mut plaintext = counter.to_be_bytes().to_vec();
                    plaintext.resize(usize::from(len).max(4), 0xAB);
                    let sender = if from_alice { &mut alice } else { &mut bob };
                    let bytes = sender.send(&plaintext);
                    queues[usize::from(from_alice)].push((bytes, plaintext));
                }
                Op::Deliver { to_alice, pick } => {
                    let len = queues[usize::from(!to_alice)].len();
                    if len > 0 {
                        deliver(to_alice, pick.index(len), &mut queues, &mut chains, &mut alice, &mut bob, &mut rng);
                    }
                }
            }
        }
        for to_alice in [true, false] {
            while !queues[usize::from(!to_alice)].is_empty() {
                deliver(to_alice, 0, &mut queues, &mut chains, &mut alice, &mut bob, &mut rng);
            }
        }
    }

    #[test]
    fn any_byte_flip_is_rejected(
        len in 0usize..300,
        position in any::<Index>(),
        bit in 0u8..8,
        first_message in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut rng = rng(seed);
        let (mut sender, mut receiver) = if first_message {
            let mut alice = common::Device::new(&mut rng, FULL);
            let bob = common::Device::new(&mut rng, FULL);
            alice.initiate(&bob, &mut rng);
            (alice, bob)
        } else {
            established(&mut rng, FULL)
        };
        let plaintext = vec![0x42; len];
        let genuine = sender.send(&plaintext);
        let mut flipped = genuine.clone();
        let at = position.index(flipped.len());
        flipped[at] ^= 1 << bit;
        prop_assert!(receiver.receive(&flipped, &mut rng).is_err(), "flip at {} accepted", at);
        let received = receiver.receive(&genuine, &mut rng).expect("genuine still decrypts");
        prop_assert_eq!(&received.plaintext[..], &plaintext[..]);
    }
}
