//! The sender-key distribution message: what one member sends every other
//! member device (inside the pairwise sessions) so they can read its group
//! messages. It carries a chain key: treat it as a secret.

use ed25519_dalek::VerifyingKey;
use zeroize::Zeroizing;

use super::message::{DISTRIBUTION_VERSION, check_group_id};
use crate::error::{DecodeError, MAX_ENCODED_LEN, check_version, decode_proto};
use crate::keys::verifying_key;
use crate::proto::wire;
use crate::ratchet::ChainKey;

/// A member's sender key at some iteration.
pub struct SenderKeyDistribution {
    pub(crate) group_id: Vec<u8>,
    pub(crate) chain_id: u32,
    pub(crate) iteration: u32,
    pub(crate) chain_key: ChainKey,
    pub(crate) signing_key: VerifyingKey,
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
    /// The group this key is for.
    pub fn group_id(&self) -> &[u8] {
        &self.group_id
    }

    /// The chain's id; a rotation makes a new one.
    pub fn chain_id(&self) -> u32 {
        self.chain_id
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
        };
        Zeroizing::new(prost::Message::encode_to_vec(&proto))
    }

    /// Decodes a distribution.
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
        })
    }
}
