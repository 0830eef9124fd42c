//! Registration, device lists and device removal.

use axum::Json;
use axum::extract::State;
use starling_crypto::IdentityKey;

use starling_protocol::Username;

use super::{ApiJson, ApiPath};
use crate::AppState;
use crate::auth::{AuthedDevice, Credential, hash_secret};
use crate::encoding::decode_b64;
use crate::error::{AppError, ErrorCode};
use crate::store::{LinkError, NewDevice, RegisterError, now_millis};
pub use starling_protocol::api::{
    DeviceList, LinkCode, LinkRequest, RegisterRequest, RegisterResponse,
};

pub(crate) async fn register(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RegisterRequest>,
) -> Result<Json<RegisterResponse>, AppError> {
    Username::parse(&request.username)?;
    let identity_key = decode_b64("identity_key", &request.identity_key)?;
    IdentityKey::from_bytes(&identity_key)
        .map_err(|e| AppError::bad_request(ErrorCode::BadIdentityKey, e.to_string()))?;
    let invite = match (&request.invite_code, state.config.registration.open) {
        (Some(code), _) => Some(hash_secret(code.trim())),
        (None, true) => None,
        (None, false) => {
            return Err(AppError::bad_request(
                ErrorCode::InviteRequired,
                "an invite code is required",
            ));
        }
    };
    let credential = Credential::generate();
    let device = NewDevice {
        credential_hash: credential.hash,
        identity_key,
    };
    match state
        .store
        .register(&request.username, invite, &device, now_millis())
        .await
    {
        Ok(_) => {
            state.metrics.registrations.inc();
            Ok(Json(RegisterResponse {
                username: request.username,
                device_id: 1,
                credential: credential.secret,
            }))
        }
        Err(RegisterError::InvalidInvite) => {
            Err(AppError::Forbidden("invalid or expired invite code"))
        }
        Err(RegisterError::UsernameTaken) => Err(AppError::Conflict {
            code: ErrorCode::UsernameTaken,
            reason: "that username is taken".into(),
        }),
        Err(RegisterError::Database(e)) => Err(e.into()),
    }
}

pub(crate) async fn list_devices(
    State(state): State<AppState>,
    _device: AuthedDevice,
    ApiPath(username): ApiPath<String>,
) -> Result<Json<DeviceList>, AppError> {
    let (_, devices) = state
        .store
        .devices_of(&username)
        .await?
        .ok_or(AppError::NotFound("account"))?;
    Ok(Json(DeviceList { devices }))
}

pub(crate) async fn remove_device(
    State(state): State<AppState>,
    device: AuthedDevice,
    ApiPath(device_id): ApiPath<u32>,
) -> Result<Json<serde_json::Value>, AppError> {
    if !state
        .store
        .remove_device(device.account_id, device_id)
        .await?
    {
        return Err(AppError::NotFound("device"));
    }
    Ok(Json(serde_json::json!({ "removed": device_id })))
}

/// How long a link code is valid.
const LINK_CODE_TTL_MS: i64 = 10 * 60 * 1000;

/// `POST /v1/devices/link-code`: an existing device authorises a new one.
pub(crate) async fn create_link_code(
    State(state): State<AppState>,
    device: AuthedDevice,
) -> Result<Json<LinkCode>, AppError> {
    let code = Credential::generate().secret;
    let expires_at = now_millis().saturating_add(LINK_CODE_TTL_MS);
    state
        .store
        .create_link_code(&hash_secret(&code), device.account_id, expires_at)
        .await?;
    Ok(Json(LinkCode { code, expires_at }))
}

pub(crate) async fn link_device(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<LinkRequest>,
) -> Result<Json<RegisterResponse>, AppError> {
    let identity_key = decode_b64("identity_key", &request.identity_key)?;
    IdentityKey::from_bytes(&identity_key)
        .map_err(|e| AppError::bad_request(ErrorCode::BadIdentityKey, e.to_string()))?;
    let credential = Credential::generate();
    let device = NewDevice {
        credential_hash: credential.hash,
        identity_key,
    };
    let max = state.config.messages.max_devices_per_account;
    match state
        .store
        .link_device(
            &hash_secret(request.link_code.trim()),
            &device,
            max,
            now_millis(),
        )
        .await
    {
        Ok((username, device_id)) => Ok(Json(RegisterResponse {
            username,
            device_id,
            credential: credential.secret,
        })),
        Err(LinkError::InvalidCode) => Err(AppError::Forbidden("invalid or expired link code")),
        Err(LinkError::TooManyDevices) => Err(AppError::Conflict {
            code: ErrorCode::TooManyDevices,
            reason: format!("an account may have at most {max} devices"),
        }),
        Err(LinkError::Database(e)) => Err(e.into()),
    }
}
