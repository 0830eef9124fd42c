//! Helpers shared by the integration tests: deterministic devices, an
//! established pair of sessions, and prost mirrors of the wire formats so
//! tests can tamper with individual fields.
#![allow(dead_code, unreachable_pub)]

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use starling_crypto::ratchet::{CiphertextMessage, Decrypted, PeerSessions};
use starling_crypto::{IdentityKeyPair, PreKeyBundle, PreKeyStore};

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// One device: identity, prekeys, and its sessions with one peer.
pub struct Device {
    pub identity: IdentityKeyPair,
    pub prekeys: PreKeyStore,
    pub sessions: PeerSessions,
}

/// What prekeys a device publishes.
#[derive(Clone, Copy)]
pub struct Publish {
    pub one_time: bool,
    pub kem: bool,
}

pub const FULL: Publish = Publish {
    one_time: true,
    kem: true,
};

impl Device {
    pub fn new(rng: &mut ChaCha20Rng, publish: Publish) -> Self {
        let identity = IdentityKeyPair::generate(rng);
        let mut prekeys = PreKeyStore::new();
        prekeys.generate_signed_prekey(&identity, 1_700_000_000, rng);
        if publish.one_time {
            prekeys.generate_one_time_prekeys(5, rng).unwrap();
        }
        if publish.kem {
            prekeys.generate_kem_prekeys(&identity, 2, rng).unwrap();
            prekeys.generate_last_resort_kem_prekey(&identity, 1_700_000_000, rng);
        }
        Self {
            identity,
            prekeys,
            sessions: PeerSessions::new(),
        }
    }

    pub fn bundle(&self) -> PreKeyBundle {
        let bytes = self.prekeys.bundle(&self.identity).unwrap().to_bytes();
        PreKeyBundle::from_bytes(&bytes).unwrap()
    }

    pub fn initiate(&mut self, peer: &Device, rng: &mut ChaCha20Rng) {
        self.sessions
            .initiate(&self.identity, &peer.bundle(), rng)
            .unwrap();
    }

    /// Encrypts and encodes, as a client would before handing to the server.
    pub fn send(&mut self, plaintext: &[u8]) -> Vec<u8> {
        self.sessions.encrypt(plaintext).unwrap().to_bytes()
    }

    pub fn receive(
        &mut self,
        bytes: &[u8],
        rng: &mut ChaCha20Rng,
    ) -> Result<Decrypted, starling_crypto::ratchet::DecryptError> {
        let message = CiphertextMessage::from_bytes(bytes)
            .map_err(|_| starling_crypto::ratchet::DecryptError::NoMatchingSession)?;
        self.sessions
            .decrypt(&self.identity, &mut self.prekeys, &message, rng)
    }
}

/// Alice and Bob after Alice's first message and Bob's reply.
pub fn established(rng: &mut ChaCha20Rng, publish: Publish) -> (Device, Device) {
    let (alice, bob, _) = established_with_handshake(rng, publish);
    (alice, bob)
}

/// As [`established`], also returning the two handshake messages: Alice's
/// first message and Bob's reply.
pub fn established_with_handshake(
    rng: &mut ChaCha20Rng,
    publish: Publish,
) -> (Device, Device, [Vec<u8>; 2]) {
    let mut alice = Device::new(rng, publish);
    let mut bob = Device::new(rng, publish);
    alice.initiate(&bob, rng);
    let first = alice.send(b"hello bob");
    assert_eq!(
        &bob.receive(&first, rng).unwrap().plaintext[..],
        b"hello bob"
    );
    let reply = bob.send(b"hello alice");
    assert_eq!(
        &alice.receive(&reply, rng).unwrap().plaintext[..],
        b"hello alice"
    );
    (alice, bob, [first, reply])
}

