//! The group message: its format, the bytes its signature covers (the
//! context of the message, naming its sender, then its ciphertext), and its
//! verification.
//!
//! Verification is a type: a decoded [`GroupMessage`] becomes a
//! [`VerifiedGroupMessage`] only through [`GroupMessage::verify`], and
//! [`InboundGroupSession::decrypt`] accepts nothing else, so no message
//! reaches decryption before its signature has been checked.

use ed25519_dalek::{Signature, VerifyingKey};

use super::inbound::{GroupDecryptError, InboundGroupSession};
use crate::error::{DecodeError, MAX_ENCODED_LEN, check_version, decode_proto, fixed};
use crate::proto::wire;
use crate::strict_signature::verify_strict;

/// Version of the group message format. Version 3 signs the sender's
/// identity with the message, so a message cannot be passed off as another
/// member's; version 2 (which did not) and version 1 (sealed with
/// ChaCha20-Poly1305) are refused.
pub const GROUP_MESSAGE_VERSION: u32 = 3;
/// Version of the sender key distribution format. Version 2 is bound to
/// the sender's identity; version 1, bound to nothing, is refused.
pub const DISTRIBUTION_VERSION: u32 = 2;
/// Longest group id accepted, in bytes.
pub const MAX_GROUP_ID_LEN: usize = 64;
/// HKDF info of the sender-key message key expansion (into a ChaCha20 key
/// and nonce; version 1's `Starling_SenderKey_v1` gave ChaCha20-Poly1305's).
pub const INFO_SENDER_KEY: &[u8] = b"Starling_SenderKey_v2";
/// Context prefix of the signed bytes.
const CONTEXT_GROUP_MESSAGE: &[u8] = b"Starling_GroupMessage_v3";
/// Length of a sender identity as it enters signed bytes: the identity's
/// Ed25519 key followed by its X25519 key.
pub(crate) const SENDER_IDENTITY_LEN: usize = 64;

/// A decoded group message whose signature has not been checked. The only
/// use of it is [`Self::verify`].
pub struct GroupMessage {
    pub(crate) group_id: Vec<u8>,
    pub(crate) chain_id: u32,
    pub(crate) iteration: u32,
    pub(crate) ciphertext: Vec<u8>,
    pub(crate) signature: Signature,
}

impl GroupMessage {
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        prost::Message::encode_to_vec(&wire::GroupMessage {
            version: GROUP_MESSAGE_VERSION,
            group_id: self.group_id.clone(),
            chain_id: self.chain_id,
            iteration: self.iteration,
            ciphertext: self.ciphertext.clone(),
            signature: self.signature.to_bytes().to_vec(),
        })
    }

    /// Decodes a group message (protobuf `GroupMessage`, version
    /// [`GROUP_MESSAGE_VERSION`]). Its signature is not checked yet.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let proto: wire::GroupMessage = decode_proto(bytes, MAX_ENCODED_LEN)?;
        check_version(proto.version, GROUP_MESSAGE_VERSION)?;
        check_group_id(&proto.group_id)?;
        let signature: [u8; 64] = fixed("signature", &proto.signature)?;
        Ok(Self {
            group_id: proto.group_id,
            chain_id: proto.chain_id,
            iteration: proto.iteration,
            ciphertext: proto.ciphertext,
            signature: Signature::from_bytes(&signature),
        })
    }

    /// Checks the sender's signature over the message's context (version,
    /// the sender's identity as `session` knows it, group id, chain id,
    /// iteration) and ciphertext with the signing key of `session`'s chain
    /// `chain_id`; consumes the message. Fails, with nothing decrypted or
    /// derived, with `WrongGroup` if the message is for another group,
    /// `UnknownChain` if the session has no such chain, and `BadSignature`
    /// if the signature does not verify (also when the message was signed
    /// as another sender's).
    pub fn verify(
        self,
        session: &InboundGroupSession,
    ) -> Result<VerifiedGroupMessage, GroupDecryptError> {
        let signing_key = *session.signing_key(&self.group_id, self.chain_id)?;
        let sender = *session.sender_identity();
        let ad = associated_data(&sender, &self.group_id, self.chain_id, self.iteration);
        let signed = signed_bytes(&ad, &self.ciphertext);
        verify_strict(&signing_key, &signed, &self.signature)
            .map_err(|_| GroupDecryptError::BadSignature)?;
        Ok(VerifiedGroupMessage {
            message: self,
            signing_key,
            sender,
        })
    }
}

