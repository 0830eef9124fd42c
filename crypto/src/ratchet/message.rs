//! The pairwise wire messages: [`RatchetMessage`], [`PreKeyMessage`] and the
//! [`CiphertextMessage`] that carries either, plus the associated data that
//! binds a ciphertext to its header and to both identities.
//!
//! Parsing checks lengths and versions only; authenticity comes from the
//! AEAD in `session`.

use x25519_dalek::PublicKey as DhPublic;

use crate::error::{DecodeError, MAX_ENCODED_LEN, check_version, decode_proto};
use crate::keys::{IdentityKey, SignatureError, dh_public};
use crate::prekeys::KEM_CIPHERTEXT_LEN;
use crate::proto::wire;

/// Version of [`RatchetMessage`] and [`PreKeyMessage`].
pub const MESSAGE_VERSION: u32 = 1;
/// Prefix of the associated data of every ratchet message.
const AD_CONTEXT: &[u8] = b"Starling_Message_v1";

/// One Double Ratchet message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatchetMessage {
    pub(crate) ratchet_key: DhPublic,
    pub(crate) counter: u32,
    pub(crate) previous_counter: u32,
    pub(crate) ciphertext: Vec<u8>,
}

/// A message that also carries what the responder needs to set up the
/// session: sent until the initiator receives a reply.
#[derive(Debug, Clone, PartialEq)]
pub struct PreKeyMessage {
    pub(crate) initiator_identity: IdentityKey,
    pub(crate) base_key: DhPublic,
    pub(crate) signed_prekey_id: u32,
    pub(crate) one_time_prekey_id: Option<u32>,
    pub(crate) kem_prekey_id: Option<u32>,
    pub(crate) kem_ciphertext: Vec<u8>,
    pub(crate) message: RatchetMessage,
}

/// What a client puts in an envelope for one device.
#[derive(Debug, Clone, PartialEq)]
pub enum CiphertextMessage {
    /// The first messages of a session.
    PreKey(Box<PreKeyMessage>),
    /// Every later message.
    Ratchet(RatchetMessage),
}

/// A ciphertext message failed to decode.
pub type MessageDecodeError = SignatureError;

impl RatchetMessage {
    pub(crate) fn to_proto(&self) -> wire::RatchetMessage {
        wire::RatchetMessage {
            version: MESSAGE_VERSION,
            ratchet_key: self.ratchet_key.to_bytes().to_vec(),
            counter: self.counter,
            previous_counter: self.previous_counter,
            ciphertext: self.ciphertext.clone(),
        }
    }

    pub(crate) fn from_proto(proto: &wire::RatchetMessage) -> Result<Self, DecodeError> {
        check_version(proto.version, MESSAGE_VERSION)?;
        Ok(Self {
            ratchet_key: dh_public("ratchet_key", &proto.ratchet_key)?,
            counter: proto.counter,
            previous_counter: proto.previous_counter,
            ciphertext: proto.ciphertext.clone(),
        })
    }

    /// The sender's index of this message in its chain.
    pub fn counter(&self) -> u32 {
        self.counter
    }
}

impl PreKeyMessage {
    /// The identity of the device that started the session.
    pub fn initiator_identity(&self) -> &IdentityKey {
        &self.initiator_identity
    }

    /// Whether the session uses PQXDH.
    pub fn is_post_quantum(&self) -> bool {
        self.kem_prekey_id.is_some()
    }

    /// The session this message sets up: the initiator's base key.
    pub fn session_id(&self) -> [u8; 32] {
        self.base_key.to_bytes()
    }

    fn to_proto(&self) -> wire::PreKeyMessage {
        wire::PreKeyMessage {
            version: MESSAGE_VERSION,
            initiator_identity: Some(self.initiator_identity.to_proto()),
            base_key: self.base_key.to_bytes().to_vec(),
            signed_prekey_id: self.signed_prekey_id,
            one_time_prekey_id: self.one_time_prekey_id,
            kem_prekey_id: self.kem_prekey_id,
            kem_ciphertext: self.kem_ciphertext.clone(),
            message: Some(self.message.to_proto()),
        }
    }

