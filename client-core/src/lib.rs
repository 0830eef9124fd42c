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
//! - [`tofu`]: trust on first use, what seeing a device's identity key
//!   means (trusted, announced, or a changed safety number).
//! - [`outgoing`]: the pairwise send path: sessions with every device of a
//!   recipient from fetched bundles, encryption per device, the copy to our
//!   own other devices, and the stale-device answer (fix the lists,
//!   resend).
//! - [`sealed`]: sealed sender as a device uses it: the pinned server
//!   keys, our sender certificate, sealing and unsealing.
//! - [`device`]: [`Device`], the engine the rest is driven through.
//! - [`records`]: what the core keeps through [`Storage`] (groups, history
//!   rows, staged envelopes); [`DeviceError`] is what its operations fail
//!   with.
//!
//! # The traits
//!
//! Both I/O traits use `async fn` and return the implementor's own error
//! ([`Storage::Error`], [`Transport::Error`]); an operation of the core
//! returns its own error enum ([`DeviceError`], [`prekeys::PrekeyError`],
//! [`trust::TrustError`]) that carries those back whole, and the shell maps
//! it to its error type. A [`Storage`] call is one durable step; a
//! [`Transport`] call is one authenticated request. Neither trait requires
//! `Send` futures: the shell chooses its executor, and with concrete types
//! the futures are `Send` when the shell's are. The functions are generic
//! (`S: Storage, T: Transport`), never `dyn`, so a test double is an
//! in-memory value and a test polls the future once, with no runtime.
//!
//! # The engine
//!
//! [`Device`] is one device of an account: its keys ([`Account`]) and the
//! protocol state kept between operations, over a [`Storage`], a
//! [`Transport`], a [`Clock`] and a random source. Its operations are
//! `async` methods that each run to completion: sends
//! ([`Device::send`], the pairwise path of [`outgoing`] and Sender Keys),
//! incoming envelopes ([`Device::process_envelope`]: decrypt, stage with
//! the advanced session in one durable step, apply, and report what
//! happened as [`Event`]s; the shell acknowledges the envelope only
//! after), groups, edits and receipts, call signals, prekey upkeep and
//! trust. The shell keeps what only it can do: opening the home and its
//! encrypted store, the WebSocket that feeds envelopes in, attachment
//! files, and call media.
//!
//! The crate already type-checks for `wasm32-unknown-unknown` (`cargo
//! check -p starling-client-core --target wasm32-unknown-unknown`): no
//! `std::time`, no threads, no OS randomness. Keeping it so as code moves
//! in is what lets a browser or mobile shell reuse it.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod clock;
pub mod content;
pub mod conversation;
pub mod device;
pub mod error;
pub mod events;
pub mod history;
pub mod outgoing;
pub mod prekeys;
pub mod records;
pub mod sealed;
pub mod storage;
pub mod tofu;
pub mod transparency;
pub mod transport;
pub mod trust;

#[cfg(test)]
mod testing;

pub use clock::Clock;
pub use conversation::{Conversation, ConversationKeyError, ConversationRef, GroupId};
pub use device::{Account, Device};
pub use error::DeviceError;
pub use events::{CallSignalKind, Event, UpdateKind};
pub use history::HistoryEntry;
pub use storage::Storage;
pub use transport::Transport;
