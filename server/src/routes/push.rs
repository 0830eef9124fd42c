//! `PUT /v1/push` `{ "endpoint": URL }` registers where the device gets
//! wake-ups; `DELETE /v1/push` removes it (`services::push_endpoints`).

use axum::Json;
use axum::extract::State;
use starling_protocol::api::PushRegistration;

use super::ApiJson;
use crate::AppState;
use crate::auth::AuthedDevice;
use crate::error::AppError;
use crate::services::push_endpoints;

pub(super) async fn register(
    State(state): State<AppState>,
    device: AuthedDevice,
    ApiJson(request): ApiJson<PushRegistration>,
) -> Result<Json<serde_json::Value>, AppError> {
    push_endpoints::register(&state, &device, &request.endpoint).await?;
    Ok(Json(serde_json::json!({ "registered": true })))
}

pub(super) async fn unregister(
    State(state): State<AppState>,
    device: AuthedDevice,
) -> Result<Json<serde_json::Value>, AppError> {
    push_endpoints::unregister(&state, &device).await?;
    Ok(Json(serde_json::json!({ "registered": false })))
}
