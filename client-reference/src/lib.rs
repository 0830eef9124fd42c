//! Starling's reference client: a library any app can embed.
//!
//! It is the shell around the client core (`starling-client-core`): the
//! core holds the protocol logic and the plain types ([`content`],
//! [`Conversation`], [`Event`]) with no I/O; this crate adds the tokio
//! runtime, the SQLCipher store, the HTTP and WebSocket transport and the
//! call media, and re-exports the core's types under its own paths.
//!
//! - [`Client`]: register or link a device, send and receive direct and
//!   group messages, attachments, directory search, safety numbers; what
//!   arrives comes back as typed [`Event`]s.
//! - [`Conversation`]: a person or a group, resolved once from what a
//!   person types ([`Client::resolve`]).
//! - [`store`]: the encrypted local database (SQLCipher, Argon2id key).
//! - [`api`], [`connection`], [`tls`]: the server's HTTP API, the device's
//!   WebSocket, and TLS with certificate pinning.
//! - [`content`]: the protobuf content types carried inside the encryption.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod api;
pub mod audit_log;
pub mod call;
mod client;
pub mod connection;
pub mod content;
pub mod conversation;
pub mod error;
mod ports;
pub mod store;
pub mod text;
pub mod tls;

/// The server's WebSocket frames (from `starling-protocol`).
pub use starling_protocol::frames;

pub use client::{
    CallOptions, CallReport, CallSignalKind, Client, Event, IncomingCall, OwnLogChange,
    PREKEY_BATCH, PREKEY_LOW_WATER, Progress, SIGNED_PREKEY_MAX_AGE_SECS, SafetyNumberView,
    ServerConfig, UpdateKind, kind_for,
};
pub use conversation::{Conversation, ConversationRef, GroupId};
pub use error::{ClientError, Result};
pub use ports::SystemClock;
pub use store::StoreKey;
