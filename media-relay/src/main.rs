//! `starling-relay`: command line, logging, and the start of the relay.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Parser;
use starling_media_relay::net::{MetricsToken, Relay, RelayOptions};
use starling_media_relay::{EngineConfig, Limits, Timeouts};

/// Starling's media relay (SFU).
#[derive(Parser)]
#[command(name = "starling-relay", version)]
struct Args {
    /// The server's call-token public key (base64url), as served at
    /// GET /v1/calls/token-key. Base64url may begin with `-`, so the
    /// value is taken as given even then.
    #[arg(long, env = "STARLING_RELAY_TOKEN_KEY", allow_hyphen_values = true)]
    token_key: String,
    /// The public IP clients reach the media socket at (its port is
    /// --udp-listen's unless given as IP:PORT).
    #[arg(long, env = "STARLING_RELAY_PUBLIC_ADDR")]
    public_addr: String,
    /// Where the media UDP socket is bound.
    #[arg(long, default_value = "0.0.0.0:3478")]
    udp_listen: SocketAddr,
    /// Where the ICE-TCP listener is bound, for clients that cannot use
    /// UDP [default: 0.0.0.0:3478]. It is advertised at --public-addr's IP
    /// with this port unless --public-tcp-port is given.
    #[arg(long)]
    tcp_listen: Option<SocketAddr>,
    /// The public port of the ICE-TCP listener, when a port mapping in
    /// front of the relay changes it.
    #[arg(long)]
    public_tcp_port: Option<u16>,
    /// ICE-TCP connections at once [default: --max-participants, lowered
    /// to fit the open-file limit].
    #[arg(long)]
    max_tcp_connections: Option<usize>,
    /// Offer no ICE-TCP: UDP only.
    #[arg(long, conflicts_with_all = ["tcp_listen", "public_tcp_port", "max_tcp_connections"])]
    no_tcp: bool,
    /// Where the HTTP API listens.
    #[arg(long, default_value = "0.0.0.0:8480")]
    http_listen: SocketAddr,
    /// Calls at once.
    #[arg(long, default_value_t = Limits::default().max_calls)]
    max_calls: usize,
    /// Participants at once in one call.
    #[arg(long, default_value_t = Limits::default().max_participants_per_call)]
    max_participants_per_call: usize,
    /// Participants at once on the relay.
    #[arg(long, default_value_t = Limits::default().max_participants)]
    max_participants: usize,
    /// The token a Prometheus scraper presents for GET /metrics
    /// (Authorization: Bearer TOKEN); without one, metrics are not served.
    #[arg(long, env = "STARLING_RELAY_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// Seconds without traffic before a participant is freed.
    #[arg(long, default_value_t = 10)]
    idle_timeout_secs: u64,
}

fn parse_public(text: &str, udp: SocketAddr) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let ip: IpAddr = text
        .parse()
        .map_err(|_| "--public-addr must be an IP or IP:PORT".to_owned())?;
    Ok(SocketAddr::new(ip, udp.port()))
}

fn parse_key(text: &str) -> Result<[u8; 32], String> {
    URL_SAFE_NO_PAD
        .decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| "--token-key must be 32 bytes in base64url".to_owned())
}

/// Where ICE-TCP listens unless told.
const DEFAULT_TCP_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 3478);

/// File descriptors kept for everything but ICE-TCP connections (sockets,
/// HTTP connections, logs).
const RESERVED_FILES: u64 = 256;

/// How many ICE-TCP connections fit in `open_files` descriptors.
fn tcp_connections_within(open_files: Option<u64>) -> usize {
    open_files.map_or(usize::MAX, |n| {
        usize::try_from(n.saturating_sub(RESERVED_FILES)).unwrap_or(usize::MAX)
    })
}

/// Raises the soft limit on open files to the hard one (as servers that
/// hold many connections do); returns the limit now in force, if finite.
#[cfg(target_os = "linux")]
fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, "could not raise the open-file limit");
        }
    }
    getrlimit(Resource::Nofile).current
}

#[cfg(not(target_os = "linux"))]
fn raise_open_file_limit() -> Option<u64> {
    None
}

fn options(args: &Args, open_files: Option<u64>) -> Result<RelayOptions, String> {
    let public_udp = parse_public(&args.public_addr, args.udp_listen)?;
    let mut engine = EngineConfig::new(public_udp);
    engine.public_tcp = args
        .public_tcp_port
        .map(|port| SocketAddr::new(public_udp.ip(), port));
    engine.limits = Limits {
        max_calls: args.max_calls,
        max_participants_per_call: args.max_participants_per_call,
        max_participants: args.max_participants,
        ..Limits::default()
    };
    engine.timeouts = Timeouts {
        idle: Duration::from_secs(args.idle_timeout_secs.max(1)),
        ..Timeouts::default()
    };
    Ok(RelayOptions {
        http_listen: Some(args.http_listen),
        udp_listen: args.udp_listen,
        tcp_listen: (!args.no_tcp).then(|| args.tcp_listen.unwrap_or(DEFAULT_TCP_LISTEN)),
        max_tcp_connections: args.max_tcp_connections.unwrap_or_else(|| {
            args.max_participants
                .min(tcp_connections_within(open_files))
        }),
        engine,
        token_key: parse_key(&args.token_key)?,
        metrics_token: args
            .metrics_token
            .clone()
            .filter(|t| !t.is_empty())
            .map(MetricsToken),
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,str0m=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .log_internal_errors(false)
        .init();
    let args = Args::parse();
    let open_files = raise_open_file_limit();
    let options = match options(&args, open_files) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("starling-relay: {e}");
            return ExitCode::from(2);
        }
    };
    let max_tcp = options.max_tcp_connections;
    let result = async {
        let relay = Relay::bind(options).await?;
        tracing::info!(
            http_port = relay.http_addr()?.port(),
            ice_tcp = relay.public_tcp().is_some(),
            max_tcp_connections = max_tcp,
            "relay listening"
        );
        relay.run().await
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "relay stopped");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_key_beginning_with_a_dash_is_a_value() {
        let key = format!("-{}", "A".repeat(42));
        let args = Args::try_parse_from([
            "starling-relay",
            "--token-key",
            &key,
            "--public-addr",
            "127.0.0.1",
        ])
        .map_err(|e| e.to_string());
        assert_eq!(args.map(|a| a.token_key), Ok(key));
    }
}
