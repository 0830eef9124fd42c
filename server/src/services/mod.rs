//! What the server does, apart from how requests reach it: the transport
//! (`routes` for HTTP, `ws` for the WebSocket) parses a request,
//! authenticates the device, calls one of these and encodes the answer.
//! Services take typed inputs, use the `store` and the group-commit writer,
//! and answer with values or an [`AppError`](crate::error::AppError).
//!
//! - [`sends`]: checks sends and queues them to the group-commit writer.
//! - [`multi_recipient`]: one upload of a multi-recipient sealed envelope,
//!   split into each device's copy.
//! - [`queue`]: a device's queue as its connection reads and acknowledges it.
//! - [`keys`]: prekey upload verification, bundle fetch (claims), counts.
//! - [`blobs`]: attachment files: creation, resumable upload, ranged
//!   download, expiry.
//! - [`directory`]: directory search.
//! - [`calls`]: the call-token key file, join tokens, TURN credentials.
//! - [`certificates`]: the sender-certificate key chain and certificates.
//! - [`accounts`]: registration, linked devices, device lists.
//! - [`access`]: access keys and the stranger policy (unidentified delivery).
//! - [`access_cache`]: access records kept briefly, for unidentified sends.
//! - [`unidentified`]: sends with no credential, authorised by access keys.
//! - [`push_endpoints`]: where devices get push wake-ups.

pub mod access;
pub mod access_cache;
pub mod accounts;
pub mod blobs;
pub mod calls;
pub mod certificates;
pub mod directory;
pub mod keys;
pub mod multi_recipient;
pub mod push_endpoints;
pub mod queue;
pub mod sends;
pub mod transparency;
pub mod unidentified;
