//! # starling-protocol
//!
//! What a Starling server and its clients say to each other, and nothing
//! about how they say it: no sockets, no runtime, no files. The server, the
//! reference client, the load tool and the web client all build on these
//! types, so each rule (what a username is, what a send looks like, which
//! error codes exist) lives in one place.
//!
//! - [`frames`]: the protobuf frames of a device's WebSocket (`/v1/ws`),
//!   generated from `proto/starling/server/v1/ws.proto`.
//! - [`api`]: the JSON bodies of the `/v1` HTTP API.
//! - [`error`]: the error codes and the error body of both.
//! - [`ids`]: identifiers parsed once at the edge ([`Username`],
//!   [`DeviceId`], [`EnvelopeId`], [`AccountId`]).
//!
//! The crate builds for `wasm32-unknown-unknown`.
#![forbid(unsafe_code)]

pub mod api;
pub mod error;
pub mod ids;

pub use error::{ErrorBody, ErrorCode};
pub use ids::{AccountId, DeviceId, EnvelopeId, IdError, Username};

/// Protobuf frames of the WebSocket (generated from `proto/`).
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod frames {
    include!(concat!(env!("OUT_DIR"), "/starling.server.v1.rs"));
}
