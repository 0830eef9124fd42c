//! The operator's endpoints: `/healthz` (the process answers and the
//! database does too) and `/metrics` (Prometheus text format, only with
//! the configured token; see [`crate::config::MetricsConfig`]).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use subtle::ConstantTimeEq;

use crate::AppState;
use crate::auth::hash_secret;
use crate::error::AppError;

/// 200 when the database answers, 503 otherwise.
pub(super) async fn healthz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(error) => {
            tracing::warn!(error = %error, "health check: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

/// The server's metrics, for a scraper presenting the token.
pub(super) async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(token) = state
        .config
        .metrics
        .token
        .as_ref()
        .filter(|t| !t.0.is_empty())
    else {
        return AppError::NotFound("metrics (no STARLING_METRICS_TOKEN configured)")
            .into_response();
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    // Compared as hashes, in constant time.
    let matches = hash_secret(presented).ct_eq(&hash_secret(&token.0));
    if !bool::from(matches) {
        return AppError::Unauthorized.into_response();
    }
    match state.metrics.render() {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
