//! Prekeys: `PUT /v1/keys` (upload), `GET /v1/keys/count`, and
//! `GET /v1/keys/{username}/{device}` (bundle fetch; `device` may be `*`).
//! Verification and claims are `services::keys`.

use axum::Json;
use axum::extract::State;
use starling_protocol::Username;
use starling_protocol::api::{BundleResponse, DeviceBundle, KeyUpload};

use super::{ApiJson, ApiPath};
use crate::AppState;
use crate::auth::AuthedDevice;
use crate::encoding::encode_b64;
use crate::error::AppError;
use crate::services::{keys, transparency};
use crate::store::PrekeyCounts;

pub(super) async fn upload(
    State(state): State<AppState>,
    device: AuthedDevice,
    ApiJson(upload): ApiJson<KeyUpload>,
) -> Result<Json<PrekeyCounts>, AppError> {
    keys::upload(&state, &device, &upload).await.map(Json)
}

pub(super) async fn count(
    State(state): State<AppState>,
    device: AuthedDevice,
) -> Result<Json<PrekeyCounts>, AppError> {
    keys::counts(&state, &device).await.map(Json)
}

pub(super) async fn fetch(
    State(state): State<AppState>,
    requester: AuthedDevice,
    ApiPath((username, device)): ApiPath<(String, String)>,
) -> Result<Json<BundleResponse>, AppError> {
    // The fetch first: its rate limit covers the proof too.
    let bundles = keys::fetch_bundles(&state, &requester, &username, &device).await?;
    let transparency = match Username::parse(&username) {
        Ok(username) => transparency::proof(&state, &username).await?,
        Err(_) => None,
    };
    let mut certificates = if bundles.is_empty() {
        Vec::new()
    } else {
        state.store.device_certificates(&username).await?
    };
    let devices = bundles
        .into_iter()
        .map(|claimed| DeviceBundle {
            device_id: claimed.device_id,
            bundle: encode_b64(&claimed.bundle.to_bytes()),
            certificate: certificates
                .iter_mut()
                .find(|(id, _)| *id == claimed.device_id)
                .map(|(_, certificate)| encode_b64(certificate)),
        })
        .collect();
    Ok(Json(BundleResponse {
        devices,
        transparency,
    }))
}
