//! Pairwise sessions: Double Ratchet state machines and their setup.
//!
//! - `root_key`, `chain_key`, `message_key`: the three KDF chains' keys.
//! - `receiver_chain`: receiving chains and skipped keys, with their limits.
//! - `message`: wire messages and associated data.
//! - `setup`: PQXDH into a first ratchet state, both sides.
//! - `session`: encrypt and decrypt within one session.
//! - `peer`: the sessions with one peer device and the active one.
//! - `persist`: state encoding.

mod chain_key;
mod message;
mod message_key;
mod peer;
mod persist;
mod receiver_chain;
mod root_key;
mod session;
mod setup;

pub(crate) use chain_key::ChainKey;
pub use message::{
    CiphertextMessage, MESSAGE_VERSION, MessageDecodeError, PreKeyMessage, RatchetMessage,
};
pub use message_key::INFO_MESSAGE_KEYS;
pub(crate) use message_key::MessageKey;
pub use peer::{Decrypted, MAX_SESSIONS_PER_PEER, PeerSessions};
pub(crate) use receiver_chain::advance as advance_chain;
pub use receiver_chain::{MAX_MESSAGE_GAP, MAX_RECEIVER_CHAINS, MAX_SKIPPED_KEYS};
pub use root_key::INFO_RATCHET;
pub use session::{DecryptError, EncryptError, MAX_PLAINTEXT_LEN, Session};
pub use setup::SessionSetupError;
