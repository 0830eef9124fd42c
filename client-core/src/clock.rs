//! [`Clock`]: where the core's "now" comes from. The core never reads the
//! system clock; the shell passes one in (the system's, or a fixed one in
//! tests), so every time-based decision can be replayed.

/// Wall-clock time, as the shell sees it.
pub trait Clock {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> i64;

    /// Whole seconds since the Unix epoch (0 before it).
    fn now_secs(&self) -> u64 {
        u64::try_from(self.now_millis() / 1000).unwrap_or(0)
    }
}

/// A clock that always says the same time: for tests and replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedClock(pub i64);

impl Clock for FixedClock {
    fn now_millis(&self) -> i64 {
        self.0
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now_millis(&self) -> i64 {
        (**self).now_millis()
    }
}
