//! `GET /v1/directory?q=NAME&limit=N`: search the published directory
//! (`services::directory`); `GET /v1/directory/all`: all of it, which
//! clients keep to show display names next to usernames without asking
//! the server about any one name.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;

use crate::AppState;
use crate::auth::AuthedDevice;
use crate::error::{AppError, ErrorCode};
use crate::services::directory;
use crate::store::DirectoryEntry;

#[derive(Debug, Deserialize)]
pub(super) struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    limit: Option<usize>,
}

pub(super) async fn search(
    State(state): State<AppState>,
    device: AuthedDevice,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<Vec<DirectoryEntry>>, AppError> {
    state.limits.lookup(device.key())?;
    let Query(query) =
        query.map_err(|e| AppError::bad_request(ErrorCode::BadQuery, e.body_text()))?;
    directory::search(&state, &query.q, query.limit)
        .await
        .map(Json)
}

pub(super) async fn all(
    State(state): State<AppState>,
    device: AuthedDevice,
) -> Result<Json<Vec<DirectoryEntry>>, AppError> {
    state.limits.directory_copy(device.key())?;
    Ok(Json(state.store.directory().await?))
}
