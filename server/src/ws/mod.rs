//! The per-device WebSocket (`/v1/ws`): protobuf frames (see
//! `proto/starling/server/v1/ws.proto`).
//!
//! On connect the device's queue is sent in order, then `QueueDrained`;
//! afterwards new envelopes are pushed as they arrive. An envelope stays
//! queued until the device acknowledges it, so anything unacknowledged
//! comes again after a reconnect (at least once; clients drop duplicates by
//! envelope id). At most [`MAX_IN_FLIGHT`] unacknowledged envelopes are
//! outstanding per connection.
//!
//! Malformed input, and what the client gets for it:
//!
//! - a binary message that is not a `ClientFrame` (garbage, a truncated
//!   encoding), a frame with no body or only a body of a kind this server
//!   does not know, or a text message: an `Error` frame (`bad_frame`, with
//!   the frame's request id when it had one), and the connection carries
//!   on;
//! - an acknowledgement of ids the connection does not await (unknown, or
//!   already acknowledged): nothing is deleted; it is answered 200 when it
//!   carries a request id, like any acknowledgement. More than
//!   `4 × MAX_IN_FLIGHT` ids in one frame: an `Error` frame (`too_many_ids`);
//! - a message larger than 4 MiB: the connection is closed with 1009
//!   (message too big);
//! - a text message that is not UTF-8: closed with 1007 (invalid payload);
//! - a frame that breaks the WebSocket protocol (reserved bits, an unknown
//!   opcode, an unmasked frame, a fragmented or oversized control frame, a
//!   continuation of nothing): closed with 1002 (protocol error);
//! - a peer that stops in the middle of a frame: closed with 1001 once it
//!   has been silent for two ping intervals, or, when it hangs up there,
//!   the connection just ends.
//!
//! Every close the server starts carries a code and a short reason: those
//! above, 1008 for a device removed or an account disabled
//! ([`CLOSE_REVOKED`]), 1000 for a connection replaced by a newer one of
//! the same device, 1001 for a peer silent for two ping intervals. A
//! request to `/v1/ws` that is not a WebSocket upgrade gets a 400
//! (`bad_upgrade`) with the usual JSON error body.
//!
//! This is transport: sends go to `services::sends`, queue reads and
//! acknowledgements to `services::queue`.
//!
//! Live envelopes come from the connection's mailbox (see `registry`),
//! straight from the writer that committed them; the connection reads the
//! queue from the database only on connect, when the mailbox overflowed,
//! when another node queued something, when acknowledgements open the
//! window on envelopes that had to wait, and once every
//! `RESCAN_EVERY` (for envelopes another server process queued).

mod io;
mod unidentified;

use std::collections::HashSet;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;

use crate::AppState;
use crate::auth::AuthedDevice;
use crate::delivery::StoredEnvelope;
use crate::error::{AppError, ErrorCode};
use crate::frames::{self, client_frame, server_frame};
use crate::registry::{Inbox, Mailbox};
use crate::services::queue;
use crate::services::sends;

pub use io::{
    CLOSE_INVALID_PAYLOAD, CLOSE_PROTOCOL_ERROR, CLOSE_REPLACED, CLOSE_REVOKED, CLOSE_SILENT,
    CLOSE_TOO_BIG,
};
use io::{
    ConnectionError, Flow, PendingSends, Sink, close, message, read_error_close, respond,
    revoked_close, send, send_error,
};

/// Unacknowledged envelopes a connection may have outstanding.
pub const MAX_IN_FLIGHT: usize = 256;
/// How often a connection reads its device's whole queue regardless: what
/// another server process queued reaches the device within this time even
/// when no cross-node notifier tells this process about it.
const RESCAN_EVERY: Duration = Duration::from_secs(60);
/// A full window is refilled from the database once acknowledgements bring
/// it down to this many, so that one read fetches many envelopes.
const REFILL_AT: usize = MAX_IN_FLIGHT / 2;
/// Sends a connection may have waiting for their commit; past it the
/// connection stops reading frames until one is answered.
const MAX_PENDING_SENDS: usize = 32;
/// Largest frame a client may send.
const MAX_CLIENT_FRAME: usize = 4 * 1024 * 1024;
/// Socket buffers are kept small: most connections are idle. Envelopes
/// sent together are written through the write buffer and flushed once;
/// every other frame is flushed at once.
const BUFFER_SIZE: usize = 4 * 1024;

