//! Sealed sender (SPEC §15): envelopes that tell the server nothing about
//! who sent them, and tell the recipient, with the server's signature and
//! the sender's own key, exactly who did.
//!
//! - [`server_key`]: the server's certificate keys, a chain each key of
//!   which endorses the next, and the keys a client trusts.
//! - [`certificate`]: sender certificates and their verifier.
//! - [`seal_single`], [`seal_multi`]: sealing for one device, or once for
//!   many; [`open`] then [`Opened::verify`]: opening either.
//!
//! Follows Signal's sealed sender (libsignal `sealed_sender.rs`), with the
//! differences listed in SPEC §15.10.

pub mod certificate;
mod content;
mod envelope;
mod errors;
mod multi;
pub mod server_key;
mod single;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

pub use envelope::{Certified, Opened, open};
pub use errors::{SealError, UnsealError};
pub use multi::{MultiRecipientSeal, RecipientHeader, assemble, seal_multi};
pub use single::seal_single;

pub use certificate::{CertificateError, CertificateVerifier, CertifiedSender, SenderCertificate};
pub use server_key::{
    ChainError, MAX_CERTIFICATE_TTL_MS, ServerKey, ServerKeyChain, ServerSigningKey,
    TrustedServerKeys,
};

/// Signature context of a server key's endorsement of its successor.
pub(crate) const CONTEXT_SERVER_KEY: &[u8] = b"Starling_ServerKeyRotation_v1";
/// Signature context of a sender certificate.
pub(crate) const CONTEXT_SENDER_CERT: &[u8] = b"Starling_SenderCertificate_v1";
/// HKDF info of the v1 ephemeral layer.
const INFO_SEALED_EPHEMERAL: &[u8] = b"Starling_SealedSender_Ephemeral_v1";
/// HKDF info of the v1 static layer.
const INFO_SEALED_STATIC: &[u8] = b"Starling_SealedSender_Static_v1";
/// HKDF info deriving an access key from a profile key.
const INFO_ACCESS_KEY: &[u8] = b"Starling_AccessKey_v1";

/// First byte of a single-recipient sealed envelope.
pub const VERSION_SINGLE: u8 = 0x31;
/// First byte of a multi-recipient sealed envelope, as each device gets it.
pub const VERSION_MULTI: u8 = 0x32;
/// Bytes a sealed envelope adds to its padded plaintext: version, 80 bytes
/// of keys and tags, and the AEAD tag of the content.
pub const ENVELOPE_OVERHEAD: usize = 97;

/// Whether `content` is a sealed envelope (by its first byte; the client's
/// unsealed encodings start with `0x0A` or `0x12`). The server uses this to
/// decide that a stored row must name no sender.
pub fn is_sealed(content: &[u8]) -> bool {
    matches!(content.first(), Some(&VERSION_SINGLE | &VERSION_MULTI))
}

/// The 16-byte unidentified-access key of an account, derived from its
/// 32-byte profile key: what a contact presents so that the server lets a
/// sealed envelope through without knowing who sends it.
pub fn access_key(profile_key: &[u8; 32]) -> [u8; 16] {
    *hkdf::<16>(None, profile_key, INFO_ACCESS_KEY)
}

/// HKDF-SHA256 extract and expand to `N` bytes.
fn hkdf<const N: usize>(salt: Option<&[u8]>, ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; N]> {
    let mut okm = Zeroizing::new([0u8; N]);
    // N is at most 64 here, far below HKDF-SHA256's limit.
    let _ = Hkdf::<Sha256>::new(salt, ikm).expand(info, &mut okm[..]);
    okm
}

/// ChaCha20-Poly1305 with a zero nonce: every key here is derived from a
/// fresh ephemeral secret and used for one message only.
fn aead_seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    let cipher = ChaCha20Poly1305::new(key.into());
    let payload = Payload {
        msg: plaintext,
        aad,
    };
    // Fails only past 256 GiB; envelopes are at most MAX_ENCODED_LEN.
    cipher
        .encrypt(&Nonce::default(), payload)
        .map_err(|_| SealError::TooLarge {
            len: plaintext.len(),
        })
}

fn aead_open(
    key: &[u8; 32],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, UnsealError> {
    let cipher = ChaCha20Poly1305::new(key.into());
    let payload = Payload {
        msg: ciphertext,
        aad,
    };
    cipher
        .decrypt(&Nonce::default(), payload)
        .map(Zeroizing::new)
        .map_err(|_| UnsealError::Decrypt)
}
