//! Directory search: the query checks and the read of the published
//! directory; the matching itself (prefix, then fuzzy) is `directory`.

use crate::AppState;
use crate::error::{AppError, ErrorCode};
use crate::store::DirectoryEntry;

/// Longest query, in bytes.
pub const MAX_QUERY_BYTES: usize = 100;
/// Results of a search that names no limit.
pub const DEFAULT_RESULTS: usize = 20;
/// Most results one search returns.
pub const MAX_RESULTS: usize = 100;

/// The best matches for `query`, best first: at most `limit` of them
/// ([`DEFAULT_RESULTS`] if `None`, never more than [`MAX_RESULTS`]).
pub async fn search(
    state: &AppState,
    query: &str,
    limit: Option<usize>,
) -> Result<Vec<DirectoryEntry>, AppError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(AppError::bad_request(
            ErrorCode::BadQuery,
            format!("queries are at most {MAX_QUERY_BYTES} bytes"),
        ));
    }
    let limit = limit.unwrap_or(DEFAULT_RESULTS).clamp(1, MAX_RESULTS);
    let entries = state.store.directory().await?;
    Ok(crate::directory::search(entries, query, limit))
}
