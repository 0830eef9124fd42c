//! What both WebSockets share: close codes and frames, answers to
//! requests, and why a connection ended.

use axum::extract::ws::{Message, WebSocket};
use futures_util::SinkExt;
use futures_util::stream::FuturesUnordered;
use prost::Message as _;
use std::pin::Pin;

use crate::error::{AppError, ErrorCode};
use crate::frames::{self, server_frame};
use crate::services::queue::QueueError;

pub(super) type Sink = futures_util::stream::SplitSink<WebSocket, Message>;
pub(super) type SendOutcome = (u64, Result<serde_json::Value, AppError>);
pub(super) type PendingSends = FuturesUnordered<Pin<Box<dyn Future<Output = SendOutcome> + Send>>>;

/// WebSocket close code for a device removed or an account disabled
/// while connected (RFC 6455 "policy violation").
pub const CLOSE_REVOKED: u16 = 1008;
/// Close code for a connection replaced by a newer one of the same device
/// (RFC 6455 "normal closure").
pub const CLOSE_REPLACED: u16 = 1000;
/// Close code for a peer that answered no ping for two intervals (RFC 6455
/// "going away").
pub const CLOSE_SILENT: u16 = 1001;
/// Close code for a frame that breaks the WebSocket protocol (RFC 6455
/// "protocol error").
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code for a text message that is not UTF-8 (RFC 6455 "invalid
/// frame payload data").
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;
/// Close code for a message larger than the server takes (RFC 6455
/// "message too big").
pub const CLOSE_TOO_BIG: u16 = 1009;

/// A close frame with a code and a short reason.
pub(super) fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(axum::extract::ws::CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// The close frame a revoked device's connection gets.
pub(super) fn revoked_close() -> Message {
    close(CLOSE_REVOKED, "device removed or account disabled")
}

/// The close frame for a message that could not be read, or `None` when
/// the peer is gone and nothing can reach it.
pub(super) fn read_error_close(error: axum::Error) -> Option<Message> {
    let error = error.into_inner();
    tracing::debug!(error = %error, "unreadable websocket message");
    let (code, reason) = match error.downcast_ref::<tungstenite::Error>()? {
        tungstenite::Error::Capacity(_) => (CLOSE_TOO_BIG, "message larger than 4 MiB"),
        tungstenite::Error::Utf8(_) => (CLOSE_INVALID_PAYLOAD, "text message is not UTF-8"),
        tungstenite::Error::Protocol(_) => (CLOSE_PROTOCOL_ERROR, "malformed WebSocket frame"),
        _ => return None,
    };
    Some(close(code, reason))
}

/// Whether the connection goes on after a step.
pub(super) enum Flow {
    Continue,
    Stop,
}

/// Why a connection ended abnormally.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnectionError {
    #[error("socket: {0}")]
    Socket(#[from] axum::Error),
    #[error(transparent)]
    Queue(#[from] QueueError),
}
/// One server frame as a WebSocket message.
pub(super) fn message(request_id: u64, body: server_frame::Body) -> Message {
    let frame = frames::ServerFrame {
        request_id,
        body: Some(body),
    };
    Message::Binary(frame.encode_to_vec().into())
}

pub(super) async fn send(
    sink: &mut Sink,
    request_id: u64,
    body: server_frame::Body,
) -> Result<(), ConnectionError> {
    sink.send(message(request_id, body)).await?;
    Ok(())
}

pub(super) async fn send_error(
    sink: &mut Sink,
    request_id: u64,
    code: ErrorCode,
    reason: &str,
) -> Result<(), ConnectionError> {
    let error = frames::Error {
        code: code.as_str().into(),
        reason: reason.into(),
    };
    send(sink, request_id, server_frame::Body::Error(error)).await
}

pub(super) async fn respond(
    sink: &mut Sink,
    request_id: u64,
    result: Result<serde_json::Value, AppError>,
) -> Result<(), ConnectionError> {
    sink.send(answer(request_id, result)).await?;
    Ok(())
}

/// Like [`respond`], but leaves the answer in the write buffer for the
/// caller to flush with others.
pub(super) async fn feed_answer(
    sink: &mut Sink,
    request_id: u64,
    result: Result<serde_json::Value, AppError>,
) -> Result<(), ConnectionError> {
    sink.feed(answer(request_id, result)).await?;
    Ok(())
}

/// The `Response` frame answering request `request_id`.
fn answer(request_id: u64, result: Result<serde_json::Value, AppError>) -> Message {
    let (status, body) = match result {
        Ok(value) => (200, value.to_string()),
        Err(error) => {
            if let AppError::Internal(detail) = &error {
                tracing::error!(detail = %detail, "internal error on websocket");
            }
            let body = serde_json::to_string(&error.body()).unwrap_or_default();
            (u32::from(error.status().as_u16()), body)
        }
    };
    let response = frames::Response {
        status,
        body_json: body,
    };
    message(request_id, server_frame::Body::Response(response))
}
