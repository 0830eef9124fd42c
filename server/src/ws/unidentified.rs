//! The anonymous WebSocket (`/v1/ws/unidentified`): unidentified sends
//! (`crypto/SPEC.md` §15.8) without an HTTP request, and so without a TLS
//! handshake or a request's parsing, each.
//!
//! It carries no credential and is bound to no device: the upgrade is
//! refused when it carries an `Authorization` header, the server never
//! delivers an envelope on it, and it takes only `UnidentifiedSend` and
//! `Ping` frames. Each send is authorised by its destination's access key
//! and answered with the `Response` that `PUT /v1/messages/{username}`
//! without a credential would give, under the same limits; from this host
//! (a local client, or a proxy) the per-host limit applies per connection.
//!
//! Past the writer's busy mark, a connection with a send waiting reads
//! its next frame only once that send is answered ([`reads_next`]): the
//! sender is slowed by flow control rather than refused as busy.
//!
//! A socket that has sent no frame for [`IDLE_CLOSE`] is closed
//! ([`CLOSE_IDLE`]): without a credential, it should not hold a
//! connection slot for nothing.
//!
//! Sends made on one connection are linkable to each other (not to their
//! sender) by the server: a client that wants every send apart uses
//! HTTP with a fresh connection each, as the reference client does.
//! Malformed input is answered as on `/v1/ws` (see its module doc).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::{FutureExt, SinkExt, StreamExt};
use prost::Message as _;

use super::io::{
    CLOSE_SILENT, ConnectionError, Flow, PendingSends, Sink, close, feed_answer, read_error_close,
    respond, send_error,
};
use super::{BUFFER_SIZE, MAX_CLIENT_FRAME, MAX_PENDING_SENDS};
use crate::AppState;
use crate::auth::PeerAddr;
use crate::error::{AppError, ErrorCode};
use crate::frames::{self, client_frame};
use crate::services::unidentified::{self, Origin};

/// Numbers anonymous connections apart within this process, for the
/// limits of those from this host.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// An anonymous socket that has sent nothing for this long is closed:
/// it holds a connection slot without a credential.
pub(super) const IDLE_CLOSE: Duration = Duration::from_secs(300);

/// Close code for an anonymous socket idle for [`IDLE_CLOSE`] (RFC 6455
/// "going away").
pub(super) const CLOSE_IDLE: u16 = 1001;

pub(super) async fn upgrade(
    State(state): State<AppState>,
    PeerAddr(peer): PeerAddr,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if headers.contains_key(axum::http::header::AUTHORIZATION) {
        // Taken, the credential would tie every send on it to its device.
        return AppError::bad_request(
            ErrorCode::BadUpgrade,
            "the unidentified socket takes no Authorization header",
        )
        .into_response();
    }
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return AppError::bad_request(ErrorCode::BadUpgrade, rejection.body_text())
                .into_response();
        }
    };
    let origin = Origin::Socket {
        peer,
        connection: NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed),
    };
    upgrade
        .read_buffer_size(BUFFER_SIZE)
        .write_buffer_size(BUFFER_SIZE)
        .max_message_size(MAX_CLIENT_FRAME)
        .on_upgrade(move |socket| async move {
            state.metrics.unidentified_connections.inc();
            if let Err(error) = serve(&state, origin, socket).await {
                tracing::debug!(error = %error, "unidentified websocket closed with an error");
            }
            state.metrics.unidentified_connections.dec();
        })
}

