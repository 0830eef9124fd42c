//! # starling-crypto
//!
//! Starling's end-to-end encryption, as pure state machines and byte
//! formats: no sockets, files, clocks or global randomness. Callers pass a
//! cryptographic RNG (`rand_core::CryptoRngCore`) and the time, persist the
//! state this crate hands back (encrypted at rest), and move the bytes.
//!
//! What lives here, each following a published specification (`SPEC.md`):
//! - [`keys`]: device identities (Ed25519 + X25519).
//! - [`prekeys`], [`PreKeyStore`]: signed, one-time and ML-KEM-768 prekeys
//!   and the [`PreKeyBundle`] a server serves.
//! - [`ratchet`]: PQXDH session setup (no classical fallback) and the
//!   Double Ratchet.
//! - [`group`]: Sender Keys for groups.
//! - [`fingerprint`]: safety numbers.
//! - [`attachment`]: streaming file encryption.
//! - [`padding`]: Padmé length buckets and the padding rule.
//! - [`sealed`]: sealed sender, server key chains and sender certificates.
//!
//! ```
//! use starling_crypto::{IdentityKeyPair, PreKeyStore, ratchet::{PeerSessions, CiphertextMessage}};
//! let mut rng = rand_core::OsRng;
//! let (alice, bob) = (IdentityKeyPair::generate(&mut rng), IdentityKeyPair::generate(&mut rng));
//! let mut bob_prekeys = PreKeyStore::new();
//! bob_prekeys.generate_signed_prekey(&bob, 0, &mut rng);
//! bob_prekeys.generate_one_time_prekeys(1, &mut rng).unwrap();
//! bob_prekeys.generate_last_resort_kem_prekey(&bob, 1_700_000_000, &mut rng);
//! let bundle = bob_prekeys.bundle(&bob).unwrap(); // in practice: fetched from the server
//!
//! let mut alice_sessions = PeerSessions::new();
//! alice_sessions.initiate(&alice, &bundle, &mut rng).unwrap();
//! let wire = alice_sessions.encrypt(b"hello").unwrap().to_bytes();
//!
//! let mut bob_sessions = PeerSessions::new();
//! let message = CiphertextMessage::from_bytes(&wire).unwrap();
//! let mut alice_prekeys = PreKeyStore::new();
//! let received = bob_sessions.decrypt(&bob, &mut bob_prekeys, &message, &mut rng).unwrap();
//! assert_eq!(&received.plaintext[..], b"hello");
//! # let _ = alice_prekeys;
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::mem_forget
    )
)]

pub mod attachment;
mod error;
pub mod fingerprint;
pub mod group;
pub mod keys;
pub mod link;
pub mod padding;
mod pqxdh;
mod prekey_store;
pub mod prekeys;
mod proto;
pub mod ratchet;
pub mod sealed;
mod strict_signature;
mod x3dh;

pub use error::{DecodeError, MAX_ENCODED_LEN, MAX_STATE_LEN};
pub use keys::{IdentityKey, IdentityKeyPair};
pub use prekey_store::{
    MAX_LAST_RESORT_KEM_PREKEYS, MAX_ONE_TIME_PREKEYS, MAX_SEEN_BASE_KEYS,
    MAX_SEEN_BASE_KEYS_PER_SIGNED_PREKEY, MAX_SIGNED_PREKEYS, PREKEY_GRACE_SECS, PreKeyStore,
    PreKeyStoreError, Rotation,
};
pub use prekeys::PreKeyBundle;
pub use x3dh::INFO_PQXDH;
