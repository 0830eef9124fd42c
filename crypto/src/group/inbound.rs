//! Another member's sender key as we receive it: verifies the signature,
//! then decrypts, handling out-of-order delivery within bounds. As in the
//! pairwise ratchet, nothing is committed until a message authenticates.

use std::collections::VecDeque;

use ed25519_dalek::VerifyingKey;
use thiserror::Error;
use zeroize::Zeroizing;

use super::distribution::SenderKeyDistribution;
use super::message::{
    GroupMessage, INFO_SENDER_KEY, associated_data, check_group_id, signed_bytes,
};
use crate::error::{DecodeError, MAX_STATE_LEN, check_version, decode_proto, fixed};
use crate::keys::verifying_key;
use crate::proto::state;
use crate::ratchet::{ChainKey, MessageKey};
use crate::strict_signature::verify_strict;

/// A group message may be at most this many iterations ahead of the next
/// expected one.
pub const MAX_GROUP_MESSAGE_GAP: u32 = 2_000;
/// Skipped message keys kept per sender chain; the oldest go first.
pub const MAX_GROUP_SKIPPED_KEYS: usize = 2_000;
/// Chains kept per sender (the current one and those before rotations).
pub const MAX_GROUP_CHAINS: usize = 3;
const INBOUND_STATE_VERSION: u32 = 1;

/// A group message could not be decrypted. The session is unchanged.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupDecryptError {
    /// The bytes do not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The message is for another group.
    #[error("message is for another group")]
    WrongGroup,
    /// No distribution was received for this chain (for instance after a
    /// rotation that excluded us).
    #[error("unknown sender chain")]
    UnknownChain,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// Already decrypted, or older than the chain we were given.
    #[error("message {iteration} already received or expired")]
    DuplicateOrExpired {
        /// The message's iteration.
        iteration: u32,
    },
    /// Too far ahead of the chain.
    #[error("message is {gap} iterations ahead; the limit is {limit}")]
    TooFarAhead {
        /// How far ahead.
        gap: u32,
        /// [`MAX_GROUP_MESSAGE_GAP`].
        limit: u32,
    },
}

struct InboundChain {
    chain_id: u32,
    iteration: u32,
    chain_key: ChainKey,
    signing_key: VerifyingKey,
    skipped: VecDeque<(u32, MessageKey)>,
}

/// One sender's chains in one group.
pub struct InboundGroupSession {
    group_id: Vec<u8>,
    chains: VecDeque<InboundChain>,
}

impl core::fmt::Debug for InboundGroupSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let Self { chains, .. } = self;
        f.debug_struct("InboundGroupSession")
            .field("chains", &chains.len())
            .finish_non_exhaustive()
    }
}

impl InboundGroupSession {
    /// Starts from a sender's distribution message.
    pub fn new(distribution: &SenderKeyDistribution) -> Self {
        let mut session = Self {
            group_id: distribution.group_id.clone(),
            chains: VecDeque::new(),
        };
        session.add_distribution(distribution);
        session
    }

    /// Adds a newer distribution from the same sender (after a rotation).
    /// A distribution for a chain we know only moves it forward, never back.
    pub fn add_distribution(&mut self, distribution: &SenderKeyDistribution) {
        if distribution.group_id != self.group_id {
            return;
        }
        if let Some(chain) = self
            .chains
            .iter()
            .find(|c| c.chain_id == distribution.chain_id)
        {
            if chain.iteration >= distribution.iteration {
                return;
            }
            self.chains.retain(|c| c.chain_id != distribution.chain_id);
        }
        self.chains.push_front(InboundChain {
            chain_id: distribution.chain_id,
            iteration: distribution.iteration,
            chain_key: distribution.chain_key.clone(),
            signing_key: distribution.signing_key,
            skipped: VecDeque::new(),
        });
        self.chains.truncate(MAX_GROUP_CHAINS);
    }