/// Prost mirrors of `proto/starling/crypto/v1/wire.proto`, for tampering.
pub mod wire {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct IdentityKey {
        #[prost(bytes = "vec", tag = "1")]
        pub signing_key: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub dh_key: Vec<u8>,
        #[prost(bytes = "vec", tag = "3")]
        pub dh_key_signature: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SignedPreKey {
        #[prost(uint32, tag = "1")]
        pub id: u32,
        #[prost(bytes = "vec", tag = "2")]
        pub public_key: Vec<u8>,
        #[prost(bytes = "vec", tag = "3")]
        pub signature: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KemPreKey {
        #[prost(uint32, tag = "1")]
        pub id: u32,
        #[prost(bytes = "vec", tag = "2")]
        pub public_key: Vec<u8>,
        #[prost(bytes = "vec", tag = "3")]
        pub signature: Vec<u8>,
        #[prost(bool, tag = "4")]
        pub last_resort: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OneTimePreKey {
        #[prost(uint32, tag = "1")]
        pub id: u32,
        #[prost(bytes = "vec", tag = "2")]
        pub public_key: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PreKeyBundle {
        #[prost(uint32, tag = "1")]
        pub version: u32,
        #[prost(message, optional, tag = "2")]
        pub identity: Option<IdentityKey>,
        #[prost(message, optional, tag = "3")]
        pub signed_prekey: Option<SignedPreKey>,
        #[prost(message, optional, tag = "4")]
        pub one_time_prekey: Option<OneTimePreKey>,
        #[prost(message, optional, tag = "5")]
        pub kem_prekey: Option<KemPreKey>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RatchetMessage {
        #[prost(uint32, tag = "1")]
        pub version: u32,
        #[prost(bytes = "vec", tag = "2")]
        pub ratchet_key: Vec<u8>,
        #[prost(uint32, tag = "3")]
        pub counter: u32,
        #[prost(uint32, tag = "4")]
        pub previous_counter: u32,
        #[prost(bytes = "vec", tag = "5")]
        pub ciphertext: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PreKeyMessage {
        #[prost(uint32, tag = "1")]
        pub version: u32,
        #[prost(message, optional, tag = "2")]
        pub initiator_identity: Option<IdentityKey>,
        #[prost(bytes = "vec", tag = "3")]
        pub base_key: Vec<u8>,
        #[prost(uint32, tag = "4")]
        pub signed_prekey_id: u32,
        #[prost(uint32, optional, tag = "5")]
        pub one_time_prekey_id: Option<u32>,
        #[prost(uint32, optional, tag = "6")]
        pub kem_prekey_id: Option<u32>,
        #[prost(bytes = "vec", tag = "7")]
        pub kem_ciphertext: Vec<u8>,
        #[prost(message, optional, tag = "8")]
        pub message: Option<RatchetMessage>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CiphertextMessage {
        #[prost(message, optional, tag = "1")]
        pub prekey: Option<PreKeyMessage>,
        #[prost(message, optional, tag = "2")]
        pub message: Option<RatchetMessage>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GroupMessage {
        #[prost(uint32, tag = "1")]
        pub version: u32,
        #[prost(bytes = "vec", tag = "2")]
        pub group_id: Vec<u8>,
        #[prost(uint32, tag = "3")]
        pub chain_id: u32,
        #[prost(uint32, tag = "4")]
        pub iteration: u32,
        #[prost(bytes = "vec", tag = "5")]
        pub ciphertext: Vec<u8>,
        #[prost(bytes = "vec", tag = "6")]
        pub signature: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SenderKeyDistribution {
        #[prost(uint32, tag = "1")]
        pub version: u32,
        #[prost(bytes = "vec", tag = "2")]
        pub group_id: Vec<u8>,
        #[prost(uint32, tag = "3")]
        pub chain_id: u32,
        #[prost(uint32, tag = "4")]
        pub iteration: u32,
        #[prost(bytes = "vec", tag = "5")]
        pub chain_key: Vec<u8>,
        #[prost(bytes = "vec", tag = "6")]
        pub signing_key: Vec<u8>,
        #[prost(bytes = "vec", tag = "7")]
        pub identity_signature: Vec<u8>,
        #[prost(bytes = "vec", tag = "8")]
        pub signing_key_signature: Vec<u8>,
    }

    pub fn decode<M: prost::Message + Default>(bytes: &[u8]) -> M {
        M::decode(bytes).unwrap()
    }

    pub fn encode<M: prost::Message>(message: &M) -> Vec<u8> {
        message.encode_to_vec()
    }
}
