//! The task that owns the engine, the UDP socket and the table of ICE-TCP
//! connections: it feeds datagrams, joins, leaves and the clock into the
//! engine, and sends what comes out. It is the only place where the
//! engine meets real time.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::OsRng;
use str0m::net::{Protocol, Transmit};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::tcp::{TcpConnections, TcpEvent};
use super::udp_batch;
use crate::engine::{Datagram, Engine, Event, Input, Joined, Output, ParticipantKey, StreamSource};
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
    /// Who publishes what a participant receives.
    Streams {
        call_id: String,
        key: ParticipantKey,
        reply: oneshot::Sender<Result<Vec<StreamSource>, LeaveError>>,
    },
}

/// What woke the loop.
enum Wake {
    Datagram(std::io::Result<(usize, SocketAddr)>),
    Tcp(TcpEvent),
    Command(Option<Command>),
    Timeout,
}

/// The engine's sockets: UDP, and ICE-TCP if enabled.
pub(crate) struct Sockets {
    pub(crate) udp: UdpSocket,
    /// The advertised UDP address (the datagrams' destination).
    pub(crate) public_udp: SocketAddr,
    pub(crate) tcp: Option<TcpConnections>,
    /// UDP transmits of the current engine turn, sent together.
    pub(crate) udp_out: Vec<Transmit>,
}

/// Runs until every command sender is gone.
pub(crate) async fn run(
    mut engine: Engine,
    mut sockets: Sockets,
    mut commands: mpsc::Receiver<Command>,
) {
    let mut buf = vec![0u8; RECV_BUFFER];
    loop {
        let mut deadline = flush_due(&mut engine, &mut sockets);
        if let Some(tcp) = &sockets.tcp {
            deadline = deadline.min(tcp.next_sweep());
        }
        let wake = tokio::select! {
            r = sockets.udp.recv_from(&mut buf) => Wake::Datagram(r),
            e = next_tcp_event(&mut sockets.tcp) => Wake::Tcp(e),
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
                    destination: sockets.public_udp,
                    contents,
                };
                engine.handle_input(Input::Datagram(Instant::now(), datagram));
            }
            Wake::Datagram(Err(e)) => tracing::debug!(error = %e.kind(), "udp receive failed"),
            Wake::Tcp(event) => handle_tcp(&mut engine, &mut sockets, event),
            Wake::Command(Some(command)) => handle(&mut engine, command),
            Wake::Command(None) => return,
            Wake::Timeout => engine.handle_input(Input::Timeout(Instant::now())),
        }
        if let Some(tcp) = &mut sockets.tcp {
            tcp.sweep(Instant::now(), |peer| engine.is_routed(Protocol::Tcp, peer));
        }
    }
}

async fn next_tcp_event(tcp: &mut Option<TcpConnections>) -> TcpEvent {
    match tcp {
        Some(tcp) => tcp.next_event().await,
        None => std::future::pending().await,
    }
}

fn handle_tcp(engine: &mut Engine, sockets: &mut Sockets, event: TcpEvent) {
    let Some(tcp) = &mut sockets.tcp else {
        return;
    };
    if let Some((source, bytes)) = tcp.handle(event) {
        let datagram = Datagram {
            proto: Protocol::Tcp,
            source,
            destination: tcp.public,
            contents: &bytes,
        };
        let now = Instant::now();
        engine.handle_input(Input::Datagram(now, datagram));
        if engine.is_routed(Protocol::Tcp, source) {
            tcp.claimed(source, now);
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
        Command::Streams {
            call_id,
            key,
            reply,
        } => {
            let _ = reply.send(engine.streams(&call_id, &key));
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
fn flush_due(engine: &mut Engine, sockets: &mut Sockets) -> Instant {
    let mut deadline = flush(engine, sockets);
    for _ in 0..MAX_IMMEDIATE_TURNS {
        let now = Instant::now();
        if deadline > now {
            break;
        }
        engine.handle_input(Input::Timeout(now));
        deadline = flush(engine, sockets);
    }
    deadline
}

/// Sends everything the engine has queued; returns when to wake it.
fn flush(engine: &mut Engine, sockets: &mut Sockets) -> Instant {
    loop {
        match engine.poll_output() {
            Output::Transmit(t) if t.proto == Protocol::Udp => {
                sockets.udp_out.push(t);
                if sockets.udp_out.len() >= udp_batch::MAX_BATCH {
                    send_udp(engine, sockets);
                }
            }
            Output::Transmit(t) => {
                if !sockets.tcp.as_mut().is_some_and(|tcp| tcp.send(&t)) {
                    engine.metrics().drop_packet(DropReason::SendFailed);
                }
            }
            Output::Event(Event::Left(id, reason)) => {
                tracing::debug!(participant = %id, reason = ?reason, "participant freed");
            }
            Output::Event(_) => {}
            Output::Timeout(t) => {
                send_udp(engine, sockets);
                return t;
            }
        }
    }
}

/// Sends the queued UDP transmits, as few system calls as the OS allows.
fn send_udp(engine: &Engine, sockets: &mut Sockets) {
    if sockets.udp_out.is_empty() {
        return;
    }
    let datagrams: Vec<(SocketAddr, &[u8])> = sockets
        .udp_out
        .iter()
        .map(|t| (t.destination, &t.contents[..]))
        .collect();
    let udp = &sockets.udp;
    let dropped = udp_batch::send_all(|rest| udp_batch::try_send_some(udp, rest), &datagrams);
    // A full socket buffer or write queue drops like a lossy link; RTP
    // copes.
    engine
        .metrics()
        .drop_packets(DropReason::SendFailed, dropped);
    sockets.udp_out.clear();
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
