//! The per-device WebSocket (`/v1/ws`): protobuf frames (see
//! `proto/starling/server/v1/ws.proto`).
//!
//! On connect the device's queue is sent in order, then `QueueDrained`;
//! afterwards new envelopes are pushed as they arrive. An envelope stays
//! queued until the device acknowledges it, so anything unacknowledged
//! comes again after a reconnect (at least once; clients drop duplicates by
//! envelope id). At most [`MAX_IN_FLIGHT`] unacknowledged envelopes are
//! outstanding per connection. A malformed frame gets an `Error` frame and
//! the connection carries on.

use std::collections::HashSet;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;

use crate::AppState;
use crate::auth::AuthedDevice;
use crate::error::AppError;
use crate::frames::{self, client_frame, server_frame};
use crate::registry::ConnectionEvent;
use crate::routes::send_to_account;

/// Unacknowledged envelopes a connection may have outstanding.
pub const MAX_IN_FLIGHT: usize = 256;
/// Largest frame a client may send.
const MAX_CLIENT_FRAME: usize = 4 * 1024 * 1024;
/// Socket buffers are kept small: most connections are idle.
const BUFFER_SIZE: usize = 4 * 1024;

/// The WebSocket route.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/ws", get(upgrade))
}

async fn upgrade(
    State(state): State<AppState>,
    device: AuthedDevice,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade
        .read_buffer_size(BUFFER_SIZE)
        .write_buffer_size(0)
        .max_message_size(MAX_CLIENT_FRAME)
        .on_upgrade(move |socket| async move {
            if let Err(error) = Connection::new(state, device).run(socket).await {
                tracing::debug!(error = %error, "websocket closed with an error");
            }
        })
}

type Sink = futures_util::stream::SplitSink<WebSocket, Message>;

struct Connection {
    state: AppState,
    device: AuthedDevice,
    in_flight: HashSet<Vec<u8>>,
    /// Highest queue sequence number sent on this connection.
    cursor: i64,
}

/// Why a connection ended abnormally.
#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    #[error("socket: {0}")]
    Socket(#[from] axum::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("writer: {0}")]
    Writer(String),
}

impl Connection {
    fn new(state: AppState, device: AuthedDevice) -> Self {
        Self {
            state,
            device,
            in_flight: HashSet::new(),
            cursor: 0,
        }
    }

    async fn run(mut self, socket: WebSocket) -> Result<(), ConnectionError> {
        let registry = self.state.registry.clone();
        let mut registration = registry.register(self.device.account_id, self.device.device_id);
        let metrics = self.state.metrics.clone();
        metrics.connections.inc();
        let result = self.serve(socket, &mut registration).await;
        metrics.connections.dec();
        result
    }

