//! Rate limits (token buckets, `governor`): per device for sends,
//! bundle fetches and lookups (device lists, key histories, directory),
//! per (requester account, target account) pair for
//! the bundles claimed, as Signal's server does, so that no one account can
//! drain another's one-time prekeys, and per account for attachments
//! created. They live in each process: with
//! several nodes a device's effective limit is the per-node limit times
//! the nodes it reaches, which still bounds abuse.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::{AttachmentsConfig, MessagesConfig};
use crate::error::AppError;

/// A device, as rate limits see it.
pub type DeviceKey = (i64, u32);

/// The address an unidentified sender is counted under: IPv4-mapped
/// IPv6 as IPv4, other IPv6 by its /64 (one host's share).
pub fn peer_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            IpAddr::V6(octets.into())
        }
        v4 => v4,
    }
}

/// A requesting account and the account whose bundles it claims.
pub type PairKey = (i64, i64);

/// The limiters of one process.
#[derive(Debug)]
pub struct Limits {
    sends: DefaultKeyedRateLimiter<DeviceKey>,
    /// The send bucket's size: no send costs more.
    send_burst: u32,
    bundle_fetches: DefaultKeyedRateLimiter<DeviceKey>,
    bundle_pairs: DefaultKeyedRateLimiter<PairKey>,
    prekey_uploads: DefaultKeyedRateLimiter<DeviceKey>,
    attachment_creations: DefaultKeyedRateLimiter<i64>,
    certificates: DefaultKeyedRateLimiter<DeviceKey>,
    call_tokens: DefaultKeyedRateLimiter<DeviceKey>,
    lookups: DefaultKeyedRateLimiter<DeviceKey>,
    directory_copies: DefaultKeyedRateLimiter<DeviceKey>,
    /// Unidentified sends by peer address (a /64 for IPv6).
    unidentified_peers: DefaultKeyedRateLimiter<IpAddr>,
    /// Unidentified sends by anonymous WebSocket from this host (a local
    /// client or a proxy), by connection number.
    unidentified_connections: DefaultKeyedRateLimiter<u64>,
    /// Refused access keys, by destination username (whatever key was
    /// presented, so that varying the guess does not help).
    access_refusals: DefaultKeyedRateLimiter<String>,
    /// Unidentified sends admitted to an account, all senders together.
    destinations: DefaultKeyedRateLimiter<i64>,
}

/// Unidentified sends a peer address may make a second, and at once:
/// charged before the access key is checked.
pub const UNIDENTIFIED_PEER_RATE: (u32, u32) = (100, 500);
/// Refused access keys a second, and at once, for one destination: past
/// them a wrong key is answered 429, so guessing is slow whatever keys
/// are tried (keys are 128-bit; this also bounds the lookups it costs).
pub const ACCESS_REFUSAL_RATE: (u32, u32) = (10, 100);
/// Unidentified sends a second, and at once, that one account receives
/// from everyone: charged only once the key is checked, so wrong keys
/// cannot use up a destination's bucket.
pub const DESTINATION_RATE: (u32, u32) = (200, 2000);

/// Sender certificates a device may fetch an hour, and at once: a client
/// fetches one a day, and again after a restart or a refusal.
const CERTIFICATES_PER_HOUR: u32 = 12;

/// Relay join tokens a device may fetch an hour, and at once: one per
/// call joined (each is used once). A token joins any call, so this also
/// bounds how many participants one device can put into calls.
const CALL_TOKENS_PER_HOUR: (u32, u32) = (30, 5);

/// Whole-directory copies a device may fetch an hour, and at once: a
/// client fetches one a day.
pub const DIRECTORY_COPIES_PER_HOUR: (u32, u32) = (6, 6);

fn quota(per_second: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Quota::per_second(rate).allow_burst(burst)
}

/// `per_hour` tokens an hour (at least one), `burst` at once.
fn hourly_quota(per_hour: u32, burst: u32) -> Quota {
    let period = Duration::from_secs(3600) / per_hour.max(1);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_hour(NonZeroU32::MIN))
        .allow_burst(burst)
}

fn too_many(not_until: &governor::NotUntil<governor::clock::QuantaInstant>) -> AppError {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    AppError::TooManyRequests {
        retry_after_secs: wait.as_secs().max(1),
    }
}

fn check<K>(limiter: &DefaultKeyedRateLimiter<K>, key: K) -> Result<(), AppError>
where
    K: Clone + Eq + std::hash::Hash,
{
    limiter.check_key(&key).map_err(|n| too_many(&n))
}

/// `n` tokens of `key`'s bucket at once (all or nothing).
fn check_n<K>(limiter: &DefaultKeyedRateLimiter<K>, key: K, n: usize) -> Result<(), AppError>
where
    K: Clone + Eq + std::hash::Hash,
{
    let n = u32::try_from(n)
        .ok()
        .and_then(NonZeroU32::new)
        .unwrap_or(NonZeroU32::MAX);
    match limiter.check_key_n(&key, n) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(not_until)) => Err(too_many(&not_until)),
        // More than a whole bucket at once: it never fits.
        Err(_) => Err(AppError::TooManyRequests {
            retry_after_secs: 3600,
        }),
    }
}

