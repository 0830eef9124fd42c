//! The crate's errors: each says which check failed, so that a client can
//! tell the user what it refused and why.

use thiserror::Error;

/// Why a device list, a root or a proof was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TransparencyError {
    /// A device list that is not canonical (empty, too long, unsorted, a
    /// repeated device, a wrong count or trailing bytes).
    #[error("malformed device list: {0}")]
    MalformedDevices(&'static str),
    /// A root statement of the wrong length, domain or configuration.
    #[error("malformed root statement: {0}")]
    MalformedRoot(&'static str),
    /// A root not signed by the pinned log key.
    #[error("the root of epoch {epoch} is not signed by the pinned log key")]
    BadRootSignature {
        /// The epoch the statement claims.
        epoch: u64,
    },
    /// A root for another log (another VRF key or configuration).
    #[error("the root of epoch {epoch} is for another log")]
    OtherLog {
        /// The epoch the statement claims.
        epoch: u64,
    },
    /// A root older than one this client has already verified.
    #[error("the server sent the root of epoch {served}, older than epoch {seen} already seen")]
    Rollback {
        /// The epoch served.
        served: u64,
        /// The newest epoch this client verified.
        seen: u64,
    },
    /// An account's entry at a version older than one this client has
    /// already verified for it: the server shows a replaced entry again.
    #[error(
        "the log's entry for the account is at version {served}, older than version {seen} already verified"
    )]
    EntryRollback {
        /// The version served.
        served: u64,
        /// The newest version this client verified for the account.
        seen: u64,
    },
    /// The account's newest version is not the one a lookup proof showed:
    /// the account changed between the two proofs (fetch again), or the
    /// server shows two versions as the newest.
    #[error(
        "the log's newest version of the account is {newest}, not version {proved} (fetch it again)"
    )]
    EntryMoved {
        /// The version the lookup proof showed.
        proved: u64,
        /// The version the proof of the newest showed.
        newest: u64,
    },
    /// Two different roots signed for one epoch: the server shows
    /// different logs to different clients.
    #[error("two different roots are signed for epoch {epoch}")]
    Fork {
        /// The epoch with two roots.
        epoch: u64,
    },
    /// A proof that does not decode.
    #[error("malformed proof: {0}")]
    MalformedProof(String),
    /// A lookup proof that does not verify against the root.
    #[error("the lookup proof does not verify: {0}")]
    BadProof(String),
    /// A proof of a value published after the root it is checked against.
    #[error("the proof is of epoch {proof}, after the root's epoch {root}")]
    EpochMismatch {
        /// The proof's epoch.
        proof: u64,
        /// The root's epoch.
        root: u64,
    },
    /// An audit step that is not the epoch right after the one reached.
    #[error("the log's audit skips from epoch {expected} to epoch {served}")]
    AuditGap {
        /// The epoch the next step had to be.
        expected: u64,
        /// The epoch served.
        served: u64,
    },
    /// An epoch whose tree did not only add to the one before: the log
    /// was rewritten.
    #[error("epoch {epoch} of the log is not an append-only step from the one before")]
    NotAppendOnly {
        /// The epoch whose proof failed.
        epoch: u64,
    },
    /// The served device list is not the one the log holds for the account.
    #[error("the keys the server sent for {username} are not the ones in the transparency log")]
    NotInLog {
        /// The account.
        username: String,
    },
}
