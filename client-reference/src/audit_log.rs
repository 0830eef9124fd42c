//! Auditing a server's transparency log without an account (`starling
//! audit-log`): from a signed root (or the empty tree at epoch 0), every
//! later epoch's signed root and akd's proof that its tree only added to
//! the one before, to the newest epoch the server has signed. The first
//! step that fails names its epoch; nothing after it is trusted.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use starling_client_core::transparency::{LogPins, TransparencyError};
use starling_transparency::audit::{self, AuditChain};
use starling_transparency::{LogView, SignedRoot};

use crate::api::Api;
use crate::error::{ClientError, Result};

/// What an audit found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    /// The epoch the audit started from.
    pub from: u64,
    /// The newest epoch verified, or the one that failed.
    pub epoch: u64,
    /// That epoch's root, hex (none when the failing step had no root to
    /// take).
    pub root: Option<String>,
    /// Whether every step from `from` to the server's newest signed root
    /// held.
    pub verified: bool,
    /// How many epochs were checked.
    pub epochs_checked: u64,
    /// The log key the roots were checked under (base64).
    pub log_key: String,
    /// The log's VRF public key (base64).
    pub vrf_public_key: String,
    /// Whether those keys were the ones the server named (no `--log-key`):
    /// then the audit shows the log only grew under the server's own key.
    pub keys_from_server: bool,
    /// Why the failing epoch failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the audit walks under.
struct Audit {
    from: u64,
    pins: LogPins,
    keys_from_server: bool,
    checked: u64,
}

impl Audit {
    fn report(
        &self,
        epoch: u64,
        root: Option<[u8; 32]>,
        error: Option<&TransparencyError>,
    ) -> AuditReport {
        AuditReport {
            from: self.from,
            epoch,
            root: root.map(hex::encode),
            verified: error.is_none(),
            epochs_checked: self.checked,
            log_key: B64.encode(self.pins.log_key.to_bytes()),
            vrf_public_key: B64.encode(self.pins.vrf_public_key),
            keys_from_server: self.keys_from_server,
            error: error.map(ToString::to_string),
        }
    }
}

fn malformed(what: &str) -> TransparencyError {
    TransparencyError::MalformedProof(format!("the log's {what} is not base64"))
}

/// A signed root as the server sends it (base64), decoded, not checked.
fn signed_root(text: &str) -> std::result::Result<SignedRoot, TransparencyError> {
    let bytes = B64.decode(text).map_err(|_| malformed("root"))?;
    SignedRoot::from_bytes(&bytes)
}

/// The epoch after `epoch`, or the failure of a log claiming one past the
/// last.
fn next_epoch(epoch: u64) -> std::result::Result<u64, TransparencyError> {
    epoch.checked_add(1).ok_or(TransparencyError::AuditGap {
        expected: epoch,
        served: epoch,
    })
}

/// Audits the log of the server `api` talks to, from epoch `from` to the
/// newest root the server signed, under `pins` (the keys the server names
/// when `None`); `progress` is told each epoch verified. A failed step is
/// a report with `verified: false`, not an error: errors are of reaching
/// the server.
pub async fn audit_log(
    api: &Api,
    from: u64,
    pins: Option<LogPins>,
    mut progress: impl FnMut(u64),
) -> Result<AuditReport> {
    let latest = api.transparency_root().await?;
    let keys_from_server = pins.is_none();
    let pins = match pins {
        Some(pins) => pins,
        None => crate::api::transparency::pins(&latest.log)?,
    };
    let mut audit = Audit {
        from,
        pins,
        keys_from_server,
        checked: 0,
    };
    // The end of the walk: the newest root, checked like every other.
    let target = match signed_root(&latest.signed_root)
        .and_then(|signed| LogView::new(pins).accept_root(&signed))
    {
        Ok(root) if root.epoch() >= from => root,
        Ok(root) => {
            let error = TransparencyError::Rollback {
                served: root.epoch(),
                seen: from,
            };
            return Ok(audit.report(root.epoch(), Some(root.root()), Some(&error)));
        }
        Err(error) => return Ok(audit.report(latest.epoch, None, Some(&error))),
    };
    let start = match start_root(api, &audit, from).await? {
        Ok(root) => root,
        Err(report) => return Ok(report),
    };
    let mut chain = AuditChain::new(pins, (from, start));
    while chain.at().0 < target.epoch() {
        let page = api.transparency_audit(chain.at().0).await?;
        let expected = match next_epoch(chain.at().0) {
            Ok(epoch) => epoch,
            Err(error) => return Ok(audit.report(chain.at().0, None, Some(&error))),
        };
        if page.steps.is_empty() {
            let error = TransparencyError::AuditGap {
                expected,
                served: chain.at().0,
            };
            return Ok(audit.report(expected, None, Some(&error)));
        }
        for step in page.steps {
            let epoch = match next_epoch(chain.at().0) {
                Ok(epoch) => epoch,
                Err(error) => return Ok(audit.report(chain.at().0, None, Some(&error))),
            };
            let claim = match signed_root(&step.signed_root).and_then(|signed| chain.next(&signed))
            {
                Ok(claim) => claim,
                Err(error) => return Ok(audit.report(epoch, None, Some(&error))),
            };
            let checked = match B64.decode(&step.proof) {
                Ok(proof) => audit::verify_append_only(&proof, &claim).await,
                Err(_) => Err(malformed("audit proof")),
            };
            if let Err(error) = checked {
                return Ok(audit.report(claim.epoch, Some(claim.end), Some(&error)));
            }
            chain.advance(claim);
            audit.checked += 1;
            progress(claim.epoch);
            if chain.at().0 >= target.epoch() {
                break;
            }
        }
    }
    // The walk must end on the very root the server signed as its newest.
    if let Err(error) = chain.reached(&target) {
        return Ok(audit.report(target.epoch(), Some(target.root()), Some(&error)));
    }
    let (epoch, root) = chain.at();
    Ok(audit.report(epoch, Some(root), None))
}

/// The root the walk starts from: akd's empty tree at epoch 0, else the
/// root the server signed for `from` (or the report of why it is refused).
async fn start_root(
    api: &Api,
    audit: &Audit,
    from: u64,
) -> Result<std::result::Result<[u8; 32], AuditReport>> {
    if from == 0 {
        return audit::empty_root()
            .await
            .map(Ok)
            .map_err(|e| ClientError::Protocol(e.to_string()));
    }
    let stated = api.transparency_root_at(from).await?;
    let accepted = signed_root(&stated.signed_root)
        .and_then(|signed| LogView::new(audit.pins).accept_root(&signed));
    Ok(match accepted {
        Ok(root) if root.epoch() == from => Ok(root.root()),
        Ok(root) => {
            let error = TransparencyError::AuditGap {
                expected: from,
                served: root.epoch(),
            };
            Err(audit.report(from, Some(root.root()), Some(&error)))
        }
        Err(error) => Err(audit.report(from, None, Some(&error))),
    })
}
