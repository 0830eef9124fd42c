//! `PUT /v1/push` `{ "endpoint": URL }` registers where the device gets
//! wake-ups; `DELETE /v1/push` removes it.

use axum::Json;
use axum::extract::State;

use super::ApiJson;
use crate::AppState;
use crate::auth::AuthedDevice;
use crate::error::{AppError, ErrorCode};
use crate::push::vet_endpoint;
pub use starling_protocol::api::PushRegistration;

pub(crate) async fn register(
    State(state): State<AppState>,
    device: AuthedDevice,
    ApiJson(request): ApiJson<PushRegistration>,
) -> Result<Json<serde_json::Value>, AppError> {
    vet_endpoint(&request.endpoint, &state.config.push)
        .await
        .map_err(|e| AppError::bad_request(ErrorCode::PushEndpointRefused, e.to_string()))?;
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
