//! The network shell: the only part of the relay that does I/O. It binds
//! the UDP socket, the ICE-TCP listener and the HTTP listener, runs the
//! engine in one task (see `engine_loop`), accepts ICE-TCP connections
//! (see `tcp`), and serves the HTTP API (see `http`).

mod engine_loop;
pub mod http;
mod tcp;
pub mod udp_batch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use thiserror::Error;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

use crate::config::EngineConfig;
use crate::engine::Engine;
use crate::error::SetupError;
use crate::metrics::Metrics;

/// Joins and leaves waiting for the engine task.
const COMMAND_QUEUE: usize = 256;

/// Why the relay could not start or stopped.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A socket could not be bound or served.
    #[error("{what}: {source}")]
    Io {
        /// Which socket.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The engine refused its configuration.
    #[error(transparent)]
    Setup(#[from] SetupError),
}

/// Sockets to bind and the engine's configuration.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// Where the HTTP API listens; `None` when a program that embeds the
    /// relay serves [`Relay::router`] itself (the server does, under
    /// `/relay`).
    pub http_listen: Option<SocketAddr>,
    /// Where the media UDP socket is bound. Port 0 picks a free one, which
    /// the relay then advertises when `engine.public_udp`'s port is 0 too.
    pub udp_listen: SocketAddr,
    /// Where the ICE-TCP listener is bound, if the relay offers ICE-TCP.
    /// Its public address is `engine.public_tcp`, or if that is `None`
    /// the public UDP address's IP with the bound port. Without a
    /// listener `engine.public_tcp` is ignored.
    pub tcp_listen: Option<SocketAddr>,
    /// ICE-TCP connections open at once; more are closed on accept. Each
    /// holds a file descriptor: keep it under the process's limit.
    pub max_tcp_connections: usize,
    /// The engine (public address, limits, timeouts).
    pub engine: EngineConfig,
    /// The server's call-token public key.
    pub token_key: [u8; 32],
    /// The token a scraper presents for `GET /metrics`
    /// (`Authorization: Bearer TOKEN`); without one, metrics are not
    /// served.
    pub metrics_token: Option<MetricsToken>,
}

/// The scraper's token for `GET /metrics`; `Debug` leaves it out.
#[derive(Clone)]
pub struct MetricsToken(pub String);

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(..)")
    }
}

/// A bound relay, ready to run.
#[derive(Debug)]
pub struct Relay {
    http: Option<TcpListener>,
    router: axum::Router,
    public_udp: SocketAddr,
    public_tcp: Option<SocketAddr>,
}

impl Relay {
    /// Binds the sockets and starts the engine task (and the ICE-TCP
    /// accept loop).
    pub async fn bind(mut options: RelayOptions) -> Result<Self, ServeError> {
        let io = |what| move |source| ServeError::Io { what, source };
        let udp = UdpSocket::bind(options.udp_listen)
            .await
            .map_err(io("udp socket"))?;
        let tcp = match options.tcp_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(io("tcp listener"))?),
            None => None,
        };
        let http = match options.http_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(io("http listener"))?),
            None => None,
        };
        if options.engine.public_udp.port() == 0 {
            let bound = udp.local_addr().map_err(io("udp socket"))?.port();
            options.engine.public_udp.set_port(bound);
        }
        let metrics = Metrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let max_offer = options.engine.limits.max_offer_bytes;
        let public_udp = options.engine.public_udp;
        let connect_timeout = options.engine.timeouts.connect;
        // The listener with the address it is advertised at.
        let tcp = match tcp {
            Some(listener) => {
                let port = listener.local_addr().map_err(io("tcp listener"))?.port();
                let advertised = SocketAddr::new(public_udp.ip(), port);
                let public = options.engine.public_tcp.unwrap_or(advertised);
                Some((listener, public))
            }
            None => None,
        };
        let public_tcp = tcp.as_ref().map(|(_, public)| *public);
        options.engine.public_tcp = public_tcp;
        let engine = Engine::new(
            options.engine,
            &options.token_key,
            metrics.clone(),
            Instant::now(),
        )?;
        let max_tcp = options.max_tcp_connections;
        let tcp = tcp.map(|(listener, public)| {
            start_tcp(listener, public, max_tcp, connect_timeout, &metrics)
        });
        let sockets = engine_loop::Sockets {
            udp,
            public_udp,
            tcp,
            udp_out: Vec::with_capacity(udp_batch::MAX_BATCH),
        };
        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
        tokio::spawn(engine_loop::run(engine, sockets, receiver));
        let state = http::HttpState {
            commands,
            registry: Arc::new(registry),
            metrics_token: options.metrics_token.map(|t| Arc::from(t.0)),
        };
        Ok(Self {
            http,
            router: http::router(state, max_offer),
            public_udp,
            public_tcp,
        })
    }

    /// The ICE-TCP address the relay advertises, if it offers ICE-TCP.
    pub fn public_tcp(&self) -> Option<SocketAddr> {
        self.public_tcp
    }

    /// The public UDP address the relay advertises (the media socket).
    pub fn public_udp(&self) -> SocketAddr {
        self.public_udp
    }

    /// The HTTP address actually bound (port 0 picks one).
    pub fn http_addr(&self) -> Result<SocketAddr, ServeError> {
        let missing = || std::io::Error::new(std::io::ErrorKind::NotFound, "no HTTP listener");
        self.http
            .as_ref()
            .ok_or_else(missing)
            .and_then(TcpListener::local_addr)
            .map_err(|source| ServeError::Io {
                what: "http listener",
                source,
            })
    }

    /// The HTTP API: for a program that embeds the relay (it nests it in
    /// its own router), or for driving it without a socket (tests).
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// Serves HTTP until the process ends (a relay bound without an HTTP
    /// listener serves nothing and returns at once).
    pub async fn run(self) -> Result<(), ServeError> {
        let Some(http) = self.http else {
            return Ok(());
        };
        axum::serve(http, self.router)
            .await
            .map_err(|source| ServeError::Io {
                what: "http server",
                source,
            })
    }
}

/// Starts accepting ICE-TCP connections; returns the engine task's side.
fn start_tcp(
    listener: TcpListener,
    public: SocketAddr,
    max_connections: usize,
    connect_timeout: Duration,
    metrics: &Metrics,
) -> tcp::TcpConnections {
    let (events, receiver) = mpsc::channel(tcp::EVENT_QUEUE);
    let accept = tcp::accept(listener, events, max_connections, metrics.clone());
    tokio::spawn(accept);
    tcp::TcpConnections::new(public, receiver, connect_timeout, metrics.clone())
}