impl Limits {
    /// Limiters from the configuration.
    pub fn new(config: &MessagesConfig, attachments: &AttachmentsConfig) -> Self {
        Self {
            sends: RateLimiter::keyed(quota(config.sends_per_second, config.send_burst)),
            send_burst: config.send_burst.max(1),
            bundle_fetches: RateLimiter::keyed(quota(
                config.bundle_fetches_per_second,
                config.bundle_fetch_burst,
            )),
            bundle_pairs: RateLimiter::keyed(hourly_quota(
                config.bundles_per_pair_per_hour,
                config.bundle_pair_burst,
            )),
            prekey_uploads: RateLimiter::keyed(hourly_quota(
                config.prekey_uploads_per_hour,
                config.prekey_upload_burst,
            )),
            attachment_creations: RateLimiter::keyed(hourly_quota(
                attachments.creations_per_hour,
                attachments.creation_burst,
            )),
            certificates: RateLimiter::keyed(hourly_quota(
                CERTIFICATES_PER_HOUR,
                CERTIFICATES_PER_HOUR,
            )),
            call_tokens: RateLimiter::keyed(hourly_quota(
                CALL_TOKENS_PER_HOUR.0,
                CALL_TOKENS_PER_HOUR.1,
            )),
            lookups: RateLimiter::keyed(quota(config.lookups_per_second, config.lookup_burst)),
            directory_copies: RateLimiter::keyed(hourly_quota(
                DIRECTORY_COPIES_PER_HOUR.0,
                DIRECTORY_COPIES_PER_HOUR.1,
            )),
            unidentified_peers: RateLimiter::keyed(quota(
                UNIDENTIFIED_PEER_RATE.0,
                UNIDENTIFIED_PEER_RATE.1,
            )),
            unidentified_connections: RateLimiter::keyed(quota(
                UNIDENTIFIED_PEER_RATE.0,
                UNIDENTIFIED_PEER_RATE.1,
            )),
            access_refusals: RateLimiter::keyed(quota(
                ACCESS_REFUSAL_RATE.0,
                ACCESS_REFUSAL_RATE.1,
            )),
            destinations: RateLimiter::keyed(quota(DESTINATION_RATE.0, DESTINATION_RATE.1)),
        }
    }

    /// One send by `device`.
    pub fn send(&self, device: DeviceKey) -> Result<(), AppError> {
        check(&self.sends, device)
    }

    /// A send by `device` to `recipients` accounts at once: one token per
    /// recipient, so a multi-recipient send costs what separate ones would,
    /// but never more than a whole burst (a group larger than the burst can
    /// still send, once the bucket is full).
    pub fn send_to(&self, device: DeviceKey, recipients: usize) -> Result<(), AppError> {
        let burst = usize::try_from(self.send_burst).unwrap_or(usize::MAX);
        check_n(&self.sends, device, recipients.clamp(1, burst))
    }

    /// One prekey upload by `device`.
    pub fn prekey_upload(&self, device: DeviceKey) -> Result<(), AppError> {
        check(&self.prekey_uploads, device)
    }

    /// One sender certificate for `device`.
    pub fn certificate(&self, device: DeviceKey) -> Result<(), AppError> {
        check(&self.certificates, device)
    }

    /// One relay join token for `device`.
    pub fn call_token(&self, device: DeviceKey) -> Result<(), AppError> {
        check(&self.call_tokens, device)
    }

    /// One lookup by `device`: a device list, a key history or a
    /// directory search.
    pub fn lookup(&self, device: DeviceKey) -> Result<(), AppError> {
        check(&self.lookups, device)
    }

    /// One copy of the whole directory for `device`.
    pub fn directory_copy(&self, device: DeviceKey) -> Result<(), AppError> {
        check(&self.directory_copies, device)
    }

    /// One attachment created by any device of `account`.
    pub fn attachment_creation(&self, account: i64) -> Result<(), AppError> {
        check(&self.attachment_creations, account)
    }

    /// One bundle fetch by `device`.
    pub fn bundle_fetch(&self, device: DeviceKey) -> Result<(), AppError> {
        check(&self.bundle_fetches, device)
    }

    /// `bundles` bundles claimed by `requester` of `target`'s devices
    /// (all or nothing). An account's own devices are not limited.
    pub fn bundle_pair(&self, requester: i64, target: i64, bundles: usize) -> Result<(), AppError> {
        if requester == target || bundles == 0 {
            return Ok(());
        }
        check_n(&self.bundle_pairs, (requester, target), bundles)
    }

    /// An unidentified send from `peer` to `destinations` accounts: one
    /// token per destination, as each costs a lookup.
    pub fn unidentified_peer(&self, peer: IpAddr, destinations: usize) -> Result<(), AppError> {
        check_n(
            &self.unidentified_peers,
            peer_key(peer),
            destinations.max(1),
        )
    }

