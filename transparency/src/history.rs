//! An account's history in the log (`crypto/SPEC.md` §16.6): every
//! device list the log has held for one username, each with akd's proof
//! that it is that version, and the proof that no later version exists.
//!
//! The owner checks its own history ([`verify_history`]): the log shows
//! every client the same device lists for a username, so a device or key
//! the owner did not add shows in the owner's history too, however briefly
//! it stood. A contact checks each new version it sees of an account once
//! with the proof of the most recent version ([`verify_latest`]), which
//! ties it to the markers the owner's check looks at. Pure, like [`crate::verify`]: the shell fetches, the client
//! core compares the verified lists with what it knows of its account.

use akd_core::proto::specs::types as proto;
use akd_core::verify::history::{HistoryParams, HistoryVerificationParams};
use protobuf::Message as _;
use starling_protocol::Username;

use crate::commitment::{DeviceList, deleted_value, label};
use crate::verify::{LogPins, VerifiedRoot};
use crate::{LogConfig, TransparencyError};

/// Largest encoded history proof a client decodes: each version adds two
/// membership proofs of about 1 KiB, so this holds thousands of versions.
pub const MAX_HISTORY_PROOF_LEN: usize = 8 * 1024 * 1024;

/// Most versions of one account a history may hold (every link, removal
/// and key change is one).
pub const MAX_HISTORY_VERSIONS: usize = 10_000;

/// One version of an account's entry in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The version (1 for the account's first device list).
    pub version: u64,
    /// The epoch it was published in.
    pub epoch: u64,
    /// The devices it lists; `None` for the account's deletion.
    pub devices: Option<DeviceList>,
}

/// Checks that `lists` (newest first, as the proof orders its versions)
/// are every device list the log has held for `username` up to `root`,
/// by akd's complete key-history proof `proof`, and returns the versions
/// oldest first. A deleted version's list is empty bytes.
pub fn verify_history(
    pins: &LogPins,
    root: &VerifiedRoot,
    username: &Username,
    proof: &[u8],
    lists: &[Vec<u8>],
) -> Result<Vec<HistoryEntry>, TransparencyError> {
    verify_versions(pins, root, username, proof, lists, HistoryParams::Complete)
}

/// Checks that `list` is the newest device list the log holds for
/// `username` at `root`, by akd's key-history proof of the most recent
/// version (`MostRecent(1)`), and returns that version. Unlike a lookup
/// proof, it shows the version's past markers in the log (akd's
/// `get_marker_versions`: the version with the bits below one of its set
/// bits cleared, and the skiplist markers below it): a version
/// planted past the owner's, which the owner's own history check can miss,
/// cannot pass both this and the owner's check (SPEC §16.4).
pub fn verify_latest(
    pins: &LogPins,
    root: &VerifiedRoot,
    username: &Username,
    proof: &[u8],
    list: &[u8],
) -> Result<HistoryEntry, TransparencyError> {
    let mut entries = verify_versions(
        pins,
        root,
        username,
        proof,
        &[list.to_vec()],
        HistoryParams::MostRecent(1),
    )?;
    entries
        .pop()
        .ok_or_else(|| TransparencyError::MalformedProof("no version".into()))
}

/// Checks a key-history proof of `params` and the device lists it is of.
fn verify_versions(
    pins: &LogPins,
    root: &VerifiedRoot,
    username: &Username,
    proof: &[u8],
    lists: &[Vec<u8>],
    params: HistoryParams,
) -> Result<Vec<HistoryEntry>, TransparencyError> {
    let proof = decode_history(proof)?;
    let versions = proof.update_proofs.len();
    if versions == 0 || versions > MAX_HISTORY_VERSIONS || versions != lists.len() {
        return Err(TransparencyError::MalformedProof(format!(
            "{versions} versions for {} device lists",
            lists.len()
        )));
    }
    // akd adds one to each version while it checks their order: a version
    // no log can reach (above its epoch) is refused before, not wrapped.
    if proof
        .update_proofs
        .iter()
        .any(|update| update.version == 0 || update.version > root.epoch())
    {
        return Err(TransparencyError::MalformedProof(
            "a version outside the log".into(),
        ));
    }
    let results = akd_core::verify::key_history_verify::<LogConfig>(
        &pins.vrf_public_key,
        root.root(),
        root.epoch(),
        label(username),
        proof,
        HistoryVerificationParams::Default {
            history_params: params,
        },
    )
    .map_err(|e| TransparencyError::BadProof(e.to_string()))?;
    let mut entries = Vec::with_capacity(results.len());
    for (result, list) in results.into_iter().zip(lists).rev() {
        if result.epoch > root.epoch() {
            return Err(TransparencyError::EpochMismatch {
                proof: result.epoch,
                root: root.epoch(),
            });
        }
        let devices = if list.is_empty() && result.value == deleted_value() {
            None
        } else {
            let devices = DeviceList::from_bytes(list)?;
            if devices.value() != result.value {
                return Err(TransparencyError::NotInLog {
                    username: username.as_str().to_owned(),
                });
            }
            Some(devices)
        };
        entries.push(HistoryEntry {
            version: result.version,
            epoch: result.epoch,
            devices,
        });
    }
    Ok(entries)
}

/// Decodes akd's protobuf history proof, refusing one over
/// [`MAX_HISTORY_PROOF_LEN`].
pub fn decode_history(bytes: &[u8]) -> Result<akd_core::HistoryProof, TransparencyError> {
    if bytes.len() > MAX_HISTORY_PROOF_LEN {
        return Err(TransparencyError::MalformedProof("too long".into()));
    }
    let proof = proto::HistoryProof::parse_from_bytes(bytes)
        .map_err(|e| TransparencyError::MalformedProof(e.to_string()))?;
    akd_core::HistoryProof::try_from(&proof)
        .map_err(|e| TransparencyError::MalformedProof(e.to_string()))
}

/// Encodes a history proof as the server serves it.
pub fn encode_history(proof: &akd_core::HistoryProof) -> Result<Vec<u8>, TransparencyError> {
    proto::HistoryProof::from(proof)
        .write_to_bytes()
        .map_err(|e| TransparencyError::MalformedProof(e.to_string()))
}
