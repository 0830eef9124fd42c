//! Key transparency (`crypto/SPEC.md` §16): the log's pins, its signed
//! roots, the append-only proofs auditors walk, and the proof that comes
//! with every key and device-list fetch.

use serde::{Deserialize, Serialize};

/// The log's keys as a client pins them when it registers or links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPin {
    /// The Ed25519 key every root is signed with (base64, 32 bytes).
    pub log_key: String,
    /// The VRF public key of the log's labels (base64, 32 bytes).
    pub vrf_public_key: String,
}

/// `GET /v1/transparency/root` and `GET /v1/transparency/roots/{epoch}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransparencyRoot {
    /// The epoch.
    pub epoch: u64,
    /// The signed root statement (base64, SPEC §16.2).
    pub signed_root: String,
    /// The log's keys: a device set up before the server had a log pins
    /// them from here, once.
    pub log: LogPin,
}

/// `GET /v1/transparency/audit`: the epochs after `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// The epoch the caller has verified up to (0 for the start).
    pub from: u64,
    /// At most this many epochs (the server caps it, and answers fewer
    /// when the proofs are large).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// One epoch of the log as an auditor checks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditStep {
    /// The epoch.
    pub epoch: u64,
    /// Its signed root statement (base64).
    pub signed_root: String,
    /// akd's append-only proof from the epoch before (protobuf
    /// `SingleAppendOnlyProof`, base64).
    pub proof: String,
}

/// `GET /v1/transparency/audit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditResponse {
    /// Consecutive epochs from `from + 1`, oldest first.
    pub steps: Vec<AuditStep>,
    /// The newest epoch the log has signed.
    pub latest: u64,
}

/// What comes with fetched keys or devices: the proof that the log holds
/// the account's device list, and the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransparencyProof {
    /// The signed root the proof is against (base64).
    pub signed_root: String,
    /// akd's lookup proof of the account's label (protobuf, base64).
    pub lookup_proof: String,
    /// The canonical device list the proved value commits to (base64,
    /// SPEC §16.3): the only place a client takes identity keys from.
    pub devices: String,
}

/// `GET /v1/transparency/history`: every device list the log has held for
/// the caller's own account, for its devices to check they published each.
/// `GET /v1/transparency/latest/{username}`: the same for an account's
/// newest version alone (akd's `MostRecent(1)`), which a client checks once
/// per version of a contact it has not seen (SPEC §16.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransparencyHistory {
    /// The signed root the proof is against (base64).
    pub signed_root: String,
    /// akd's key-history proof of the account's label (protobuf
    /// `HistoryProof`, base64): complete, or of the newest version.
    pub history_proof: String,
    /// Each version's canonical device list (base64, SPEC §16.3; empty for
    /// the account's deletion), newest first, as the proof orders them.
    pub devices: Vec<String>,
}
