//! Server configuration: one TOML file, every field optional, then
//! environment overrides. With no file and no environment the server runs
//! with the embedded defaults (SQLite in `./starling-data`, a generated TLS
//! certificate, 127.0.0.1:8443).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

/// The configuration could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// Plain HTTP on an address other hosts can reach, with no TLS proxy
    /// declared in front: bearer credentials would cross the network in
    /// cleartext.
    #[error(
        "refusing plain HTTP on {addr}: credentials would travel in cleartext; listen on a loopback address, or set [tls] behind_tls_proxy = true (STARLING_BEHIND_TLS_PROXY=true) when a TLS proxy terminates in front"
    )]
    PlainHttpExposed {
        /// The listen address.
        addr: SocketAddr,
    },
    /// An environment override has a bad value.
    #[error("invalid value for {name}: {reason}")]
    Env {
        /// The variable.
        name: &'static str,
        /// Why.
        reason: String,
    },
}

/// How the server speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// A self-signed certificate generated on first start and kept in the
    /// data folder (development and small deployments).
    SelfSigned,
    /// Certificate and key from the configured PEM files.
    Files,
    /// Plain HTTP, for running behind a TLS-terminating proxy. Only when
    /// configured explicitly.
    PlainHttp,
}

/// TLS settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// See [`TlsMode`].
    pub mode: TlsMode,
    /// PEM certificate chain (mode `files`).
    pub cert_path: Option<PathBuf>,
    /// PEM private key (mode `files`).
    pub key_path: Option<PathBuf>,
    /// A TLS-terminating proxy sits in front of a plain-HTTP listener on a
    /// non-loopback address (without it, such a listener is refused).
    pub behind_tls_proxy: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            mode: TlsMode::SelfSigned,
            cert_path: None,
            key_path: None,
            behind_tls_proxy: false,
        }
    }
}

/// Registration policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrationConfig {
    /// Anyone may register without an invite code.
    pub open: bool,
    /// How long an invite code stays valid, in hours.
    pub invite_ttl_hours: u64,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        Self {
            open: false,
            invite_ttl_hours: 24 * 7,
        }
    }
}

/// Message routing limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessagesConfig {
    /// Days an unacknowledged envelope is kept.
    pub ttl_days: u64,
    /// Largest envelope content in bytes.
    pub max_envelope_bytes: usize,
    /// Most devices an account may have.
    pub max_devices_per_account: u32,
    /// Fewer one-time prekeys than this and the device is told to upload.
    pub low_prekey_threshold: u32,
    /// Sends per second a device may sustain.
    pub sends_per_second: u32,
    /// Sends a device may make in a burst.
    pub send_burst: u32,
    /// Prekey bundle fetches per second a device may sustain (each claims
    /// one-time prekeys of others, so this also guards their stock).
    pub bundle_fetches_per_second: u32,
    /// Bundle fetches a device may make in a burst.
    pub bundle_fetch_burst: u32,
    /// Bundles (one per device asked for) an account may claim of one
    /// other account per hour, all its devices together: draining
    /// someone's one-time prekeys takes many accounts.
    pub bundles_per_pair_per_hour: u32,
    /// Bundles an account may claim of one other account in a burst.
    pub bundle_pair_burst: u32,
    /// Lookups per second a device may sustain: device lists (each with a
    /// key-transparency proof the server computes), key histories and
    /// directory searches, all together.
    pub lookups_per_second: u32,
    /// Lookups a device may make in a burst: a device new to a large
    /// group may meet thousands of senders' devices at once.
    pub lookup_burst: u32,
    /// One-time prekeys of each kind (X25519, ML-KEM) a device may have
    /// stored; an upload beyond is refused (409 `too_many_prekeys`).
    pub max_stored_prekeys: u32,
    /// Prekey uploads a device may make per hour.
    pub prekey_uploads_per_hour: u32,
    /// Prekey uploads a device may make in a burst.
    pub prekey_upload_burst: u32,
    /// Writes (sends and acknowledgements) waiting for the group commit at
    /// which new sends are refused with 503 `server_busy` and
    /// `Retry-After`, so that an overloaded server keeps delivering at its
    /// peak instead of stalling every connection. At 2048 or more, sends
    /// wait for room instead. Only devices that already have a send
    /// waiting are refused, so one flooding connection cannot get others
    /// refused; halfway from this mark to the queue's capacity (2048),
    /// every send is, so that acknowledgements always find room.
    pub busy_at_queued_writes: usize,
    /// Envelopes that may wait for one device; beyond, senders are told
    /// its queue is full (`queue_full`) and it is sent nothing more until
    /// it fetches its messages.
    pub max_queued_envelopes_per_device: u64,
    /// Bytes of envelope content that may wait for one device.
    pub max_queued_bytes_per_device: u64,
}

