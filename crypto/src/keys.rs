//! Device identity keys and the two operations everything else builds on:
//! domain-separated Ed25519 signatures and contributory X25519.
//!
//! A device identity is an Ed25519 signing key plus an X25519 key for X3DH;
//! the X25519 public key is signed by the Ed25519 key, so the pair is one
//! identity (SPEC.md §2 explains why two keys rather than XEdDSA).
//! Prekeys live in `prekeys`; nothing here knows about sessions.

use core::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand_core::CryptoRngCore;
use thiserror::Error;
use x25519_dalek::{PublicKey as DhPublic, StaticSecret};
use zeroize::Zeroizing;

use crate::error::{DecodeError, MAX_ENCODED_LEN, check_version, decode_proto, fixed};
use crate::proto::{state, wire};

/// Signature context of the identity's X25519 key.
pub(crate) const CONTEXT_IDENTITY_DH: &[u8] = b"Starling_IdentityDH_v1";
/// Version of the encoded [`IdentityKeyPair`].
const IDENTITY_STATE_VERSION: u32 = 1;

/// A signature or key failed to verify.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureError {
    /// The bytes do not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The signature does not match the signed data and key.
    #[error("bad signature on {0}")]
    BadSignature(&'static str),
}

/// An X25519 exchange produced an all-zero output: the peer's key has small
/// order, so the exchange contributes nothing secret.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[error("non-contributory x25519 key")]
pub struct NonContributoryKey;

/// The public identity of one device.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityKey {
    signing: VerifyingKey,
    dh: DhPublic,
    dh_signature: ed25519_dalek::Signature,
}

impl IdentityKey {
    /// Encodes the identity (protobuf `IdentityKey`).
    pub fn to_bytes(&self) -> Vec<u8> {
        prost::Message::encode_to_vec(&self.to_proto())
    }

    /// Decodes an identity and checks that its X25519 key is signed by its
    /// Ed25519 key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SignatureError> {
        let proto: wire::IdentityKey = decode_proto(bytes, MAX_ENCODED_LEN)?;
        Self::from_proto(&proto)
    }

    /// The Ed25519 public key, 32 bytes.
    pub fn signing_key_bytes(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// The X25519 public key, 32 bytes.
    pub fn dh_key_bytes(&self) -> [u8; 32] {
        self.dh.to_bytes()
    }

    /// Both public keys, signing key first: the form that enters associated
    /// data and safety numbers.
    pub fn public_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(self.signing.as_bytes());
        out[32..].copy_from_slice(self.dh.as_bytes());
        out
    }

    pub(crate) fn dh_public(&self) -> &DhPublic {
        &self.dh
    }

    /// Verifies `signature` over `context || message` with this identity.
    pub(crate) fn verify(
        &self,
        what: &'static str,
        context: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        verify_with(&self.signing, what, context, message, signature)
    }

    pub(crate) fn to_proto(&self) -> wire::IdentityKey {
        wire::IdentityKey {
            signing_key: self.signing.to_bytes().to_vec(),
            dh_key: self.dh.to_bytes().to_vec(),
            dh_key_signature: self.dh_signature.to_bytes().to_vec(),
        }
    }

    pub(crate) fn from_proto(proto: &wire::IdentityKey) -> Result<Self, SignatureError> {
        let signing = verifying_key("identity.signing_key", &proto.signing_key)?;
        let dh = DhPublic::from(fixed::<32>("identity.dh_key", &proto.dh_key)?);
        let signature: [u8; 64] = fixed("identity.dh_key_signature", &proto.dh_key_signature)?;
        verify_with(
            &signing,
            "identity",
            CONTEXT_IDENTITY_DH,
            dh.as_bytes(),
            &signature,
        )?;
        Ok(Self {
            signing,
            dh,
            dh_signature: ed25519_dalek::Signature::from_bytes(&signature),
        })
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { signing, .. } = self;
        let bytes = signing.as_bytes();
        write!(
            f,
            "IdentityKey({:02x}{:02x}{:02x}{:02x}…)",
            bytes[0], bytes[1], bytes[2], bytes[3]
        )
    }
}

/// A device's secret identity: signs prekeys and takes part in X3DH.
pub struct IdentityKeyPair {
    signing: Box<SigningKey>,
    dh: Box<StaticSecret>,
    public: IdentityKey,
}

