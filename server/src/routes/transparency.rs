//! Key transparency (`services::transparency`), open to anyone but the
//! histories: the log is public, and auditors need no account.
//!
//! - `GET /v1/transparency/root`: the newest signed root.
//! - `GET /v1/transparency/roots/{epoch}`: an epoch's signed root.
//! - `GET /v1/transparency/audit?from=E&limit=N`: the epochs after `E`,
//!   each with its append-only proof from the one before.
//! - `GET /v1/transparency/history`: every device list the log has held
//!   for the caller's own account (a device's credential), which its
//!   devices check they published.
//! - `GET /v1/transparency/latest/{username}`: an account's newest version
//!   with akd's proof of the most recent version (a device's credential).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use starling_protocol::Username;
use starling_protocol::api::{AuditQuery, AuditResponse, TransparencyHistory, TransparencyRoot};

use super::ApiPath;
use crate::AppState;
use crate::auth::AuthedDevice;
use crate::error::{AppError, ErrorCode};
use crate::services::{accounts, transparency};

pub(super) async fn latest_root(
    State(state): State<AppState>,
) -> Result<Json<TransparencyRoot>, AppError> {
    transparency::latest_root(&state).await.map(Json)
}

pub(super) async fn root(
    State(state): State<AppState>,
    ApiPath(epoch): ApiPath<u64>,
) -> Result<Json<TransparencyRoot>, AppError> {
    transparency::root(&state, epoch).await.map(Json)
}

pub(super) async fn audit(
    State(state): State<AppState>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditResponse>, AppError> {
    let Query(query) =
        query.map_err(|e| AppError::bad_request(ErrorCode::BadQuery, e.body_text()))?;
    transparency::audit(&state, query).await.map(Json)
}

pub(super) async fn history(
    State(state): State<AppState>,
    device: AuthedDevice,
) -> Result<Json<TransparencyHistory>, AppError> {
    state.limits.lookup(device.key())?;
    let username = Username::parse(&device.username)?;
    transparency::history(&state, &username, akd::HistoryParams::Complete)
        .await?
        .map(Json)
        .ok_or(AppError::NotFound("account in the log"))
}

/// An account's newest version in the log with akd's proof of the most
/// recent version, which a client checks once per new version of a
/// contact (SPEC §16.4). Any device may ask of an account whose keys it
/// may fetch: a disabled or unknown account is not found, as there.
pub(super) async fn latest(
    State(state): State<AppState>,
    device: AuthedDevice,
    ApiPath(username): ApiPath<String>,
) -> Result<Json<TransparencyHistory>, AppError> {
    state.limits.lookup(device.key())?;
    let username = Username::parse(&username)?;
    accounts::devices(&state, username.as_str()).await?;
    transparency::history(&state, &username, akd::HistoryParams::MostRecent(1))
        .await?
        .map(Json)
        .ok_or(AppError::NotFound("account in the log"))
}
