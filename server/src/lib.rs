//! # starling-server
//!
//! Routes end-to-end encrypted envelopes between devices and stores only
//! what routing needs (see `DATA_INVENTORY.md`). [`app`] builds the HTTP
//! and WebSocket API on an [`AppState`]; `main.rs` wraps it in TLS and the
//! command line.
//!
//! - `config`: the TOML configuration and environment overrides.
//! - `store`: SQLite / PostgreSQL persistence.
//! - `auth`: device credentials.
//! - `routes`: the `/v1` HTTP API.
//! - `ws`: the per-device WebSocket carrying protobuf frames.
//! - `services`: what the routes and the WebSocket call (sends, a device's
//!   queue).
//! - `encoding`: base64 fields of the JSON API.
//! - `delivery`: the notifier that wakes devices, and the committed
//!   envelopes the group-commit writer hands it.
//! - `registry`: live connections (the notifier of a single node).
//! - `tls`: certificates. `audit`: the schema check against the inventory.
#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod config;
pub mod delivery;
pub mod directory;
mod encoding;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod push;
pub mod registry;
pub mod routes;
pub mod services;
pub mod store;
pub mod tls;
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
}

impl AppState {
    /// State for one node: the registry wakes connected devices, push
    /// wakes the others. Must be called within a Tokio runtime (it starts
    /// the push sender). Loads the call-token key from the data folder,
    /// creating it on first start.
    pub fn new(store: Store, config: Config) -> std::io::Result<Self> {
        let call_tokens = Arc::new(services::calls::load_or_create_signer(&config.data_dir)?);
        let registry = Arc::new(Registry::default());
        let notifier: Arc<dyn Notifier> = Arc::new(push::PushNotifier::start(
            registry.clone(),
            store.clone(),
            config.push.clone(),
        ));
        let limits = Arc::new(limits::Limits::new(&config.messages));
        let metrics = Arc::new(metrics::Metrics::default());
        let writer = store::Batcher::start(
            store.clone(),
            notifier.clone(),
            metrics.clone(),
            config.messages.busy_at_queued_writes,
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
            match state.store.delete_expired(store::now_millis()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "dropped expired envelopes"),
                Err(e) => tracing::warn!(error = %e, "envelope expiry sweep failed"),
            }
            state.limits.forget_idle();
            match services::blobs::delete_expired(&state).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "dropped expired attachments"),
                Err(e) => tracing::warn!(error = %e, "attachment expiry sweep failed"),
            }
        }
    })
}
