//! The sender-key distribution message: what one member sends every other
//! member device (inside the pairwise sessions) so they can read its group
//! messages. It carries a chain key: treat it as a secret.
//!
//! A distribution is bound to the device that made it: its identity key
//! signs the binding (sender identity, group, chain id, iteration, signing
//! key), and so does the chain's signing key, proving the sender holds its
//! secret. A receiver checks both against the identity of the pairwise
//! session the distribution arrived in, so no member can hand out another
//! member's chain or signing key as its own (SPEC.md §7.2).

use ed25519_dalek::{SigningKey, VerifyingKey};
use thiserror::Error;
use zeroize::Zeroizing;

use super::message::{DISTRIBUTION_VERSION, SENDER_IDENTITY_LEN, check_group_id};
use crate::error::{DecodeError, MAX_ENCODED_LEN, check_version, decode_proto, fixed};
use crate::keys::{IdentityKey, IdentityKeyPair, sign_with, verify_with, verifying_key};
use crate::proto::wire;
use crate::ratchet::ChainKey;

/// Context of the identity key's signature over the binding.
const CONTEXT_BINDING: &[u8] = b"Starling_SenderKeyBinding_v2";
/// Context of the chain signing key's signature over the binding.
const CONTEXT_POSSESSION: &[u8] = b"Starling_SenderKeyPossession_v2";

/// A distribution was refused: the session it was for is unchanged.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DistributionError {
    /// The distribution is for another group than the session's.
    #[error("sender key distribution is for another group")]
    WrongGroup,
    /// The session holds the chains of another sender (identity).
    #[error("sender key distribution is from another sender than this session's")]
    WrongSender,
    /// The sender's identity key did not sign it: it was made by, or
    /// copied from, another device than the one whose pairwise session
    /// delivered it.
    #[error("sender key distribution is not signed by its sender's identity")]
    NotSignedBySender,
    /// Its signing key did not sign it: the sender does not hold that
    /// key's secret (it copied another member's public key).
    #[error("sender key distribution names a signing key its sender does not hold")]
    SigningKeyNotHeld,
}

/// A member's sender key at some iteration, bound to its sender.
pub struct SenderKeyDistribution {
    pub(crate) group_id: Vec<u8>,
    pub(crate) chain_id: u32,
    pub(crate) iteration: u32,
    pub(crate) chain_key: ChainKey,
    pub(crate) signing_key: VerifyingKey,
    identity_signature: [u8; 64],
    signing_key_signature: [u8; 64],
}

impl core::fmt::Debug for SenderKeyDistribution {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let Self {
            chain_id,
            iteration,
            ..
        } = self;
        f.debug_struct("SenderKeyDistribution")
            .field("chain_id", chain_id)
            .field("iteration", iteration)
            .finish_non_exhaustive()
    }
}

impl SenderKeyDistribution {
    /// A distribution of the chain `chain_key` at `iteration`, signed by
    /// the sender's identity and by the chain's signing key.
    pub(crate) fn signed(
        identity: &IdentityKeyPair,
        group_id: &[u8],
        chain_id: u32,
        iteration: u32,
        chain_key: ChainKey,
        signing: &SigningKey,
    ) -> Self {
        let signing_key = signing.verifying_key();
        let binding = binding(
            &identity.public().public_bytes(),
            group_id,
            chain_id,
            iteration,
            &signing_key,
        );
        Self {
            group_id: group_id.to_vec(),
            chain_id,
            iteration,
            chain_key,
            signing_key,
            identity_signature: identity.sign(CONTEXT_BINDING, &binding).to_bytes(),
            signing_key_signature: sign_with(signing, CONTEXT_POSSESSION, &binding).to_bytes(),
        }
    }

    /// The group this key is for.
    pub fn group_id(&self) -> &[u8] {
        &self.group_id
    }

    /// The chain's id; a rotation makes a new one.
    pub fn chain_id(&self) -> u32 {
        self.chain_id
    }

