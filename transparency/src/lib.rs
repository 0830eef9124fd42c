//! Key transparency (`crypto/SPEC.md` §16): an append-only log, on Meta's
//! auditable key directory (`akd`), of what every account's devices and
//! identity keys are, so that the server cannot serve anyone keys an
//! account did not publish without it showing.
//!
//! This crate is the part both ends agree on, pure and sans-IO:
//!
//! - [`commitment`]: what the log holds for each account (a label made of
//!   its username, a value that commits to its device list);
//! - [`root`]: the statement of each epoch's root that the server signs
//!   with its log key, and that clients pin the key of;
//! - [`verify`]: the checks a client makes before using any key: the
//!   root's signature and freshness, the lookup proof against it, and the
//!   served device list against the proved value;
//! - [`history`]: every device list the log held for one username, which
//!   the owner checks against what it published;
//! - [`audit`]: the walk from one verified root to a newer one, epoch by
//!   epoch, with akd's append-only proofs (checked by akd's auditor with
//!   the feature `audit`, which needs a Tokio runtime).
//!
//! The server's side (akd's storage on the server's database, the
//! publisher of epochs) lives in the server.
//!
//! Without `audit`, the crate builds for `wasm32-unknown-unknown`
//! (`cargo check -p starling-transparency --target wasm32-unknown-unknown`),
//! for the browser client.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod audit;
pub mod commitment;
mod error;
pub mod history;
pub mod root;
pub mod verify;
mod vrf;

pub use audit::{AppendOnlyClaim, AuditChain};
pub use commitment::{DeviceEntry, DeviceList, label};
pub use error::TransparencyError;
pub use root::{LogPublicKey, LogSigningKey, RootStatement, SignedRoot};
pub use verify::{LogPins, LogView, VerifiedRoot};
pub use vrf::VrfSecret;

/// The domain every hash of the log is separated by.
#[derive(Debug, Clone, Copy)]
pub struct StarlingLog;

impl akd_core::DomainLabel for StarlingLog {
    fn domain_label() -> &'static [u8] {
        b"Starling_KeyTransparency_v1"
    }
}

/// The log's configuration: akd's BLAKE3 hashing (separated by
/// [`StarlingLog`]), RFC 9381 ECVRF on Edwards25519 for labels, hash
/// commitments for values.
pub type LogConfig = akd_core::ExperimentalConfiguration<StarlingLog>;

/// The number the signed root gives [`LogConfig`] with akd 0.13: a change
/// of either is a new configuration, and so a new log.
pub const CONFIGURATION_ID: u8 = 1;
