//! Panic isolation: every call into one participant's str0m `Rtc` runs
//! under [`guarded`], so a panic in str0m (a bug there, reached with one
//! peer's input) costs that participant only. The caller removes the
//! participant with `LeaveReason::Fault`; its `Rtc`, whose state the
//! panic may have left half-updated, is dropped and never called again.

use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs `f`; `None` if it panicked.
///
/// `AssertUnwindSafe` is sound here because whatever `f` touches is either
/// the one participant's state, which is thrown away after a panic, or
/// the engine's queues, which only ever receive whole items.
pub(super) fn guarded<T>(f: impl FnOnce() -> T) -> Option<T> {
    let result = catch_unwind(AssertUnwindSafe(f));
    if result.is_err() {
        // The panic hook has printed the message; say which path caught it.
        tracing::error!("panic in the webrtc stack; removing the participant");
    }
    result.ok()
}

#[cfg(test)]
mod tests {
    use super::guarded;

    #[test]
    fn a_panic_becomes_none_and_a_value_passes_through() {
        assert_eq!(guarded(|| 7), Some(7));
        let mut touched = false;
        let caught: Option<()> = guarded(|| {
            touched = true;
            panic!("str0m bug");
        });
        assert!(caught.is_none());
        assert!(touched);
    }
}
