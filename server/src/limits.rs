//! Per-device rate limits (token buckets, `governor`). They live in each
//! process: with several nodes a device's effective limit is the per-node
//! limit times the nodes it reaches, which still bounds abuse.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::MessagesConfig;
use crate::error::AppError;

/// A device, as rate limits see it.
pub type DeviceKey = (i64, u32);

/// The limiters of one process.
#[derive(Debug)]
pub struct Limits {
    sends: DefaultKeyedRateLimiter<DeviceKey>,
    bundle_fetches: DefaultKeyedRateLimiter<DeviceKey>,
}

fn quota(per_second: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Quota::per_second(rate).allow_burst(burst)
}

fn check(limiter: &DefaultKeyedRateLimiter<DeviceKey>, key: DeviceKey) -> Result<(), AppError> {
    limiter.check_key(&key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        AppError::TooManyRequests {
            retry_after_secs: wait.as_secs().max(1),
        }
    })
}

impl Limits {
    /// Limiters from the configuration.
    pub fn new(config: &MessagesConfig) -> Self {
        Self {
            sends: RateLimiter::keyed(quota(config.sends_per_second, config.send_burst)),
            bundle_fetches: RateLimiter::keyed(quota(
                config.bundle_fetches_per_second,
                config.bundle_fetch_burst,
            )),
        }
    }

    /// One send by `device`.
    pub fn send(&self, device: DeviceKey) -> Result<(), AppError> {
        check(&self.sends, device)
    }

    /// One bundle fetch by `device`.
    pub fn bundle_fetch(&self, device: DeviceKey) -> Result<(), AppError> {
        check(&self.bundle_fetches, device)
    }

    /// Forgets devices whose buckets are full again (bounds memory).
    pub fn forget_idle(&self) {
        self.sends.retain_recent();
        self.bundle_fetches.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_per_device() {
        let config = MessagesConfig {
            sends_per_second: 1,
            send_burst: 3,
            ..MessagesConfig::default()
        };
        let limits = Limits::new(&config);
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
}
