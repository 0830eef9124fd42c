//! The engine's configuration: where it is reachable, how much it holds at
//! most, and how long it waits for a silent participant.

use std::net::SocketAddr;
use std::time::Duration;

/// Caps that bound the relay's memory. A join beyond one is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Calls at once on this relay.
    pub max_calls: usize,
    /// Participants at once in one call.
    pub max_participants_per_call: usize,
    /// Participants at once on this relay, over all calls.
    pub max_participants: usize,
    /// Media sections (m-lines) in one offer.
    pub max_media_per_offer: usize,
    /// Size of one SDP offer, in bytes.
    pub max_offer_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_calls: 1_000,
            max_participants_per_call: 16,
            max_participants: 4_000,
            max_media_per_offer: 64,
            max_offer_bytes: 64 * 1024,
        }
    }
}

/// How long the relay waits before it frees a participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From the join until ICE and DTLS are up.
    pub connect: Duration,
    /// Without any datagram from a connected participant.
    pub idle: Duration,
    /// Shortest gap between two keyframe requests relayed to one stream.
    pub keyframe_interval: Duration,
    /// Period of str0m's per-stream statistics (loss metrics).
    pub stats_interval: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(15),
            idle: Duration::from_secs(10),
            keyframe_interval: Duration::from_millis(500),
            stats_interval: Duration::from_secs(5),
        }
    }
}

/// Everything the engine needs besides the token key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// The public UDP address clients reach (the ICE-lite host candidate).
    pub public_udp: SocketAddr,
    /// The public TCP address for ICE-TCP (a passive candidate), if any.
    /// The engine advertises it and accepts `Protocol::Tcp` datagrams; the
    /// `net` shell sets it from its listener (see `RelayOptions`).
    pub public_tcp: Option<SocketAddr>,
    /// Memory caps.
    pub limits: Limits,
    /// Timeouts.
    pub timeouts: Timeouts,
}

impl EngineConfig {
    /// A configuration with default limits and timeouts.
    pub fn new(public_udp: SocketAddr) -> Self {
        Self {
            public_udp,
            public_tcp: None,
            limits: Limits::default(),
            timeouts: Timeouts::default(),
        }
    }
}