    /// The chain's public signing key, 32 bytes: what a store checks no
    /// other sender of the group already holds.
    pub fn signing_key_bytes(&self) -> [u8; 32] {
        self.signing_key.to_bytes()
    }

    /// Checks that `sender` made this distribution: its identity key signed
    /// the binding, and so did the signing key the distribution names.
    pub(crate) fn verify_sender(&self, sender: &IdentityKey) -> Result<(), DistributionError> {
        let binding = binding(
            &sender.public_bytes(),
            &self.group_id,
            self.chain_id,
            self.iteration,
            &self.signing_key,
        );
        sender
            .verify(
                "sender key binding",
                CONTEXT_BINDING,
                &binding,
                &self.identity_signature,
            )
            .map_err(|_| DistributionError::NotSignedBySender)?;
        verify_with(
            &self.signing_key,
            "sender key possession",
            CONTEXT_POSSESSION,
            &binding,
            &self.signing_key_signature,
        )
        .map_err(|_| DistributionError::SigningKeyNotHeld)
    }

    /// Encodes the distribution (protobuf `SenderKeyDistribution`). The
    /// result holds a chain key and is wiped on drop.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let proto = wire::SenderKeyDistribution {
            version: DISTRIBUTION_VERSION,
            group_id: self.group_id.clone(),
            chain_id: self.chain_id,
            iteration: self.iteration,
            chain_key: self.chain_key.as_bytes().to_vec(),
            signing_key: self.signing_key.to_bytes().to_vec(),
            identity_signature: self.identity_signature.to_vec(),
            signing_key_signature: self.signing_key_signature.to_vec(),
        };
        Zeroizing::new(prost::Message::encode_to_vec(&proto))
    }

    /// Decodes a distribution (version [`DISTRIBUTION_VERSION`]; version 1,
    /// bound to no sender, is refused). Its signatures are checked when it
    /// is given to an [`super::InboundGroupSession`] with its sender.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let proto: wire::SenderKeyDistribution = decode_proto(bytes, MAX_ENCODED_LEN)?;
        check_version(proto.version, DISTRIBUTION_VERSION)?;
        check_group_id(&proto.group_id)?;
        if proto.chain_key.len() != 32 {
            return Err(DecodeError::BadLength {
                field: "chain_key",
                actual: proto.chain_key.len(),
                expected: 32,
            });
        }
        let mut chain_key = Box::new([0u8; 32]);
        chain_key.copy_from_slice(&proto.chain_key);
        Ok(Self {
            group_id: proto.group_id.clone(),
            chain_id: proto.chain_id,
            iteration: proto.iteration,
            chain_key: ChainKey::new(chain_key),
            signing_key: verifying_key("signing_key", &proto.signing_key)?,
            identity_signature: fixed("identity_signature", &proto.identity_signature)?,
            signing_key_signature: fixed("signing_key_signature", &proto.signing_key_signature)?,
        })
    }
}

/// version || sender identity || len(group_id) || group_id || chain_id ||
/// iteration || signing key, integers big-endian: what both signatures of
/// a distribution cover, after their contexts (SPEC.md §7.2).
fn binding(
    sender: &[u8; SENDER_IDENTITY_LEN],
    group_id: &[u8],
    chain_id: u32,
    iteration: u32,
    signing_key: &VerifyingKey,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + SENDER_IDENTITY_LEN + 1 + group_id.len() + 8 + 32);
    out.extend_from_slice(&DISTRIBUTION_VERSION.to_be_bytes());
    out.extend_from_slice(sender);
    // check_group_id bounds the length to 64, so it fits a byte.
    out.push(u8::try_from(group_id.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(group_id);
    out.extend_from_slice(&chain_id.to_be_bytes());
    out.extend_from_slice(&iteration.to_be_bytes());
    out.extend_from_slice(signing_key.as_bytes());
    out
}
