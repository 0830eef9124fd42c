//! Public prekeys and the prekey bundle a server stores and serves.
//!
//! Every type here is public key material: it may be uploaded, stored by a
//! server and handed to any peer. A [`PreKeyBundle`] value has always had its
//! signatures checked: the only constructors verify them, so session setup
//! cannot start from an unverified bundle. Private prekeys live in
//! `prekey_store`.

use ml_kem::{EncodedSizeUser, KemCore, MlKem768};
use thiserror::Error;
use x25519_dalek::PublicKey as DhPublic;

use crate::error::{DecodeError, MAX_ENCODED_LEN, check_version, decode_proto, fixed};
use crate::keys::{IdentityKey, SignatureError, dh_public};
use crate::proto::wire;

/// Signature context of a signed prekey.
pub(crate) const CONTEXT_SIGNED_PREKEY: &[u8] = b"Starling_SignedPreKey_v1";
/// Signature context of an ML-KEM prekey.
pub(crate) const CONTEXT_KEM_PREKEY: &[u8] = b"Starling_KemPreKey_v1";
/// Version of the encoded [`PreKeyBundle`].
pub const BUNDLE_VERSION: u32 = 1;
/// Length of an ML-KEM-768 encapsulation key.
pub const KEM_PUBLIC_KEY_LEN: usize = 1184;
/// Length of an ML-KEM-768 ciphertext.
pub const KEM_CIPHERTEXT_LEN: usize = 1088;

pub(crate) type KemEncapsulationKey = <MlKem768 as KemCore>::EncapsulationKey;
pub(crate) type KemDecapsulationKey = <MlKem768 as KemCore>::DecapsulationKey;

/// A prekey or bundle failed to decode or verify.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BundleError {
    /// The bytes do not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A signature does not verify against the bundle's identity.
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

impl From<BundleError> for SignatureError {
    fn from(error: BundleError) -> Self {
        match error {
            BundleError::Decode(e) => SignatureError::Decode(e),
            BundleError::Signature(e) => e,
        }
    }
}

/// A medium-term X25519 prekey signed by the device identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPreKey {
    pub(crate) id: u32,
    pub(crate) public: DhPublic,
    pub(crate) signature: [u8; 64],
}

/// A single-use X25519 prekey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimePreKey {
    pub(crate) id: u32,
    pub(crate) public: DhPublic,
}

/// An ML-KEM-768 prekey signed by the device identity: one-time, or the
/// last-resort key handed out when the one-time ones run out.
#[derive(Clone, PartialEq)]
pub struct KemPreKey {
    pub(crate) id: u32,
    pub(crate) public: Box<KemEncapsulationKey>,
    pub(crate) signature: [u8; 64],
    pub(crate) last_resort: bool,
}

impl core::fmt::Debug for KemPreKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KemPreKey")
            .field("id", &self.id)
            .field("last_resort", &self.last_resort)
            .finish_non_exhaustive()
    }
}

impl SignedPreKey {
    /// The prekey id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Checks the signature against the device identity that owns it.
    pub fn verify(&self, identity: &IdentityKey) -> Result<(), SignatureError> {
        identity.verify(
            "signed prekey",
            CONTEXT_SIGNED_PREKEY,
            &signed_prekey_message(self.id, &self.public),
            &self.signature,
        )
    }

    /// Encodes the prekey (protobuf `SignedPreKey`).
    pub fn to_bytes(&self) -> Vec<u8> {
        prost::Message::encode_to_vec(&self.to_proto())
    }

    /// Decodes a prekey; its signature is checked by [`Self::verify`] or when
    /// it enters a bundle.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::from_proto(&decode_proto(bytes, MAX_ENCODED_LEN)?)
    }

    pub(crate) fn to_proto(&self) -> wire::SignedPreKey {
        wire::SignedPreKey {
            id: self.id,
            public_key: self.public.to_bytes().to_vec(),
            signature: self.signature.to_vec(),
        }
    }

    pub(crate) fn from_proto(proto: &wire::SignedPreKey) -> Result<Self, DecodeError> {
        Ok(Self {
            id: proto.id,
            public: dh_public("signed_prekey.public_key", &proto.public_key)?,
            signature: fixed("signed_prekey.signature", &proto.signature)?,
        })
    }
}

impl OneTimePreKey {
    /// The prekey id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Encodes the prekey (protobuf `OneTimePreKey`).
    pub fn to_bytes(&self) -> Vec<u8> {
        prost::Message::encode_to_vec(&self.to_proto())
    }

    /// Decodes a prekey.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::from_proto(&decode_proto(bytes, MAX_ENCODED_LEN)?)
    }

    pub(crate) fn to_proto(&self) -> wire::OneTimePreKey {
        wire::OneTimePreKey {
            id: self.id,
            public_key: self.public.to_bytes().to_vec(),
        }
    }

    pub(crate) fn from_proto(proto: &wire::OneTimePreKey) -> Result<Self, DecodeError> {
        Ok(Self {
            id: proto.id,
            public: dh_public("one_time_prekey.public_key", &proto.public_key)?,
        })
    }
}

impl KemPreKey {
    /// The prekey id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Whether this is a last-resort key (may be served more than once).
    pub fn is_last_resort(&self) -> bool {
        self.last_resort
    }

