//! Our own sender key in one group: encrypts and signs group messages, and
//! rotates when a member leaves so the leaver can read nothing sent after.

use ed25519_dalek::{Signer, SigningKey};
use rand_core::CryptoRngCore;
use thiserror::Error;
use zeroize::Zeroizing;

use super::distribution::SenderKeyDistribution;
use super::message::{
    GroupMessage, INFO_SENDER_KEY, SENDER_IDENTITY_LEN, associated_data, check_group_id,
    signed_bytes,
};
use crate::error::{DecodeError, MAX_STATE_LEN, check_version, decode_proto, fixed};
use crate::keys::{IdentityKey, IdentityKeyPair};
use crate::proto::state;
use crate::ratchet::{ChainKey, MAX_PLAINTEXT_LEN};

/// Version 2 records the sender's identity (version 1 states, from before
/// distributions were bound to it, are refused).
const OUTBOUND_STATE_VERSION: u32 = 2;

/// A group message could not be encrypted.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupEncryptError {
    /// The group id is empty or longer than [`super::MAX_GROUP_ID_LEN`].
    #[error("invalid group id")]
    InvalidGroupId,
    /// The plaintext exceeds [`MAX_PLAINTEXT_LEN`].
    #[error("plaintext of {0} bytes exceeds the message limit")]
    TooLarge(usize),
    /// The chain has used all 2^32 iterations: rotate.
    #[error("sender chain exhausted; rotate the sender key")]
    ChainExhausted,
    /// The identity given to sign a distribution is not the one the
    /// session was made for.
    #[error("the sender key belongs to another identity")]
    WrongIdentity,
}

/// Our sending chain in one group.
pub struct OutboundGroupSession {
    /// Our identity's public bytes, named in every message we sign.
    sender: [u8; SENDER_IDENTITY_LEN],
    group_id: Vec<u8>,
    chain_id: u32,
    iteration: u32,
    chain_key: ChainKey,
    signing: Box<SigningKey>,
}

impl core::fmt::Debug for OutboundGroupSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let Self {
            chain_id,
            iteration,
            ..
        } = self;
        f.debug_struct("OutboundGroupSession")
            .field("chain_id", chain_id)
            .field("iteration", iteration)
            .finish_non_exhaustive()
    }
}

impl OutboundGroupSession {
    /// A fresh sender key of the device with identity `sender` for
    /// `group_id` (1 to 64 opaque bytes).
    pub fn new(
        sender: &IdentityKey,
        group_id: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<Self, GroupEncryptError> {
        check_group_id(group_id).map_err(|_| GroupEncryptError::InvalidGroupId)?;
        let (chain_id, chain_key, signing) = fresh_chain(rng);
        Ok(Self {
            sender: sender.public_bytes(),
            group_id: group_id.to_vec(),
            chain_id,
            iteration: 0,
            chain_key,
            signing,
        })
    }

    /// Whether the session was made for the identity `sender`.
    pub fn is_from(&self, sender: &IdentityKey) -> bool {
        sender.public_bytes() == self.sender
    }

    /// The distribution message for the current chain position, bound to
    /// our `identity` (the one the session was made for, else
    /// `WrongIdentity`): send it to every member device through the
    /// pairwise sessions.
    pub fn distribution(
        &self,
        identity: &IdentityKeyPair,
    ) -> Result<SenderKeyDistribution, GroupEncryptError> {
        if identity.public().public_bytes() != self.sender {
            return Err(GroupEncryptError::WrongIdentity);
        }
        Ok(SenderKeyDistribution::signed(
            identity,
            &self.group_id,
            self.chain_id,
            self.iteration,
            self.chain_key.clone(),
            &self.signing,
        ))
    }

    /// Replaces the chain and signing key with fresh ones, after a member
    /// left. Returns the new distribution, for the remaining members only.
    /// With another identity than the session's, fails (`WrongIdentity`)
    /// and changes nothing.
    pub fn rotate(
        &mut self,
        identity: &IdentityKeyPair,
        rng: &mut impl CryptoRngCore,
    ) -> Result<SenderKeyDistribution, GroupEncryptError> {
        if identity.public().public_bytes() != self.sender {
            return Err(GroupEncryptError::WrongIdentity);
        }
        let (mut chain_id, chain_key, signing) = fresh_chain(rng);
        // Receivers key chains by id: a rotation must never reuse the
        // current one.
        while chain_id == self.chain_id {
            chain_id = rng.next_u32();
        }
        self.chain_id = chain_id;
        self.chain_key = chain_key;
        self.signing = signing;
        self.iteration = 0;
        self.distribution(identity)
    }

    /// Encrypts and signs one group message; returns its encoding.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, GroupEncryptError> {
        if plaintext.len() > MAX_PLAINTEXT_LEN {
            return Err(GroupEncryptError::TooLarge(plaintext.len()));
        }
        let iteration = self.iteration;
        let next = iteration
            .checked_add(1)
            .ok_or(GroupEncryptError::ChainExhausted)?;
        let (next_chain, message_key) = self.chain_key.step();
        let ad = associated_data(&self.sender, &self.group_id, self.chain_id, iteration);
        // ChaCha20 alone: the signature over the context and the
        // ciphertext authenticates the message (SPEC §7.4).
        let mut ciphertext = plaintext.to_vec();
        message_key.apply_keystream(INFO_SENDER_KEY, &mut ciphertext);
        let signature = self.signing.sign(&signed_bytes(&ad, &ciphertext));
        self.chain_key = next_chain;
        self.iteration = next;
        Ok(GroupMessage {
            group_id: self.group_id.clone(),
            chain_id: self.chain_id,
            iteration,
            ciphertext,
            signature,
        }
        .to_bytes())
    }

    /// Encodes the session for storage (encrypt it at rest).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let proto = state::OutboundGroupState {
            version: OUTBOUND_STATE_VERSION,
            group_id: self.group_id.clone(),
            chain_id: self.chain_id,
            iteration: self.iteration,
            chain_key: self.chain_key.as_bytes().to_vec(),
            signing_secret: self.signing.to_bytes().to_vec(),
            sender_identity: self.sender.to_vec(),
        };
        Zeroizing::new(prost::Message::encode_to_vec(&proto))
    }

    /// Decodes a session written by [`Self::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let proto: state::OutboundGroupState = decode_proto(bytes, MAX_STATE_LEN)?;
        check_version(proto.version, OUTBOUND_STATE_VERSION)?;
        check_group_id(&proto.group_id)?;
        let mut chain_key = Box::new([0u8; 32]);
        chain_key.copy_from_slice(&fixed::<32>("chain_key", &proto.chain_key)?);
        let signing = Zeroizing::new(fixed::<32>("signing_secret", &proto.signing_secret)?);
        Ok(Self {
            sender: fixed("sender_identity", &proto.sender_identity)?,
            group_id: proto.group_id.clone(),
            chain_id: proto.chain_id,
            iteration: proto.iteration,
            chain_key: ChainKey::new(chain_key),
            signing: Box::new(SigningKey::from_bytes(&signing)),
        })
    }
}

fn fresh_chain(rng: &mut impl CryptoRngCore) -> (u32, ChainKey, Box<SigningKey>) {
    let chain_id = rng.next_u32();
    let mut chain_key = Box::new([0u8; 32]);
    rng.fill_bytes(&mut chain_key[..]);
    (
        chain_id,
        ChainKey::new(chain_key),
        Box::new(SigningKey::generate(rng)),
    )
}