    async fn serve(
        &mut self,
        socket: WebSocket,
        registration: &mut crate::registry::Registration<'_>,
    ) -> Result<(), ConnectionError> {
        let (mut sink, mut stream) = socket.split();
        self.deliver(&mut sink, true).await?;
        send(
            &mut sink,
            0,
            server_frame::Body::QueueDrained(frames::QueueDrained {}),
        )
        .await?;
        loop {
            tokio::select! {
                event = registration.events.recv() => match event {
                    Some(ConnectionEvent::Wake) => self.deliver(&mut sink, false).await?,
                    Some(ConnectionEvent::PrekeysLow { one_time, kem }) => {
                        let low = frames::PrekeysLow { one_time_remaining: one_time, kem_remaining: kem };
                        send(&mut sink, 0, server_frame::Body::PrekeysLow(low)).await?;
                    }
                    Some(ConnectionEvent::Replaced) | None => break,
                },
                message = stream.next() => match message {
                    Some(Ok(Message::Binary(bytes))) => self.handle_frame(&bytes, &mut sink).await?,
                    Some(Ok(Message::Text(_))) => {
                        send_error(&mut sink, 0, "bad_frame", "frames are binary protobuf").await?;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                },
            }
        }
        let _ = sink.close().await;
        Ok(())
    }

    /// Sends queued envelopes not yet in flight, oldest first. A wake-up
    /// reads only past the highest sequence number already sent (this
    /// process commits envelopes in sequence order through one writer); a
    /// full pass from the start of the queue runs on connect and whenever
    /// everything sent has been acknowledged, so an envelope committed out
    /// of order by another server process is still delivered.
    async fn deliver(&mut self, sink: &mut Sink, full_pass: bool) -> Result<(), ConnectionError> {
        let mut after = if full_pass { 0 } else { self.cursor };
        while self.in_flight.len() < MAX_IN_FLIGHT {
            let window = MAX_IN_FLIGHT - self.in_flight.len();
            let queued = self
                .state
                .store
                .envelopes_after(
                    self.device.account_id,
                    self.device.device_id,
                    after,
                    i64::try_from(window).unwrap_or(i64::MAX),
                )
                .await?;
            let Some(last) = queued.last() else { break };
            after = last.seq;
            let full_window = queued.len() == window;
            for envelope in queued {
                self.cursor = self.cursor.max(envelope.seq);
                if self.in_flight.contains(&envelope.envelope_id) {
                    continue;
                }
                let frame = frames::Envelope {
                    id: envelope.envelope_id.clone(),
                    sender: envelope.sender.unwrap_or_default(),
                    sender_device: envelope.sender_device.unwrap_or(0),
                    server_timestamp: envelope.created_at,
                    content: envelope.content,
                };
                send(sink, 0, server_frame::Body::Envelope(frame)).await?;
                self.in_flight.insert(envelope.envelope_id);
                self.state.metrics.envelopes_delivered.inc();
            }
            if !full_window {
                break;
            }
        }
        Ok(())
    }

    async fn handle_frame(&mut self, bytes: &[u8], sink: &mut Sink) -> Result<(), ConnectionError> {
        let Ok(frame) = frames::ClientFrame::decode(bytes) else {
            return send_error(sink, 0, "bad_frame", "not a ClientFrame").await;
        };
        let request_id = frame.request_id;
        match frame.body {
            Some(client_frame::Body::Ack(ack)) => {
                if ack.envelope_ids.len() > MAX_IN_FLIGHT * 4 {
                    return send_error(
                        sink,
                        request_id,
                        "too_many_ids",
                        "acknowledge fewer ids at once",
                    )
                    .await;
                }
                let deleted = self
                    .state
                    .writer
                    .write(crate::store::BatchOp::Acknowledge {
                        account_id: self.device.account_id,
                        device_id: self.device.device_id,
                        ids: ack.envelope_ids.clone(),
                    })
                    .await
                    .map_err(ConnectionError::Writer)?;
                self.state.metrics.envelopes_acknowledged.inc_by(deleted);
                for id in &ack.envelope_ids {
                    self.in_flight.remove(id);
                }
                if request_id != 0 {
                    respond(sink, request_id, Ok(serde_json::json!({}))).await?;
                }
                // Room in the window: send what waited.
                let full_pass = self.in_flight.is_empty();
                self.deliver(sink, full_pass).await
            }
            Some(client_frame::Body::Send(send_message)) => {
                let envelopes = send_message
                    .envelopes
                    .into_iter()
                    .map(|e| (e.device_id, e.content))
                    .collect();
                let result = send_to_account(
                    &self.state,
                    &self.device,
                    &send_message.destination,
                    envelopes,
                    send_message.sealed,
                )
                .await
                .map(|r| serde_json::json!({ "stored": r.stored }));
                respond(sink, request_id, result).await
            }
            Some(client_frame::Body::Ping(_)) => {
                respond(sink, request_id, Ok(serde_json::json!({}))).await
            }
            None => send_error(sink, request_id, "bad_frame", "empty frame").await,
        }
    }
}

async fn send(
    sink: &mut Sink,
    request_id: u64,
    body: server_frame::Body,
) -> Result<(), ConnectionError> {
    let frame = frames::ServerFrame {
        request_id,
        body: Some(body),
    };
    sink.send(Message::Binary(frame.encode_to_vec().into()))
        .await?;
    Ok(())
}

async fn send_error(
    sink: &mut Sink,
    request_id: u64,
    code: &str,
    reason: &str,
) -> Result<(), ConnectionError> {
    let error = frames::Error {
        code: code.into(),
        reason: reason.into(),
    };
    send(sink, request_id, server_frame::Body::Error(error)).await
}

async fn respond(
    sink: &mut Sink,
    request_id: u64,
    result: Result<serde_json::Value, AppError>,
) -> Result<(), ConnectionError> {
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
    send(sink, request_id, server_frame::Body::Response(response)).await
}