impl core::fmt::Debug for GroupMessage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GroupMessage")
            .field("chain_id", &self.chain_id)
            .field("iteration", &self.iteration)
            .finish_non_exhaustive()
    }
}

/// A group message whose signature verified under the signing key of an
/// [`InboundGroupSession`]'s chain: what [`InboundGroupSession::decrypt`]
/// takes. Only [`GroupMessage::verify`] makes one; it remembers the key and
/// the sender it was verified with, and decryption refuses it unless the
/// decrypting session has that same sender and its chain that same key.
///
/// It cannot be built by hand:
///
/// ```compile_fail,E0451
/// use starling_crypto::group::{GroupMessage, VerifiedGroupMessage};
/// fn forge(
///     message: GroupMessage,
///     signing_key: ed25519_dalek::VerifyingKey,
///     sender: [u8; 64],
/// ) -> VerifiedGroupMessage {
///     VerifiedGroupMessage { message, signing_key, sender }
/// }
/// ```
pub struct VerifiedGroupMessage {
    message: GroupMessage,
    signing_key: VerifyingKey,
    sender: [u8; SENDER_IDENTITY_LEN],
}

impl VerifiedGroupMessage {
    /// The group the message is for.
    pub(super) fn group_id(&self) -> &[u8] {
        &self.message.group_id
    }

    /// The sender chain the message belongs to.
    pub(super) fn chain_id(&self) -> u32 {
        self.message.chain_id
    }

    /// The key the signature verified under.
    pub(super) fn signing_key(&self) -> &VerifyingKey {
        &self.signing_key
    }

    /// The sender identity the signature verified for.
    pub(super) fn sender(&self) -> &[u8; SENDER_IDENTITY_LEN] {
        &self.sender
    }

    /// The message's iteration and ciphertext, for decryption.
    pub(super) fn into_ciphertext(self) -> (u32, Vec<u8>) {
        (self.message.iteration, self.message.ciphertext)
    }
}

impl core::fmt::Debug for VerifiedGroupMessage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VerifiedGroupMessage")
            .field("chain_id", &self.message.chain_id)
            .field("iteration", &self.message.iteration)
            .finish_non_exhaustive()
    }
}

pub(crate) fn check_group_id(group_id: &[u8]) -> Result<(), DecodeError> {
    if group_id.is_empty() || group_id.len() > MAX_GROUP_ID_LEN {
        return Err(DecodeError::InvalidValue("group_id"));
    }
    Ok(())
}

/// context || version || sender identity || len(group_id) || group_id ||
/// chain_id || iteration, integers big-endian: the prefix of the signed
/// bytes (SPEC.md §7.5). The sender identity is not on the wire: the
/// signer puts its own, the verifier the one its session was bound to.
pub(crate) fn associated_data(
    sender: &[u8; SENDER_IDENTITY_LEN],
    group_id: &[u8],
    chain_id: u32,
    iteration: u32,
) -> Vec<u8> {
    let mut ad = Vec::with_capacity(
        CONTEXT_GROUP_MESSAGE.len() + 4 + SENDER_IDENTITY_LEN + 9 + group_id.len(),
    );
    ad.extend_from_slice(CONTEXT_GROUP_MESSAGE);
    ad.extend_from_slice(&GROUP_MESSAGE_VERSION.to_be_bytes());
    ad.extend_from_slice(sender);
    // check_group_id bounds the length to 64, so it fits a byte.
    ad.push(u8::try_from(group_id.len()).unwrap_or(u8::MAX));
    ad.extend_from_slice(group_id);
    ad.extend_from_slice(&chain_id.to_be_bytes());
    ad.extend_from_slice(&iteration.to_be_bytes());
    ad
}

/// The bytes a group message's signature covers: the associated data
/// followed by the ciphertext.
pub(crate) fn signed_bytes(ad: &[u8], ciphertext: &[u8]) -> Vec<u8> {
    let mut signed = Vec::with_capacity(ad.len() + ciphertext.len());
    signed.extend_from_slice(ad);
    signed.extend_from_slice(ciphertext);
    signed
}