/// The WebSocket route.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/ws", get(upgrade))
        .route("/v1/ws/unidentified", get(unidentified::upgrade))
}

async fn upgrade(
    State(state): State<AppState>,
    device: AuthedDevice,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return AppError::bad_request(ErrorCode::BadUpgrade, rejection.body_text())
                .into_response();
        }
    };
    upgrade
        .read_buffer_size(BUFFER_SIZE)
        .write_buffer_size(BUFFER_SIZE)
        .max_message_size(MAX_CLIENT_FRAME)
        .on_upgrade(move |socket| async move {
            if let Err(error) = Connection::new(state, device).run(socket).await {
                tracing::debug!(error = %error, "websocket closed with an error");
            }
        })
}

struct Connection {
    state: AppState,
    device: AuthedDevice,
    in_flight: HashSet<Vec<u8>>,
    /// Highest queue sequence number sent on this connection. Everything
    /// this process committed for the device up to it has been sent, unless
    /// `backlog` is set.
    cursor: i64,
    /// The window was full: envelopes past the cursor may wait in the
    /// database, so pushed ones must not overtake them.
    backlog: bool,
}

impl Connection {
    fn new(state: AppState, device: AuthedDevice) -> Self {
        Self {
            state,
            device,
            in_flight: HashSet::new(),
            cursor: 0,
            backlog: false,
        }
    }

    async fn run(mut self, socket: WebSocket) -> Result<(), ConnectionError> {
        let registry = self.state.registry.clone();
        let registration = registry.register(self.device.account_id, self.device.device_id);
        // A revocation between authentication and this registration found
        // nothing to close: read the device again now that it would.
        let current = self
            .state
            .store
            .device_for_auth(&self.device.username, self.device.device_id)
            .await;
        if !matches!(current, Ok(Some(ref record)) if !record.disabled) {
            let (mut sink, _) = socket.split();
            let _ = sink.send(revoked_close()).await;
            return Ok(());
        }
        let metrics = self.state.metrics.clone();
        metrics.connections.inc();
        let result = self.serve(socket, &registration.mailbox).await;
        metrics.connections.dec();
        result
    }

