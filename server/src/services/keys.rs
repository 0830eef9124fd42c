//! Prekeys: upload (every signature checked against the device identity),
//! bundle fetch (claims one-time prekeys atomically, and tells a device
//! whose one-time prekeys run low), remaining counts.

use starling_crypto::prekeys::{KemPreKey, OneTimePreKey, SignedPreKey};
use starling_crypto::{IdentityKey, PreKeyBundle};
use starling_protocol::api::{KeyUpload, MAX_PREKEYS_PER_UPLOAD};

use crate::AppState;
use crate::auth::AuthedDevice;
use crate::encoding::decode_b64;
use crate::error::{AppError, ErrorCode};
use crate::store::{PrekeyCounts, UploadedKeys};

/// A bundle claimed for one device of an account.
#[derive(Debug)]
pub struct ClaimedBundle {
    /// The device.
    pub device_id: u32,
    /// Its identity, signed prekey and the one-time prekeys claimed.
    pub bundle: PreKeyBundle,
}

/// Which devices of an account a bundle fetch asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Devices {
    /// `*`: every device.
    All,
    /// One device.
    One(u32),
}

impl Devices {
    fn parse(device: &str) -> Result<Self, AppError> {
        if device == "*" {
            return Ok(Self::All);
        }
        device.parse().map(Self::One).map_err(|_| {
            AppError::bad_request(ErrorCode::BadDevice, "device must be a number or `*`")
        })
    }
}

/// Verifies an upload against the device's identity and stores it;
/// returns the counts of prekeys the device now has.
pub async fn upload(
    state: &AppState,
    device: &AuthedDevice,
    upload: &KeyUpload,
) -> Result<PrekeyCounts, AppError> {
    state
        .limits
        .prekey_upload((device.account_id, device.device_id))?;
    let identity = device_identity(state, device.account_id, device.device_id).await?;
    let keys = verify_upload(&identity, upload)?;
    let stored = counts(state, device).await?;
    let cap = state.config.messages.max_stored_prekeys;
    // Only adding keys is refused: a device above the cap (an older one)
    // may still rotate its signed and last-resort prekeys.
    let over = |now: u32, adding: usize| {
        adding > 0
            && u64::from(now).saturating_add(u64::try_from(adding).unwrap_or(u64::MAX))
                > u64::from(cap)
    };
    if over(stored.one_time, upload.one_time_prekeys.len())
        || over(stored.kem, upload.kem_prekeys.len())
    {
        return Err(AppError::Conflict {
            code: ErrorCode::TooManyPrekeys,
            reason: format!("a device may store at most {cap} one-time prekeys of each kind"),
        });
    }
    state
        .store
        .upload_keys(device.account_id, device.device_id, &keys)
        .await?;
    counts(state, device).await
}

/// How many prekeys `device` has left.
pub async fn counts(state: &AppState, device: &AuthedDevice) -> Result<PrekeyCounts, AppError> {
    Ok(state
        .store
        .prekey_counts(device.account_id, device.device_id)
        .await?)
}

/// Claims a bundle for one device of `username`, or for each (`device` is a
/// device id or `*`). A device without a signed prekey is left out. The
/// device is parsed once the account is found, so that an unknown account
/// is reported as such whatever the device.
pub async fn fetch_bundles(
    state: &AppState,
    requester: &AuthedDevice,
    username: &str,
    device: &str,
) -> Result<Vec<ClaimedBundle>, AppError> {
    state
        .limits
        .bundle_fetch((requester.account_id, requester.device_id))?;
    let (account_id, all_devices) = state
        .store
        .devices_of(username)
        .await?
        .ok_or(AppError::NotFound("account"))?;
    let wanted = match Devices::parse(device)? {
        Devices::All => all_devices,
        Devices::One(id) if all_devices.contains(&id) => vec![id],
        Devices::One(_) => return Err(AppError::NotFound("device")),
    };
    if let Err(refused) = state
        .limits
        .bundle_pair(requester.account_id, account_id, wanted.len())
    {
        state.metrics.bundle_fetches_refused.inc();
        return Err(refused);
    }
    let mut bundles = Vec::with_capacity(wanted.len());
    for device_id in wanted {
        if let Some(bundle) = claim_bundle(state, account_id, device_id).await? {
            bundles.push(ClaimedBundle { device_id, bundle });
        }
    }
    Ok(bundles)
}

fn bad_key(what: &str, error: impl std::fmt::Display) -> AppError {
    AppError::bad_request(ErrorCode::BadPrekey, format!("{what}: {error}"))
}

/// Decodes and checks every key of an upload, in the order of its fields.
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
    verify_kem_prekeys(identity, upload, &mut keys)?;
    Ok(keys)
}

/// The one-time ML-KEM prekeys, then the last-resort one.
fn verify_kem_prekeys(
    identity: &IdentityKey,
    upload: &KeyUpload,
    keys: &mut UploadedKeys,
) -> Result<(), AppError> {
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
    Ok(())
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

/// Claims one device's bundle; `None` if it has no signed prekey. Tells
/// the device when its one-time prekeys run low.
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
    if one_time.is_none() {
        state.metrics.one_time_prekeys_exhausted.inc();
    }
    let bundle =
        PreKeyBundle::new(identity, signed, one_time, kem).map_err(|e| stored("bundle", &e))?;
    state.metrics.bundles_served.inc();
    warn_if_low(state, account_id, device_id).await?;
    Ok(Some(bundle))
}

/// Tells a device whose one-time prekeys fell below the threshold.
async fn warn_if_low(state: &AppState, account_id: i64, device_id: u32) -> Result<(), AppError> {
    let counts = state.store.prekey_counts(account_id, device_id).await?;
    let threshold = state.config.messages.low_prekey_threshold;
    if counts.one_time < threshold || counts.kem < threshold {
        state
            .notifier
            .prekeys_low(account_id, device_id, counts.one_time, counts.kem);
    }
    Ok(())
}
