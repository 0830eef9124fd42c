//! Rust types generated from `proto/` by prost.
//!
//! Only encoding and decoding lives here. The public API of the crate wraps
//! these types; nothing outside the crate sees them. Types in the `state`
//! package, `SenderKeyDistribution` and the sealed-sender content (whose
//! certificate is what sealing hides) hold secrets: they derive `Zeroize`
//! and `ZeroizeOnDrop` (see `build.rs`) and get the redacted `Debug` below.
#![allow(missing_docs, unreachable_pub, clippy::all)]

/// Wire formats (`starling.crypto.v1`).
pub(crate) mod wire {
    include!(concat!(env!("OUT_DIR"), "/starling.crypto.v1.rs"));
}

/// Local state formats (`starling.crypto.state.v1`).
pub(crate) mod state {
    include!(concat!(env!("OUT_DIR"), "/starling.crypto.state.v1.rs"));
}

/// `Debug` for generated types that hold secrets: the type name only.
macro_rules! redacted_debug {
    ($($ty:path),* $(,)?) => {
        $(impl core::fmt::Debug for $ty {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.debug_struct(stringify!($ty)).finish_non_exhaustive()
            }
        })*
    };
}

redacted_debug!(
    wire::SenderKeyDistribution,
    wire::SenderCertificate,
    wire::SealedSenderContent,
    state::KeyPair,
    state::IdentityKeyPair,
    state::SignedPreKeyState,
    state::OneTimePreKeyState,
    state::KemPreKeyState,
    state::PreKeyStoreState,
    state::SeenBaseKey,
    state::ChainState,
    state::SkippedKey,
    state::PendingPreKey,
    state::SessionState,
    state::PeerSessionsState,
    state::OutboundGroupState,
    state::InboundChainState,
    state::GroupSkippedKey,
    state::InboundGroupState,
    state::ServerSigningKeyState,
    state::TrustedServerKeyState,
    state::TrustedServerKeysState,
);