    /// Checks the signature against the device identity that owns it.
    pub fn verify(&self, identity: &IdentityKey) -> Result<(), SignatureError> {
        identity.verify(
            "kem prekey",
            CONTEXT_KEM_PREKEY,
            &kem_prekey_message(self.id, self.last_resort, &self.public_bytes()),
            &self.signature,
        )
    }

    /// Encodes the prekey (protobuf `KemPreKey`).
    pub fn to_bytes(&self) -> Vec<u8> {
        prost::Message::encode_to_vec(&self.to_proto())
    }

    /// Decodes a prekey, checking that the encapsulation key is well formed
    /// (FIPS 203 §7.2 modulus check).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::from_proto(&decode_proto(bytes, MAX_ENCODED_LEN)?)
    }

    pub(crate) fn public_bytes(&self) -> Vec<u8> {
        self.public.as_bytes().to_vec()
    }

    pub(crate) fn to_proto(&self) -> wire::KemPreKey {
        wire::KemPreKey {
            id: self.id,
            public_key: self.public_bytes(),
            signature: self.signature.to_vec(),
            last_resort: self.last_resort,
        }
    }

    pub(crate) fn from_proto(proto: &wire::KemPreKey) -> Result<Self, DecodeError> {
        Ok(Self {
            id: proto.id,
            public: Box::new(kem_public_key(&proto.public_key)?),
            signature: fixed("kem_prekey.signature", &proto.signature)?,
            last_resort: proto.last_resort,
        })
    }
}

/// Parses an ML-KEM-768 encapsulation key; a key whose coefficients are not
/// reduced (it does not re-encode to the same bytes) is refused.
pub(crate) fn kem_public_key(bytes: &[u8]) -> Result<KemEncapsulationKey, DecodeError> {
    let field = "kem_prekey.public_key";
    let encoded = ml_kem::Encoded::<KemEncapsulationKey>::try_from(bytes).map_err(|_| {
        DecodeError::BadLength {
            field,
            actual: bytes.len(),
            expected: KEM_PUBLIC_KEY_LEN,
        }
    })?;
    let key = KemEncapsulationKey::from_bytes(&encoded);
    if key.as_bytes() != encoded {
        return Err(DecodeError::InvalidValue(field));
    }
    Ok(key)
}

pub(crate) fn signed_prekey_message(id: u32, public: &DhPublic) -> Vec<u8> {
    let mut message = Vec::with_capacity(36);
    message.extend_from_slice(&id.to_be_bytes());
    message.extend_from_slice(public.as_bytes());
    message
}

pub(crate) fn kem_prekey_message(id: u32, last_resort: bool, public: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(5 + public.len());
    message.extend_from_slice(&id.to_be_bytes());
    message.push(u8::from(last_resort));
    message.extend_from_slice(public);
    message
}

/// Everything a peer needs to open a session with one device. Every
/// signature in a value of this type has been verified.
#[derive(Debug, Clone, PartialEq)]
pub struct PreKeyBundle {
    pub(crate) identity: IdentityKey,
    pub(crate) signed_prekey: SignedPreKey,
    pub(crate) one_time_prekey: Option<OneTimePreKey>,
    pub(crate) kem_prekey: Option<KemPreKey>,
}

impl PreKeyBundle {
    /// Assembles a bundle from its parts, verifying every signature.
    pub fn new(
        identity: IdentityKey,
        signed_prekey: SignedPreKey,
        one_time_prekey: Option<OneTimePreKey>,
        kem_prekey: Option<KemPreKey>,
    ) -> Result<Self, BundleError> {
        signed_prekey.verify(&identity)?;
        if let Some(kem) = &kem_prekey {
            kem.verify(&identity)?;
        }
        Ok(Self {
            identity,
            signed_prekey,
            one_time_prekey,
            kem_prekey,
        })
    }

    /// Decodes a bundle and verifies every signature in it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BundleError> {
        let proto: wire::PreKeyBundle = decode_proto(bytes, MAX_ENCODED_LEN)?;
        check_version(proto.version, BUNDLE_VERSION)?;
        let identity = proto
            .identity
            .as_ref()
            .ok_or(DecodeError::MissingField("identity"))?;
        let signed = proto
            .signed_prekey
            .as_ref()
            .ok_or(DecodeError::MissingField("signed_prekey"))?;
        Self::new(
            IdentityKey::from_proto(identity)?,
            SignedPreKey::from_proto(signed)?,
            proto
                .one_time_prekey
                .as_ref()
                .map(OneTimePreKey::from_proto)
                .transpose()?,
            proto
                .kem_prekey
                .as_ref()
                .map(KemPreKey::from_proto)
                .transpose()?,
        )
    }

    /// Encodes the bundle (protobuf `PreKeyBundle`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let proto = wire::PreKeyBundle {
            version: BUNDLE_VERSION,
            identity: Some(self.identity.to_proto()),
            signed_prekey: Some(self.signed_prekey.to_proto()),
            one_time_prekey: self.one_time_prekey.as_ref().map(OneTimePreKey::to_proto),
            kem_prekey: self.kem_prekey.as_ref().map(KemPreKey::to_proto),
        };
        prost::Message::encode_to_vec(&proto)
    }

    /// The device identity the bundle belongs to.
    pub fn identity(&self) -> &IdentityKey {
        &self.identity
    }

    /// Whether a session started from this bundle will use PQXDH.
    pub fn is_post_quantum(&self) -> bool {
        self.kem_prekey.is_some()
    }
}
