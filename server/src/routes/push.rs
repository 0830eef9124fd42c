//! `PUT /v1/push` `{ "endpoint": URL }` registers where the device gets
//! wake-ups; `DELETE /v1/push` removes it.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::ApiJson;
use crate::AppState;
use crate::auth::AuthedDevice;
use crate::error::AppError;
use crate::push::vet_endpoint;

/// `PUT /v1/push`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PushRegistration {
    /// The push endpoint URL.
    pub endpoint: String,
}

pub(crate) async fn register(
    State(state): State<AppState>,
    device: AuthedDevice,
    ApiJson(request): ApiJson<PushRegistration>,
) -> Result<Json<serde_json::Value>, AppError> {
    vet_endpoint(&request.endpoint, &state.config.push)
        .await
        .map_err(|e| AppError::bad_request("push_endpoint_refused", e.to_string()))?;
    state
        .store
        .set_push_endpoint(device.account_id, device.device_id, &request.endpoint)
        .await?;
    Ok(Json(serde_json::json!({ "registered": true })))
}

pub(crate) async fn unregister(
    State(state): State<AppState>,
    device: AuthedDevice,
) -> Result<Json<serde_json::Value>, AppError> {
    state
        .store
        .remove_push_endpoint(device.account_id, device.device_id, None)
        .await?;
    Ok(Json(serde_json::json!({ "registered": false })))
}
