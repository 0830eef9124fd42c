//! Sends: `PUT /v1/messages/{username}` (one account) and
//! `PUT /v1/messages` (several, for groups). The checks and the queueing
//! to the group-commit writer are `services::sends`.

use axum::Json;
use axum::extract::State;
use starling_protocol::api::{MultiSendRequest, SendRequest, SendResponse};

use super::{ApiJson, ApiPath};
use crate::AppState;
use crate::auth::AuthedDevice;
use crate::error::AppError;
use crate::services::sends;

pub(super) async fn send(
    State(state): State<AppState>,
    sender: AuthedDevice,
    ApiPath(destination): ApiPath<String>,
    ApiJson(request): ApiJson<SendRequest>,
) -> Result<Json<SendResponse>, AppError> {
    let envelopes = sends::decode_envelopes(&request.envelopes)?;
    sends::send_to_account(&state, &sender, destination, envelopes, request.sealed)
        .await
        .map(Json)
}

pub(super) async fn send_many(
    State(state): State<AppState>,
    sender: AuthedDevice,
    ApiJson(request): ApiJson<MultiSendRequest>,
) -> Result<Json<SendResponse>, AppError> {
    sends::send_many(&state, &sender, request).await.map(Json)
}