    async fn serve(&mut self, socket: WebSocket, mailbox: &Mailbox) -> Result<(), ConnectionError> {
        let (mut sink, mut stream) = socket.split();
        self.read_queue(&mut sink, 0).await?;
        send(
            &mut sink,
            0,
            server_frame::Body::QueueDrained(frames::QueueDrained {}),
        )
        .await?;
        let mut pending = PendingSends::new();
        let mut rescan =
            tokio::time::interval_at(tokio::time::Instant::now() + RESCAN_EVERY, RESCAN_EVERY);
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let ping_every =
            Duration::from_secs(self.state.config.connections.websocket_ping_seconds.max(1));
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = tokio::time::Instant::now();
        // Every step (waiting for the next event, then acting on it) ends
        // within two ping intervals, since the ping ticks within one; a
        // step that takes longer is stuck writing to a peer that stopped
        // reading, and the connection is dropped without more writing.
        let step_deadline = ping_every * 2;
        // One timer for the connection, pushed back only once a quarter of
        // it has passed: a step never has less than one and a half ping
        // intervals, and most steps touch no timer.
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
                        // Silent for two intervals (not even a pong): gone.
                        if last_heard.elapsed() >= ping_every * 2 {
                            let _ = sink.send(close(CLOSE_SILENT, "no answer to pings")).await;
                            return Ok(Flow::Stop);
                        }
                        sink.send(Message::Ping(Default::default())).await?;
                    }
                    inbox = mailbox.next() => {
                        if inbox.revoked {
                            let _ = sink.send(revoked_close()).await;
                            return Ok(Flow::Stop);
                        }
                        if inbox.replaced {
                            let replaced = close(CLOSE_REPLACED, "replaced by a newer connection");
                            let _ = sink.send(replaced).await;
                            return Ok(Flow::Stop);
                        }
                        self.take_inbox(inbox, &mut sink).await?;
                        // Written out: the peer reads, even if it has not
                        // spoken (a long delivery on a slow link).
                        last_heard = tokio::time::Instant::now();
                    }
                    _ = rescan.tick() => self.read_queue(&mut sink, 0).await?,
                    Some((request_id, result)) = pending.next(), if !pending.is_empty() => {
                        respond(&mut sink, request_id, result).await?;
                    }
                    message = stream.next(), if pending.len() < MAX_PENDING_SENDS => {
                        last_heard = tokio::time::Instant::now();
                        match message {
                            Some(Ok(Message::Binary(bytes))) => {
                                self.handle_frame(&bytes, &mut sink, &mut pending).await?;
                                // An acknowledgement may have refilled the window:
                                // writing that out is no silence of the peer's.
                                last_heard = tokio::time::Instant::now();
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
                    self.state.metrics.websockets_stalled.inc();
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

    /// Acts on what the mailbox gathered: reads the queue if the mailbox
    /// could not hold everything, then sends the pushed envelopes the
    /// connection has not sent yet, in order, while the window has room.
    async fn take_inbox(&mut self, inbox: Inbox, sink: &mut Sink) -> Result<(), ConnectionError> {
        if let Some((one_time, kem)) = inbox.prekeys_low {
            let low = frames::PrekeysLow {
                one_time_remaining: one_time,
                kem_remaining: kem,
            };
            send(sink, 0, server_frame::Body::PrekeysLow(low)).await?;
        }
        if inbox.rescan {
            self.read_queue(sink, 0).await?;
        } else if inbox.overflowed {
            self.read_queue(sink, self.cursor).await?;
        }
        for envelope in inbox.envelopes {
            if envelope.seq <= self.cursor {
                continue; // already sent (by a read of the queue)
            }
            if self.backlog || self.in_flight.len() >= MAX_IN_FLIGHT {
                // It waits in the database behind the ones that did not fit.
                self.backlog = true;
                break;
            }
            self.send_envelope(sink, &envelope).await?;
        }
        sink.flush().await?;
        Ok(())
    }

    /// Sends queued envelopes with a sequence number past `after` that are
    /// not in flight, oldest first, until the window is full. A read from 0
    /// (on connect, or after another node queued something) also finds
    /// envelopes committed out of order by another server process.
    async fn read_queue(&mut self, sink: &mut Sink, mut after: i64) -> Result<(), ConnectionError> {
        loop {
            if self.in_flight.len() >= MAX_IN_FLIGHT {
                self.backlog = true;
                return Ok(());
            }
            let window = MAX_IN_FLIGHT - self.in_flight.len();
            let queued = queue::read_after(&self.state, &self.device, after, window).await?;
            let full_window = queued.len() == window;
            if let Some(last) = queued.last() {
                after = last.seq;
            }
            for envelope in &queued {
                if self.in_flight.contains(&envelope.envelope_id) {
                    self.cursor = self.cursor.max(envelope.seq);
                    continue;
                }
                self.send_envelope(sink, envelope).await?;
            }
            sink.flush().await?;
            if !full_window {
                self.backlog = false;
                return Ok(());
            }
        }
    }

    async fn send_envelope(
        &mut self,
        sink: &mut Sink,
        envelope: &StoredEnvelope,
    ) -> Result<(), ConnectionError> {
        let frame = frames::Envelope {
            id: envelope.envelope_id.clone(),
            sender: envelope.sender.clone().unwrap_or_default(),
            sender_device: envelope.sender_device.unwrap_or(0),
            server_timestamp: envelope.created_at,
            content: envelope.content.clone(),
        };
        // Flushed by the caller once the envelopes sent together are out.
        sink.feed(message(0, server_frame::Body::Envelope(frame)))
            .await?;
        self.cursor = self.cursor.max(envelope.seq);
        self.in_flight.insert(envelope.envelope_id.clone());
        self.state.metrics.envelopes_delivered.inc();
        Ok(())
    }

    async fn handle_frame(
        &mut self,
        bytes: &[u8],
        sink: &mut Sink,
        pending: &mut PendingSends,
    ) -> Result<(), ConnectionError> {
        let Ok(frame) = frames::ClientFrame::decode(bytes) else {
            return send_error(sink, 0, ErrorCode::BadFrame, "not a ClientFrame").await;
        };
        let request_id = frame.request_id;
        match frame.body {
            Some(client_frame::Body::Ack(ack)) => self.handle_ack(sink, request_id, ack).await,
            Some(client_frame::Body::Send(send_message)) => {
                self.handle_send(sink, pending, request_id, send_message)
                    .await
            }
            Some(client_frame::Body::Ping(_)) => {
                respond(sink, request_id, Ok(serde_json::json!({}))).await
            }
            Some(client_frame::Body::UnidentifiedSend(_)) => {
                // Sent here it would name its sender: refused, not taken.
                let reason =
                    "unidentified sends go on /v1/ws/unidentified, which carries no credential";
                send_error(sink, request_id, ErrorCode::BadFrame, reason).await
            }
            None => {
                let reason = "no body this server knows (empty, or of an unknown kind)";
                send_error(sink, request_id, ErrorCode::BadFrame, reason).await
            }
        }
    }

    /// Takes acknowledged envelopes out of the window and deletes them;
    /// answers only when asked to (a request id other than 0).
    async fn handle_ack(
        &mut self,
        sink: &mut Sink,
        request_id: u64,
        ack: frames::Acknowledge,
    ) -> Result<(), ConnectionError> {
        if ack.envelope_ids.len() > MAX_IN_FLIGHT * 4 {
            return send_error(
                sink,
                request_id,
                ErrorCode::TooManyIds,
                "acknowledge fewer ids at once",
            )
            .await;
        }
        // Only what this connection delivered and awaits: an id it never
        // sent (or already had acknowledged) costs the writer nothing.
        let ids: Vec<Vec<u8>> = ack
            .envelope_ids
            .into_iter()
            .filter(|id| self.in_flight.remove(id))
            .collect();
        if ids.is_empty() {
            if request_id != 0 {
                respond(sink, request_id, Ok(serde_json::json!({}))).await?;
            }
        } else if request_id == 0 {
            // Nobody waits for it: the connection carries on while the
            // delete commits.
            queue::acknowledge_later(&self.state, &self.device, ids).await?;
        } else {
            queue::acknowledge(&self.state, &self.device, ids).await?;
            respond(sink, request_id, Ok(serde_json::json!({}))).await?;
        }
        if self.backlog && self.in_flight.len() <= REFILL_AT {
            // Room in the window: send what waited, many at once.
            self.read_queue(sink, self.cursor).await?;
        }
        Ok(())
    }

    /// Checks and queues a send now, so that this connection's sends are
    /// stored in the order it made them; it is answered when stored, while
    /// the connection goes on delivering and reading frames.
    async fn handle_send(
        &self,
        sink: &mut Sink,
        pending: &mut PendingSends,
        request_id: u64,
        send_message: frames::SendMessage,
    ) -> Result<(), ConnectionError> {
        let envelopes = send_message
            .envelopes
            .into_iter()
            .map(|e| (e.device_id, e.content))
            .collect();
        let queued = sends::queue_send(
            &self.state,
            &self.device,
            send_message.destination,
            envelopes,
            send_message.sealed,
        )
        .await;
        match queued {
            Ok(queued) => {
                pending.push(Box::pin(async move {
                    let result = queued.stored().await;
                    (
                        request_id,
                        result.and_then(|r| {
                            serde_json::to_value(r)
                                .map_err(|e| AppError::Internal(format!("encoding a reply: {e}")))
                        }),
                    )
                }));
                Ok(())
            }
            Err(error) => respond(sink, request_id, Err(error)).await,
        }
    }
}
