//! Starling's client core: the protocol logic of a client device, with no
//! I/O of its own.
//!
//! The client is split the way a sans-IO engine and its I/O loop are: this
//! crate decides, the shell (`starling-client`) does. Nothing here opens a
//! file, a socket or a database, starts a thread or task, or reads the
//! system clock or the OS random source; it depends on no async runtime.
//!
//! - [`content`]: the protobuf content carried inside the encryption, with
//!   `Debug` impls that leave out text and keys, and how each content reads
//!   in the history.
//! - [`conversation`]: [`Conversation`] (a person or a group), [`GroupId`]
//!   and [`ConversationRef`], parsed once where a name enters.
//! - [`events`] and [`history`]: what the app is shown ([`Event`],
//!   [`HistoryEntry`]).
//! - [`Storage`], [`Transport`], [`Clock`]: what the core asks of the shell
//!   (the device's local state, the server, the time). Randomness comes in
//!   as a `rand_core::CryptoRngCore` parameter.
//! - [`prekeys`]: the device's prekey upkeep (first upload, top-up,
//!   signed-prekey rotation), generic over those traits.
//! - [`trust`]: safety numbers, verification, and the rule that a verified
//!   contact whose keys changed cannot be sent to.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod clock;
pub mod content;
pub mod conversation;
pub mod events;
pub mod history;
pub mod prekeys;
pub mod storage;
pub mod transport;
pub mod trust;

#[cfg(test)]
mod testing;

pub use clock::Clock;
pub use conversation::{Conversation, ConversationKeyError, ConversationRef, GroupId};
pub use events::{CallSignalKind, Event, UpdateKind};
pub use history::HistoryEntry;
pub use storage::Storage;
pub use transport::Transport;
