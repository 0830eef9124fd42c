//! The client's checks (`crypto/SPEC.md` §16.4), before it uses any key
//! the server sent:
//!
//! 1. the root: signed by the pinned log key, of this log (configuration
//!    and VRF key), and not older than the newest root this client has
//!    verified; at the same epoch, the same root ([`LogView::accept_root`]);
//! 2. a newer root is trusted for good only once the append-only proofs
//!    from the newest verified root to it hold (checked by the caller with
//!    akd's auditor, then [`LogView::advance`]);
//! 3. the lookup proof of the account against that root, and the served
//!    device list equal to the value it proves ([`verify_lookup`]).
//!
//! Pure: the shell fetches, stores the view, and runs the audit step.

use akd_core::proto::specs::types as proto;
use protobuf::Message as _;
use starling_protocol::Username;

use crate::commitment::{DeviceList, label};
use crate::root::{LogPublicKey, SignedRoot};
use crate::{CONFIGURATION_ID, LogConfig, TransparencyError};

/// Largest encoded lookup proof a client decodes: a proof in a log of
/// millions of changes is under 16 KiB.
pub const MAX_PROOF_LEN: usize = 64 * 1024;

/// What a client pins when it registers or links: the log key, and the
/// log's VRF public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogPins {
    /// The key that signs roots.
    pub log_key: LogPublicKey,
    /// The VRF public key of the log's labels.
    pub vrf_public_key: [u8; 32],
}

/// A root whose signature and place this client checked; made only by
/// [`LogView::accept_root`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedRoot {
    epoch: u64,
    root: [u8; 32],
}

impl VerifiedRoot {
    /// The epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The root hash.
    pub fn root(&self) -> [u8; 32] {
        self.root
    }
}

/// A client's view of the log: its pins and the newest root it verified
/// the whole way to (signature, and append-only from the one before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogView {
    pins: LogPins,
    newest: Option<VerifiedRoot>,
}

impl LogView {
    /// A view that has seen no root yet (just registered or linked).
    pub fn new(pins: LogPins) -> Self {
        Self { pins, newest: None }
    }

    /// A view restored from storage: `newest` as [`LogView::newest`] gave it.
    pub fn restore(pins: LogPins, newest: Option<(u64, [u8; 32])>) -> Self {
        let newest = newest.map(|(epoch, root)| VerifiedRoot { epoch, root });
        Self { pins, newest }
    }

    /// The pins.
    pub fn pins(&self) -> &LogPins {
        &self.pins
    }

    /// The newest verified root, to store.
    pub fn newest(&self) -> Option<(u64, [u8; 32])> {
        self.newest.map(|r| (r.epoch, r.root))
    }

    /// Checks a served root: the log key's signature, this log's
    /// configuration and VRF key, no older than the newest verified root,
    /// and the same root at the same epoch.
    pub fn accept_root(&self, signed: &SignedRoot) -> Result<VerifiedRoot, TransparencyError> {
        let statement = &signed.statement;
        signed.verify(&self.pins.log_key)?;
        // No log reaches this epoch; akd's verifiers count past it, and
        // the stores keep epochs as signed 64-bit numbers.
        if i64::try_from(statement.epoch).is_err() {
            return Err(TransparencyError::MalformedRoot("an epoch beyond any log"));
        }
        if statement.configuration != CONFIGURATION_ID
            || statement.vrf_public_key != self.pins.vrf_public_key
        {
            return Err(TransparencyError::OtherLog {
                epoch: statement.epoch,
            });
        }
        if let Some(newest) = self.newest {
            if statement.epoch < newest.epoch {
                return Err(TransparencyError::Rollback {
                    served: statement.epoch,
                    seen: newest.epoch,
                });
            }
            if statement.epoch == newest.epoch && statement.root != newest.root {
                return Err(TransparencyError::Fork {
                    epoch: statement.epoch,
                });
            }
        }
        Ok(VerifiedRoot {
            epoch: statement.epoch,
            root: statement.root,
        })
    }

    /// The root the append-only proofs must start from before `root` is
    /// trusted for good: `None` when `root` is the newest verified root,
    /// or when this view has verified none (the first root is taken on
    /// the pinned key alone, as the pin itself is).
    pub fn audit_from(&self, root: &VerifiedRoot) -> Option<(u64, [u8; 32])> {
        self.newest
            .filter(|newest| newest.epoch < root.epoch)
            .map(|newest| (newest.epoch, newest.root))
    }

    /// Records `root` as the newest verified one, once the append-only
    /// proofs from [`LogView::audit_from`] held. A root older than the
    /// newest is ignored.
    pub fn advance(&mut self, root: VerifiedRoot) {
        if self.newest.is_none_or(|newest| newest.epoch < root.epoch) {
            self.newest = Some(root);
        }
    }
}

/// What a verified lookup proved: the account's device list, from which
/// alone a caller takes identity keys, and the version of the account's
/// entry it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedLookup {
    /// The devices the log holds for the account.
    pub devices: DeviceList,
    /// The version of the account's entry (1 for its first device list).
    pub version: u64,
    /// The epoch that version was published in.
    pub published: u64,
}

/// Checks that `devices` is what the log holds for `username` at `root`,
/// by the lookup proof `proof` (akd's protobuf `LookupProof`).
pub fn verify_lookup(
    pins: &LogPins,
    root: &VerifiedRoot,
    username: &Username,
    proof: &[u8],
    devices: &DeviceList,
) -> Result<VerifiedLookup, TransparencyError> {
    let proof = decode_lookup(proof)?;
    // akd asserts on version 0 (its marker version is log2 of it): a
    // server could crash a client with it.
    if proof.version == 0 {
        return Err(TransparencyError::MalformedProof("version 0".into()));
    }
    let result = akd_core::verify::lookup_verify::<LogConfig>(
        &pins.vrf_public_key,
        root.root,
        root.epoch,
        label(username),
        proof,
    )
    .map_err(|e| TransparencyError::BadProof(e.to_string()))?;
    if result.epoch > root.epoch {
        return Err(TransparencyError::EpochMismatch {
            proof: result.epoch,
            root: root.epoch,
        });
    }
    if result.value != devices.value() {
        return Err(TransparencyError::NotInLog {
            username: username.as_str().to_owned(),
        });
    }
    Ok(VerifiedLookup {
        devices: devices.clone(),
        version: result.version,
        published: result.epoch,
    })
}

/// Decodes akd's protobuf lookup proof, refusing one over
/// [`MAX_PROOF_LEN`].
pub fn decode_lookup(bytes: &[u8]) -> Result<akd_core::LookupProof, TransparencyError> {
    if bytes.len() > MAX_PROOF_LEN {
        return Err(TransparencyError::MalformedProof("too long".into()));
    }
    let proof = proto::LookupProof::parse_from_bytes(bytes)
        .map_err(|e| TransparencyError::MalformedProof(e.to_string()))?;
    akd_core::LookupProof::try_from(&proof)
        .map_err(|e| TransparencyError::MalformedProof(e.to_string()))
}

/// Encodes a lookup proof as the server serves it.
pub fn encode_lookup(proof: &akd_core::LookupProof) -> Result<Vec<u8>, TransparencyError> {
    proto::LookupProof::from(proof)
        .write_to_bytes()
        .map_err(|e| TransparencyError::MalformedProof(e.to_string()))
}
