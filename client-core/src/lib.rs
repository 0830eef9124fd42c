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
//!
//! # The traits
//!
//! Both I/O traits use `async fn` and return the implementor's own error
//! ([`Storage::Error`], [`Transport::Error`]); an operation of the core
//! returns its own error enum ([`prekeys::PrekeyError`],
//! [`trust::TrustError`]) that carries those back whole, and the shell maps
//! it to its error type. A [`Storage`] call is one durable step; a
//! [`Transport`] call is one authenticated request. Neither trait requires
//! `Send` futures: the shell chooses its executor, and with concrete types
//! the futures are `Send` when the shell's are. The functions are generic
//! (`S: Storage, T: Transport`), never `dyn`, so a test double is an
//! in-memory value and a test polls the future once, with no runtime.
//!
//! # What is still in the shell
//!
//! The shell's `Client` holds the store, the API, the account's identity
//! and prekey secrets, and calls into this crate for the parts already
//! here. The rest of the protocol logic moves next, one concept at a time,
//! each as functions (and later state machines) generic over the same
//! traits, with [`Storage`] and [`Transport`] growing only the calls that
//! concept needs:
//!
//! 1. **Outgoing, the rest** (`client/outgoing.rs`, `client/groups.rs`,
//!    `client/attachments.rs`): the pairwise path is here ([`outgoing`]);
//!    the shell still builds the content for a conversation (its timer,
//!    quote and copy target), records what was sent in the history
//!    (`record`, the store's `insert_message`) and sends to groups, which
//!    call the core's pairwise helpers for Sender Key distribution. These
//!    move with a `Storage` call for recording a message and the group
//!    calls below.
//! 2. **Incoming** (`client/incoming.rs`, `client/updates.rs`): opening an
//!    envelope (pairwise or Sender Key), staging it in the inbox with the
//!    new session state in one durable step, applying the content (history,
//!    edits, deletions, reactions, receipts, timers) and returning the
//!    [`Event`]s; a failed decryption becomes an event and a session repair
//!    (its rate limit, now `Instant`s in `Client`, moves to [`Clock`] time).
//!    Needs `Storage` calls for the inbox and sessions saved with an
//!    inbox item in one step; [`Storage::observe_identity`] and
//!    [`Storage::sessions`] are already here.
//!    This is the part to shape as an engine: `handle_envelope(envelope,
//!    now) -> Vec<Event>` plus the envelopes to send, with the connection's
//!    acknowledgement left to the shell after the durable step.
//! 3. **Groups** (`client/groups.rs`, `client/groups/membership.rs`): control
//!    messages, membership, Sender Key distribution and rotation on removal.
//!    Needs the group and group-session calls of the store.
//! 4. **Call signalling** (`client/calls/`): offers, answers, leaves,
//!    hang-ups, busy and the caller's epoch keys are content like any other
//!    and move with incoming and outgoing; the call loop and media
//!    (`call/`, WebRTC, SFrame) stay in the shell.
//!
//! After that the shell's `Client` becomes a `Core<SqlStore,
//! HttpTransport, SystemClock>` (the account's state and these functions
//! as methods) plus what only a shell can do: the WebSocket connection
//! (`connection.rs`) feeding envelopes in and acknowledging them, the
//! attachment files (streaming encryption, resumable upload and download,
//! saving), the call media, and opening or creating the home and its
//! SQLCipher store. Attachment encryption itself is already in
//! `starling-crypto`; the attachment *messages* move with outgoing.
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
pub mod storage;
pub mod tofu;
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
