//! Sends: one envelope per device of the destination account, refused as a
//! whole when the sender's device list is stale, stored durably before the
//! sender is told it worked.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::State;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::{ApiJson, ApiPath, decode_b64};
use crate::AppState;
use crate::auth::AuthedDevice;
use crate::error::AppError;
use crate::store::{NewEnvelope, now_millis};

/// One envelope of a send.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceEnvelope {
    /// Destination device.
    pub device_id: u32,
    /// Opaque ciphertext, base64.
    pub content: String,
}

/// `PUT /v1/messages/{username}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// One per device of the destination (excluding the sending device
    /// when writing to one's own account).
    pub envelopes: Vec<DeviceEnvelope>,
    /// Hide the sender from the stored envelope.
    #[serde(default)]
    pub sealed: bool,
}

/// A stored send.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendResponse {
    /// Envelopes stored.
    pub stored: usize,
}

pub(crate) async fn send(
    State(state): State<AppState>,
    sender: AuthedDevice,
    ApiPath(destination): ApiPath<String>,
    ApiJson(request): ApiJson<SendRequest>,
) -> Result<Json<SendResponse>, AppError> {
    let envelopes = request
        .envelopes
        .iter()
        .map(|e| Ok((e.device_id, decode_b64("content", &e.content)?)))
        .collect::<Result<Vec<_>, AppError>>()?;
    send_to_account(&state, &sender, &destination, envelopes, request.sealed)
        .await
        .map(Json)
}

/// The send path shared by HTTP and the WebSocket.
pub async fn send_to_account(
    state: &AppState,
    sender: &AuthedDevice,
    destination: &str,
    envelopes: Vec<(u32, Vec<u8>)>,
    sealed: bool,
) -> Result<SendResponse, AppError> {
    state.limits.send((sender.account_id, sender.device_id))?;
    let limits = &state.config.messages;
    if envelopes.is_empty() {
        return Err(AppError::bad_request(
            "no_envelopes",
            "a send needs at least one envelope",
        ));
    }
    if envelopes.len() > limits.max_devices_per_account as usize {
        return Err(AppError::bad_request(
            "too_many_envelopes",
            "more envelopes than an account has devices",
        ));
    }
    if let Some((device, _)) = envelopes
        .iter()
        .find(|(_, c)| c.len() > limits.max_envelope_bytes)
    {
        return Err(AppError::TooLarge(format!(
            "envelope for device {device} exceeds {} bytes",
            limits.max_envelope_bytes
        )));
    }
    let named: BTreeSet<u32> = envelopes.iter().map(|(d, _)| *d).collect();
    if named.len() != envelopes.len() {
        return Err(AppError::bad_request(
            "duplicate_device",
            "one envelope per device",
        ));
    }
    let (account_id, devices) = state
        .store
        .devices_of(destination)
        .await?
        .ok_or(AppError::NotFound("account"))?;
    let expected: BTreeSet<u32> = devices
        .into_iter()
        .filter(|d| !(account_id == sender.account_id && *d == sender.device_id))
        .collect();
    if named != expected {
        state.metrics.stale_device_refusals.inc();
        return Err(AppError::StaleDevices {
            missing: expected.difference(&named).copied().collect(),
            extra: named.difference(&expected).copied().collect(),
        });
    }
    let now = now_millis();
    let ttl = i64::try_from(state.config.envelope_ttl().as_millis()).unwrap_or(i64::MAX);
    let stored: Vec<NewEnvelope> = envelopes
        .into_iter()
        .map(|(device_id, content)| {
            let mut envelope_id = [0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut envelope_id);
            NewEnvelope {
                envelope_id,
                account_id,
                device_id,
                sender: (!sealed).then(|| sender.username.clone()),
                sender_device: (!sealed).then_some(sender.device_id),
                created_at: now,
                expires_at: now.saturating_add(ttl),
                content,
            }
        })
        .collect();
    state.store.insert_envelopes(&stored).await?;
    state.metrics.envelopes_stored.inc_by(stored.len() as u64);
    for envelope in &stored {
        state
            .notifier
            .envelopes_queued(envelope.account_id, envelope.device_id);
    }
    Ok(SendResponse {
        stored: stored.len(),
    })
}
