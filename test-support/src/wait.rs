//! Waiting for what a test is really waiting for, with a deadline.
//!
//! A test that sleeps "long enough" is slow when the machine is fast and
//! flaky when it is slow. These helpers poll a condition until it holds
//! and panic, naming what was awaited, when the deadline passes first. A
//! condition that itself hangs (a request that never returns) is cut off
//! by the same deadline.
//!
//! ```no_run
//! # async fn example(rows: impl Fn() -> usize) {
//! use std::time::Duration;
//! use starling_test_support::wait_until;
//!
//! wait_until(Duration::from_secs(10), "the row to be stored", || async { rows() == 1 }).await;
//! # }
//! ```
//!
//! Where the event itself can be awaited (a channel, a stream, a line a
//! child prints: [`crate::WatchedChild::wait_for_line`]), await it with
//! `tokio::time::timeout` instead of polling.

use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

/// How often a condition is checked unless told otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(10);

/// A wait for a condition: what is awaited, for how long, and how often it
/// is checked. [`wait_until`] and [`wait_for`] are the common cases.
#[derive(Clone, Debug)]
pub struct Wait {
    what: String,
    timeout: Duration,
    interval: Duration,
}

impl Wait {
    /// A wait of at most `timeout` for `what` (said in the panic message:
    /// "timed out after 10s waiting for {what}").
    pub fn new(timeout: Duration, what: impl Display) -> Self {
        Self {
            what: what.to_string(),
            timeout,
            interval: DEFAULT_INTERVAL,
        }
    }

    /// Checks every `interval` rather than every [`DEFAULT_INTERVAL`] (a
    /// state that lasts only briefly needs a shorter one).
    pub fn every(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Waits until `condition` returns `true`.
    pub async fn until<F, Fut>(self, mut condition: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        self.for_some(|| {
            let check = condition();
            async move { check.await.then_some(()) }
        })
        .await;
    }

    /// Waits until `check` returns `Some`, and returns what it held.
    pub async fn for_some<T, F, Fut>(self, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        self.for_ok(|| {
            let check = check();
            async move { check.await.ok_or("not yet") }
        })
        .await
    }

    /// Waits until `check` returns `Ok`, and returns what it held; the
    /// panic message on timeout includes the last error.
    pub async fn for_ok<T, E, F, Fut>(self, mut check: F) -> T
    where
        E: Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let deadline = Instant::now() + self.timeout;
        let mut last = String::from("never checked");
        loop {
            match tokio::time::timeout_at(deadline, check()).await {
                Ok(Ok(value)) => return value,
                Ok(Err(error)) => last = error.to_string(),
                Err(_) => last = format!("{last}; the last check did not finish in time"),
            }
            if Instant::now() + self.interval > deadline {
                panic!(
                    "timed out after {:?} waiting for {} (last check: {last})",
                    self.timeout, self.what
                );
            }
            tokio::time::sleep(self.interval).await;
        }
    }
}

/// Waits at most `timeout` until `condition` returns `true`; panics naming
/// `what` otherwise. `condition` is a closure returning a future:
/// `|| async { … }`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: impl Display, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    Wait::new(timeout, what).until(condition).await;
}

/// Waits at most `timeout` until `check` returns `Some`, and returns what
/// it held; panics naming `what` otherwise.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: impl Display, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    Wait::new(timeout, what).for_some(check).await
}

/// Waits at most `timeout` until something accepts TCP connections on
/// `addr`.
pub async fn wait_for_port(timeout: Duration, addr: SocketAddr) {
    Wait::new(timeout, format!("{addr} to accept connections"))
        .for_ok(|| async move { tokio::net::TcpStream::connect(addr).await.map(drop) })
        .await;
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn returns_once_the_condition_holds() {
        let calls = AtomicU32::new(0);
        wait_until(Duration::from_secs(5), "the third check", || async {
            calls.fetch_add(1, Ordering::Relaxed) == 2
        })
        .await;
        assert_eq!(calls.load(Ordering::Relaxed), 3);
        let value = wait_for(Duration::from_secs(5), "a value", || async { Some(7) }).await;
        assert_eq!(value, 7);
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for the impossible (last check: not yet)")]
    async fn panics_naming_what_was_awaited() {
        wait_until(Duration::from_millis(50), "the impossible", || async {
            false
        })
        .await;
    }

    #[tokio::test]
    #[should_panic(expected = "did not finish in time")]
    async fn a_hanging_check_is_cut_off_by_the_deadline() {
        wait_until(Duration::from_millis(50), "a hanging check", || {
            std::future::pending::<bool>()
        })
        .await;
    }

    /// Waits are spawned onto runtimes, so their futures must be `Send`.
    #[test]
    fn waits_are_send() {
        fn send<T: Send>(_: T) {}
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        send(wait_for_port(Duration::from_secs(1), addr));
        let shared = String::from("borrowed by the checks");
        send(wait_until(Duration::from_secs(1), "x", || async {
            !shared.is_empty()
        }));
        send(wait_for(Duration::from_secs(1), "x", || async {
            shared.chars().next()
        }));
    }

    #[tokio::test]
    async fn a_listening_port_is_found() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("its address");
        wait_for_port(Duration::from_secs(5), addr).await;
    }
}
