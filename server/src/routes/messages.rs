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
    let named = check_envelopes(state, &envelopes)?;
    let account_id = match resolve(state, sender, destination, &named).await? {
        Ok(account_id) => account_id,
        Err(StaleLists { missing, extra }) => {
            state.metrics.stale_device_refusals.inc();
            return Err(AppError::StaleDevices { missing, extra });
        }
    };
    let stored = build(state, sender, account_id, envelopes, sealed);
    store_and_notify(state, stored).await
}

/// One destination of a multi-recipient send.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccountEnvelopes {
    /// Destination username.
    pub destination: String,
    /// One per device of the destination.
    pub envelopes: Vec<DeviceEnvelope>,
}

/// `PUT /v1/messages`: one request, envelopes for many accounts (groups).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MultiSendRequest {
    /// The destinations.
    pub sends: Vec<AccountEnvelopes>,
    /// Hide the sender from the stored envelopes.
    #[serde(default)]
    pub sealed: bool,
}

/// Most accounts one multi-recipient send may address.
pub const MAX_DESTINATIONS: usize = 1_000;

pub(crate) async fn send_many(
    State(state): State<AppState>,
    sender: AuthedDevice,
    ApiJson(request): ApiJson<MultiSendRequest>,
) -> Result<Json<SendResponse>, AppError> {
    state.limits.send((sender.account_id, sender.device_id))?;
    if request.sends.is_empty() || request.sends.len() > MAX_DESTINATIONS {
        return Err(AppError::bad_request(
            "bad_destinations",
            format!("a send names 1 to {MAX_DESTINATIONS} accounts"),
        ));
    }
    let destinations: BTreeSet<&str> = request
        .sends
        .iter()
        .map(|s| s.destination.as_str())
        .collect();
    if destinations.len() != request.sends.len() {
        return Err(AppError::bad_request(
            "duplicate_destination",
            "each account once per send",
        ));
    }
    let mut stored = Vec::new();
    let mut stale = std::collections::BTreeMap::new();
    for send in request.sends {
        let envelopes = send
            .envelopes
            .iter()
            .map(|e| Ok((e.device_id, decode_b64("content", &e.content)?)))
            .collect::<Result<Vec<_>, AppError>>()?;
        let named = check_envelopes(&state, &envelopes)?;
        match resolve(&state, &sender, &send.destination, &named).await? {
            Ok(account_id) => stored.extend(build(
                &state,
                &sender,
                account_id,
                envelopes,
                request.sealed,
            )),
            Err(lists) => {
                stale.insert(send.destination, lists);
            }
        }
    }
    if !stale.is_empty() {
        state.metrics.stale_device_refusals.inc();
        return Err(AppError::StaleDevicesMany(stale));
    }
    store_and_notify(&state, stored).await.map(Json)
}

/// A destination's device list as the sender should have named it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaleLists {
    /// Devices the send lacked.
    pub missing: Vec<u32>,
    /// Devices the send named that do not exist.
    pub extra: Vec<u32>,
}

/// Size and shape checks; returns the named devices.
fn check_envelopes(
    state: &AppState,
    envelopes: &[(u32, Vec<u8>)],
) -> Result<BTreeSet<u32>, AppError> {
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
    Ok(named)
}

/// The destination account, or how the sender's device list is stale.
/// Writing to one's own account excludes the sending device.
async fn resolve(
    state: &AppState,
    sender: &AuthedDevice,
    destination: &str,
    named: &BTreeSet<u32>,
) -> Result<Result<i64, StaleLists>, AppError> {
    let (account_id, devices) = state
        .store
        .devices_of(destination)
        .await?
        .ok_or(AppError::NotFound("account"))?;
    let expected: BTreeSet<u32> = devices
        .into_iter()
        .filter(|d| !(account_id == sender.account_id && *d == sender.device_id))
        .collect();
    if *named == expected {
        Ok(Ok(account_id))
    } else {
        Ok(Err(StaleLists {
            missing: expected.difference(named).copied().collect(),
            extra: named.difference(&expected).copied().collect(),
        }))
    }
}

fn build(
    state: &AppState,
    sender: &AuthedDevice,
    account_id: i64,
    envelopes: Vec<(u32, Vec<u8>)>,
    sealed: bool,
) -> Vec<NewEnvelope> {
    let now = now_millis();
    let ttl = i64::try_from(state.config.envelope_ttl().as_millis()).unwrap_or(i64::MAX);
    envelopes
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
        .collect()
}

/// Stores every envelope in one transaction, then wakes the devices.
async fn store_and_notify(
    state: &AppState,
    stored: Vec<NewEnvelope>,
) -> Result<SendResponse, AppError> {
    let devices: Vec<(i64, u32)> = stored.iter().map(|e| (e.account_id, e.device_id)).collect();
    state
        .writer
        .write(crate::store::BatchOp::Insert(stored))
        .await
        .map_err(|e| AppError::Internal(format!("storing envelopes: {e}")))?;
    state.metrics.envelopes_stored.inc_by(devices.len() as u64);
    for (account_id, device_id) in &devices {
        state.notifier.envelopes_queued(*account_id, *device_id);
    }
    Ok(SendResponse {
        stored: devices.len(),
    })
}
