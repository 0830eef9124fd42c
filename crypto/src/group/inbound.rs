//! Another member's sender key as we receive it: bound to that member
//! device's identity (every distribution it takes must be signed by it),
//! lends its chains' signing keys and that identity to
//! [`GroupMessage::verify`], then decrypts the verified message, handling
//! out-of-order delivery within bounds. Decryption takes a
//! [`VerifiedGroupMessage`], so as in the pairwise ratchet nothing is
//! derived or committed until a message authenticates.

use std::collections::VecDeque;

use ed25519_dalek::VerifyingKey;
use thiserror::Error;
use zeroize::Zeroizing;

use super::distribution::{DistributionError, SenderKeyDistribution};
use super::message::{
    GroupMessage, INFO_SENDER_KEY, SENDER_IDENTITY_LEN, VerifiedGroupMessage, check_group_id,
};
use crate::error::{DecodeError, MAX_STATE_LEN, check_version, decode_proto, fixed};
use crate::keys::{IdentityKey, verifying_key};
use crate::proto::state;
use crate::ratchet::{ChainKey, MessageKey};

/// A group message may be at most this many iterations ahead of the next
/// expected one.
pub const MAX_GROUP_MESSAGE_GAP: u32 = 2_000;
/// Skipped message keys kept per sender chain; the oldest go first.
pub const MAX_GROUP_SKIPPED_KEYS: usize = 2_000;
/// Chains kept per sender (the current one and those before rotations).
pub const MAX_GROUP_CHAINS: usize = 3;
/// Version 2 records the sender's identity (version 1 states, from
/// distributions bound to no sender, are refused).
const INBOUND_STATE_VERSION: u32 = 2;

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
    /// session holds for its chain, or for another sender than this
    /// session's (against another sender's session, or before the chain
    /// was replaced): verify it against this session.
    #[error("message was verified with another signing key or sender")]
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
    /// The sender's identity public bytes: every chain was bound to it,
    /// and every message is verified as its.
    sender: [u8; SENDER_IDENTITY_LEN],
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
    /// Starts from the distribution of the member device with identity
    /// `sender`: the identity of the pairwise session that delivered it.
    /// Refused unless `sender` signed it and holds its signing key.
    pub fn new(
        distribution: &SenderKeyDistribution,
        sender: &IdentityKey,
    ) -> Result<Self, DistributionError> {
        distribution.verify_sender(sender)?;
        let mut session = Self {
            sender: sender.public_bytes(),
            group_id: distribution.group_id.clone(),
            chains: VecDeque::new(),
        };
        session.insert(distribution);
        Ok(session)
    }

    /// Adds a newer distribution from the same sender (after a rotation),
    /// delivered by the pairwise session of `sender`. Refused, with the
    /// session unchanged, when it is for another group (`WrongGroup`),
    /// `sender` is not the session's (`WrongSender`), or `sender` did not
    /// make it (as in [`Self::new`]). A distribution for a chain we know
    /// only moves it forward, never back: an older one changes nothing.
    pub fn add_distribution(
        &mut self,
        distribution: &SenderKeyDistribution,
        sender: &IdentityKey,
    ) -> Result<(), DistributionError> {
        if distribution.group_id != self.group_id {
            return Err(DistributionError::WrongGroup);
        }
        if sender.public_bytes() != self.sender {
            return Err(DistributionError::WrongSender);
        }
        distribution.verify_sender(sender)?;
        self.insert(distribution);
        Ok(())
    }

    /// Puts a verified distribution's chain first, unless it would move a
    /// known chain back.
    fn insert(&mut self, distribution: &SenderKeyDistribution) {
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

    /// The public signing keys of the chains kept, newest first: what a
    /// store keeps per group so that no key is accepted from two senders.
    pub fn signing_keys(&self) -> Vec<[u8; 32]> {
        self.chains
            .iter()
            .map(|c| c.signing_key.to_bytes())
            .collect()
    }

    /// Whether `sender` is the identity this session is bound to.
    pub fn is_from(&self, sender: &IdentityKey) -> bool {
        sender.public_bytes() == self.sender
    }

    /// Decrypts a message whose signature [`GroupMessage::verify`] checked
    /// against this session. The session changes only if it succeeds.
    ///
    /// ```
    /// use starling_crypto::IdentityKeyPair;
    /// use starling_crypto::group::{GroupMessage, InboundGroupSession, OutboundGroupSession};
    /// let mut rng = rand_core::OsRng;
    /// let alice = IdentityKeyPair::generate(&mut rng);
    /// let mut outbound = OutboundGroupSession::new(alice.public(), b"group", &mut rng)?;
    /// // What arrived in the pairwise session with Alice, and her identity.
    /// let mut inbound = InboundGroupSession::new(&outbound.distribution(&alice)?, alice.public())?;
    /// let bytes = outbound.encrypt(b"hello group")?;
    /// let verified = GroupMessage::from_bytes(&bytes)?.verify(&inbound)?;
    /// assert_eq!(&inbound.decrypt(verified)?[..], b"hello group");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// A message whose signature was not checked does not reach it:
    ///
    /// ```compile_fail,E0308
    /// use starling_crypto::IdentityKeyPair;
    /// use starling_crypto::group::{GroupMessage, InboundGroupSession, OutboundGroupSession};
    /// let mut rng = rand_core::OsRng;
    /// let alice = IdentityKeyPair::generate(&mut rng);
    /// let mut outbound = OutboundGroupSession::new(alice.public(), b"group", &mut rng)?;
    /// let mut inbound = InboundGroupSession::new(&outbound.distribution(&alice)?, alice.public())?;
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
        if chain.signing_key != *message.signing_key() || self.sender != *message.sender() {
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

    /// The sender's identity public bytes, for [`GroupMessage::verify`].
    pub(super) fn sender_identity(&self) -> &[u8; SENDER_IDENTITY_LEN] {
        &self.sender
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
            sender_identity: self.sender.to_vec(),
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
            sender: fixed("sender_identity", &proto.sender_identity)?,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rand_core::OsRng;

    use super::*;
    use crate::IdentityKeyPair;
    use crate::group::OutboundGroupSession;

    /// Alice's sender key, a member's session for it, and one message.
    fn alice() -> (IdentityKeyPair, InboundGroupSession, Vec<u8>) {
        let alice = IdentityKeyPair::generate(&mut OsRng);
        let mut outbound = OutboundGroupSession::new(alice.public(), b"group", &mut OsRng).unwrap();
        let distribution = outbound.distribution(&alice).unwrap();
        let inbound = InboundGroupSession::new(&distribution, alice.public()).unwrap();
        let message = outbound.encrypt(b"from alice").unwrap();
        (alice, inbound, message)
    }

    /// A copy of `session` claiming another sender or signing key, as no
    /// distribution can make: what a member would hold had it accepted
    /// another member's chain under the wrong sender.
    fn altered(
        session: &InboundGroupSession,
        sender: Option<&IdentityKeyPair>,
        signing_key: Option<VerifyingKey>,
    ) -> InboundGroupSession {
        let mut copy = InboundGroupSession::from_bytes(&session.to_bytes()).unwrap();
        if let Some(sender) = sender {
            copy.sender = sender.public().public_bytes();
        }
        if let Some(key) = signing_key {
            copy.chains[0].signing_key = key;
        }
        copy
    }

    #[test]
    fn a_message_is_verified_as_its_senders_only() {
        let (_, inbound, message) = alice();
        let mallory = IdentityKeyPair::generate(&mut OsRng);
        // Alice's chain and signing key, held as Mallory's.
        let mut as_mallory = altered(&inbound, Some(&mallory), None);
        assert_eq!(
            GroupMessage::from_bytes(&message)
                .unwrap()
                .verify(&as_mallory)
                .unwrap_err(),
            GroupDecryptError::BadSignature
        );
        // Verified as Alice's, it is not decrypted as Mallory's.
        let verified = GroupMessage::from_bytes(&message)
            .unwrap()
            .verify(&inbound)
            .unwrap();
        assert_eq!(
            as_mallory.decrypt(verified).unwrap_err(),
            GroupDecryptError::VerifiedWithAnotherKey
        );
    }

    #[test]
    fn a_message_verified_under_another_key_is_not_decrypted() {
        let (_, inbound, message) = alice();
        let other = ed25519_dalek::SigningKey::generate(&mut OsRng).verifying_key();
        let mut rekeyed = altered(&inbound, None, Some(other));
        let verified = GroupMessage::from_bytes(&message)
            .unwrap()
            .verify(&inbound)
            .unwrap();
        assert_eq!(
            rekeyed.decrypt(verified).unwrap_err(),
            GroupDecryptError::VerifiedWithAnotherKey
        );
        assert_eq!(
            GroupMessage::from_bytes(&message)
                .unwrap()
                .verify(&rekeyed)
                .unwrap_err(),
            GroupDecryptError::BadSignature
        );
    }

    #[test]
    fn signing_keys_and_sender_are_reported() {
        let (alice, inbound, _) = alice();
        assert_eq!(inbound.signing_keys().len(), 1);
        assert!(inbound.is_from(alice.public()));
        let restored = InboundGroupSession::from_bytes(&inbound.to_bytes()).unwrap();
        assert!(restored.is_from(alice.public()));
        assert_eq!(restored.signing_keys(), inbound.signing_keys());
    }
}
