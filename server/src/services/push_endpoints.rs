//! Where a device gets push wake-ups: an endpoint URL, vetted (`push`)
//! before it is stored, one per device.

use crate::AppState;
use crate::auth::AuthedDevice;
use crate::error::{AppError, ErrorCode};
use crate::push::vet_endpoint;

/// Registers `endpoint` for `device`, replacing any earlier one.
pub async fn register(
    state: &AppState,
    device: &AuthedDevice,
    endpoint: &str,
) -> Result<(), AppError> {
    vet_endpoint(endpoint, &state.config.push)
        .await
        .map_err(|e| AppError::bad_request(ErrorCode::PushEndpointRefused, e.to_string()))?;
    state
        .store
        .set_push_endpoint(device.account_id, device.device_id, endpoint)
        .await?;
    Ok(())
}

/// Removes `device`'s endpoint, if it has one.
pub async fn unregister(state: &AppState, device: &AuthedDevice) -> Result<(), AppError> {
    state
        .store
        .remove_push_endpoint(device.account_id, device.device_id, None)
        .await?;
    Ok(())
}
