//! Signed roots (`crypto/SPEC.md` §16.3): after publishing an epoch the
//! server signs a statement of its root with the **log key**, whose public
//! half clients pin when they register or link.
//!
//! ```text
//! statement = "Starling_KtRoot_v1" ‖ configuration: u8 ‖ epoch: u64 BE
//!           ‖ root: [u8; 32] ‖ vrf_public_key: [u8; 32] ‖ published_hour: u64 BE
//! signed    = statement ‖ Ed25519(log key, statement)          (163 bytes)
//! ```
//!
//! The VRF public key is in the statement so that a server cannot present
//! different labels to different clients under one chain of signed roots;
//! the configuration byte, so that a root of another log never verifies
//! as one of this log. `published_hour` is the hour (Unix seconds / 3600)
//! the epoch was published: clients show how old the log they see is.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::TransparencyError;

/// The domain that opens every statement.
const DOMAIN: &[u8] = b"Starling_KtRoot_v1";
/// Bytes of a statement.
pub const STATEMENT_LEN: usize = DOMAIN.len() + 1 + 8 + 32 + 32 + 8;
/// Bytes of a signed root.
pub const SIGNED_LEN: usize = STATEMENT_LEN + 64;

/// What the server states about one epoch of its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootStatement {
    /// The log's configuration ([`crate::CONFIGURATION_ID`]).
    pub configuration: u8,
    /// The epoch.
    pub epoch: u64,
    /// akd's root hash at that epoch.
    pub root: [u8; 32],
    /// The log's VRF public key.
    pub vrf_public_key: [u8; 32],
    /// The hour it was published (Unix seconds / 3600).
    pub published_hour: u64,
}

impl RootStatement {
    /// The bytes the log key signs.
    pub fn to_bytes(&self) -> [u8; STATEMENT_LEN] {
        let mut bytes = [0; STATEMENT_LEN];
        let mut at = 0;
        for part in [
            DOMAIN,
            &[self.configuration],
            &self.epoch.to_be_bytes(),
            &self.root,
            &self.vrf_public_key,
            &self.published_hour.to_be_bytes(),
        ] {
            bytes[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        bytes
    }

    /// Decodes a statement; refuses another length or domain.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TransparencyError> {
        let bytes: &[u8; STATEMENT_LEN] = bytes
            .try_into()
            .map_err(|_| TransparencyError::MalformedRoot("wrong length"))?;
        let (domain, rest) = bytes.split_at(DOMAIN.len());
        if domain != DOMAIN {
            return Err(TransparencyError::MalformedRoot("wrong domain"));
        }
        let (configuration, rest) = rest.split_at(1);
        let (epoch, rest) = rest.split_at(8);
        let (root, rest) = rest.split_at(32);
        let (vrf_public_key, hour) = rest.split_at(32);
        let fixed = |part: &[u8]| -> Result<[u8; 32], TransparencyError> {
            part.try_into()
                .map_err(|_| TransparencyError::MalformedRoot("wrong length"))
        };
        let be64 = |part: &[u8]| -> Result<u64, TransparencyError> {
            part.try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| TransparencyError::MalformedRoot("wrong length"))
        };
        Ok(Self {
            configuration: configuration[0],
            epoch: be64(epoch)?,
            root: fixed(root)?,
            vrf_public_key: fixed(vrf_public_key)?,
            published_hour: be64(hour)?,
        })
    }
}

/// A statement and the log key's signature over it, as the server stores
/// and serves it. Not yet checked: see [`crate::LogView::accept_root`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedRoot {
    /// The statement.
    pub statement: RootStatement,
    /// The log key's signature over [`RootStatement::to_bytes`].
    pub signature: [u8; 64],
}

impl SignedRoot {
    /// The statement followed by the signature.
    pub fn to_bytes(&self) -> Vec<u8> {
        [&self.statement.to_bytes()[..], &self.signature].concat()
    }

