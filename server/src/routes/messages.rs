//! Sends: `PUT /v1/messages/{username}` (one account),
//! `PUT /v1/messages` (several, for groups) and
//! `PUT /v1/multi-recipient` (one sealed envelope for many
//! devices, uploaded once). The checks and the queueing to the
//! group-commit writer are `services::sends`; each route also takes an
//! unidentified send (`services::unidentified`).

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use starling_protocol::api::{
    MultiRecipientRequest, MultiSendRequest, SendRequest, SendResponse,
    UNIDENTIFIED_ACCESS_KEY_HEADER,
};

use super::{ApiJson, ApiPath};
use crate::AppState;
use crate::auth::{MaybeAuthed, PeerAddr};
use crate::error::{AppError, ErrorCode};
use crate::services::{multi_recipient, sends, unidentified};

pub(super) async fn send(
    State(state): State<AppState>,
    MaybeAuthed(sender): MaybeAuthed,
    PeerAddr(peer): PeerAddr,
    headers: HeaderMap,
    ApiPath(destination): ApiPath<String>,
    ApiJson(request): ApiJson<SendRequest>,
) -> Result<Json<SendResponse>, AppError> {
    let envelopes = sends::decode_envelopes(&request.envelopes)?;
    let key = match headers.get(UNIDENTIFIED_ACCESS_KEY_HEADER) {
        Some(value) => Some(value.to_str().map_err(|_| {
            AppError::bad_request(
                ErrorCode::BadJson,
                "the Unidentified-Access-Key header is not base64",
            )
        })?),
        None => None,
    };
    match sender {
        Some(sender) => {
            sends::send_to_account(&state, &sender, destination, envelopes, request.sealed).await
        }
        None => unidentified::send_to_account(&state, peer, destination, envelopes, key).await,
    }
    .map(Json)
}

pub(super) async fn send_many(
    State(state): State<AppState>,
    MaybeAuthed(sender): MaybeAuthed,
    PeerAddr(peer): PeerAddr,
    ApiJson(request): ApiJson<MultiSendRequest>,
) -> Result<Json<SendResponse>, AppError> {
    match sender {
        Some(sender) => sends::send_many(&state, &sender, request).await,
        None => unidentified::send_many(&state, peer, request).await,
    }
    .map(Json)
}

pub(super) async fn send_multi_recipient(
    State(state): State<AppState>,
    MaybeAuthed(sender): MaybeAuthed,
    PeerAddr(peer): PeerAddr,
    ApiJson(request): ApiJson<MultiRecipientRequest>,
) -> Result<Json<SendResponse>, AppError> {
    match sender {
        Some(sender) => multi_recipient::send(&state, &sender, request).await,
        None => multi_recipient::send_unidentified(&state, peer, request).await,
    }
    .map(Json)
}
