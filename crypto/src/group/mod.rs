//! Groups with Sender Keys (Signal's Sender Keys, as in libsignal's group
//! cipher): each member device has a sending chain and a signing key, sends
//! a [`SenderKeyDistribution`] bound to its identity to every other member
//! device through the pairwise sessions, and signs every group message,
//! naming itself in the signed bytes.
//!
//! - `distribution`: the distribution message and its binding to the
//!   sender's identity.
//! - `outbound`: our own sending chain ([`OutboundGroupSession`]).
//! - `inbound`: another member's chains as we receive them ([`InboundGroupSession`]).
//! - `message`: the group message format ([`GroupMessage`]), its signature
//!   and associated data, and [`VerifiedGroupMessage`], what a message
//!   becomes once its signature is checked: decryption takes only that.

mod distribution;
mod inbound;
mod message;
mod outbound;

pub use distribution::{DistributionError, SenderKeyDistribution};
pub use inbound::{
    GroupDecryptError, InboundGroupSession, MAX_GROUP_CHAINS, MAX_GROUP_MESSAGE_GAP,
    MAX_GROUP_SKIPPED_KEYS,
};
pub use message::{
    DISTRIBUTION_VERSION, GROUP_MESSAGE_VERSION, GroupMessage, INFO_SENDER_KEY, MAX_GROUP_ID_LEN,
    VerifiedGroupMessage,
};
pub use outbound::{GroupEncryptError, OutboundGroupSession};
