//! The media relay inside the server: unless `calls.relay_url` names a
//! separate relay (`starling-relay` on its own host), the server binds the
//! relay's media socket itself, verifies join tokens with its own call-token
//! key, and serves the relay's HTTP API under [`PATH`], through its own
//! listener and TLS. Clients are told the relative URL [`PATH`] and resolve
//! it against the server's URL, so a call needs nothing but the server.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use serde::Deserialize;
use starling_media_relay::net::{MetricsToken, Relay, RelayOptions, ServeError};
use starling_media_relay::{EngineConfig, Limits};

use crate::config::ConfigError;
use crate::error::AppError;

/// Where the embedded relay's HTTP API is served, and the relay URL clients
/// are given (relative to the server's URL).
pub const PATH: &str = "/relay";

/// The media port, UDP and ICE-TCP, unless configured.
pub const DEFAULT_PORT: u16 = 3478;

/// `[relay]`: the relay the server runs in-process.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// Run the relay in the server (ignored when `calls.relay_url` names a
    /// separate relay).
    pub embedded: bool,
    /// Where the media UDP socket is bound [default: the server's listen
    /// IP, port 3478].
    pub udp_listen: Option<SocketAddr>,
    /// The IP, or IP:PORT, clients reach the media socket at [default:
    /// `udp_listen`'s IP, or when that is unspecified the address of the
    /// interface the default route leaves by].
    pub public_addr: Option<String>,
    /// Also accept ICE-TCP, on the UDP port's number, for clients that
    /// cannot use UDP.
    pub ice_tcp: bool,
    /// Calls at once.
    pub max_calls: usize,
    /// Participants at once in one call.
    pub max_participants_per_call: usize,
    /// Participants at once over all calls.
    pub max_participants: usize,
}

impl Default for RelayConfig {
    fn default() -> Self {
        let limits = Limits::default();
        Self {
            embedded: true,
            udp_listen: None,
            public_addr: None,
            ice_tcp: true,
            max_calls: limits.max_calls,
            max_participants_per_call: limits.max_participants_per_call,
            max_participants: limits.max_participants,
        }
    }
}

impl RelayConfig {
    /// Applies `STARLING_RELAY_EMBEDDED`, `STARLING_RELAY_UDP_LISTEN` and
    /// `STARLING_RELAY_PUBLIC_ADDR` read through `var`.
    pub fn apply_env(&mut self, var: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(embedded) = var("STARLING_RELAY_EMBEDDED") {
            self.embedded = embedded.parse().map_err(|_| ConfigError::Env {
                name: "STARLING_RELAY_EMBEDDED",
                reason: "expected true or false".into(),
            })?;
        }
        if let Some(listen) = var("STARLING_RELAY_UDP_LISTEN").filter(|v| !v.is_empty()) {
            self.udp_listen = Some(listen.parse().map_err(|e| ConfigError::Env {
                name: "STARLING_RELAY_UDP_LISTEN",
                reason: format!("{e}"),
            })?);
        }
        if let Some(public) = var("STARLING_RELAY_PUBLIC_ADDR").filter(|v| !v.is_empty()) {
            self.public_addr = Some(public);
        }
        Ok(())
    }

    /// The relay's options for a server listening on `listen`.
    fn options(
        &self,
        listen: SocketAddr,
        token_key: [u8; 32],
        metrics_token: Option<String>,
    ) -> Result<RelayOptions, String> {
        let udp_listen = self
            .udp_listen
            .unwrap_or_else(|| SocketAddr::new(listen.ip(), DEFAULT_PORT));
        let public_udp = match &self.public_addr {
            Some(text) => parse_public(text, udp_listen.port())?,
            None => SocketAddr::new(default_public_ip(udp_listen.ip()), udp_listen.port()),
        };
        let mut engine = EngineConfig::new(public_udp);
        engine.limits = Limits {
            max_calls: self.max_calls,
            max_participants_per_call: self.max_participants_per_call,
            max_participants: self.max_participants,
            ..Limits::default()
        };
        Ok(RelayOptions {
            http_listen: None,
            udp_listen,
            tcp_listen: self.ice_tcp.then_some(udp_listen),
            max_tcp_connections: self.max_participants,
            engine,
            token_key,
            metrics_token: metrics_token.filter(|t| !t.is_empty()).map(MetricsToken),
        })
    }
}

/// `IP` (with `port`) or `IP:PORT`.
fn parse_public(text: &str, port: u16) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, port))
        .map_err(|_| format!("relay.public_addr `{text}` must be an IP or IP:PORT"))
}

/// The address clients reach a socket bound to `bound` at: the bound IP
/// itself, or for an unspecified one the address of the interface the
/// default route leaves by (a UDP `connect` sends nothing), or loopback
/// on a machine without a route.
fn default_public_ip(bound: IpAddr) -> IpAddr {
    if !bound.is_unspecified() {
        return bound;
    }
    let (any, probe, loopback): (SocketAddr, SocketAddr, IpAddr) = if bound.is_ipv4() {
        (
            (Ipv4Addr::UNSPECIFIED, 0).into(),
            (Ipv4Addr::new(192, 0, 2, 1), 9).into(),
            Ipv4Addr::LOCALHOST.into(),
        )
    } else {
        (
            (Ipv6Addr::UNSPECIFIED, 0).into(),
            (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 9).into(),
            Ipv6Addr::LOCALHOST.into(),
        )
    };
    UdpSocket::bind(any)
        .and_then(|socket| {
            socket.connect(probe)?;
            socket.local_addr()
        })
        .map(|addr| addr.ip())
        .unwrap_or(loopback)
}