    /// An unidentified send on anonymous WebSocket `connection` from this
    /// host, to `destinations` accounts: the peer limit, per connection.
    pub fn unidentified_connection(
        &self,
        connection: u64,
        destinations: usize,
    ) -> Result<(), AppError> {
        check_n(
            &self.unidentified_connections,
            connection,
            destinations.max(1),
        )
    }

    /// A refused access key for `destination`.
    pub fn access_refused(&self, destination: &str) -> Result<(), AppError> {
        check(&self.access_refusals, destination.to_owned())
    }

    /// One unidentified send admitted to `account`.
    pub fn destination(&self, account: i64) -> Result<(), AppError> {
        check(&self.destinations, account)
    }

    /// Forgets devices and pairs whose buckets are full again (bounds
    /// memory).
    pub fn forget_idle(&self) {
        self.unidentified_peers.retain_recent();
        self.unidentified_connections.retain_recent();
        self.access_refusals.retain_recent();
        self.destinations.retain_recent();
        self.sends.retain_recent();
        self.bundle_fetches.retain_recent();
        self.bundle_pairs.retain_recent();
        self.prekey_uploads.retain_recent();
        self.attachment_creations.retain_recent();
        self.certificates.retain_recent();
        self.call_tokens.retain_recent();
        self.lookups.retain_recent();
        self.directory_copies.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_counted_by_host() {
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(peer_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(peer_key(a), peer_key(b));
        assert_ne!(peer_key(a), peer_key(other));
        assert!(peer_key("::ffff:127.0.0.1".parse().unwrap()).is_loopback());
    }

    #[test]
    fn burst_then_refusal_per_device() {
        let config = MessagesConfig {
            sends_per_second: 1,
            send_burst: 3,
            ..MessagesConfig::default()
        };
        let limits = Limits::new(&config, &AttachmentsConfig::default());
        for _ in 0..3 {
            limits.send((1, 1)).unwrap();
        }
        let error = limits.send((1, 1)).unwrap_err();
        assert!(matches!(
            error,
            AppError::TooManyRequests {
                retry_after_secs: 1
            }
        ));
        limits.send((1, 2)).unwrap(); // another device has its own bucket
    }

    #[test]
    fn a_send_to_more_recipients_than_the_burst_costs_the_burst() {
        let config = MessagesConfig {
            sends_per_second: 1,
            send_burst: 3,
            ..MessagesConfig::default()
        };
        let limits = Limits::new(&config, &AttachmentsConfig::default());
        limits.send_to((1, 1), 10).unwrap();
        assert!(limits.send_to((1, 1), 1).is_err());
    }

    #[test]
    fn bundles_are_limited_per_pair_of_accounts() {
        let config = MessagesConfig {
            bundles_per_pair_per_hour: 1,
            bundle_pair_burst: 4,
            ..MessagesConfig::default()
        };
        let limits = Limits::new(&config, &AttachmentsConfig::default());
        // A `*` fetch of three devices spends three tokens.
        limits.bundle_pair(1, 2, 3).unwrap();
        limits.bundle_pair(1, 2, 1).unwrap();
        assert!(limits.bundle_pair(1, 2, 1).is_err());
        assert!(limits.bundle_pair(1, 2, 9).is_err());
        // Another requester, another target, one's own account: unaffected.
        limits.bundle_pair(3, 2, 4).unwrap();
        limits.bundle_pair(1, 5, 4).unwrap();
        limits.bundle_pair(1, 1, 100).unwrap();
    }

    #[test]
    fn lookups_and_directory_copies_are_limited_per_device() {
        let config = MessagesConfig {
            lookups_per_second: 1,
            lookup_burst: 3,
            ..MessagesConfig::default()
        };
        let limits = Limits::new(&config, &AttachmentsConfig::default());
        for _ in 0..3 {
            limits.lookup((1, 1)).unwrap();
        }
        assert!(limits.lookup((1, 1)).is_err());
        limits.lookup((1, 2)).unwrap();
        for _ in 0..DIRECTORY_COPIES_PER_HOUR.1 {
            limits.directory_copy((1, 1)).unwrap();
        }
        let error = limits.directory_copy((1, 1)).unwrap_err();
        assert!(matches!(
            error,
            AppError::TooManyRequests { retry_after_secs } if retry_after_secs > 60
        ));
        limits.directory_copy((2, 1)).unwrap();
    }

    #[test]
    fn attachment_creations_are_limited_per_account() {
        let attachments = AttachmentsConfig {
            creations_per_hour: 1,
            creation_burst: 2,
            ..AttachmentsConfig::default()
        };
        let limits = Limits::new(&MessagesConfig::default(), &attachments);
        limits.attachment_creation(1).unwrap();
        limits.attachment_creation(1).unwrap();
        let error = limits.attachment_creation(1).unwrap_err();
        assert!(matches!(
            error,
            AppError::TooManyRequests { retry_after_secs } if retry_after_secs > 3000
        ));
        limits.attachment_creation(2).unwrap(); // another account
    }
}
