//! The transparency log's routes (`crypto/SPEC.md` §16): its pins, its
//! audit steps, the own account's history, and the decoding of the proof that comes with every key
//! and device-list fetch. What they mean is the client core's to check
//! (`starling_client_core::transparency`); nothing here trusts them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::Method;
use starling_client_core::transparency::{AuditStep, LogPins, LogProof, ServedHistory};
use starling_protocol::api::{
    AuditResponse, LogPin, TransparencyHistory, TransparencyProof, TransparencyRoot,
};
use starling_transparency::LogPublicKey;

use super::Api;
use crate::error::{ClientError, Result};

fn decode(field: &str, text: &str) -> Result<Vec<u8>> {
    B64.decode(text)
        .map_err(|_| ClientError::Protocol(format!("the log's {field} is not base64")))
}

/// The log's keys from their transport encoding.
pub fn pins(pin: &LogPin) -> Result<LogPins> {
    let log_key = LogPublicKey::from_bytes(&decode("key", &pin.log_key)?)
        .map_err(|e| ClientError::Protocol(format!("the log key: {e}")))?;
    let vrf_public_key = decode("VRF key", &pin.vrf_public_key)?
        .try_into()
        .map_err(|_| ClientError::Protocol("the log's VRF key is not 32 bytes".into()))?;
    Ok(LogPins {
        log_key,
        vrf_public_key,
    })
}

/// The proof beside a fetch, decoded (not checked).
pub fn proof(proof: Option<TransparencyProof>) -> Result<Option<LogProof>> {
    proof
        .map(|p| {
            Ok(LogProof {
                signed_root: decode("root", &p.signed_root)?,
                lookup_proof: decode("lookup proof", &p.lookup_proof)?,
                devices: decode("device list", &p.devices)?,
            })
        })
        .transpose()
}

impl Api {
    /// The log's newest signed root and its keys (no account needed).
    pub async fn transparency_root(&self) -> Result<TransparencyRoot> {
        self.json(self.request(Method::GET, "v1/transparency/root")?)
            .await
    }

    /// The signed root of `epoch` (no account needed).
    pub async fn transparency_root_at(&self, epoch: u64) -> Result<TransparencyRoot> {
        let path = format!("v1/transparency/roots/{epoch}");
        self.json(self.request(Method::GET, &path)?).await
    }

    /// The log's epochs after `from`, each with its append-only proof
    /// (no account needed; possibly fewer than there are).
    pub async fn transparency_audit(&self, from: u64) -> Result<AuditResponse> {
        let path = format!("v1/transparency/audit?from={from}");
        self.json(self.request(Method::GET, &path)?).await
    }

    /// Every device list the log has held for this device's own account,
    /// decoded for the client core (not checked); `None` while the log
    /// does not hold it.
    pub async fn own_history(&self) -> Result<Option<ServedHistory>> {
        self.history("v1/transparency/history").await
    }

    /// `username`'s newest version in the log with the proof of the most
    /// recent version, decoded for the client core (not checked); `None`
    /// while the log does not hold the account.
    pub async fn latest_version(&self, username: &str) -> Result<Option<ServedHistory>> {
        let path = format!("v1/transparency/latest/{}", super::path_segment(username));
        self.history(&path).await
    }

    /// A history route's answer, decoded.
    async fn history(&self, path: &str) -> Result<Option<ServedHistory>> {
        let request = self.request(Method::GET, path)?;
        let history = match self.json::<TransparencyHistory>(request).await {
            Ok(history) => history,
            Err(ClientError::Server { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let lists = history
            .devices
            .iter()
            .map(|list| decode("device list", list))
            .collect::<Result<_>>()?;
        Ok(Some(ServedHistory {
            signed_root: decode("root", &history.signed_root)?,
            proof: decode("history proof", &history.history_proof)?,
            lists,
        }))
    }

    /// [`Self::transparency_audit`], decoded for the client core.
    pub async fn audit_steps(&self, from: u64) -> Result<Vec<AuditStep>> {
        self.transparency_audit(from)
            .await?
            .steps
            .into_iter()
            .map(|step| {
                Ok(AuditStep {
                    signed_root: decode("root", &step.signed_root)?,
                    proof: decode("audit proof", &step.proof)?,
                })
            })
            .collect()
    }
}
