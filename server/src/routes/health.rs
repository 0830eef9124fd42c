//! `/healthz`: the process answers and the database does too.

use axum::extract::State;
use axum::http::StatusCode;

use crate::AppState;

/// 200 when the database answers, 503 otherwise.
pub(crate) async fn healthz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(error) => {
            tracing::warn!(error = %error, "health check: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}
