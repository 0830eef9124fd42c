//! The task that owns the engine and the UDP socket: it feeds datagrams,
//! joins, leaves and the clock into the engine, and sends what comes out.
//! It is the only place where the engine meets real time.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::OsRng;
use str0m::net::{Protocol, Transmit};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::engine::{Datagram, Engine, Event, Input, Joined, Output, ParticipantKey};
use crate::error::{JoinError, LeaveError};
use crate::metrics::DropReason;

/// Largest datagram read (above any WebRTC MTU).
const RECV_BUFFER: usize = 2048;

/// A request from the HTTP side.
pub(crate) enum Command {
    /// Admit and join.
    Join {
        call_id: String,
        token: Option<String>,
        offer: String,
        reply: oneshot::Sender<Result<Joined, JoinError>>,
    },
    /// Leave.
    Leave {
        call_id: String,
        key: ParticipantKey,
        reply: oneshot::Sender<Result<(), LeaveError>>,
    },
}

/// What woke the loop.
enum Wake {
    Datagram(std::io::Result<(usize, SocketAddr)>),
    Command(Option<Command>),
    Timeout,
}

/// Runs until every command sender is gone.
pub(crate) async fn run(
    mut engine: Engine,
    socket: UdpSocket,
    public: SocketAddr,
    mut commands: mpsc::Receiver<Command>,
) {
    let mut buf = vec![0u8; RECV_BUFFER];
    loop {
        let deadline = flush_due(&mut engine, &socket);
        let wake = tokio::select! {
            r = socket.recv_from(&mut buf) => Wake::Datagram(r),
            c = commands.recv() => Wake::Command(c),
            () = tokio::time::sleep_until(deadline.into()) => Wake::Timeout,
        };
        match wake {
            Wake::Datagram(Ok((n, source))) => {
                let Some(contents) = buf.get(..n) else {
                    continue;
                };
                let datagram = Datagram {
                    proto: Protocol::Udp,
                    source,
                    destination: public,
                    contents,
                };
                engine.handle_input(Input::Datagram(Instant::now(), datagram));
            }
            Wake::Datagram(Err(e)) => tracing::debug!(error = %e.kind(), "udp receive failed"),
            Wake::Command(Some(command)) => handle(&mut engine, command),
            Wake::Command(None) => return,
            Wake::Timeout => engine.handle_input(Input::Timeout(Instant::now())),
        }
    }
}

fn handle(engine: &mut Engine, command: Command) {
    match command {
        Command::Join {
            call_id,
            token,
            offer,
            reply,
        } => {
            let result = engine
                .admit(&call_id, token.as_deref(), unix_now())
                .and_then(|admission| engine.join(admission, &offer, Instant::now(), &mut OsRng));
            // The HTTP side may have given up; the participant then times out.
            let _ = reply.send(result);
        }
        Command::Leave {
            call_id,
            key,
            reply,
        } => {
            let _ = reply.send(engine.leave(&call_id, &key));
        }
    }
}

/// Turns the engine may take at once for timeouts already due, before the
/// loop looks at the socket again.
const MAX_IMMEDIATE_TURNS: usize = 16;

/// [`flush`], then, while the engine asks to be woken now (str0m releases a
/// written packet on its next timeout), its turns right away: tokio's timer
/// has millisecond steps, and sleeping until "now" would hold every
/// forwarded packet until the next millisecond.
fn flush_due(engine: &mut Engine, socket: &UdpSocket) -> Instant {
    let mut deadline = flush(engine, socket);
    for _ in 0..MAX_IMMEDIATE_TURNS {
        let now = Instant::now();
        if deadline > now {
            break;
        }
        engine.handle_input(Input::Timeout(now));
        deadline = flush(engine, socket);
    }
    deadline
}

/// Sends everything the engine has queued; returns when to wake it.
fn flush(engine: &mut Engine, socket: &UdpSocket) -> Instant {
    loop {
        match engine.poll_output() {
            Output::Transmit(t) => send(engine, socket, &t),
            Output::Event(Event::Left(id, reason)) => {
                tracing::debug!(participant = %id, reason = ?reason, "participant freed");
            }
            Output::Event(_) => {}
            Output::Timeout(t) => return t,
        }
    }
}

fn send(engine: &Engine, socket: &UdpSocket, t: &Transmit) {
    if t.proto != Protocol::Udp || socket.try_send_to(&t.contents, t.destination).is_err() {
        // A full socket buffer drops like a lossy link; RTP copes.
        engine.metrics().drop_packet(DropReason::SendFailed);
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
