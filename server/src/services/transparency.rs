//! Serving the key transparency log (`crypto/SPEC.md` §16): its pins, its
//! signed roots, the append-only steps auditors walk, the proof that comes
//! with every key and device-list fetch, an account's own history, and the wait of a registration or
//! link for the epoch that holds its new device.

use std::time::Duration;

use starling_protocol::Username;
use starling_protocol::api::{
    AuditQuery, AuditResponse, AuditStep, LogPin, TransparencyHistory, TransparencyProof,
    TransparencyRoot,
};
use starling_transparency::history::encode_history;
use starling_transparency::label;
use starling_transparency::verify::encode_lookup;

use crate::AppState;
use crate::encoding::encode_b64;
use crate::error::AppError;
use crate::store::KtValueAt;
use crate::transparency::LogError;

/// Epochs one audit answer holds at most.
pub const MAX_AUDIT_STEPS: u32 = 1_000;
/// Bytes of proofs past which an audit answer stops (the caller asks again
/// from where it ends).
const AUDIT_BYTE_BUDGET: usize = 4 * 1024 * 1024;
/// How long a registration or link waits for the epoch holding its new
/// device before answering anyway (the client finds it in a later epoch).
const EPOCH_WAIT: Duration = Duration::from_secs(10);
/// How often a proof is tried again while the publisher records an epoch
/// it has just committed, and how many times.
const RECORD_RETRY: Duration = Duration::from_millis(20);
const RECORD_RETRIES: u32 = 100;

/// The log's keys, for clients to pin.
pub fn pin(state: &AppState) -> LogPin {
    LogPin {
        log_key: encode_b64(&state.transparency.log_public_key().to_bytes()),
        vrf_public_key: encode_b64(&state.transparency.vrf_public_key()),
    }
}

fn no_root_yet() -> AppError {
    AppError::Busy {
        retry_after_secs: 1,
    }
}

fn to_epoch(epoch: u64) -> Result<i64, AppError> {
    i64::try_from(epoch).map_err(|_| AppError::NotFound("epoch"))
}

fn from_epoch(epoch: i64) -> u64 {
    u64::try_from(epoch).unwrap_or(0)
}

/// The newest signed root.
pub async fn latest_root(state: &AppState) -> Result<TransparencyRoot, AppError> {
    let (epoch, signed) = state
        .store
        .kt_latest_root()
        .await?
        .ok_or_else(no_root_yet)?;
    Ok(TransparencyRoot {
        epoch: from_epoch(epoch),
        signed_root: encode_b64(&signed),
        log: pin(state),
    })
}

/// The signed root of `epoch`.
pub async fn root(state: &AppState, epoch: u64) -> Result<TransparencyRoot, AppError> {
    let signed = state
        .store
        .kt_root(to_epoch(epoch)?)
        .await?
        .ok_or(AppError::NotFound("epoch"))?;
    Ok(TransparencyRoot {
        epoch,
        signed_root: encode_b64(&signed),
        log: pin(state),
    })
}

/// The epochs after `query.from`, each with its append-only proof from
/// the one before, as many as the limit and the byte budget allow (at
/// least one, if there is one).
pub async fn audit(state: &AppState, query: AuditQuery) -> Result<AuditResponse, AppError> {
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_AUDIT_STEPS);
    let (latest, _) = state
        .store
        .kt_latest_root()
        .await?
        .ok_or_else(no_root_yet)?;
    let rows = state
        .store
        .kt_audit(to_epoch(query.from)?, i64::from(limit), AUDIT_BYTE_BUDGET)
        .await?;
    let mut steps = Vec::with_capacity(rows.len());
    for (epoch, signed, proof) in rows {
        steps.push(AuditStep {
            epoch: from_epoch(epoch),
            signed_root: encode_b64(&signed),
            proof: encode_b64(&proof),
        });
    }
    Ok(AuditResponse {
        steps,
        latest: from_epoch(latest),
    })
}

/// The epoch akd's tree is at.
async fn tree_epoch(state: &AppState) -> Result<i64, AppError> {
    Ok(state.store.kt_azks().await?.map_or(0, |(epoch, _)| epoch))
}

