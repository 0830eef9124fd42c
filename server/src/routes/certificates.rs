//! Sealed sender (`services::certificates`):
//!
//! - `GET /v1/certificate/server-keys`: the server's sender-certificate
//!   key chain (no credential needed: it is public, and clients check it
//!   against the key they pinned).
//! - `GET /v1/certificate/sender`: a short-lived certificate for the
//!   calling device.

use axum::Json;
use axum::extract::State;
use starling_protocol::api::{SenderCertificateResponse, ServerKeyChainResponse};

use crate::AppState;
use crate::auth::AuthedDevice;
use crate::error::AppError;
use crate::services::certificates;

pub(super) async fn server_keys(State(state): State<AppState>) -> Json<ServerKeyChainResponse> {
    Json(certificates::server_keys(&state))
}

pub(super) async fn sender(
    State(state): State<AppState>,
    device: AuthedDevice,
) -> Result<Json<SenderCertificateResponse>, AppError> {
    certificates::sender_certificate(&state, &device)
        .await
        .map(Json)
}
