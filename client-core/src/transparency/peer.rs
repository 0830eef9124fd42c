//! Split views are caught (`crypto/SPEC.md` §16.7): every pairwise
//! content carries the sender's newest verified root, as the log key
//! signed it, and the receiver compares it with its own.
//!
//! A server that shows two people two different logs must sign two roots
//! for one epoch, or keep one of them behind for ever. So: the same epoch
//! with another root is a conflict (two signatures of the log key on one
//! epoch: proof); a root ahead of this device's is walked to with the
//! log's append-only proofs, and a walk that reaches the contact's epoch
//! on another root is a conflict too (the root the server gave this
//! device for that epoch is then its newest, the answer's proof); a root
//! behind is left to the contact, who walks to this device's root when it
//! comes. A server that cannot show this device an append-only path to
//! a root its own key signed keeps a view from it: a conflict with no
//! answer. A root under another log key or VRF key means the contact
//! pinned another log, or its app is faulty: said, with no answer.

use starling_transparency::{SignedRoot, TransparencyError};

use super::{LogError, Result, audit, remember};
use crate::storage::Storage;
use crate::transport::Transport;

/// What a contact's root says of the log this device follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRoot {
    /// The same log as far as either has seen (the same root, or one of
    /// them behind on it); nothing to say.
    Consistent,
    /// The contact was shown another root for `epoch` than this device:
    /// the server shows them different logs. `ours` is the root this
    /// device holds for that epoch, to answer with.
    Conflict {
        /// The epoch with two roots.
        epoch: u64,
        /// This device's root of that epoch.
        ours: Option<SignedRoot>,
    },
    /// The contact's root is not signed by the log key this device pinned,
    /// or is of another log: the server gave the contact another log, or
    /// the contact's app is faulty (anyone can sign bytes with some key:
    /// this is no proof against the server).
    OtherLog,
}