/// What `read` gives at the newest signed epoch, with that epoch and its
/// signed root; `None` if the log does not hold the account (yet).
/// akd may have committed an epoch whose root is being recorded, and a
/// read during which the tree moved may mix epochs: both are waited out
/// (on cheap reads) and the read made again.
async fn at_signed_epoch<V, F, Fut>(
    state: &AppState,
    label: &akd::AkdLabel,
    read: F,
) -> Result<Option<(V, i64, Vec<u8>)>, AppError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Option<(V, akd::EpochHash)>, LogError>>,
{
    for _ in 0..RECORD_RETRIES {
        let Some((epoch, signed)) = state.store.kt_latest_root().await? else {
            return Err(no_root_yet());
        };
        if tree_epoch(state).await? != epoch {
            tokio::time::sleep(RECORD_RETRY).await;
            continue;
        }
        let found = read()
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let Some((value, hash)) = found else {
            // akd reports any failure to read the label as "not found".
            if state
                .store
                .kt_value(&label.0, KtValueAt::Newest)
                .await?
                .is_some()
            {
                return Err(AppError::Internal("a logged account's proof failed".into()));
            }
            return Ok(None);
        };
        if hash.epoch() != from_epoch(epoch) || tree_epoch(state).await? != epoch {
            tokio::time::sleep(RECORD_RETRY).await;
            continue;
        }
        return Ok(Some((value, epoch, signed)));
    }
    Err(no_root_yet())
}

/// The device list the publisher stored with `label`'s value of `epoch`.
async fn list_at(state: &AppState, label: &akd::AkdLabel, epoch: u64) -> Result<Vec<u8>, AppError> {
    state
        .store
        .kt_list(&label.0, to_epoch(epoch)?)
        .await?
        .ok_or_else(|| AppError::Internal("a logged value without its device list".into()))
}

/// The proof that the log holds `username`'s device list, against the
/// newest signed root, with the list; `None` if the log does not hold
/// the account (yet).
pub async fn proof(
    state: &AppState,
    username: &Username,
) -> Result<Option<TransparencyProof>, AppError> {
    let label = label(username);
    let found = at_signed_epoch(state, &label, || state.transparency.lookup(label.clone())).await?;
    let Some((proof, _, signed)) = found else {
        return Ok(None);
    };
    let devices = list_at(state, &label, proof.epoch).await?;
    let lookup_proof = encode_lookup(&proof).map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(Some(TransparencyProof {
        signed_root: encode_b64(&signed),
        lookup_proof: encode_b64(&lookup_proof),
        devices: encode_b64(&devices),
    }))
}

/// Every device list the log has held for `username` (the caller's own
/// account, `HistoryParams::Complete`), or its newest alone
/// (`MostRecent(1)`, for a contact), with akd's history proof against the
/// newest signed root; `None` if the log does not hold the account yet.
pub async fn history(
    state: &AppState,
    username: &Username,
    params: akd::HistoryParams,
) -> Result<Option<TransparencyHistory>, AppError> {
    let label = label(username);
    let found =
        at_signed_epoch(state, &label, || state.transparency.history(&label, params)).await?;
    let Some((proof, _, signed)) = found else {
        return Ok(None);
    };
    let mut devices = Vec::with_capacity(proof.update_proofs.len());
    for update in &proof.update_proofs {
        devices.push(encode_b64(&list_at(state, &label, update.epoch).await?));
    }
    let history_proof = encode_history(&proof).map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(Some(TransparencyHistory {
        signed_root: encode_b64(&signed),
        history_proof: encode_b64(&history_proof),
        devices,
    }))
}

/// Waits until the log has published `account_id`'s latest device list
/// (or ten seconds passed), so that a first message right after
/// registering or linking verifies.
pub async fn wait_for_epoch(state: &AppState, account_id: i64) {
    let mut published = state.transparency.published();
    let waited = tokio::time::timeout(EPOCH_WAIT, async {
        loop {
            match state.store.kt_is_pending(account_id).await {
                Ok(false) => return,
                Ok(true) => {}
                Err(error) => {
                    tracing::warn!(error = %error, "reading the transparency queue");
                    return;
                }
            }
            // Woken by this process's publisher, or polled for another
            // node's.
            let _ = tokio::time::timeout(Duration::from_millis(200), published.changed()).await;
        }
    })
    .await;
    if waited.is_err() {
        tracing::warn!("a new device is not in the transparency log yet");
    }
}
