//! Single-use message keys: expanded with HKDF into a ChaCha20 key and
//! nonce, consumed by value by the one encryption or decryption they serve:
//! ChaCha20-Poly1305 for pairwise messages, ChaCha20 alone for group
//! messages, whose signature authenticates them (SPEC §7.4).

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
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

    /// HKDF-Expand(prk = message key, info, 44): key || nonce. The message
    /// key is already uniform (an HMAC output), so no extract step.
    fn expand(&self, info: &[u8]) -> (Zeroizing<[u8; 32]>, [u8; 12]) {
        let mut okm = Zeroizing::new([0u8; 44]);
        if let Ok(hkdf) = Hkdf::<Sha256>::from_prk(&self.0[..]) {
            // 44 bytes is far below HKDF-SHA256's output limit.
            let _ = hkdf.expand(info, &mut okm[..]);
        }
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&okm[..32]);
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&okm[32..]);
        (key, nonce)
    }

    fn aead(&self, info: &[u8]) -> (ChaCha20Poly1305, Nonce) {
        let (key, nonce) = self.expand(info);
        (ChaCha20Poly1305::new((&*key).into()), Nonce::from(nonce))
    }

    /// XORs `data` in place with the ChaCha20 keystream (RFC 8439 §2.4,
    /// block counter from 0) under `info`'s key and nonce: encrypts or
    /// decrypts. No authentication: only for messages whose signature is
    /// checked before this runs (group messages).
    pub(crate) fn apply_keystream(self, info: &[u8], data: &mut [u8]) {
        let (key, nonce) = self.expand(info);
        let mut cipher = ChaCha20::new((&*key).into(), (&nonce).into());
        // Fails only past the 256 GiB a nonce can cover; callers bound
        // messages far below that (crate::error::MAX_ENCODED_LEN).
        let _ = cipher.try_apply_keystream(data);
    }

    /// Encrypts one message under `info`'s domain and `associated_data`.
    pub(crate) fn encrypt(self, info: &[u8], plaintext: &[u8], associated_data: &[u8]) -> Vec<u8> {
        let (cipher, nonce) = self.aead(info);
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
        let (cipher, nonce) = self.aead(info);
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
    fn the_ciphers_wipe_their_keys_and_buffered_keystream_when_dropped() {
        // Compiles only while the `zeroize` features of `chacha20poly1305`,
        // `chacha20` and `cipher` (its buffered keystream block) are on.
        fn wipes_on_drop<T: ZeroizeOnDrop>() {}
        wipes_on_drop::<ChaCha20>();
        wipes_on_drop::<ChaCha20Poly1305>();
    }

    #[test]
    fn the_keystream_is_its_own_inverse_and_bound_to_key_and_info() {
        let key = |byte| MessageKey::new(Box::new([byte; 32]));
        let mut data = *b"plain text";
        key(7).apply_keystream(b"info", &mut data);
        assert_ne!(&data, b"plain text");
        let sealed = data;
        key(7).apply_keystream(b"info", &mut data);
        assert_eq!(&data, b"plain text");
        let mut other = sealed;
        key(7).apply_keystream(b"other", &mut other);
        assert_ne!(&other, b"plain text");
        let mut other = sealed;
        key(8).apply_keystream(b"info", &mut other);
        assert_ne!(&other, b"plain text");
    }

    #[test]
    fn debug_is_redacted() {
        assert_eq!(
            format!("{:?}", MessageKey::new(Box::new([7; 32]))),
            "MessageKey(..)"
        );
    }
}