/// Compares the root a contact's content carried (`theirs`, as signed)
/// with this device's view of the log, walking to it when it is ahead.
/// Bytes that are no signed root say nothing (`Consistent`): a contact's
/// old client sends none.
pub async fn compare_peer_root<S: Storage, T: Transport>(
    storage: &S,
    transport: &T,
    theirs: &[u8],
) -> Result<PeerRoot, S, T> {
    let Ok(theirs) = SignedRoot::from_bytes(theirs) else {
        return Ok(PeerRoot::Consistent);
    };
    let Some(record) = storage.log_record().await.map_err(LogError::Storage)? else {
        return Ok(PeerRoot::Consistent);
    };
    let Some(ours) = record.newest else {
        return Ok(PeerRoot::Consistent);
    };
    let view = starling_transparency::LogView::restore(record.pins, record.newest_root());
    let epoch = theirs.statement.epoch;
    let root = match view.accept_root(&theirs) {
        Ok(root) => root,
        Err(TransparencyError::BadRootSignature { .. } | TransparencyError::OtherLog { .. }) => {
            return Ok(PeerRoot::OtherLog);
        }
        Err(TransparencyError::Fork { epoch }) => {
            return Ok(PeerRoot::Conflict {
                epoch,
                ours: Some(ours),
            });
        }
        // Signed by the log key, for an epoch no log reaches.
        Err(TransparencyError::MalformedRoot(_)) => {
            return Ok(PeerRoot::Conflict { epoch, ours: None });
        }
        // Behind this device's newest: the contact walks to ours.
        Err(_) => return Ok(PeerRoot::Consistent),
    };
    let Some(from) = view.audit_from(&root) else {
        return Ok(PeerRoot::Consistent);
    };
    match audit::<S, T>(storage, transport, record.pins, from, &root).await {
        Ok(()) => {
            remember::<S, T>(storage, record.pins, &theirs).await?;
            Ok(PeerRoot::Consistent)
        }
        Err(LogError::Log(TransparencyError::Fork { .. })) => {
            // The walk stored the root the server gave this device for
            // the contact's epoch: the answer.
            let stored = storage.log_record().await.map_err(LogError::Storage)?;
            let ours = stored
                .and_then(|r| r.newest)
                .filter(|signed| signed.statement.epoch == epoch);
            Ok(PeerRoot::Conflict { epoch, ours })
        }
        // The server cannot show this device an append-only path to a
        // root its own key signed (a gap, a step that does not decode or
        // verify): a view it keeps from this device.
        Err(LogError::Log(_)) => Ok(PeerRoot::Conflict { epoch, ours: None }),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Memory, run};
    use crate::transparency::LogRecord;

    /// A device that verified the fake log's newest root, at epoch 2.
    fn at_epoch_two() -> Memory {
        let memory = Memory::default();
        memory.log.prove("carol", &[(1, [1; 64])]);
        memory.log.prove("dave", &[(1, [2; 64])]);
        *memory.log_record.borrow_mut() = Some(LogRecord {
            pins: memory.log.pins(),
            newest: memory.log.newest(),
        });
        memory
    }

    fn compare(memory: &Memory, theirs: &SignedRoot) -> PeerRoot {
        run(compare_peer_root(memory, memory, &theirs.to_bytes())).unwrap()
    }

    #[test]
    fn the_same_root_and_a_root_behind_are_consistent() {
        let memory = at_epoch_two();
        let ours = memory.log.newest().unwrap();
        assert_eq!(compare(&memory, &ours), PeerRoot::Consistent);
        let behind = memory.log.root_at(1);
        assert_eq!(compare(&memory, &behind), PeerRoot::Consistent);
        let garbage = run(compare_peer_root(&memory, &memory, b"not a root")).unwrap();
        assert_eq!(garbage, PeerRoot::Consistent);
    }

    #[test]
    fn another_root_for_the_same_epoch_is_a_conflict() {
        let memory = at_epoch_two();
        let ours = memory.log.newest().unwrap();
        let forged = memory.log.sign(2, [9; 32]);
        assert_eq!(
            compare(&memory, &forged),
            PeerRoot::Conflict {
                epoch: 2,
                ours: Some(ours)
            }
        );
    }

    #[test]
    fn a_root_ahead_is_walked_to_and_kept() {
        let memory = at_epoch_two();
        memory.log.prove("erin", &[(1, [3; 64])]);
        let theirs = memory.log.newest().unwrap();
        assert_eq!(compare(&memory, &theirs), PeerRoot::Consistent);
        let record = memory.log_record.borrow().unwrap();
        assert_eq!(record.newest, Some(theirs));
    }

    #[test]
    fn a_root_ahead_the_log_does_not_reach_is_a_conflict() {
        let memory = at_epoch_two();
        memory.log.prove("erin", &[(1, [3; 64])]);
        let servers = memory.log.newest().unwrap();
        // The contact was shown another epoch 3.
        let forged = memory.log.sign(3, [9; 32]);
        assert_eq!(
            compare(&memory, &forged),
            PeerRoot::Conflict {
                epoch: 3,
                ours: Some(servers)
            }
        );
    }

    #[test]
    fn a_walk_the_server_breaks_is_a_conflict_without_an_answer() {
        let memory = at_epoch_two();
        // A root the log key signed for epoch 3, which the server then
        // shows no step to.
        let theirs = memory.log.sign(3, [9; 32]);
        assert_eq!(
            compare(&memory, &theirs),
            PeerRoot::Conflict {
                epoch: 3,
                ours: None
            }
        );
    }

    #[test]
    fn a_root_of_another_log_is_another_log() {
        let memory = at_epoch_two();
        let other = crate::testing::TestLog::default();
        other.prove("carol", &[(1, [1; 64])]);
        let theirs = other.newest().unwrap();
        assert_eq!(compare(&memory, &theirs), PeerRoot::OtherLog);
    }
}
