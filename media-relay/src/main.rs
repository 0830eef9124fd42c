//! `starling-relay`: command line, logging, and the start of the relay.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Parser;
use starling_media_relay::net::{Relay, RelayOptions};
use starling_media_relay::{EngineConfig, Limits, Timeouts};

/// Starling's media relay (SFU).
#[derive(Debug, Parser)]
#[command(name = "starling-relay", version)]
struct Args {
    /// The server's call-token public key (base64url), as served at
    /// GET /v1/calls/token-key.
    #[arg(long, env = "STARLING_RELAY_TOKEN_KEY")]
    token_key: String,
    /// The public IP clients reach the media socket at (its port is
    /// --udp-listen's unless given as IP:PORT).
    #[arg(long, env = "STARLING_RELAY_PUBLIC_ADDR")]
    public_addr: String,
    /// Where the media UDP socket is bound.
    #[arg(long, default_value = "0.0.0.0:3478")]
    udp_listen: SocketAddr,
    /// Where the ICE-TCP listener is bound, for clients that cannot use
    /// UDP. It is advertised at --public-addr's IP with this port unless
    /// --public-tcp-port is given.
    #[arg(long, default_value = "0.0.0.0:3478")]
    tcp_listen: SocketAddr,
    /// The public port of the ICE-TCP listener, when a port mapping in
    /// front of the relay changes it.
    #[arg(long)]
    public_tcp_port: Option<u16>,
    /// Offer no ICE-TCP: UDP only.
    #[arg(long, conflicts_with_all = ["public_tcp_port"])]
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

fn options(args: &Args) -> Result<RelayOptions, String> {
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
        http_listen: args.http_listen,
        udp_listen: args.udp_listen,
        tcp_listen: (!args.no_tcp).then_some(args.tcp_listen),
        engine,
        token_key: parse_key(&args.token_key)?,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,str0m=warn"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let args = Args::parse();
    let options = match options(&args) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("starling-relay: {e}");
            return ExitCode::from(2);
        }
    };
    let result = async {
        let relay = Relay::bind(options).await?;
        tracing::info!(
            http_port = relay.http_addr()?.port(),
            ice_tcp = relay.public_tcp().is_some(),
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
