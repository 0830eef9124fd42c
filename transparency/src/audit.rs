//! The append-only check (`crypto/SPEC.md` §16.4): from a root a client or
//! an auditor has verified, each following epoch's signed root, and akd's
//! proof that the tree at that epoch only added leaves to the one before.
//!
//! [`AuditChain`] is the pure part: it checks each step's signed root (the
//! log key, this log, the next epoch) and says which two roots the step's
//! proof must join. The proof itself is checked by akd's auditor
//! ([`verify_append_only`], feature `audit`), which rebuilds the two trees
//! in memory and runs on an async runtime the caller provides.

use akd_core::proto::specs::types as proto;
use protobuf::Message as _;

use crate::TransparencyError;
use crate::root::SignedRoot;
use crate::verify::{LogPins, LogView, VerifiedRoot};

/// Largest encoded append-only proof of one epoch a client decodes: an
/// epoch of 10,000 changes in a directory of 100,000 proves in about 4 MiB,
/// and the server caps an epoch at 20,000 changes (about 8 MiB).
pub const MAX_AUDIT_PROOF_LEN: usize = 16 * 1024 * 1024;

/// What one step's append-only proof must show: the tree of `end` at
/// `epoch` holds every leaf of the tree of `start` at `epoch − 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOnlyClaim {
    /// The root of the epoch before.
    pub start: [u8; 32],
    /// The root of `epoch`.
    pub end: [u8; 32],
    /// The epoch the step ends at.
    pub epoch: u64,
}

/// A walk along the log from a verified root, one epoch at a time.
#[derive(Debug, Clone)]
pub struct AuditChain {
    view: LogView,
    at: (u64, [u8; 32]),
}

impl AuditChain {
    /// A walk from the root `from` (epoch, root) of the log pinned by
    /// `pins`.
    pub fn new(pins: LogPins, from: (u64, [u8; 32])) -> Self {
        Self {
            view: LogView::restore(pins, Some(from)),
            at: from,
        }
    }

    /// The epoch and root the walk has reached.
    pub fn at(&self) -> (u64, [u8; 32]) {
        self.at
    }

    /// Checks the next step's signed root: the log key's signature, this
    /// log, and the epoch right after the one reached. Returns what the
    /// step's proof must show.
    pub fn next(&self, signed: &SignedRoot) -> Result<AppendOnlyClaim, TransparencyError> {
        let root = self.view.accept_root(signed)?;
        let expected = self
            .at
            .0
            .checked_add(1)
            .ok_or(TransparencyError::AuditGap {
                expected: self.at.0,
                served: root.epoch(),
            })?;
        if root.epoch() != expected {
            return Err(TransparencyError::AuditGap {
                expected,
                served: root.epoch(),
            });
        }
        Ok(AppendOnlyClaim {
            start: self.at.1,
            end: root.root(),
            epoch: root.epoch(),
        })
    }

    /// Moves on past a step whose proof held.
    pub fn advance(&mut self, claim: AppendOnlyClaim) {
        self.at = (claim.epoch, claim.end);
        self.view = LogView::restore(*self.view.pins(), Some(self.at));
    }

    /// Whether the walk reached `root` exactly: the same epoch with
    /// another root is a fork.
    pub fn reached(&self, root: &VerifiedRoot) -> Result<bool, TransparencyError> {
        if self.at.0 < root.epoch() {
            return Ok(false);
        }
        if self.at != (root.epoch(), root.root()) {
            return Err(TransparencyError::Fork {
                epoch: root.epoch(),
            });
        }
        Ok(true)
    }
}

/// Decodes akd's protobuf `SingleAppendOnlyProof`, refusing one over
/// [`MAX_AUDIT_PROOF_LEN`].
pub fn decode_step(bytes: &[u8]) -> Result<akd_core::SingleAppendOnlyProof, TransparencyError> {
    if bytes.len() > MAX_AUDIT_PROOF_LEN {
        return Err(TransparencyError::MalformedProof("too long".into()));
    }
    let proof = proto::SingleAppendOnlyProof::parse_from_bytes(bytes)
        .map_err(|e| TransparencyError::MalformedProof(e.to_string()))?;
    akd_core::SingleAppendOnlyProof::try_from(&proof)
        .map_err(|e| TransparencyError::MalformedProof(e.to_string()))
}

