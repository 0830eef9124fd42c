//! Push wake-ups for offline devices (UnifiedPush / Web Push style): an
//! HTTP POST with an empty body to the endpoint the device registered. It
//! carries no content, no sender and no count — only "something is queued".
//!
//! Guards: endpoints must be `https://` (unless configured otherwise) and
//! must not resolve to loopback, private, link-local or otherwise internal
//! addresses (unless configured otherwise); the address is checked at
//! registration and again, after DNS resolution, before every push, and the
//! request is pinned to the checked address so DNS cannot be re-pointed in
//! between. At most one wake-up per device per `min_interval_seconds`;
//! an endpoint answering 404 or 410 is dropped.
//!
//! Wake-ups go out [`crate::config::PushConfig::max_concurrent`] at a time,
//! each within one deadline that covers name resolution, connection and
//! answer, so a slow or silent endpoint (a tarpit) holds up one slot for at
//! most that long and nobody else's wake-ups. No proxy is used, whatever
//! the environment says: the address checked is the address connected to.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};

use crate::config::PushConfig;
use crate::delivery::{CommittedEnvelope, Notifier};
use crate::registry::Registry;
use crate::store::Store;

/// Longest endpoint URL accepted.
pub const MAX_ENDPOINT_LEN: usize = 2048;
/// Wake-ups waiting to be sent; beyond this they are dropped (the devices
/// concerned get their envelopes when they next connect anyway).
const PUSH_QUEUE: usize = 4096;

/// Why an endpoint was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    /// Not a valid URL with a host.
    #[error("not a valid http(s) URL")]
    Invalid,
    /// `http://` while only `https://` is allowed.
    #[error("push endpoints must use https")]
    PlainHttp,
    /// The host does not resolve.
    #[error("the endpoint's host does not resolve")]
    Unresolvable,
    /// The host resolves to an internal address.
    #[error("the endpoint resolves to a loopback, private or internal address")]
    InternalAddress,
}

/// Whether an address is on the public internet (not loopback, private,
/// link-local, CGNAT, unspecified, multicast, documentation, benchmarking,
/// IETF-protocol or reserved; and not an IPv6 form that embeds or
/// translates an IPv4 address: NAT64, 6to4, IPv4-compatible or -mapped).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (18..20).contains(&b))
                || (a == 192 && b == 88 && c == 99))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            let ipv4_compatible = s[..6] == [0; 6];
            let nat64 = s[0] == 0x64 && s[1] == 0xff9b && (s[2..6] == [0; 4] || s[2] == 1);
            let six_to_four = s[0] == 0x2002;
            let site_local = s[0] & 0xffc0 == 0xfec0;
            let documentation =
                (s[0] == 0x2001 && s[1] == 0x0db8) || (s[0] == 0x3fff && s[1] & 0xf000 == 0);
            // SIIT-translated IPv4 (::ffff:0:a.b.c.d), Teredo (2001::/32),
            // benchmarking (2001:2::/48), ORCHID (2001:10::/28,
            // 2001:20::/28), discard (100::/64), SRv6 SIDs (5f00::/16).
            let translated = s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0;
            let teredo = s[0] == 0x2001 && s[1] == 0;
            let benchmarking = s[0] == 0x2001 && s[1] == 2 && s[2] == 0;
            let orchid = s[0] == 0x2001 && (s[1] & 0xfff0 == 0x10 || s[1] & 0xfff0 == 0x20);
            let discard = s[0] == 0x100 && s[1..4] == [0; 3];
            let srv6 = s[0] == 0x5f00;
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
                || ipv4_compatible
                || nat64
                || six_to_four
                || site_local
                || documentation
                || translated
                || teredo
                || benchmarking
                || orchid
                || discard
                || srv6)
        }
    }
}

/// Checks an endpoint and resolves it to the addresses a push may use.
pub async fn vet_endpoint(
    endpoint: &str,
    config: &PushConfig,
) -> Result<(reqwest::Url, Vec<SocketAddr>), EndpointError> {
    if endpoint.len() > MAX_ENDPOINT_LEN {
        return Err(EndpointError::Invalid);
    }
    let url = reqwest::Url::parse(endpoint).map_err(|_| EndpointError::Invalid)?;
    match url.scheme() {
        "https" => {}
        "http" if config.allow_plain_http => {}
        "http" => return Err(EndpointError::PlainHttp),
        _ => return Err(EndpointError::Invalid),
    }
    let host = url.host_str().ok_or(EndpointError::Invalid)?;
    let port = url.port_or_known_default().ok_or(EndpointError::Invalid)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| EndpointError::Unresolvable)?
        .collect();
    if addresses.is_empty() {
        return Err(EndpointError::Unresolvable);
    }
    if !config.allow_private_addresses && addresses.iter().any(|a| !is_public(a.ip())) {
        return Err(EndpointError::InternalAddress);
    }
    Ok((url, addresses))
}

