//! Another member's sender key as we receive it: lends its chains' signing
//! keys to [`GroupMessage::verify`], then decrypts the verified message,
//! handling out-of-order delivery within bounds. Decryption takes a
//! [`VerifiedGroupMessage`], so as in the pairwise ratchet nothing is
//! derived or committed until a message authenticates.

use std::collections::VecDeque;

use ed25519_dalek::VerifyingKey;
use thiserror::Error;
use zeroize::Zeroizing;

use super::distribution::SenderKeyDistribution;
use super::message::{GroupMessage, INFO_SENDER_KEY, VerifiedGroupMessage, check_group_id};
use crate::error::{DecodeError, MAX_STATE_LEN, check_version, decode_proto, fixed};
use crate::keys::verifying_key;
use crate::proto::state;
use crate::ratchet::{ChainKey, MessageKey};

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
    /// The message was verified with a signing key other than the one this
    /// session holds for its chain (against another sender's session, or
    /// before the chain was replaced): verify it against this session.
    #[error("message was verified with another signing key")]
    VerifiedWithAnotherKey,
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

    /// Decrypts a message whose signature [`GroupMessage::verify`] checked
    /// against this session. The session changes only if it succeeds.
    ///
    /// ```
    /// use starling_crypto::group::{GroupMessage, InboundGroupSession, OutboundGroupSession};
    /// let mut rng = rand_core::OsRng;
    /// let mut outbound = OutboundGroupSession::new(b"group", &mut rng)?;
    /// let mut inbound = InboundGroupSession::new(&outbound.distribution());
    /// let bytes = outbound.encrypt(b"hello group")?;
    /// let verified = GroupMessage::from_bytes(&bytes)?.verify(&inbound)?;
    /// assert_eq!(&inbound.decrypt(verified)?[..], b"hello group");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// A message whose signature was not checked does not reach it:
    ///
    /// ```compile_fail,E0308
    /// use starling_crypto::group::{GroupMessage, InboundGroupSession, OutboundGroupSession};
    /// let mut rng = rand_core::OsRng;
    /// let mut outbound = OutboundGroupSession::new(b"group", &mut rng)?;
    /// let mut inbound = InboundGroupSession::new(&outbound.distribution());
    /// let bytes = outbound.encrypt(b"hello group")?;
    /// let unverified = GroupMessage::from_bytes(&bytes)?;
    /// assert_eq!(&inbound.decrypt(unverified)?[..], b"hello group");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn decrypt(
        &mut self,
        message: VerifiedGroupMessage,
    ) -> Result<Zeroizing<Vec<u8>>, GroupDecryptError> {
        if message.group_id() != self.group_id {
            return Err(GroupDecryptError::WrongGroup);
        }
        let chain = self
            .chains
            .iter_mut()
            .find(|c| c.chain_id == message.chain_id())
            .ok_or(GroupDecryptError::UnknownChain)?;
        if chain.signing_key != *message.signing_key() {
            return Err(GroupDecryptError::VerifiedWithAnotherKey);
        }
        // Verified under this chain's key: from here on the message cannot
        // fail but for its position in the chain.
        let (iteration, ciphertext) = message.into_ciphertext();
        chain.decrypt(iteration, ciphertext)
    }

    /// Decodes a group message, verifies it against this session and
    /// decrypts it: [`GroupMessage::from_bytes`], [`GroupMessage::verify`],
    /// then [`Self::decrypt`]. The session changes only if all succeed.
    pub fn verify_and_decrypt(
        &mut self,
        bytes: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, GroupDecryptError> {
        let verified = GroupMessage::from_bytes(bytes)?.verify(self)?;
        self.decrypt(verified)
    }

    /// The signing key of chain `chain_id`, for [`GroupMessage::verify`]:
    /// `WrongGroup` if `group_id` is not this session's, `UnknownChain` if
    /// no such chain is kept.
    pub(super) fn signing_key(
        &self,
        group_id: &[u8],
        chain_id: u32,
    ) -> Result<&VerifyingKey, GroupDecryptError> {
        if group_id != self.group_id {
            return Err(GroupDecryptError::WrongGroup);
        }
        self.chains
            .iter()
            .find(|c| c.chain_id == chain_id)
            .map(|c| &c.signing_key)
            .ok_or(GroupDecryptError::UnknownChain)
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
    /// Decrypts the ciphertext of a message whose signature verified under
    /// this chain's key, if its iteration is one the chain can still serve.
    fn decrypt(
        &mut self,
        iteration: u32,
        ciphertext: Vec<u8>,
    ) -> Result<Zeroizing<Vec<u8>>, GroupDecryptError> {
        let mut plaintext = Zeroizing::new(ciphertext);
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
