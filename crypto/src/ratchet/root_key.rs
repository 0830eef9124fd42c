//! The root key and KDF_RK: HKDF-SHA256 keyed by the root key, fed with a
//! ratchet DH output, yielding the next root key and a chain key.

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::chain_key::ChainKey;

/// HKDF info of KDF_RK.
pub const INFO_RATCHET: &[u8] = b"Starling_Ratchet_v1";

/// A Double Ratchet root key.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct RootKey(Box<[u8; 32]>);

impl RootKey {
    pub(crate) fn new(bytes: Box<[u8; 32]>) -> Self {
        Self(bytes)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// KDF_RK(rk, dh_out) = HKDF-SHA256(salt = rk, ikm = dh_out,
    /// info = "Starling_Ratchet_v1", L = 64): next root key || chain key.
    pub(crate) fn advance(&self, dh_output: &[u8; 32]) -> (RootKey, ChainKey) {
        let hkdf = Hkdf::<Sha256>::new(Some(&self.0[..]), dh_output);
        let mut okm = Zeroizing::new([0u8; 64]);
        // 64 bytes is far below HKDF-SHA256's 8160-byte limit.
        let _ = hkdf.expand(INFO_RATCHET, &mut okm[..]);
        let mut root = Box::new([0u8; 32]);
        let mut chain = Box::new([0u8; 32]);
        root.copy_from_slice(&okm[..32]);
        chain.copy_from_slice(&okm[32..]);
        (RootKey(root), ChainKey::new(chain))
    }
}

impl core::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RootKey(..)")
    }
}