impl MessagesConfig {
    /// The per-device queue caps.
    pub fn queue_caps(&self) -> crate::store::QueueCaps {
        crate::store::QueueCaps {
            max_envelopes: self.max_queued_envelopes_per_device,
            max_bytes: self.max_queued_bytes_per_device,
        }
    }
}

impl Default for MessagesConfig {
    fn default() -> Self {
        Self {
            ttl_days: 30,
            max_envelope_bytes: 256 * 1024,
            max_devices_per_account: 16,
            low_prekey_threshold: 20,
            sends_per_second: 100,
            send_burst: 500,
            bundle_fetches_per_second: 10,
            bundle_fetch_burst: 100,
            bundles_per_pair_per_hour: 30,
            bundle_pair_burst: 20,
            lookups_per_second: 50,
            lookup_burst: 5000,
            max_stored_prekeys: 1000,
            prekey_uploads_per_hour: 60,
            prekey_upload_burst: 10,
            busy_at_queued_writes: 1024,
            max_queued_envelopes_per_device: 50_000,
            max_queued_bytes_per_device: 256 << 20,
        }
    }
}

/// Attachment storage.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttachmentsConfig {
    /// Largest attachment in bytes, as a file (its encryption overhead,
    /// under 0.03 %, is allowed on top).
    pub max_bytes: u64,
    /// Days an attachment is kept after it was created.
    pub ttl_days: u64,
    /// Bytes an account's unexpired attachments may take in all, counted
    /// by their announced (ciphertext) sizes, unfinished uploads included;
    /// a creation beyond is refused (409 `attachment_quota_exceeded`), and
    /// space frees as attachments expire. Keep it at least `max_bytes`, or
    /// the largest attachments are always refused.
    pub quota_bytes_per_account: u64,
    /// Attachments an account may create per hour, all its devices
    /// together (429 `rate_limited` beyond).
    pub creations_per_hour: u32,
    /// Attachments an account may create in a burst.
    pub creation_burst: u32,
}

impl Default for AttachmentsConfig {
    fn default() -> Self {
        Self {
            max_bytes: 100 * 1024 * 1024,
            ttl_days: 30,
            quota_bytes_per_account: 4 * 1024 * 1024 * 1024,
            creations_per_hour: 120,
            creation_burst: 30,
        }
    }
}

/// Push wake-ups (UnifiedPush / Web Push style HTTP POST, no content).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    /// Allow endpoints on loopback and private addresses (tests, or a push
    /// distributor inside the organisation's network). Off by default: a
    /// registered endpoint must not become a way to reach internal hosts.
    pub allow_private_addresses: bool,
    /// Allow `http://` endpoints (otherwise `https://` only).
    pub allow_plain_http: bool,
    /// At most one wake-up per device in this many seconds.
    pub min_interval_seconds: u64,
    /// Seconds a wake-up may take in all, name resolution included.
    pub timeout_seconds: u64,
    /// Wake-ups sent at once: a slow endpoint holds up one of these, never
    /// the others'.
    pub max_concurrent: usize,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            allow_private_addresses: false,
            allow_plain_http: false,
            min_interval_seconds: 30,
            timeout_seconds: 5,
            max_concurrent: 32,
        }
    }
}

