//! Revocations reach every server process: removing a device or disabling
//! an account records a revocation in the database (in the transaction
//! that does it), and each process polls for new ones and closes the
//! affected live connections through its [`crate::registry::Registry`].
//! The process that removed a device closes its connections at once;
//! `starling-server admin disable`, a separate process, is seen by the
//! running servers at their next poll.

use std::collections::HashSet;
use std::time::Duration;

use crate::AppState;
use crate::store::now_millis;

/// How often each process looks for new revocations.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// How far back each poll looks. Ids are not committed in the order they
/// are given (two transactions on PostgreSQL), so a poll does not start
/// after the last id it saw: it reads a window and skips the ids it has
/// applied. Applying one twice would be harmless anyway.
const LOOK_BACK_MILLIS: i64 = 60_000;

/// How long a revocation is kept: far longer than any process takes to
/// see it.
const KEEP_MILLIS: i64 = 60 * 60 * 1000;

/// Polls for revocations every `every` and closes the connections they
/// name; a failed poll is logged and retried at the next tick. What was
/// recorded before the process started concerns no connection of it.
pub fn spawn_revocations(state: AppState, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started = now_millis();
        let mut applied: HashSet<i64> = HashSet::new();
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let since = now_millis().saturating_sub(LOOK_BACK_MILLIS);
            match state.store.revocations_since(since.max(started)).await {
                Ok(revocations) => {
                    let seen: HashSet<i64> = revocations.iter().map(|r| r.id).collect();
                    for revocation in revocations {
                        if !applied.insert(revocation.id) {
                            continue;
                        }
                        if revocation.device_id.is_none() {
                            // A disabled account takes no more sends.
                            state.access_cache.forget_account(revocation.account_id);
                        }
                        let closed = state
                            .registry
                            .revoke(revocation.account_id, revocation.device_id);
                        if closed > 0 {
                            tracing::info!(closed, "closed revoked connections");
                        }
                    }
                    // Only what the window still shows needs remembering.
                    applied.retain(|id| seen.contains(id));
                }
                Err(error) => tracing::warn!(%error, "reading revocations failed"),
            }
        }
    })
}

/// Forgets revocations every process has long applied.
pub async fn purge(state: &AppState) -> Result<u64, sqlx::Error> {
    state
        .store
        .purge_revocations(now_millis().saturating_sub(KEEP_MILLIS))
        .await
}