/// Joins per second one address may make: each
/// join costs a signature check and an SDP parse on the task that also
/// forwards every call's media, so an address without a valid token
/// cannot keep it busy.
const JOINS_PER_SECOND: NonZeroU32 = NonZeroU32::MIN.saturating_add(9);
/// Joins one address may make at once before the rate applies.
const JOIN_BURST: NonZeroU32 = NonZeroU32::MIN.saturating_add(49);

/// Refuses a join from a peer address past its rate with 429 and
/// `Retry-After` (leaving and reading streams take a participant's secret
/// handle, and cost a lookup).
async fn limit_peer(
    State(limiter): State<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != axum::http::Method::POST {
        return next.run(request).await;
    }
    match limiter.check_key(&crate::limits::peer_key(peer.ip())) {
        Ok(()) => next.run(request).await,
        Err(_) => AppError::TooManyRequests {
            retry_after_secs: 1,
        }
        .into_response(),
    }
}

/// The embedded relay, started.
#[derive(Debug)]
pub struct EmbeddedRelay {
    /// Its HTTP API, to nest under [`PATH`].
    pub router: axum::Router,
    /// The media address clients are told (ICE host candidate).
    pub public_udp: SocketAddr,
    /// The ICE-TCP address clients are told, if offered.
    pub public_tcp: Option<SocketAddr>,
}

/// Why the embedded relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error("{0}")]
    Config(String),
    /// A socket could not be bound (its address is named).
    #[error(
        "media relay on {addr}: {source} (move it with [relay] udp_listen or STARLING_RELAY_UDP_LISTEN, or turn it off with embedded = false)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: ServeError,
    },
}

/// Binds the relay's media sockets and starts its engine, verifying join
/// tokens with `token_key`; `/relay/metrics` is served to the scraper
/// holding `metrics_token`.
pub async fn start(
    config: &RelayConfig,
    listen: SocketAddr,
    token_key: [u8; 32],
    metrics_token: Option<String>,
) -> Result<EmbeddedRelay, StartError> {
    let options = config
        .options(listen, token_key, metrics_token)
        .map_err(StartError::Config)?;
    let addr = options.udp_listen;
    let relay = Relay::bind(options)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let limiter = Arc::new(RateLimiter::keyed(
        Quota::per_second(JOINS_PER_SECOND).allow_burst(JOIN_BURST),
    ));
    Ok(EmbeddedRelay {
        router: relay
            .router()
            .layer(axum::middleware::from_fn_with_state(limiter, limit_peer)),
        public_udp: relay.public_udp(),
        public_tcp: relay.public_tcp(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen() -> SocketAddr {
        "127.0.0.1:8443".parse().unwrap()
    }

    #[test]
    fn by_default_the_relay_takes_the_servers_ip_and_port_3478() {
        let options = RelayConfig::default()
            .options(listen(), [7; 32], None)
            .unwrap();
        assert_eq!(options.udp_listen, "127.0.0.1:3478".parse().unwrap());
        assert_eq!(options.tcp_listen, Some(options.udp_listen));
        assert_eq!(options.engine.public_udp, options.udp_listen);
        assert_eq!(options.http_listen, None);
    }

    #[test]
    fn an_unspecified_bind_advertises_a_real_address() {
        let config = RelayConfig {
            udp_listen: Some("0.0.0.0:4000".parse().unwrap()),
            ice_tcp: false,
            ..RelayConfig::default()
        };
        let options = config.options(listen(), [7; 32], None).unwrap();
        assert!(!options.engine.public_udp.ip().is_unspecified());
        assert_eq!(options.engine.public_udp.port(), 4000);
        assert_eq!(options.tcp_listen, None);
    }

    #[test]
    fn a_public_address_without_a_port_takes_the_bound_one() {
        let config = RelayConfig {
            public_addr: Some("203.0.113.9".into()),
            ..RelayConfig::default()
        };
        let options = config.options(listen(), [7; 32], None).unwrap();
        assert_eq!(
            options.engine.public_udp,
            "203.0.113.9:3478".parse().unwrap()
        );
        let bad = RelayConfig {
            public_addr: Some("relay.example".into()),
            ..RelayConfig::default()
        };
        assert!(bad.options(listen(), [7; 32], None).is_err());
    }

    #[test]
    fn the_environment_turns_it_off_and_moves_it() {
        let mut config = RelayConfig::default();
        let env = |name: &str| match name {
            "STARLING_RELAY_EMBEDDED" => Some("false".to_owned()),
            "STARLING_RELAY_UDP_LISTEN" => Some("127.0.0.1:0".to_owned()),
            _ => None,
        };
        config.apply_env(&env).unwrap();
        assert!(!config.embedded);
        assert_eq!(config.udp_listen, Some("127.0.0.1:0".parse().unwrap()));
        let bad = |name: &str| (name == "STARLING_RELAY_EMBEDDED").then(|| "yes".to_owned());
        assert!(RelayConfig::default().apply_env(&bad).is_err());
    }
}