    /// Verifies and decrypts one group message.
    pub fn decrypt(&mut self, bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>, GroupDecryptError> {
        let message = GroupMessage::from_bytes(bytes)?;
        if message.group_id != self.group_id {
            return Err(GroupDecryptError::WrongGroup);
        }
        let chain = self
            .chains
            .iter_mut()
            .find(|c| c.chain_id == message.chain_id)
            .ok_or(GroupDecryptError::UnknownChain)?;
        let ad = associated_data(&message.group_id, message.chain_id, message.iteration);
        let signed = signed_bytes(&ad, &message.ciphertext);
        verify_strict(&chain.signing_key, &signed, &message.signature)
            .map_err(|_| GroupDecryptError::BadSignature)?;
        // Verified: from here on the message cannot fail but for its
        // position in the chain.
        chain.decrypt(message)
    }

    /// Encodes the session for storage (encrypt it at rest).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let proto = state::InboundGroupState {
            version: INBOUND_STATE_VERSION,
            group_id: self.group_id.clone(),
            chains: self
                .chains
                .iter()
                .map(|c| state::InboundChainState {
                    chain_id: c.chain_id,
                    iteration: c.iteration,
                    chain_key: c.chain_key.as_bytes().to_vec(),
                    signing_key: c.signing_key.to_bytes().to_vec(),
                    skipped_keys: c
                        .skipped
                        .iter()
                        .map(|(iteration, key)| state::GroupSkippedKey {
                            iteration: *iteration,
                            message_key: key.as_bytes().to_vec(),
                        })
                        .collect(),
                })
                .collect(),
        };
        Zeroizing::new(prost::Message::encode_to_vec(&proto))
    }

    /// Decodes a session written by [`Self::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let proto: state::InboundGroupState = decode_proto(bytes, MAX_STATE_LEN)?;
        check_version(proto.version, INBOUND_STATE_VERSION)?;
        check_group_id(&proto.group_id)?;
        if proto.chains.len() > MAX_GROUP_CHAINS {
            return Err(DecodeError::InvalidValue("chains"));
        }
        let mut chains = VecDeque::new();
        for c in &proto.chains {
            if c.skipped_keys.len() > MAX_GROUP_SKIPPED_KEYS {
                return Err(DecodeError::InvalidValue("skipped_keys"));
            }
            let skipped = c
                .skipped_keys
                .iter()
                .map(|k| Ok((k.iteration, MessageKey::new(boxed(&k.message_key)?))))
                .collect::<Result<_, DecodeError>>()?;
            chains.push_back(InboundChain {
                chain_id: c.chain_id,
                iteration: c.iteration,
                chain_key: ChainKey::new(boxed(&c.chain_key)?),
                signing_key: verifying_key("signing_key", &c.signing_key)?,
                skipped,
            });
        }
        Ok(Self {
            group_id: proto.group_id.clone(),
            chains,
        })
    }
}

fn boxed(bytes: &[u8]) -> Result<Box<[u8; 32]>, DecodeError> {
    let mut out = Box::new([0u8; 32]);
    out.copy_from_slice(&Zeroizing::new(fixed::<32>("key", bytes)?)[..]);
    Ok(out)
}

impl InboundChain {
    /// Decrypts a message whose signature verified, if its iteration is
    /// one the chain can still serve.
    fn decrypt(&mut self, message: GroupMessage) -> Result<Zeroizing<Vec<u8>>, GroupDecryptError> {
        let iteration = message.iteration;
        let mut plaintext = Zeroizing::new(message.ciphertext);
        if iteration < self.iteration {
            let position = self
                .skipped
                .iter()
                .position(|(i, _)| *i == iteration)
                .ok_or(GroupDecryptError::DuplicateOrExpired { iteration })?;
            let (_, key) = self
                .skipped
                .remove(position)
                .ok_or(GroupDecryptError::DuplicateOrExpired { iteration })?;
            key.apply_keystream(INFO_SENDER_KEY, &mut plaintext);
            return Ok(plaintext);
        }
        let gap = iteration - self.iteration;
        if gap > MAX_GROUP_MESSAGE_GAP {
            return Err(GroupDecryptError::TooFarAhead {
                gap,
                limit: MAX_GROUP_MESSAGE_GAP,
            });
        }
        let advance = crate::ratchet::advance_chain(&self.chain_key, self.iteration, iteration)
            .map_err(|_| GroupDecryptError::TooFarAhead {
                gap,
                limit: MAX_GROUP_MESSAGE_GAP,
            })?;
        advance
            .message_key
            .apply_keystream(INFO_SENDER_KEY, &mut plaintext);
        self.chain_key = advance.next_chain_key;
        self.iteration = advance.next_index;
        for skipped in advance.skipped {
            if self.skipped.len() >= MAX_GROUP_SKIPPED_KEYS {
                self.skipped.pop_front();
            }
            self.skipped.push_back(skipped);
        }
        Ok(plaintext)
    }
}