/// Connection caps and deadlines: slow or silent clients are closed, the
/// others keep being served.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionsConfig {
    /// Connections open at once, in all.
    pub max_connections: usize,
    /// Connections open at once from one IP address (loopback is counted
    /// only in the total: a TLS proxy on the same host connects from
    /// there). Raise it when many members share one public address.
    pub max_connections_per_ip: usize,
    /// Seconds a TLS handshake may take.
    pub handshake_timeout_seconds: u64,
    /// Seconds to read a request's headers, also between requests on a
    /// kept-alive connection (its idle timeout).
    pub header_read_timeout_seconds: u64,
    /// Seconds between the WebSocket pings the server sends; a connection
    /// from which nothing (not even a pong) arrives for two of these is
    /// closed.
    pub websocket_ping_seconds: u64,
    /// Seconds an upload body may go without delivering a byte.
    pub upload_stall_seconds: u64,
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        Self {
            max_connections: 50_000,
            max_connections_per_ip: 1_000,
            handshake_timeout_seconds: 10,
            header_read_timeout_seconds: 15,
            websocket_ping_seconds: 30,
            upload_stall_seconds: 30,
        }
    }
}

/// Prometheus metrics: served at `GET /metrics` only to a scraper that
/// presents the token (`Authorization: Bearer TOKEN`). Without a token
/// they are not served at all: the TLS port faces every member.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// The scraper's token.
    pub token: Option<Secret>,
}

/// A secret read from the configuration; never printed.
#[derive(Clone, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Sealed sender (`crypto/SPEC.md` §15).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SealedConfig {
    /// How long a sender certificate is valid, in hours (at most 168).
    pub certificate_ttl_hours: u64,
}

impl Default for SealedConfig {
    fn default() -> Self {
        Self {
            certificate_ttl_hours: 24,
        }
    }
}

/// Calls: join tokens for the media relay and TURN credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallsConfig {
    /// Lifetime of a relay join token, seconds (at most 3600).
    pub token_ttl_seconds: u64,
    /// Where clients reach the media relay (given out with tokens).
    pub relay_url: Option<String>,
    /// The shared secret of coturn's REST API (`static-auth-secret`);
    /// without it no TURN credentials are handed out.
    pub turn_secret: Option<Secret>,
    /// TURN server URLs given to clients (`turn:host:3478?transport=udp`).
    pub turn_urls: Vec<String>,
    /// Lifetime of TURN credentials, seconds.
    pub turn_ttl_seconds: u64,
}

impl Default for CallsConfig {
    fn default() -> Self {
        Self {
            token_ttl_seconds: 60,
            relay_url: None,
            turn_secret: None,
            turn_urls: Vec::new(),
            turn_ttl_seconds: 86_400,
        }
    }
}

/// Key transparency (`crypto/SPEC.md` §16).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransparencyConfig {
    /// Shortest time between two epochs, in milliseconds: changes made
    /// meanwhile go into the next one together.
    pub publish_interval_ms: u64,
}

