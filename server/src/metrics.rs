//! Prometheus metrics (served at `GET /metrics`, text format). Counts and
//! sizes only: no usernames, device ids, addresses or content.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Envelopes stored by sends.
    pub envelopes_stored: Counter,
    /// Envelopes pushed to connected devices.
    pub envelopes_delivered: Counter,
    /// Envelopes deleted on acknowledgement.
    pub envelopes_acknowledged: Counter,
    /// Sends refused for a stale device list.
    pub stale_device_refusals: Counter,
    /// Sends refused because the group-commit writer was behind.
    pub sends_refused_busy: Counter,
    /// WebSockets dropped because the peer stopped reading (a write
    /// waited longer than two ping intervals).
    pub websockets_stalled: Counter,
    /// Envelopes not stored because their device's queue was full.
    pub envelopes_refused_queue_full: Counter,
    /// Prekey bundles handed out.
    pub bundles_served: Counter,
    /// Bundle fetches refused by the per-pair limit (one account asking
    /// too often for another's bundles).
    pub bundle_fetches_refused: Counter,
    /// Bundles handed out without a one-time prekey (the device's stock
    /// was empty): a sign of draining, or of a device long offline.
    pub one_time_prekeys_exhausted: Counter,
    /// Accounts registered.
    pub registrations: Counter,
    /// Attachment bytes received.
    pub attachment_bytes_received: Counter,
    /// Attachments refused because the account's quota was full.
    pub attachments_refused_quota: Counter,
    /// Attachments refused by the per-account creation rate.
    pub attachments_refused_rate: Counter,
    /// Sender certificates signed.
    pub certificates_issued: Counter,
    /// Sends stored without a credential (unidentified, sealed).
    pub sends_unidentified: Counter,
    /// Unidentified sends refused for an access key.
    pub sends_refused_access: Counter,
    /// Multi-recipient uploads stored (one per upload, however many
    /// devices it reached).
    pub sends_multi_recipient: Counter,
    /// Open device WebSockets.
    pub connections: Gauge,
    /// Open anonymous WebSockets (`/v1/ws/unidentified`).
    pub unidentified_connections: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("starling");
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let metric = Counter::default();
            registry.register(name, help, metric.clone());
            metric
        };
        let envelopes_stored = counter(
            &mut registry,
            "envelopes_stored",
            "Envelopes stored by sends",
        );
        let envelopes_delivered = counter(
            &mut registry,
            "envelopes_delivered",
            "Envelopes pushed to connected devices",
        );
        let envelopes_acknowledged = counter(
            &mut registry,
            "envelopes_acknowledged",
            "Envelopes deleted on acknowledgement",
        );
        let stale_device_refusals = counter(
            &mut registry,
            "stale_device_refusals",
            "Sends refused for a stale device list",
        );
        let sends_refused_busy = counter(
            &mut registry,
            "sends_refused_busy",
            "Sends refused because the writer was behind (503 server_busy)",
        );
        let websockets_stalled = counter(
            &mut registry,
            "websockets_stalled",
            "WebSockets dropped because the peer stopped reading",
        );
        let envelopes_refused_queue_full = counter(
            &mut registry,
            "envelopes_refused_queue_full",
            "Envelopes not stored because their device's queue was full",
        );
        let bundles_served = counter(
            &mut registry,
            "prekey_bundles_served",
            "Prekey bundles handed out",
        );
        let bundle_fetches_refused = counter(
            &mut registry,
            "prekey_bundle_fetches_refused",
            "Bundle fetches refused by the per-account-pair limit",
        );
        let one_time_prekeys_exhausted = counter(
            &mut registry,
            "one_time_prekeys_exhausted",
            "Bundles handed out without a one-time prekey (stock empty)",
        );
        let registrations = counter(&mut registry, "registrations", "Accounts registered");
        let attachment_bytes_received = counter(
            &mut registry,
            "attachment_bytes_received",
            "Attachment bytes received",
        );
        let attachments_refused_quota = counter(
            &mut registry,
            "attachments_refused_quota",
            "Attachments refused because the account's quota was full (409 attachment_quota_exceeded)",
        );
        let attachments_refused_rate = counter(
            &mut registry,
            "attachments_refused_rate",
            "Attachments refused by the per-account creation rate (429)",
        );
        let certificates_issued = counter(
            &mut registry,
            "sender_certificates_issued",
            "Sender certificates signed for sealed sender",
        );
        let sends_unidentified = counter(
            &mut registry,
            "sends_unidentified",
            "Sends stored without a credential (sealed, authorised by access keys)",
        );
        let sends_multi_recipient = counter(
            &mut registry,
            "sends_multi_recipient",
            "Multi-recipient sealed envelopes uploaded once and stored for each device",
        );
        let sends_refused_access = counter(
            &mut registry,
            "sends_refused_access",
            "Unidentified sends refused for an access key (401 bad_access_key)",
        );
        let connections = Gauge::default();
        registry.register(
            "websocket_connections",
            "Open device WebSockets",
            connections.clone(),
        );
        let unidentified_connections = Gauge::default();
        registry.register(
            "unidentified_websocket_connections",
            "Open anonymous WebSockets for unidentified sends",
            unidentified_connections.clone(),
        );
        Self {
            registry,
            envelopes_stored,
            envelopes_delivered,
            envelopes_acknowledged,
            stale_device_refusals,
            sends_refused_busy,
            websockets_stalled,
            envelopes_refused_queue_full,
            bundles_served,
            bundle_fetches_refused,
            one_time_prekeys_exhausted,
            registrations,
            attachment_bytes_received,
            attachments_refused_quota,
            attachments_refused_rate,
            certificates_issued,
            sends_unidentified,
            sends_refused_access,
            sends_multi_recipient,
            connections,
            unidentified_connections,
        }
    }
}

impl Metrics {
    /// The text exposition.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
