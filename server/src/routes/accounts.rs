//! Accounts and devices (`services::accounts`):
//!
//! - `POST /v1/accounts`: registration with the first device.
//! - `PUT /v1/accounts/access`: the account's access key and whether
//!   strangers may send it sealed envelopes (`services::access`).
//! - `GET /v1/accounts/{username}/devices`: an account's device ids, and
//!   (for the caller's own account only) whether it accepts sealed
//!   envelopes from strangers.
//! - `POST /v1/devices/link-code[?manager=true]`: a manager device
//!   authorises a new one (as a manager too, when asked).
//! - `POST /v1/devices`: a new device joins with that code.
//! - `DELETE /v1/devices/{device_id}`: a manager device removes another
//!   device of its account.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use starling_protocol::Username;
use starling_protocol::api::{
    DeviceCertificateEntry, DeviceList, LinkCode, LinkCodeQuery, LinkCodeRequest, LinkRequest,
    RegisterRequest, RegisterResponse, SetAccess,
};

use super::{ApiJson, ApiPath};
use crate::AppState;
use crate::auth::AuthedDevice;
use crate::encoding::{decode_b64, encode_b64};
use crate::error::{AppError, ErrorCode};
use crate::services::{access, accounts, transparency};

pub(super) async fn register(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RegisterRequest>,
) -> Result<Json<RegisterResponse>, AppError> {
    let username = Username::parse(&request.username)?;
    let identity_key = decode_b64("identity_key", &request.identity_key)?;
    accounts::register(
        &state,
        username,
        identity_key,
        request.invite_code.as_deref(),
    )
    .await
    .map(Json)
}

pub(super) async fn list_devices(
    State(state): State<AppState>,
    device: AuthedDevice,
    ApiPath(username): ApiPath<String>,
) -> Result<Json<DeviceList>, AppError> {
    state.limits.lookup(device.key())?;
    let devices = accounts::devices(&state, &username).await?;
    // The account's own choice, for its own devices only: others do not
    // learn who takes messages from strangers.
    let sealed_from_strangers = username == device.username
        && state
            .store
            .access(&username)
            .await?
            .is_some_and(|record| record.sealed_from_strangers);
    let transparency = match Username::parse(&username) {
        Ok(username) => transparency::proof(&state, &username).await?,
        Err(_) => None,
    };
    let certificates = state
        .store
        .device_certificates(&username)
        .await?
        .into_iter()
        .filter(|(id, _)| devices.contains(id))
        .map(|(device_id, certificate)| DeviceCertificateEntry {
            device_id,
            certificate: encode_b64(&certificate),
        })
        .collect();
    Ok(Json(DeviceList {
        devices,
        sealed_from_strangers,
        transparency,
        certificates,
    }))
}

pub(super) async fn set_access(
    State(state): State<AppState>,
    device: AuthedDevice,
    ApiJson(request): ApiJson<SetAccess>,
) -> Result<Json<serde_json::Value>, AppError> {
    access::set(&state, &device, &request).await?;
    Ok(Json(
        serde_json::json!({ "sealed_from_strangers": request.sealed_from_strangers }),
    ))
}

pub(super) async fn remove_device(
    State(state): State<AppState>,
    device: AuthedDevice,
    ApiPath(device_id): ApiPath<u32>,
) -> Result<Json<serde_json::Value>, AppError> {
    accounts::remove_device(&state, &device, device_id).await?;
    Ok(Json(serde_json::json!({ "removed": device_id })))
}

pub(super) async fn create_link_code(
    State(state): State<AppState>,
    device: AuthedDevice,
    query: Result<Query<LinkCodeQuery>, QueryRejection>,
    body: Bytes,
) -> Result<Json<LinkCode>, AppError> {
    let Query(query) =
        query.map_err(|e| AppError::bad_request(ErrorCode::BadQuery, e.body_text()))?;
    // The body is optional: a code without a grant links without a
    // certificate.
    let request: LinkCodeRequest = if body.is_empty() {
        LinkCodeRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| AppError::bad_request(ErrorCode::BadJson, e.to_string()))?
    };
    let grant = request
        .grant
        .as_deref()
        .map(|grant| decode_b64("grant", grant))
        .transpose()?;
    accounts::create_link_code(&state, &device, query.manager, grant.as_deref())
        .await
        .map(Json)
}

pub(super) async fn link_device(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<LinkRequest>,
) -> Result<Json<RegisterResponse>, AppError> {
    let identity_key = decode_b64("identity_key", &request.identity_key)?;
    let endorsement = match request.endorsement.as_deref() {
        Some(text) => Some(
            <[u8; 64]>::try_from(decode_b64("endorsement", text)?).map_err(|_| {
                AppError::bad_request(
                    ErrorCode::BadLinkSignature,
                    "`endorsement` must be 64 bytes",
                )
            })?,
        ),
        None => None,
    };
    accounts::link_device(
        &state,
        &request.link_code,
        identity_key,
        endorsement.as_ref(),
    )
    .await
    .map(Json)
}