impl IdentityKeyPair {
    /// Generates a fresh identity.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let signing = Box::new(SigningKey::generate(rng));
        let dh = Box::new(StaticSecret::random_from_rng(&mut *rng));
        Self::from_secrets(signing, dh)
    }

    fn from_secrets(signing: Box<SigningKey>, dh: Box<StaticSecret>) -> Self {
        let dh_public = DhPublic::from(&*dh);
        let dh_signature = sign_with(&signing, CONTEXT_IDENTITY_DH, dh_public.as_bytes());
        let public = IdentityKey {
            signing: signing.verifying_key(),
            dh: dh_public,
            dh_signature,
        };
        Self {
            signing,
            dh,
            public,
        }
    }

    /// The public half.
    pub fn public(&self) -> &IdentityKey {
        &self.public
    }

    /// Encodes the secret identity for storage (encrypt it at rest).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let proto = state::IdentityKeyPair {
            version: IDENTITY_STATE_VERSION,
            signing_secret: self.signing.to_bytes().to_vec(),
            dh_secret: self.dh.to_bytes().to_vec(),
        };
        Zeroizing::new(prost::Message::encode_to_vec(&proto))
    }

    /// Decodes a secret identity written by [`Self::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let proto: state::IdentityKeyPair = decode_proto(bytes, MAX_ENCODED_LEN)?;
        check_version(proto.version, IDENTITY_STATE_VERSION)?;
        let signing = Zeroizing::new(fixed::<32>("signing_secret", &proto.signing_secret)?);
        let dh = Zeroizing::new(fixed::<32>("dh_secret", &proto.dh_secret)?);
        Ok(Self::from_secrets(
            Box::new(SigningKey::from_bytes(&signing)),
            Box::new(StaticSecret::from(*dh)),
        ))
    }

    /// Signs `context || message`.
    pub(crate) fn sign(&self, context: &[u8], message: &[u8]) -> ed25519_dalek::Signature {
        sign_with(&self.signing, context, message)
    }

    /// X25519 with the identity's DH key.
    pub(crate) fn dh(&self, public: &DhPublic) -> Result<Zeroizing<[u8; 32]>, NonContributoryKey> {
        dh(&self.dh, public)
    }
}

impl fmt::Debug for IdentityKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { public, .. } = self;
        f.debug_struct("IdentityKeyPair")
            .field("public", public)
            .finish_non_exhaustive()
    }
}

/// X25519 that refuses an all-zero (non-contributory) result.
pub(crate) fn dh(
    secret: &StaticSecret,
    public: &DhPublic,
) -> Result<Zeroizing<[u8; 32]>, NonContributoryKey> {
    let shared = secret.diffie_hellman(public);
    if shared.was_contributory() {
        Ok(Zeroizing::new(shared.to_bytes()))
    } else {
        Err(NonContributoryKey)
    }
}

/// Signs `context || message` with an Ed25519 key.
pub(crate) fn sign_with(
    key: &SigningKey,
    context: &[u8],
    message: &[u8],
) -> ed25519_dalek::Signature {
    let mut data = Vec::with_capacity(context.len() + message.len());
    data.extend_from_slice(context);
    data.extend_from_slice(message);
    key.sign(&data)
}

/// Verifies a signature over `context || message`, strictly (no malleable
/// signatures, no weak keys).
pub(crate) fn verify_with(
    key: &VerifyingKey,
    what: &'static str,
    context: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    let signature: [u8; 64] = fixed("signature", signature)?;
    let signature = ed25519_dalek::Signature::from_bytes(&signature);
    let mut data = Vec::with_capacity(context.len() + message.len());
    data.extend_from_slice(context);
    data.extend_from_slice(message);
    crate::strict_signature::verify_strict(key, &data, &signature)
        .map_err(|_| SignatureError::BadSignature(what))
}

/// Parses an Ed25519 public key, refusing points that do not decompress and
/// weak (small-order) keys.
pub(crate) fn verifying_key(
    field: &'static str,
    bytes: &[u8],
) -> Result<VerifyingKey, DecodeError> {
    let bytes: [u8; 32] = fixed(field, bytes)?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| DecodeError::InvalidValue(field))?;
    if key.is_weak() {
        return Err(DecodeError::InvalidValue(field));
    }
    Ok(key)
}

/// Parses an X25519 public key.
pub(crate) fn dh_public(field: &'static str, bytes: &[u8]) -> Result<DhPublic, DecodeError> {
    Ok(DhPublic::from(fixed::<32>(field, bytes)?))
}

/// A fresh X25519 key pair, secret boxed so it is not copied around.
pub(crate) struct DhKeyPair {
    pub(crate) secret: Box<StaticSecret>,
    pub(crate) public: DhPublic,
}

impl DhKeyPair {
    pub(crate) fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let secret = Box::new(StaticSecret::random_from_rng(rng));
        let public = DhPublic::from(&*secret);
        Self { secret, public }
    }

    pub(crate) fn from_secret_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let bytes = Zeroizing::new(fixed::<32>("secret_key", bytes)?);
        let secret = Box::new(StaticSecret::from(*bytes));
        let public = DhPublic::from(&*secret);
        Ok(Self { secret, public })
    }

    pub(crate) fn to_state(&self) -> state::KeyPair {
        state::KeyPair {
            public_key: self.public.to_bytes().to_vec(),
            secret_key: self.secret.to_bytes().to_vec(),
        }
    }

    pub(crate) fn from_state(state: Option<&state::KeyPair>) -> Result<Self, DecodeError> {
        let state = state.ok_or(DecodeError::MissingField("key"))?;
        Self::from_secret_bytes(&state.secret_key)
    }
}

impl Clone for DhKeyPair {
    fn clone(&self) -> Self {
        Self {
            secret: self.secret.clone(),
            public: self.public,
        }
    }
}

impl fmt::Debug for DhKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { public, .. } = self;
        f.debug_struct("DhKeyPair")
            .field("public", public)
            .finish_non_exhaustive()
    }
}
