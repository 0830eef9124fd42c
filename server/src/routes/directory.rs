//! `GET /v1/directory?q=NAME&limit=N`: search the published directory.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;

use crate::AppState;
use crate::auth::AuthedDevice;
use crate::error::{AppError, ErrorCode};
use crate::store::DirectoryEntry;

/// Most results one search returns.
const MAX_RESULTS: usize = 100;

#[derive(Debug, Deserialize)]
pub(crate) struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    limit: Option<usize>,
}

pub(crate) async fn search(
    State(state): State<AppState>,
    _device: AuthedDevice,
    query: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<DirectoryEntry>>, AppError> {
    let Query(query) =
        query.map_err(|e| AppError::bad_request(ErrorCode::BadQuery, e.body_text()))?;
    if query.q.len() > 100 {
        return Err(AppError::bad_request(
            ErrorCode::BadQuery,
            "queries are at most 100 bytes",
        ));
    }
    let limit = query.limit.unwrap_or(20).clamp(1, MAX_RESULTS);
    let entries = state.store.directory().await?;
    Ok(Json(crate::directory::search(entries, &query.q, limit)))
}