    /// Decodes a signed root (its signature is not checked here).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TransparencyError> {
        if bytes.len() != SIGNED_LEN {
            return Err(TransparencyError::MalformedRoot("wrong length"));
        }
        let (statement, signature) = bytes.split_at(STATEMENT_LEN);
        Ok(Self {
            statement: RootStatement::from_bytes(statement)?,
            signature: signature
                .try_into()
                .map_err(|_| TransparencyError::MalformedRoot("wrong length"))?,
        })
    }

    /// Checks the signature under `key` (strict Ed25519 verification).
    pub fn verify(&self, key: &LogPublicKey) -> Result<(), TransparencyError> {
        let signature = Signature::from_bytes(&self.signature);
        key.0
            .verify_strict(&self.statement.to_bytes(), &signature)
            .map_err(|_| TransparencyError::BadRootSignature {
                epoch: self.statement.epoch,
            })
    }
}

/// The server's log key. Its secret is wiped when dropped and never
/// printed.
pub struct LogSigningKey(SigningKey);

impl LogSigningKey {
    /// A new random key.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        Self(SigningKey::generate(rng))
    }

    /// The key from its 32-byte secret (as [`LogSigningKey::to_bytes`]
    /// gives it).
    pub fn from_bytes(secret: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(secret))
    }

    /// The 32-byte secret, for the server's key file.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The public key clients pin.
    pub fn public(&self) -> LogPublicKey {
        LogPublicKey(self.0.verifying_key())
    }

    /// Signs `statement`.
    pub fn sign(&self, statement: RootStatement) -> SignedRoot {
        SignedRoot {
            statement,
            signature: self.0.sign(&statement.to_bytes()).to_bytes(),
        }
    }
}

impl std::fmt::Debug for LogSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSigningKey")
            .field("public", &self.public())
            .finish_non_exhaustive()
    }
}

/// The log key's public half, as a client pins it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogPublicKey(VerifyingKey);

impl LogPublicKey {
    /// Decodes a pinned key; refuses bytes that are not a point, and
    /// points of small order.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TransparencyError> {
        let bytes: &[u8; 32] = bytes
            .try_into()
            .map_err(|_| TransparencyError::MalformedRoot("log key of the wrong length"))?;
        let key = VerifyingKey::from_bytes(bytes)
            .map_err(|_| TransparencyError::MalformedRoot("log key not a point"))?;
        if key.is_weak() {
            return Err(TransparencyError::MalformedRoot("log key of small order"));
        }
        Ok(Self(key))
    }

    /// The 32 bytes to pin.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(epoch: u64) -> RootStatement {
        RootStatement {
            configuration: crate::CONFIGURATION_ID,
            epoch,
            root: [7; 32],
            vrf_public_key: [9; 32],
            published_hour: 493_000,
        }
    }

    #[test]
    fn a_signed_root_round_trips_and_verifies() {
        let key = LogSigningKey::generate(&mut rand::rngs::OsRng);
        let signed = key.sign(statement(3));
        let bytes = signed.to_bytes();
        assert_eq!(bytes.len(), SIGNED_LEN);
        let decoded = SignedRoot::from_bytes(&bytes).unwrap();
        assert_eq!(decoded, signed);
        decoded.verify(&key.public()).unwrap();
    }

    #[test]
    fn any_changed_byte_breaks_the_signature() {
        let key = LogSigningKey::generate(&mut rand::rngs::OsRng);
        let bytes = key.sign(statement(3)).to_bytes();
        for i in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[i] ^= 1;
            if let Ok(root) = SignedRoot::from_bytes(&changed) {
                assert!(root.verify(&key.public()).is_err(), "byte {i}");
            }
        }
        let other = LogSigningKey::generate(&mut rand::rngs::OsRng);
        let root = SignedRoot::from_bytes(&bytes).unwrap();
        assert_eq!(
            root.verify(&other.public()),
            Err(TransparencyError::BadRootSignature { epoch: 3 })
        );
    }

    #[test]
    fn malformed_statements_and_keys_are_refused() {
        assert!(SignedRoot::from_bytes(&[0; SIGNED_LEN - 1]).is_err());
        assert!(SignedRoot::from_bytes(&[0; SIGNED_LEN]).is_err());
        assert!(LogPublicKey::from_bytes(&[0; 31]).is_err());
        // The identity point has small order.
        let mut identity = [0; 32];
        identity[0] = 1;
        assert!(LogPublicKey::from_bytes(&identity).is_err());
    }

    #[test]
    fn the_debug_form_hides_the_secret() {
        let key = LogSigningKey::from_bytes(&[0x42; 32]);
        let shown = format!("{key:?}");
        assert!(!shown.contains("66, 66"), "{shown}");
    }
}