async fn serve(state: &AppState, origin: Origin, socket: WebSocket) -> Result<(), ConnectionError> {
    let (mut sink, mut stream) = socket.split();
    let mut pending = PendingSends::new();
    let ping_every = Duration::from_secs(state.config.connections.websocket_ping_seconds.max(1));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = tokio::time::Instant::now();
    let mut last_send = tokio::time::Instant::now();
    // A step stuck writing to a peer that stopped reading ends the
    // connection, as on `/v1/ws`, by one timer pushed back only once a
    // quarter of it has passed (most steps touch no timer).
    let step_deadline = ping_every * 2;
    let stall = tokio::time::sleep(step_deadline);
    tokio::pin!(stall);
    loop {
        let now = tokio::time::Instant::now();
        if stall.deadline() < now + step_deadline * 3 / 4 {
            stall.as_mut().reset(now + step_deadline);
        }
        let step = async {
            tokio::select! {
                _ = ping.tick() => {
                    if last_heard.elapsed() >= ping_every * 2 {
                        let _ = sink.send(close(CLOSE_SILENT, "no answer to pings")).await;
                        return Ok(Flow::Stop);
                    }
                    if last_send.elapsed() >= IDLE_CLOSE && pending.is_empty() {
                        let _ = sink.send(close(CLOSE_IDLE, "no sends for five minutes")).await;
                        return Ok(Flow::Stop);
                    }
                    sink.send(Message::Ping(Default::default())).await?;
                }
                Some((request_id, result)) = pending.next(), if !pending.is_empty() => {
                    // Every answer ready now goes out in one write.
                    feed_answer(&mut sink, request_id, result).await?;
                    while let Some(Some((request_id, result))) = pending.next().now_or_never() {
                        feed_answer(&mut sink, request_id, result).await?;
                    }
                    sink.flush().await?;
                    // Written out: the peer reads, even while its sends
                    // wait and its pongs stay unread behind them.
                    last_heard = tokio::time::Instant::now();
                }
                message = stream.next(), if reads_next(state, &pending) => {
                    last_heard = tokio::time::Instant::now();
                    match message {
                        Some(Ok(Message::Binary(bytes))) => {
                            last_send = tokio::time::Instant::now();
                            handle_frame(state, origin, &bytes, &mut sink, &mut pending).await?;
                        }
                        Some(Ok(Message::Text(_))) => {
                            send_error(&mut sink, 0, ErrorCode::BadFrame, "frames are binary protobuf").await?;
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Err(error)) => {
                            if let Some(close) = read_error_close(error) {
                                let _ = sink.send(close).await;
                            }
                            return Ok(Flow::Stop);
                        }
                        Some(Ok(Message::Close(_))) | None => return Ok(Flow::Stop),
                    }
                }
            }
            Ok::<_, ConnectionError>(Flow::Continue)
        };
        let flow = tokio::select! {
            biased;
            flow = step => flow?,
            () = &mut stall => {
                state.metrics.websockets_stalled.inc();
                return Ok(());
            }
        };
        if let Flow::Stop = flow {
            break;
        }
    }
    let _ = sink.close().await;
    Ok(())
}

/// Whether the connection reads its next frame now. Past the writer's
/// busy mark, a connection with a send waiting would have its next one
/// refused: it waits for its answers first, and the sender's frames wait
/// in its socket (flow control) instead of costing both ends a refusal
/// and a retry. A device's own socket gets the same from its loop, which
/// reads the next send only between deliveries.
fn reads_next(state: &AppState, pending: &PendingSends) -> bool {
    pending.is_empty() || (pending.len() < MAX_PENDING_SENDS && !state.writer.past_busy_mark())
}

async fn handle_frame(
    state: &AppState,
    origin: Origin,
    bytes: &[u8],
    sink: &mut Sink,
    pending: &mut PendingSends,
) -> Result<(), ConnectionError> {
    let Ok(frame) = frames::ClientFrame::decode(bytes) else {
        return send_error(sink, 0, ErrorCode::BadFrame, "not a ClientFrame").await;
    };
    let request_id = frame.request_id;
    match frame.body {
        Some(client_frame::Body::UnidentifiedSend(send)) => {
            match queue(state, origin, send).await {
                Ok(queued) => {
                    pending.push(Box::pin(async move {
                        let result = queued.stored().await.and_then(|r| {
                            serde_json::to_value(r)
                                .map_err(|e| AppError::Internal(format!("encoding a reply: {e}")))
                        });
                        (request_id, result)
                    }));
                    Ok(())
                }
                Err(error) => respond(sink, request_id, Err(error)).await,
            }
        }
        Some(client_frame::Body::Ping(_)) => {
            respond(sink, request_id, Ok(serde_json::json!({}))).await
        }
        Some(client_frame::Body::Send(_) | client_frame::Body::Ack(_)) => {
            let reason = "this socket carries only unidentified sends; it has no device";
            send_error(sink, request_id, ErrorCode::BadFrame, reason).await
        }
        None => {
            let reason = "no body this server knows (empty, or of an unknown kind)";
            send_error(sink, request_id, ErrorCode::BadFrame, reason).await
        }
    }
}

/// Checks the frame's access key and queues its send.
async fn queue(
    state: &AppState,
    origin: Origin,
    send: frames::UnidentifiedSend,
) -> Result<unidentified::QueuedUnidentified, AppError> {
    let key = zeroize::Zeroizing::new(send.access_key);
    let key = match key.len() {
        0 => None,
        _ => Some(zeroize::Zeroizing::new(
            <unidentified::AccessKey>::try_from(key.as_slice()).map_err(|_| {
                AppError::bad_request(ErrorCode::BadFrame, "`access_key` must be 16 bytes")
            })?,
        )),
    };
    let envelopes = send
        .envelopes
        .into_iter()
        .map(|e| (e.device_id, e.content))
        .collect();
    unidentified::queue_send(state, origin, send.destination, envelopes, key).await
}