/// Checks one step's append-only proof (akd's protobuf
/// `SingleAppendOnlyProof`) against `claim`, with akd's auditor. It may
/// spawn tasks: call it on a Tokio runtime.
#[cfg(feature = "audit")]
pub async fn verify_append_only(
    proof: &[u8],
    claim: &AppendOnlyClaim,
) -> Result<(), TransparencyError> {
    let proof = decode_step(proof)?;
    if claim.epoch == 0 {
        return Err(TransparencyError::MalformedProof(
            "a step to epoch 0".into(),
        ));
    }
    akd::auditor::verify_consecutive_append_only::<crate::LogConfig>(
        &proof,
        claim.start,
        claim.end,
        claim.epoch,
    )
    .await
    .map_err(|_| TransparencyError::NotAppendOnly { epoch: claim.epoch })
}

/// The root of akd's empty tree: the log at epoch 0, which the first
/// epoch's append-only proof starts from.
#[cfg(feature = "audit")]
pub async fn empty_root() -> Result<[u8; 32], TransparencyError> {
    let manager = akd::storage::StorageManager::new_no_cache(
        akd::storage::memory::AsyncInMemoryDatabase::new(),
    );
    let failed = |e: akd::errors::AkdError| TransparencyError::MalformedProof(e.to_string());
    let azks = akd::append_only_zks::Azks::new::<crate::LogConfig, _>(&manager)
        .await
        .map_err(failed)?;
    azks.get_root_hash::<crate::LogConfig, _>(&manager)
        .await
        .map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CONFIGURATION_ID, LogSigningKey, RootStatement};

    fn signed(key: &LogSigningKey, epoch: u64, root: u8) -> SignedRoot {
        key.sign(RootStatement {
            configuration: CONFIGURATION_ID,
            epoch,
            root: [root; 32],
            vrf_public_key: [9; 32],
            published_hour: 1,
        })
    }

    fn chain(key: &LogSigningKey, at: u64) -> AuditChain {
        let pins = LogPins {
            log_key: key.public(),
            vrf_public_key: [9; 32],
        };
        AuditChain::new(pins, (at, [1; 32]))
    }

    #[test]
    fn each_step_is_the_next_epoch_and_joins_the_roots() {
        let key = LogSigningKey::from_bytes(&[5; 32]);
        let mut walk = chain(&key, 4);
        assert!(matches!(
            walk.next(&signed(&key, 6, 2)),
            Err(TransparencyError::AuditGap {
                expected: 5,
                served: 6
            })
        ));
        let claim = walk.next(&signed(&key, 5, 2)).unwrap();
        assert_eq!((claim.start, claim.end, claim.epoch), ([1; 32], [2; 32], 5));
        walk.advance(claim);
        assert_eq!(walk.at(), (5, [2; 32]));
        let other = LogSigningKey::from_bytes(&[6; 32]);
        assert!(matches!(
            walk.next(&signed(&other, 6, 3)),
            Err(TransparencyError::BadRootSignature { epoch: 6 })
        ));
    }

    #[test]
    fn the_walk_ends_on_the_served_root_or_reports_a_fork() {
        let key = LogSigningKey::from_bytes(&[5; 32]);
        let walk = chain(&key, 4);
        let view = crate::LogView::new(LogPins {
            log_key: key.public(),
            vrf_public_key: [9; 32],
        });
        let same = view.accept_root(&signed(&key, 4, 1)).unwrap();
        let other = view.accept_root(&signed(&key, 4, 7)).unwrap();
        let later = view.accept_root(&signed(&key, 9, 1)).unwrap();
        assert_eq!(walk.reached(&same), Ok(true));
        assert_eq!(
            walk.reached(&other),
            Err(TransparencyError::Fork { epoch: 4 })
        );
        assert_eq!(walk.reached(&later), Ok(false));
    }

    #[test]
    fn no_step_follows_the_last_epoch() {
        let key = LogSigningKey::from_bytes(&[5; 32]);
        let walk = chain(&key, u64::MAX);
        // The same root again at the last epoch: no overflow, a refusal
        // (of an epoch no log reaches, before any arithmetic on it).
        assert!(matches!(
            walk.next(&signed(&key, u64::MAX, 1)),
            Err(TransparencyError::MalformedRoot(_))
        ));
    }

    #[test]
    fn a_proof_over_the_cap_is_refused_before_decoding() {
        let big = vec![0; MAX_AUDIT_PROOF_LEN + 1];
        assert!(matches!(
            decode_step(&big),
            Err(TransparencyError::MalformedProof(_))
        ));
    }
}
