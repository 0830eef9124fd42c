//! Prekeys: upload (every signature checked against the device identity),
//! bundle fetch (claims one-time prekeys atomically), remaining counts.

use axum::Json;
use axum::extract::State;
use starling_crypto::prekeys::{KemPreKey, OneTimePreKey, SignedPreKey};
use starling_crypto::{IdentityKey, PreKeyBundle};

use super::{ApiJson, ApiPath};
use crate::AppState;
use crate::auth::AuthedDevice;
use crate::encoding::{decode_b64, encode_b64};
use crate::error::{AppError, ErrorCode};
use crate::store::{PrekeyCounts, UploadedKeys};
pub use starling_protocol::api::{BundleResponse, DeviceBundle, KeyUpload, MAX_PREKEYS_PER_UPLOAD};

fn bad_key(what: &str, error: impl std::fmt::Display) -> AppError {
    AppError::bad_request(ErrorCode::BadPrekey, format!("{what}: {error}"))
}

fn verify_upload(identity: &IdentityKey, upload: &KeyUpload) -> Result<UploadedKeys, AppError> {
    if upload.one_time_prekeys.len() > MAX_PREKEYS_PER_UPLOAD
        || upload.kem_prekeys.len() > MAX_PREKEYS_PER_UPLOAD
    {
        return Err(AppError::TooLarge(format!(
            "at most {MAX_PREKEYS_PER_UPLOAD} prekeys of each kind per upload"
        )));
    }
    let mut keys = UploadedKeys::default();
    if let Some(encoded) = &upload.signed_prekey {
        let bytes = decode_b64("signed_prekey", encoded)?;
        let key = SignedPreKey::from_bytes(&bytes).map_err(|e| bad_key("signed prekey", e))?;
        key.verify(identity)
            .map_err(|e| bad_key("signed prekey", e))?;
        keys.signed = Some(bytes);
    }
    for encoded in &upload.one_time_prekeys {
        let bytes = decode_b64("one_time_prekeys", encoded)?;
        let key = OneTimePreKey::from_bytes(&bytes).map_err(|e| bad_key("one-time prekey", e))?;
        keys.one_time.push((key.id(), bytes));
    }
    let kem = upload
        .kem_prekeys
        .iter()
        .map(|k| (k, false))
        .chain(upload.last_resort_kem_prekey.iter().map(|k| (k, true)));
    for (encoded, last_resort) in kem {
        let bytes = decode_b64("kem_prekeys", encoded)?;
        let key = KemPreKey::from_bytes(&bytes).map_err(|e| bad_key("kem prekey", e))?;
        key.verify(identity).map_err(|e| bad_key("kem prekey", e))?;
        if key.is_last_resort() != last_resort {
            return Err(bad_key(
                "kem prekey",
                "last-resort flag does not match the field",
            ));
        }
        if last_resort {
            keys.kem_last_resort = Some((key.id(), bytes));
        } else {
            keys.kem_one_time.push((key.id(), bytes));
        }
    }
    Ok(keys)
}

async fn device_identity(
    state: &AppState,
    account_id: i64,
    device: u32,
) -> Result<IdentityKey, AppError> {
    let bytes = state
        .store
        .identity_key(account_id, device)
        .await?
        .ok_or(AppError::NotFound("device"))?;
    IdentityKey::from_bytes(&bytes)
        .map_err(|e| AppError::Internal(format!("stored identity key: {e}")))
}

pub(crate) async fn upload(
    State(state): State<AppState>,
    device: AuthedDevice,
    ApiJson(upload): ApiJson<KeyUpload>,
) -> Result<Json<PrekeyCounts>, AppError> {
    let identity = device_identity(&state, device.account_id, device.device_id).await?;
    let keys = verify_upload(&identity, &upload)?;
    state
        .store
        .upload_keys(device.account_id, device.device_id, &keys)
        .await?;
    Ok(Json(
        state
            .store
            .prekey_counts(device.account_id, device.device_id)
            .await?,
    ))
}

pub(crate) async fn count(
    State(state): State<AppState>,
    device: AuthedDevice,
) -> Result<Json<PrekeyCounts>, AppError> {
    Ok(Json(
        state
            .store
            .prekey_counts(device.account_id, device.device_id)
            .await?,
    ))
}

pub(crate) async fn fetch(
    State(state): State<AppState>,
    requester: AuthedDevice,
    ApiPath((username, device)): ApiPath<(String, String)>,
) -> Result<Json<BundleResponse>, AppError> {
    state
        .limits
        .bundle_fetch((requester.account_id, requester.device_id))?;
    let (account_id, all_devices) = state
        .store
        .devices_of(&username)
        .await?
        .ok_or(AppError::NotFound("account"))?;
    let wanted: Vec<u32> = if device == "*" {
        all_devices
    } else {
        let id: u32 = device.parse().map_err(|_| {
            AppError::bad_request(ErrorCode::BadDevice, "device must be a number or `*`")
        })?;
        if !all_devices.contains(&id) {
            return Err(AppError::NotFound("device"));
        }
        vec![id]
    };
    let mut devices = Vec::with_capacity(wanted.len());
    for device_id in wanted {
        if let Some(bundle) = claim_bundle(&state, account_id, device_id).await? {
            devices.push(DeviceBundle {
                device_id,
                bundle: encode_b64(&bundle.to_bytes()),
            });
        }
    }
    Ok(Json(BundleResponse { devices }))
}

async fn claim_bundle(
    state: &AppState,
    account_id: i64,
    device_id: u32,
) -> Result<Option<PreKeyBundle>, AppError> {
    let identity = device_identity(state, account_id, device_id).await?;
    let claimed = state.store.claim_keys(account_id, device_id).await?;
    let Some(signed) = claimed.signed else {
        return Ok(None);
    };
    let stored =
        |what: &str, e: &dyn std::fmt::Display| AppError::Internal(format!("stored {what}: {e}"));
    let signed = SignedPreKey::from_bytes(&signed).map_err(|e| stored("signed prekey", &e))?;
    let one_time = claimed
        .one_time
        .map(|b| OneTimePreKey::from_bytes(&b))
        .transpose()
        .map_err(|e| stored("one-time prekey", &e))?;
    let kem = claimed
        .kem
        .map(|b| KemPreKey::from_bytes(&b))
        .transpose()
        .map_err(|e| stored("kem prekey", &e))?;
    let bundle =
        PreKeyBundle::new(identity, signed, one_time, kem).map_err(|e| stored("bundle", &e))?;
    state.metrics.bundles_served.inc();
    let counts = state.store.prekey_counts(account_id, device_id).await?;
    let threshold = state.config.messages.low_prekey_threshold;
    if counts.one_time < threshold || counts.kem < threshold {
        state
            .notifier
            .prekeys_low(account_id, device_id, counts.one_time, counts.kem);
    }
    Ok(Some(bundle))
}
