//! Starling's media relay: a selective forwarding unit (SFU) for calls.
//!
//! Clients join a call with a token from the server and an SDP offer; the
//! relay answers as an ICE-lite peer and forwards every RTP stream a
//! participant publishes to the other participants of the same call. It
//! reads RTP headers only (str0m in RTP mode): media is end-to-end
//! encrypted by the clients, and the relay never parses a payload.
//!
//! - [`engine`]: the sans-IO core. Time, datagrams and randomness are
//!   arguments; it never touches a socket or a clock.
//! - [`net`]: the shell: a UDP socket, ICE-TCP, and the HTTP API (join,
//!   leave, metrics).
//!
//! # Run loop
//!
//! ```no_run
//! # use std::time::Instant;
//! # use starling_media_relay::engine::{Engine, Input, Output};
//! # fn recv(_: Instant) -> Option<(Instant, Vec<u8>, std::net::SocketAddr)> { None }
//! # fn run(mut engine: Engine, public: std::net::SocketAddr) {
//! loop {
//!     let deadline = loop {
//!         match engine.poll_output() {
//!             Output::Transmit(t) => { /* send t.contents to t.destination */ }
//!             Output::Event(e) => { /* log it */ }
//!             Output::Timeout(t) => break t,
//!         }
//!     };
//!     // Wait for a datagram, a join or leave, or the deadline.
//!     match recv(deadline) {
//!         Some((now, bytes, source)) => engine.handle_input(Input::Datagram(
//!             now,
//!             starling_media_relay::engine::Datagram {
//!                 proto: str0m::net::Protocol::Udp,
//!                 source,
//!                 destination: public,
//!                 contents: &bytes,
//!             },
//!         )),
//!         None => engine.handle_input(Input::Timeout(Instant::now())),
//!     }
//! }
//! # }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod config;
pub mod engine;
pub mod error;
pub mod metrics;
pub mod net;

pub use config::{EngineConfig, Limits, Timeouts};
pub use engine::Engine;
pub use error::{JoinError, LeaveError, OfferError, SetupError};
pub use metrics::Metrics;
