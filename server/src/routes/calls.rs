//! Calls (`services::calls`):
//!
//! - `POST /v1/calls/tokens`: a short-lived token that lets its holder
//!   join one call on the media relay; it names neither call nor device.
//! - `GET /v1/calls/token-key`: the public key the relay is configured with.
//! - `GET /v1/calls/turn`: time-limited TURN credentials, when a TURN
//!   secret is configured.

use axum::Json;
use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use starling_protocol::api::{JoinToken, TokenKey, TurnCredentials};

use crate::AppState;
use crate::auth::AuthedDevice;
use crate::error::AppError;
use crate::services::calls;

pub(super) async fn join_token(
    State(state): State<AppState>,
    device: AuthedDevice,
) -> Result<Json<JoinToken>, AppError> {
    calls::join_token(&state, &device).map(Json)
}

pub(super) async fn token_key(State(state): State<AppState>) -> Json<TokenKey> {
    Json(TokenKey {
        public_key: URL_SAFE_NO_PAD.encode(calls::token_key(&state)),
    })
}

pub(super) async fn turn_credentials(
    State(state): State<AppState>,
    device: AuthedDevice,
) -> Result<Json<TurnCredentials>, AppError> {
    calls::turn_credentials(&state, &device).map(Json)
}