/// Wakes connected devices through the registry and offline ones by push.
pub struct PushNotifier {
    registry: Arc<Registry>,
    queue: mpsc::Sender<(i64, u32)>,
}

impl PushNotifier {
    /// Starts the push sender on the current runtime.
    pub fn start(registry: Arc<Registry>, store: Store, config: PushConfig) -> Self {
        let (queue, receiver) = mpsc::channel(PUSH_QUEUE);
        tokio::spawn(run_pusher(receiver, store, config));
        Self { registry, queue }
    }
}

impl Notifier for PushNotifier {
    fn envelope_committed(&self, envelope: CommittedEnvelope) {
        let device = (envelope.account_id, envelope.device_id);
        if !self.registry.post_envelope(envelope) {
            let _ = self.queue.try_send(device);
        }
    }

    fn prekeys_low(&self, account_id: i64, device_id: u32, one_time: u32, kem: u32) {
        self.registry
            .prekeys_low(account_id, device_id, one_time, kem);
    }
}

async fn run_pusher(mut receiver: mpsc::Receiver<(i64, u32)>, store: Store, config: PushConfig) {
    let interval = Duration::from_secs(config.min_interval_seconds);
    let deadline = Duration::from_secs(config.timeout_seconds);
    let slots = Arc::new(Semaphore::new(config.max_concurrent.max(1)));
    let config = Arc::new(config);
    let mut last_push: HashMap<(i64, u32), Instant> = HashMap::new();
    while let Some(device) = receiver.recv().await {
        let now = Instant::now();
        if last_push
            .get(&device)
            .is_some_and(|t| now.duration_since(*t) < interval)
        {
            continue;
        }
        last_push.retain(|_, t| now.duration_since(*t) < interval);
        last_push.insert(device, now);
        // Wait for a free slot: wake-ups start in the order they came.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (store, config) = (store.clone(), config.clone());
        tokio::spawn(async move {
            let outcome = tokio::time::timeout(deadline, push_once(&store, &config, device)).await;
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => tracing::debug!(reason = %reason, "push wake-up not delivered"),
                Err(_) => tracing::debug!("push wake-up timed out"),
            }
            drop(slot);
        });
    }
}

async fn push_once(
    store: &Store,
    config: &PushConfig,
    (account_id, device_id): (i64, u32),
) -> Result<(), String> {
    let Some(endpoint) = store
        .push_endpoint(account_id, device_id)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(());
    };
    let (url, addresses) = vet_endpoint(&endpoint, config)
        .await
        .map_err(|e| e.to_string())?;
    let host = url.host_str().unwrap_or_default().to_string();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(config.timeout_seconds))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .resolve_to_addrs(&host, &addresses)
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .post(url)
        .header("TTL", "86400")
        .header("Urgency", "high")
        .body(Vec::new())
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
        store
            .remove_push_endpoint(account_id, device_id, Some(&endpoint))
            .await
            .map_err(|e| e.to_string())?;
        return Err(format!("endpoint gone ({status}); dropped"));
    }
    if !status.is_success() {
        return Err(format!("endpoint answered {status}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_not_public() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.0.8",
            "198.18.0.1",
            "198.19.255.255",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "fec0::1",
            "::7f00:1",
            "::a00:1",
            "2002:7f00:1::1",
            "2001:db8::1",
            "::ffff:0:7f00:1",
            "2001:0:4136:e378::1",
            "2001:2::1",
            "2001:10::1",
            "2001:20::1",
            "100::1",
            "3fff::1",
            "5f00::1",
            "192.88.99.1",
        ] {
            assert!(!is_public(internal.parse().unwrap()), "{internal}");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "192.1.0.1",
            "198.20.0.1",
            "2606:4700::1111",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn endpoints_are_vetted_before_any_connection() {
        let strict = PushConfig::default();
        let vet = |url: &'static str| {
            let config = strict.clone();
            async move { vet_endpoint(url, &config).await.map(|_| ()) }
        };
        assert_eq!(
            vet("http://push.example/x").await,
            Err(EndpointError::PlainHttp)
        );
        assert_eq!(
            vet("ftp://push.example/x").await,
            Err(EndpointError::Invalid)
        );
        assert_eq!(vet("not a url").await, Err(EndpointError::Invalid));
        assert_eq!(
            vet("https://127.0.0.1/x").await,
            Err(EndpointError::InternalAddress)
        );
        assert_eq!(
            vet("https://10.0.0.1/x").await,
            Err(EndpointError::InternalAddress)
        );
        assert_eq!(
            vet("https://[::1]:8443/x").await,
            Err(EndpointError::InternalAddress)
        );
        assert_eq!(
            vet("https://localhost/x").await,
            Err(EndpointError::InternalAddress)
        );
        let relaxed = PushConfig {
            allow_private_addresses: true,
            allow_plain_http: true,
            ..PushConfig::default()
        };
        assert!(vet_endpoint("http://127.0.0.1:9/x", &relaxed).await.is_ok());
    }
}
