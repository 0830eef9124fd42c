//! Single-use message keys: expanded with HKDF into a ChaCha20-Poly1305 key
//! and nonce, consumed by value by the one encryption or decryption they
//! serve.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// HKDF info of the message key expansion.
pub const INFO_MESSAGE_KEYS: &[u8] = b"Starling_MessageKeys_v1";

/// The AEAD refused a ciphertext: wrong key, or tampered data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AeadFailure;

/// A key for exactly one message.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct MessageKey(Box<[u8; 32]>);

impl MessageKey {
    pub(crate) fn new(bytes: Box<[u8; 32]>) -> Self {
        Self(bytes)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// HKDF-Expand(prk = message key, info, 44): AEAD key || nonce. The
    /// message key is already uniform (an HMAC output), so no extract step.
    fn expand(&self, info: &[u8]) -> (ChaCha20Poly1305, Nonce) {
        let mut okm = Zeroizing::new([0u8; 44]);
        if let Ok(hkdf) = Hkdf::<Sha256>::from_prk(&self.0[..]) {
            // 44 bytes is far below HKDF-SHA256's output limit.
            let _ = hkdf.expand(info, &mut okm[..]);
        }
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&okm[..32]));
        (cipher, *Nonce::from_slice(&okm[32..]))
    }

    /// Encrypts one message under `info`'s domain and `associated_data`.
    pub(crate) fn encrypt(self, info: &[u8], plaintext: &[u8], associated_data: &[u8]) -> Vec<u8> {
        let (cipher, nonce) = self.expand(info);
        let payload = Payload {
            msg: plaintext,
            aad: associated_data,
        };
        // ChaCha20-Poly1305 fails only past 256 GiB of plaintext; callers
        // bound messages far below that (crate::error::MAX_ENCODED_LEN).
        cipher.encrypt(&nonce, payload).unwrap_or_default()
    }

    /// Decrypts one message; the plaintext is wiped when dropped.
    pub(crate) fn decrypt(
        self,
        info: &[u8],
        ciphertext: &[u8],
        associated_data: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, AeadFailure> {
        let (cipher, nonce) = self.expand(info);
        let payload = Payload {
            msg: ciphertext,
            aad: associated_data,
        };
        cipher
            .decrypt(&nonce, payload)
            .map(Zeroizing::new)
            .map_err(|_| AeadFailure)
    }
}

impl core::fmt::Debug for MessageKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MessageKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn associated_data_and_info_are_bound() {
        let key = || MessageKey::new(Box::new([7; 32]));
        let sealed = key().encrypt(INFO_MESSAGE_KEYS, b"plain", b"ad");
        assert_eq!(
            &key().decrypt(INFO_MESSAGE_KEYS, &sealed, b"ad").unwrap()[..],
            b"plain"
        );
        assert_eq!(
            key().decrypt(INFO_MESSAGE_KEYS, &sealed, b"ae"),
            Err(AeadFailure)
        );
        assert_eq!(key().decrypt(b"other", &sealed, b"ad"), Err(AeadFailure));
        assert_eq!(
            MessageKey::new(Box::new([8; 32])).decrypt(INFO_MESSAGE_KEYS, &sealed, b"ad"),
            Err(AeadFailure)
        );
    }

    #[test]
    fn debug_is_redacted() {
        assert_eq!(
            format!("{:?}", MessageKey::new(Box::new([7; 32]))),
            "MessageKey(..)"
        );
    }
}
