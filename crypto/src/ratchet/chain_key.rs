//! Chain keys and KDF_CK: HMAC-SHA256 keyed by the chain key, with input
//! 0x01 for the message key and 0x02 for the next chain key (as in Signal).
//! Shared by the pairwise ratchet and by Sender Keys.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::message_key::MessageKey;

const MESSAGE_KEY_SEED: u8 = 0x01;
const CHAIN_KEY_SEED: u8 = 0x02;

/// A symmetric-ratchet chain key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct ChainKey(Box<[u8; 32]>);

impl ChainKey {
    pub(crate) fn new(bytes: Box<[u8; 32]>) -> Self {
        Self(bytes)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// One step of KDF_CK: this chain's message key and the next chain key.
    /// The HMAC is keyed once and cloned for the two inputs.
    pub(crate) fn step(&self) -> (ChainKey, MessageKey) {
        let keyed = <Hmac<Sha256> as Mac>::new_from_slice(&self.0[..])
            .unwrap_or_else(|_| unreachable_hmac_key());
        let mut for_message = keyed.clone();
        for_message.update(&[MESSAGE_KEY_SEED]);
        let mut for_chain = keyed;
        for_chain.update(&[CHAIN_KEY_SEED]);
        let mut message = Box::new([0u8; 32]);
        let mut chain = Box::new([0u8; 32]);
        message.copy_from_slice(&for_message.finalize().into_bytes());
        chain.copy_from_slice(&for_chain.finalize().into_bytes());
        (ChainKey(chain), MessageKey::new(message))
    }
}

/// HMAC accepts keys of any length, so keying it cannot fail; this keeps the
/// signature total without a panic path.
#[cold]
fn unreachable_hmac_key() -> Hmac<Sha256> {
    <Hmac<Sha256> as hmac::digest::KeyInit>::new(&Default::default())
}

impl core::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ChainKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_is_deterministic_and_separates_outputs() {
        let chain = ChainKey::new(Box::new([3; 32]));
        let (next_a, message_a) = chain.step();
        let (next_b, message_b) = chain.step();
        assert_eq!(next_a.as_bytes(), next_b.as_bytes());
        assert_eq!(message_a.as_bytes(), message_b.as_bytes());
        assert_ne!(next_a.as_bytes(), message_a.as_bytes());
        assert_ne!(next_a.as_bytes(), chain.as_bytes());
        assert_eq!(format!("{chain:?}"), "ChainKey(..)");
    }
}
