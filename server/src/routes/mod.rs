//! The `/v1` HTTP API (JSON; binary fields travel as standard base64).
//! Each handler parses the request, authenticates the device, calls a
//! service (`crate::services`) and encodes the answer; only [`router`] is
//! visible outside.
//!
//! - `accounts`: registration, linked devices, device lists and removal.
//! - `keys`: prekey upload, bundle fetch (claims one-time prekeys), counts.
//! - `messages`: sends (one account, or many for groups).
//! - `attachments`: resumable blob upload, ranged download.
//! - `calls`: media relay join tokens and TURN credentials.
//! - `certificates`: sealed sender's server keys and sender certificates.
//! - `directory`: directory search.
//! - `push`: push endpoint registration.
//! - `transparency`: the key transparency log's roots and audit proofs.
//! - `health`: `/healthz` and `/metrics`.

mod accounts;
mod attachments;
mod calls;
mod certificates;
mod directory;
mod health;
mod keys;
mod messages;
mod push;
mod transparency;

use axum::Router;
use axum::routing::{delete, get, post, put};

use crate::AppState;
use crate::error::AppError;

/// The HTTP routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/accounts", post(accounts::register))
        .route("/v1/accounts/access", put(accounts::set_access))
        .route(
            "/v1/accounts/{username}/devices",
            get(accounts::list_devices),
        )
        .route("/v1/devices", post(accounts::link_device))
        .route("/v1/devices/link-code", post(accounts::create_link_code))
        .route("/v1/devices/{device_id}", delete(accounts::remove_device))
        .route("/v1/keys", put(keys::upload))
        .route("/v1/keys/count", get(keys::count))
        .route("/v1/keys/{username}/{device}", get(keys::fetch))
        .route("/v1/messages", put(messages::send_many))
        .route("/v1/messages/{username}", put(messages::send))
        .route("/v1/multi-recipient", put(messages::send_multi_recipient))
        .route("/v1/directory", get(directory::search))
        .route("/v1/directory/all", get(directory::all))
        .route("/v1/push", put(push::register).delete(push::unregister))
        .route("/v1/calls/tokens", post(calls::join_token))
        .route("/v1/calls/token-key", get(calls::token_key))
        .route("/v1/calls/turn", get(calls::turn_credentials))
        .route(
            "/v1/certificate/server-keys",
            get(certificates::server_keys),
        )
        .route("/v1/certificate/sender", get(certificates::sender))
        .route("/v1/transparency/root", get(transparency::latest_root))
        .route("/v1/transparency/roots/{epoch}", get(transparency::root))
        .route("/v1/transparency/audit", get(transparency::audit))
        .route("/v1/transparency/history", get(transparency::history))
        .route(
            "/v1/transparency/latest/{username}",
            get(transparency::latest),
        )
        .route("/v1/attachments", post(attachments::create))
        .route(
            "/v1/attachments/{id}",
            put(attachments::upload).get(attachments::download),
        )
        .route(
            "/v1/attachments/{id}/upload",
            get(attachments::upload_status),
        )
}

/// `Json` whose rejections are [`AppError`]s (JSON bodies with a code).
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
struct ApiJson<T>(T);

/// `Path` whose rejections are [`AppError`]s.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
struct ApiPath<T>(T);

/// The API description, served at `/v1/openapi.json`.
const OPENAPI: &str = include_str!("../../api/openapi.json");

async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
}