    fn from_proto(proto: &wire::PreKeyMessage) -> Result<Self, SignatureError> {
        check_version(proto.version, MESSAGE_VERSION)?;
        let identity = proto
            .initiator_identity
            .as_ref()
            .ok_or(DecodeError::MissingField("initiator_identity"))?;
        let message = proto
            .message
            .as_ref()
            .ok_or(DecodeError::MissingField("message"))?;
        let expected_kem_len = if proto.kem_prekey_id.is_some() {
            KEM_CIPHERTEXT_LEN
        } else {
            0
        };
        if proto.kem_ciphertext.len() != expected_kem_len {
            return Err(DecodeError::BadLength {
                field: "kem_ciphertext",
                actual: proto.kem_ciphertext.len(),
                expected: expected_kem_len,
            }
            .into());
        }
        Ok(Self {
            initiator_identity: IdentityKey::from_proto(identity)?,
            base_key: dh_public("base_key", &proto.base_key)?,
            signed_prekey_id: proto.signed_prekey_id,
            one_time_prekey_id: proto.one_time_prekey_id,
            kem_prekey_id: proto.kem_prekey_id,
            kem_ciphertext: proto.kem_ciphertext.clone(),
            message: RatchetMessage::from_proto(message)?,
        })
    }
}

impl CiphertextMessage {
    /// Encodes the message (protobuf `CiphertextMessage`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let body = match self {
            Self::PreKey(m) => wire::ciphertext_message::Body::Prekey(m.to_proto()),
            Self::Ratchet(m) => wire::ciphertext_message::Body::Message(m.to_proto()),
        };
        prost::Message::encode_to_vec(&wire::CiphertextMessage { body: Some(body) })
    }

    /// Decodes a message; for a prekey message, also checks the initiator
    /// identity's self-signature.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MessageDecodeError> {
        let proto: wire::CiphertextMessage = decode_proto(bytes, MAX_ENCODED_LEN)?;
        match proto.body {
            Some(wire::ciphertext_message::Body::Prekey(m)) => {
                Ok(Self::PreKey(Box::new(PreKeyMessage::from_proto(&m)?)))
            }
            Some(wire::ciphertext_message::Body::Message(m)) => {
                Ok(Self::Ratchet(RatchetMessage::from_proto(&m)?))
            }
            None => Err(DecodeError::MissingField("body").into()),
        }
    }

    /// Whether this message sets up a session.
    pub fn is_prekey(&self) -> bool {
        matches!(self, Self::PreKey(_))
    }
}

/// The part of the associated data fixed for a session's lifetime:
/// context || initiator identity (64 bytes) || responder identity (64).
pub(crate) fn session_associated_data(initiator: &IdentityKey, responder: &IdentityKey) -> Vec<u8> {
    let mut ad = Vec::with_capacity(AD_CONTEXT.len() + 128 + 40);
    ad.extend_from_slice(AD_CONTEXT);
    ad.extend_from_slice(&initiator.public_bytes());
    ad.extend_from_slice(&responder.public_bytes());
    ad
}

/// The full associated data of one message: the session part followed by
/// the header (ratchet key || counter || previous counter, big-endian).
pub(crate) fn message_associated_data(
    session_part: &[u8],
    ratchet_key: &DhPublic,
    counter: u32,
    previous_counter: u32,
) -> Vec<u8> {
    let mut ad = Vec::with_capacity(session_part.len() + 40);
    ad.extend_from_slice(session_part);
    ad.extend_from_slice(ratchet_key.as_bytes());
    ad.extend_from_slice(&counter.to_be_bytes());
    ad.extend_from_slice(&previous_counter.to_be_bytes());
    ad
}
