//! # starling-server
//!
//! Routes end-to-end encrypted envelopes between devices and stores only
//! what routing needs (see `DATA_INVENTORY.md`). [`app`] builds the HTTP
//! and WebSocket API on an [`AppState`]; `main.rs` wraps it in TLS and the
//! command line.
//!
//! ## Layers
//!
//! A request goes down through three layers, and nothing calls upwards:
//!
//! 1. Transport: `routes` (the `/v1` HTTP API, JSON) and `ws` (the
//!    per-device WebSocket, protobuf frames). They parse a request,
//!    authenticate the device (`auth`), call a service and encode the
//!    answer or the [`error::AppError`].
//! 2. Services (`services`): sends, a device's queue, prekeys, attachment
//!    blobs, the directory, call tokens, accounts, push endpoints. They
//!    hold the rules and take typed inputs.
//! 3. Store (`store`): SQLite / PostgreSQL persistence, and the
//!    group-commit writer through which every send and acknowledgement is
//!    stored.
//!
//! Delivery fans out beside them: once the writer commits envelopes it
//! hands each to the [`delivery::Notifier`], which on one node is the
//! local `registry` of live connections (with `push` wake-ups for devices
//! connected nowhere here). Several nodes (NATS, say) plug in behind the
//! same trait; the store knows only the trait.
//!
//! Alongside: `config` (TOML and environment), `limits` (rate limits),
//! `metrics` (Prometheus), `directory` (the directory's CSV format and
//! matching), `encoding` (base64 fields), `tls` (certificates), `audit`
//! (the schema check against the inventory).
#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod backup;
pub mod config;
pub mod delivery;
pub mod directory;
mod encoding;
pub mod error;
mod keyfile;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod push;
pub mod registry;
pub mod relay;
pub mod revocation;
mod routes;
pub mod services;
pub mod store;
pub mod tls;
pub mod transparency;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;

use crate::config::Config;
use crate::delivery::Notifier;
use crate::registry::Registry;
use crate::store::Store;

/// Protobuf frames of the WebSocket (from `starling-protocol`).
pub use starling_protocol::frames;

/// Everything a request handler needs.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// The configuration.
    pub config: Arc<Config>,
    /// Live connections of this process.
    pub registry: Arc<Registry>,
    /// Wakes devices (the registry itself on a single node).
    pub notifier: Arc<dyn Notifier>,
    /// Prometheus metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// Per-device rate limits.
    pub limits: Arc<limits::Limits>,
    /// Group commit of sends and acknowledgements.
    pub writer: store::Batcher,
    /// Signs the media relay's join tokens.
    pub call_tokens: Arc<starling_call_token::TokenSigner>,
    /// Signs sender certificates for sealed sender.
    pub certificate_keys: Arc<services::certificates::CertificateKeys>,
    /// Access records read recently, for unidentified sends.
    pub access_cache: Arc<services::access_cache::AccessCache>,
    /// The key transparency log.
    pub transparency: transparency::SharedLog,
}

impl AppState {
    /// State for one node: the registry wakes connected devices, push
    /// wakes the others. Must be called within a Tokio runtime (it starts
    /// the push sender and the transparency publisher). Loads the
    /// call-token and transparency keys from the data folder, creating
    /// them on first start.
    pub fn new(store: Store, config: Config) -> std::io::Result<Self> {
        let call_tokens = Arc::new(services::calls::load_or_create_signer(&config.data_dir)?);
        let certificate_keys = Arc::new(services::certificates::CertificateKeys::load_or_create(
            &config.data_dir,
        )?);
        let transparency = Arc::new(transparency::TransparencyLog::load(
            store.clone(),
            &config.data_dir,
        )?);
        tokio::spawn(transparency.clone().run(std::time::Duration::from_millis(
            config.transparency.publish_interval_ms,
        )));
        let registry = Arc::new(Registry::default());
        let notifier: Arc<dyn Notifier> = Arc::new(push::PushNotifier::start(
            registry.clone(),
            store.clone(),
            config.push.clone(),
        ));
        let limits = Arc::new(limits::Limits::new(&config.messages, &config.attachments));
        let metrics = Arc::new(metrics::Metrics::default());
        let writer = store::Batcher::start(
            store.clone(),
            notifier.clone(),
            metrics.clone(),
            config.messages.busy_at_queued_writes,
            config.messages.queue_caps(),
        )?;
        Ok(Self {
            store,
            config: Arc::new(config),
            notifier,
            registry,
            metrics,
            limits,
            writer,
            call_tokens,
            certificate_keys,
            access_cache: Arc::default(),
            transparency,
        })
    }
}

/// The whole API.
pub fn app(state: AppState) -> Router {
    let limit = state.config.max_request_bytes;
    routes::router()
        .merge(ws::router())
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Deletes expired envelopes and attachments every `every`, until the
/// process ends.
pub fn spawn_expiry(state: AppState, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        loop {
            ticker.tick().await;
            let ttl = i64::try_from(state.config.envelope_ttl().as_millis()).unwrap_or(i64::MAX);
            let cutoff = store::now_millis().saturating_sub(ttl);
            match state.store.delete_expired(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "dropped expired envelopes"),
                Err(e) => tracing::warn!(error = %e, "envelope expiry sweep failed"),
            }
            if let Err(e) = state.store.truncate_log().await {
                tracing::warn!(error = %e, "write-ahead log truncation failed");
            }
            state.limits.forget_idle();
            match state.store.purge_expired_codes(store::now_millis()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "dropped expired invites and link codes"),
                Err(e) => tracing::warn!(error = %e, "code purge failed"),
            }
            if let Err(e) = revocation::purge(&state).await {
                tracing::warn!(error = %e, "revocation purge failed");
            }
            match services::blobs::delete_expired(&state).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "dropped expired attachments"),
                Err(e) => tracing::warn!(error = %e, "attachment expiry sweep failed"),
            }
        }
    })
}
