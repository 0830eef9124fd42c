//! # starling-test-support
//!
//! What Starling's test suites share, and nothing of any one component's
//! internals, so the server's tests, the end-to-end tests and a web
//! client's tests can all build on it:
//!
//! - [`db`]: a fresh database of each kind per test ([`TestDatabase`]):
//!   SQLite in a temporary folder, or a new PostgreSQL database created on
//!   the admin URL `STARLING_TEST_POSTGRES` and dropped afterwards; and
//!   [`both_databases!`], which runs a test body once on each.
//! - [`wait`]: waiting for a condition with a deadline ([`wait_until`],
//!   [`wait_for`], [`Wait`]) instead of sleeping and hoping; a timeout
//!   panics naming what was awaited.
//! - [`process`]: a child process whose output is kept (and copied to a
//!   log file) so a test can await a line it prints, or its port
//!   ([`WatchedChild`]).
//! - [`http`]: JSON requests to an axum `Router` in process or to a running
//!   server ([`JsonRequest`], [`Reply`]).
//! - [`metrics`]: reading one value from a Prometheus text exposition.

pub mod db;
pub mod http;
pub mod metrics;
pub mod process;
pub mod wait;

pub use db::{DbKind, TestDatabase, postgres_admin_url};
pub use http::{JsonRequest, Reply};
pub use process::WatchedChild;
pub use wait::{Wait, wait_for, wait_for_port, wait_until};

/// Runs a test body once per database kind: `both_databases!(name, body)`
/// makes a module `name` with the tests `sqlite` and `postgres`, each
/// calling `super::body(DbKind::…)` on a two-thread Tokio runtime (the
/// calling crate depends on `tokio`). Attributes before the name (such as
/// `#[cfg(unix)]`) apply to the module.
#[macro_export]
macro_rules! both_databases {
    ($(#[$meta:meta])* $name:ident, $body:ident) => {
        $(#[$meta])*
        mod $name {
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$body($crate::DbKind::Sqlite).await;
            }
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$body($crate::DbKind::Postgres).await;
            }
        }
    };
}
