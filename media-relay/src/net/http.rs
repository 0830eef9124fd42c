//! The HTTP API (WHIP-like signalling, metrics, health):
//!
//! - `POST /v1/calls/{call_id}/join` with `Authorization: Bearer <token>`
//!   and an SDP offer (`application/sdp`) → `201` with the SDP answer, the
//!   participant handle in `Location` and `Starling-Participant`.
//! - `DELETE /v1/calls/{call_id}/participants/{participant}` → `204`.
//! - `GET /v1/calls/{call_id}/participants/{participant}/streams` → `200`
//!   with `{"streams": [{"ssrc", "participant"}]}`: which participant
//!   publishes each stream the participant receives now, so its client can
//!   refuse a frame whose SFrame key id belongs to someone else.
//! - `GET /metrics` (Prometheus text) with `Authorization: Bearer TOKEN`,
//!   the configured scraper's token (not served without one); `GET /health`.
//!
//! Errors are JSON `{"code", "reason"}` as on the server.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, oneshot};

use super::engine_loop::Command;
use crate::engine::ParticipantKey;
use crate::error::{JoinError, LeaveError, OfferError};

/// Header that carries the participant handle.
pub const PARTICIPANT_HEADER: &str = "starling-participant";

/// What the handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) metrics_token: Option<Arc<str>>,
}

/// The router; `max_offer_bytes` bounds request bodies.
pub fn router(state: HttpState, max_offer_bytes: usize) -> Router {
    Router::new()
        .route("/v1/calls/{call_id}/join", post(join))
        .route(
            "/v1/calls/{call_id}/participants/{participant}",
            delete(leave),
        )
        .route(
            "/v1/calls/{call_id}/participants/{participant}/streams",
            get(streams),
        )
        .route("/metrics", get(metrics))
        .route("/health", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(max_offer_bytes))
        .with_state(state)
}

/// An API error: status, stable code, reason.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    reason: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = error_body(self.code, &self.reason);
        (self.status, Json(body)).into_response()
    }
}

fn error_body(code: &str, reason: &str) -> std::collections::BTreeMap<&'static str, String> {
    [("code", code.to_owned()), ("reason", reason.to_owned())]
        .into_iter()
        .collect()
}

impl From<JoinError> for ApiError {
    fn from(e: JoinError) -> Self {
        let status = match &e {
            JoinError::BadCallId | JoinError::BadOffer(_) => StatusCode::BAD_REQUEST,
            JoinError::MissingToken | JoinError::InvalidToken(_) | JoinError::ExpiredToken(_) => {
                StatusCode::UNAUTHORIZED
            }
            JoinError::ReplayedToken => StatusCode::FORBIDDEN,
            JoinError::CallFull { .. } => StatusCode::CONFLICT,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        let status = match e {
            JoinError::BadOffer(OfferError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => status,
        };
        Self {
            status,
            code: e.code(),
            reason: e.to_string(),
        }
    }
}

fn unavailable() -> ApiError {
    ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "unavailable",
        reason: "relay is shutting down".to_owned(),
    }
}

/// The token from `Authorization: Bearer <token>`, if any.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

async fn join(
    State(state): State<HttpState>,
    Path(call_id): Path<String>,
    headers: HeaderMap,
    offer: String,
) -> Result<Response, ApiError> {
    let (reply, answer) = oneshot::channel();
    let command = Command::Join {
        call_id: call_id.clone(),
        token: bearer(&headers),
        offer,
        reply,
    };
    state
        .commands
        .send(command)
        .await
        .map_err(|_| unavailable())?;
    let joined = answer.await.map_err(|_| unavailable())??;
    let key = joined.key.to_text();
    let location = format!("/v1/calls/{call_id}/participants/{key}");
    let mut response = (StatusCode::CREATED, joined.answer).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    // Both are made of [A-Za-z0-9_-], which are valid header characters.
    if let (Ok(location), Ok(key)) = (
        HeaderValue::from_str(&location),
        HeaderValue::from_str(&key),
    ) {
        headers.insert(header::LOCATION, location);
        headers.insert(PARTICIPANT_HEADER, key);
    }
    Ok(response)
}

async fn leave(
    State(state): State<HttpState>,
    Path((call_id, participant)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    ask_participant(&state, &participant, |key, reply| Command::Leave {
        call_id,
        key,
        reply,
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends the engine a command about the participant whose handle is
/// `participant`, and waits for its answer; an unknown handle or
/// participant is a 404.
async fn ask_participant<T>(
    state: &HttpState,
    participant: &str,
    command: impl FnOnce(ParticipantKey, oneshot::Sender<Result<T, LeaveError>>) -> Command,
) -> Result<T, ApiError> {
    let not_found = |e: LeaveError| ApiError {
        status: StatusCode::NOT_FOUND,
        code: "unknown_participant",
        reason: e.to_string(),
    };
    let key: ParticipantKey = participant.parse().map_err(not_found)?;
    let (reply, done) = oneshot::channel();
    state
        .commands
        .send(command(key, reply))
        .await
        .map_err(|_| unavailable())?;
    done.await.map_err(|_| unavailable())?.map_err(not_found)
}

/// What `GET …/streams` returns.
#[derive(serde::Serialize)]
struct Streams {
    streams: Vec<crate::engine::StreamSource>,
}

async fn streams(
    State(state): State<HttpState>,
    Path((call_id, participant)): Path<(String, String)>,
) -> Result<Json<Streams>, ApiError> {
    let streams = ask_participant(&state, &participant, |key, reply| Command::Streams {
        call_id,
        key,
        reply,
    })
    .await?;
    Ok(Json(Streams { streams }))
}

async fn metrics(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    let Some(token) = &state.metrics_token else {
        return ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            reason: "metrics are off (no --metrics-token)".into(),
        }
        .into_response();
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    // Equal lengths first (a length is no secret), then constant time.
    let matches = presented.len() == token.len()
        && bool::from(subtle::ConstantTimeEq::ct_eq(
            presented.as_bytes(),
            token.as_bytes(),
        ));
    if !matches {
        return ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            reason: "metrics need the scraper's token".into(),
        }
        .into_response();
    }
    let mut out = String::new();
    match prometheus_client::encoding::text::encode(&mut out, &state.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            out,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
