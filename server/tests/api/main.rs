//! The HTTP API against SQLite and PostgreSQL, in process: one test
//! binary, a module per area.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod access;
mod accounts;
mod certificates;
mod declared_surface;
mod lookups;
mod malformed_input;
mod metrics;
mod multi_recipient;
mod prekeys;
mod revocation;
mod sends;
mod transparency;
mod unidentified;