impl Default for TransparencyConfig {
    fn default() -> Self {
        Self {
            publish_interval_ms: 250,
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Folder for the SQLite database, the generated certificate and
    /// attachments.
    pub data_dir: PathBuf,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// `postgres://…` for PostgreSQL; unset for SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// TLS settings.
    pub tls: TlsConfig,
    /// Registration policy.
    pub registration: RegistrationConfig,
    /// Message limits.
    pub messages: MessagesConfig,
    /// Attachment limits.
    pub attachments: AttachmentsConfig,
    /// Push wake-ups.
    pub push: PushConfig,
    /// Calls.
    pub calls: CallsConfig,
    /// The media relay run in-process.
    pub relay: crate::relay::RelayConfig,
    /// Sealed sender.
    pub sealed: SealedConfig,
    /// Key transparency.
    pub transparency: TransparencyConfig,
    /// Prometheus metrics.
    pub metrics: MetricsConfig,
    /// Connection caps and deadlines.
    pub connections: ConnectionsConfig,
    /// Largest HTTP request body in bytes.
    pub max_request_bytes: usize,
    /// Seconds to wait for connections to finish on shutdown.
    pub shutdown_grace_seconds: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("starling-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            database_url: None,
            tls: TlsConfig::default(),
            registration: RegistrationConfig::default(),
            messages: MessagesConfig::default(),
            attachments: AttachmentsConfig::default(),
            push: PushConfig::default(),
            calls: CallsConfig::default(),
            relay: crate::relay::RelayConfig::default(),
            sealed: SealedConfig::default(),
            transparency: TransparencyConfig::default(),
            metrics: MetricsConfig::default(),
            connections: ConnectionsConfig::default(),
            max_request_bytes: 4 * 1024 * 1024,
            shutdown_grace_seconds: 10,
        }
    }
}

impl Config {
    /// Loads `path` (if given) and applies environment overrides:
    /// `DATABASE_URL`, `STARLING_DATA_DIR`, `STARLING_LISTEN`,
    /// `STARLING_TLS_MODE` (`self_signed`, `files`, `plain_http`),
    /// `STARLING_BEHIND_TLS_PROXY` (`true`/`false`), `STARLING_METRICS_TOKEN`,
    /// `STARLING_OPEN_REGISTRATION` (`true`/`false`), `STARLING_TURN_SECRET`,
    /// `STARLING_RELAY_URL` (a separate media relay clients join calls on),
    /// `STARLING_RELAY_EMBEDDED`, `STARLING_RELAY_UDP_LISTEN`,
    /// `STARLING_RELAY_PUBLIC_ADDR` (the relay run in-process).
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let mut config = Self::from_file(path)?;
                // A relative data folder in a file is the file's neighbour,
                // whatever folder the command runs in.
                if let Some(parent) = path.parent().filter(|_| config.data_dir.is_relative()) {
                    config.data_dir = parent.join(&config.data_dir);
                }
                config
            }
            None => Self::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
    }

    /// Applies overrides read through `var` (the environment, or a map in
    /// tests).
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(url) = var("DATABASE_URL").filter(|v| !v.is_empty()) {
            self.database_url = Some(url);
        }
        if let Some(dir) = var("STARLING_DATA_DIR") {
            self.data_dir = PathBuf::from(dir);
        }
        if let Some(listen) = var("STARLING_LISTEN") {
            self.listen = listen.parse().map_err(|e| ConfigError::Env {
                name: "STARLING_LISTEN",
                reason: format!("{e}"),
            })?;
        }
        if let Some(mode) = var("STARLING_TLS_MODE") {
            self.tls.mode = match mode.as_str() {
                "self_signed" => TlsMode::SelfSigned,
                "files" => TlsMode::Files,
                "plain_http" => TlsMode::PlainHttp,
                other => {
                    return Err(ConfigError::Env {
                        name: "STARLING_TLS_MODE",
                        reason: format!("unknown mode `{other}`"),
                    });
                }
            };
        }
        if let Some(proxy) = var("STARLING_BEHIND_TLS_PROXY") {
            self.tls.behind_tls_proxy = proxy.parse().map_err(|_| ConfigError::Env {
                name: "STARLING_BEHIND_TLS_PROXY",
                reason: "expected true or false".into(),
            })?;
        }
        if let Some(url) = var("STARLING_RELAY_URL").filter(|v| !v.is_empty()) {
            self.calls.relay_url = Some(url);
        }
        if let Some(token) = var("STARLING_METRICS_TOKEN").filter(|v| !v.is_empty()) {
            self.metrics.token = Some(Secret(token));
        }
        if let Some(secret) = var("STARLING_TURN_SECRET").filter(|v| !v.is_empty()) {
            self.calls.turn_secret = Some(Secret(secret));
        }
        self.relay.apply_env(&var)?;
        if let Some(open) = var("STARLING_OPEN_REGISTRATION") {
            self.registration.open = open.parse().map_err(|_| ConfigError::Env {
                name: "STARLING_OPEN_REGISTRATION",
                reason: "expected true or false".into(),
            })?;
        }
        Ok(())
    }

    /// Refuses a listener that would carry credentials in cleartext: plain
    /// HTTP is served only on a loopback address, unless a TLS proxy is
    /// declared in front.
    pub fn check_listener(&self) -> Result<(), ConfigError> {
        let exposed = self.tls.mode == TlsMode::PlainHttp
            && !self.listen.ip().is_loopback()
            && !self.tls.behind_tls_proxy;
        if exposed {
            return Err(ConfigError::PlainHttpExposed { addr: self.listen });
        }
        Ok(())
    }

    /// How long unacknowledged envelopes are kept.
    pub fn envelope_ttl(&self) -> Duration {
        Duration::from_secs(self.messages.ttl_days.saturating_mul(86_400))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_configuration_parses_to_the_defaults() {
        let text = include_str!("../../packaging/starling.toml");
        let parsed: Config = toml::from_str(text).unwrap();
        assert_eq!(format!("{parsed:?}"), format!("{:?}", Config::default()));
    }

    #[test]
    fn defaults_without_file_or_environment() {
        let mut config = Config::default();
        config.apply_env(|_| None).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8443");
        assert_eq!(config.data_dir, PathBuf::from("starling-data"));
        assert!(config.database_url.is_none());
        assert_eq!(config.tls.mode, TlsMode::SelfSigned);
        assert_eq!(config.envelope_ttl(), Duration::from_secs(30 * 86_400));
    }

    #[test]
    fn file_then_environment() {
        let config: Config = toml::from_str(
            "listen = \"0.0.0.0:9000\"\n[messages]\nttl_days = 2\n[tls]\nmode = \"plain_http\"\n",
        )
        .unwrap();
        assert_eq!(config.messages.ttl_days, 2);
        assert_eq!(config.tls.mode, TlsMode::PlainHttp);
        let mut config = config;
        config
            .apply_env(|name| (name == "DATABASE_URL").then(|| "postgres://x/y".to_string()))
            .unwrap();
        assert_eq!(config.database_url.as_deref(), Some("postgres://x/y"));
        assert_eq!(config.listen.port(), 9000);
    }

    #[test]
    fn the_default_attachment_quota_holds_many_of_the_largest_attachments() {
        let attachments = AttachmentsConfig::default();
        let largest = starling_crypto::attachment::stored_len(attachments.max_bytes).unwrap();
        assert!(attachments.quota_bytes_per_account >= 40 * largest);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(toml::from_str::<Config>("lisen = \"x\"").is_err());
        let mut config = Config::default();
        let error = config
            .apply_env(|name| (name == "STARLING_LISTEN").then(|| "nope".to_string()))
            .unwrap_err();
        assert!(error.to_string().contains("STARLING_LISTEN"));
    }

    #[test]
    fn plain_http_is_served_only_on_loopback_unless_behind_a_proxy() {
        let mut config = Config::default();
        config.tls.mode = TlsMode::PlainHttp;
        assert!(config.check_listener().is_ok());
        config.listen = "[::1]:8080".parse().unwrap();
        assert!(config.check_listener().is_ok());
        config.listen = "0.0.0.0:8080".parse().unwrap();
        let refused = config.check_listener().unwrap_err().to_string();
        assert!(refused.contains("0.0.0.0:8080"), "{refused}");
        assert!(refused.contains("behind_tls_proxy"), "{refused}");
        config
            .apply_env(|name| (name == "STARLING_BEHIND_TLS_PROXY").then(|| "true".into()))
            .unwrap();
        assert!(config.check_listener().is_ok());
        config.tls.mode = TlsMode::SelfSigned;
        config.tls.behind_tls_proxy = false;
        assert!(config.check_listener().is_ok());
    }
}
