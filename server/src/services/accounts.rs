//! Accounts and their devices: registration (open, or by invite code),
//! linking a further device with a short-lived code an existing device
//! asked for, device lists, device removal.
//!
//! A new device gets a random credential, returned once; the server keeps
//! only its hash (`auth`).

use starling_crypto::IdentityKey;
use starling_protocol::Username;
use starling_protocol::api::{LinkCode, RegisterResponse};

use crate::AppState;
use crate::auth::{AuthedDevice, Credential, hash_secret};
use crate::error::{AppError, ErrorCode};
use crate::services::transparency;
use crate::store::{LinkError, NewDevice, RegisterError, Removal, now_millis};

/// How long a link code is valid.
const LINK_CODE_TTL_MS: i64 = 10 * 60 * 1000;

/// A device's identity key must be one.
fn check_identity_key(identity_key: &[u8]) -> Result<(), AppError> {
    IdentityKey::from_bytes(identity_key)
        .map(drop)
        .map_err(|e| AppError::bad_request(ErrorCode::BadIdentityKey, e.to_string()))
}

/// Registers `username` with its first device. Without an invite code
/// only an open server accepts it.
pub async fn register(
    state: &AppState,
    username: Username,
    identity_key: Vec<u8>,
    invite_code: Option<&str>,
) -> Result<RegisterResponse, AppError> {
    check_identity_key(&identity_key)?;
    let invite = match (invite_code, state.config.registration.open) {
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
    let now = now_millis();
    let mut registered = state
        .store
        .register(username.as_str(), invite, &device, now)
        .await
        .map(|account| (account, 1));
    // An account whose devices an operator removed takes a new first
    // device with an invite bound to its name.
    if let (Err(RegisterError::UsernameTaken), Some(invite)) = (&registered, invite) {
        registered = state
            .store
            .register_again(username.as_str(), invite, &device, now)
            .await;
    }
    match registered {
        Ok((account_id, device_id)) => {
            state.metrics.registrations.inc();
            state.transparency.changed();
            // A send tried before the name existed no longer answers for it.
            state.access_cache.forget(username.as_str());
            transparency::wait_for_epoch(state, account_id).await;
            Ok(RegisterResponse {
                username: username.into_string(),
                device_id,
                credential: credential.secret,
                server_key: Some(state.certificate_keys.pin()),
                log: Some(transparency::pin(state)),
            })
        }
        Err(RegisterError::InvalidInvite) => {
            Err(AppError::Forbidden("invalid or expired invite code"))
        }
        Err(RegisterError::InviteForAnotherName) => Err(AppError::Forbidden(
            "this invite registers another username",
        )),
        Err(RegisterError::ReservedName) => Err(AppError::Forbidden(
            "that username belongs to a member of the organisation's directory: registering it takes an invite bound to it",
        )),
        Err(RegisterError::UsernameTaken) => Err(AppError::Conflict {
            code: ErrorCode::UsernameTaken,
            reason: "that username is taken".into(),
        }),
        Err(RegisterError::Database(e)) => Err(e.into()),
    }
}

/// The device ids of `username`'s account.
pub async fn devices(state: &AppState, username: &str) -> Result<Vec<u32>, AppError> {
    let (_, devices) = state
        .store
        .devices_of(username)
        .await?
        .ok_or(AppError::NotFound("account"))?;
    Ok(devices)
}

/// Only a manager device links and removes the account's devices.
fn require_manager(device: &AuthedDevice) -> Result<(), AppError> {
    if device.manager {
        return Ok(());
    }
    Err(AppError::Forbidden(
        "only a manager device (the one that registered the account, or one it linked as a manager) can link or remove devices",
    ))
}

/// Removes a device of the caller's own account (a manager's, never
/// itself), and closes the device's live connections on this process at
/// once; the other processes close theirs from the recorded revocation.
pub async fn remove_device(
    state: &AppState,
    device: &AuthedDevice,
    device_id: u32,
) -> Result<(), AppError> {
    require_manager(device)?;
    let removal = state
        .store
        .remove_device(device.account_id, device.device_id, device_id, now_millis())
        .await?;
    match removal {
        Removal::Removed => {
            state.registry.revoke(device.account_id, Some(device_id));
            state.transparency.changed();
            Ok(())
        }
        Removal::NoSuchDevice => Err(AppError::NotFound("device")),
        Removal::Itself => Err(AppError::Forbidden(
            "a device cannot remove itself; remove it from another manager device",
        )),
    }
}

/// A code with which a new device joins `device`'s account, as a manager
/// when `manager` is set.
pub async fn create_link_code(
    state: &AppState,
    device: &AuthedDevice,
    manager: bool,
    grant: Option<&[u8]>,
) -> Result<LinkCode, AppError> {
    require_manager(device)?;
    if let Some(grant) = grant {
        // Checked against the issuer's key when the code is used.
        starling_crypto::link::LinkGrant::from_bytes(grant).map_err(|e| {
            AppError::bad_request(ErrorCode::BadLinkSignature, format!("grant: {e}"))
        })?;
    }
    let code = Credential::generate().secret;
    let expires_at = now_millis().saturating_add(LINK_CODE_TTL_MS);
    state
        .store
        .create_link_code(
            &hash_secret(&code),
            (device.account_id, device.device_id),
            expires_at,
            manager,
            grant,
        )
        .await?;
    Ok(LinkCode { code, expires_at })
}

/// Adds a device to the account that asked for `link_code`.
pub async fn link_device(
    state: &AppState,
    link_code: &str,
    identity_key: Vec<u8>,
    endorsement: Option<&[u8; 64]>,
) -> Result<RegisterResponse, AppError> {
    check_identity_key(&identity_key)?;
    let credential = Credential::generate();
    let device = NewDevice {
        credential_hash: credential.hash,
        identity_key,
    };
    // The transparency log commits to at most this many devices.
    let max = state
        .config
        .messages
        .max_devices_per_account
        .min(u32::try_from(starling_transparency::commitment::MAX_DEVICES).unwrap_or(u32::MAX));
    match state
        .store
        .link_device(
            &hash_secret(link_code.trim()),
            (&device, endorsement),
            max,
            now_millis(),
        )
        .await
    {
        Ok((username, device_id)) => {
            state.transparency.changed();
            if let Some((account_id, _)) = state.store.devices_of(&username).await? {
                transparency::wait_for_epoch(state, account_id).await;
            }
            Ok(RegisterResponse {
                username,
                device_id,
                credential: credential.secret,
                server_key: Some(state.certificate_keys.pin()),
                log: Some(transparency::pin(state)),
            })
        }
        Err(LinkError::InvalidCode) => Err(AppError::Forbidden("invalid or expired link code")),
        Err(LinkError::TooManyDevices) => Err(AppError::Conflict {
            code: ErrorCode::TooManyDevices,
            reason: format!("an account may have at most {max} devices"),
        }),
        Err(LinkError::BadEndorsement) => Err(AppError::bad_request(
            ErrorCode::BadLinkSignature,
            "the endorsement does not match the link code's grant and the identity key",
        )),
        Err(LinkError::Database(e)) => Err(e.into()),
    }
}
