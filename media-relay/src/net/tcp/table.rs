//! The engine task's table of open ICE-TCP connections: which connection a
//! transmit goes to, which ones a peer address may hold, and which ones no
//! participant uses any more. Pure bookkeeping on the engine task: no
//! socket is touched here (dropping an entry tells its tasks to close).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use str0m::net::Transmit;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use super::{TcpEvent, frame};
use crate::metrics::{Metrics, TcpCloseReason};

/// How often the engine task looks for unclaimed connections.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Longest a connection may go unclaimed: a client sends its first STUN
/// check as soon as it has connected, so this only bounds what a peer
/// without a join can hold.
const MAX_CLAIM_WINDOW: Duration = Duration::from_secs(5);

/// Connections one IP address may hold at once.
pub(crate) const MAX_PER_IP: usize = 16;

/// An open connection. Dropping it closes the connection.
#[derive(Debug)]
struct Connection {
    id: u64,
    frames: mpsc::Sender<Vec<u8>>,
    _close: oneshot::Sender<()>,
    /// When it opened, or last carried a frame a participant took.
    claimed_at: Instant,
}

/// Open connections by peer address.
#[derive(Debug)]
pub(crate) struct TcpConnections {
    /// The advertised passive candidate (the datagrams' destination).
    pub(crate) public: SocketAddr,
    events: Option<mpsc::Receiver<TcpEvent>>,
    open: HashMap<SocketAddr, Connection>,
    per_ip: HashMap<IpAddr, usize>,
    claim_window: Duration,
    metrics: Metrics,
    next_sweep: Instant,
}

impl TcpConnections {
    /// A table fed by `events`; a connection no participant claims within
    /// `connect_timeout` (at most [`MAX_CLAIM_WINDOW`]) is closed.
    pub(crate) fn new(
        public: SocketAddr,
        events: mpsc::Receiver<TcpEvent>,
        connect_timeout: Duration,
        metrics: Metrics,
    ) -> Self {
        Self {
            public,
            events: Some(events),
            open: HashMap::new(),
            per_ip: HashMap::new(),
            claim_window: connect_timeout.min(MAX_CLAIM_WINDOW),
            metrics,
            next_sweep: Instant::now() + SWEEP_INTERVAL,
        }
    }

    /// The next event; never ready once every connection task is gone.
    pub(crate) async fn next_event(&mut self) -> TcpEvent {
        loop {
            let Some(events) = self.events.as_mut() else {
                return std::future::pending().await;
            };
            match events.recv().await {
                Some(event) => return event,
                None => self.events = None,
            }
        }
    }

    /// Records an opened or closed connection; returns a frame of a current
    /// connection, with its peer, for the engine.
    pub(crate) fn handle(&mut self, event: TcpEvent) -> Option<(SocketAddr, Vec<u8>)> {
        match event {
            TcpEvent::Opened {
                id,
                peer,
                frames,
                close,
            } => {
                self.open(id, peer, frames, close);
                None
            }
            TcpEvent::Frame { id, peer, bytes } => {
                self.is_current(peer, id).then_some((peer, bytes))
            }
            TcpEvent::Closed { id, peer, reason } => {
                if self.is_current(peer, id) {
                    self.close(peer, reason);
                }
                None
            }
        }
    }

    fn open(
        &mut self,
        id: u64,
        peer: SocketAddr,
        frames: mpsc::Sender<Vec<u8>>,
        close: oneshot::Sender<()>,
    ) {
        // The same address again: the old connection is gone for its peer.
        self.close(peer, TcpCloseReason::Replaced);
        let held = self.per_ip.entry(peer.ip()).or_default();
        if *held >= MAX_PER_IP {
            // Dropping `close` ends the new connection.
            self.metrics.close_tcp(TcpCloseReason::Limit);
            return;
        }
        *held += 1;
        let connection = Connection {
            id,
            frames,
            _close: close,
            claimed_at: Instant::now(),
        };
        self.open.insert(peer, connection);
        self.metrics.tcp_connections.inc();
    }

    fn is_current(&self, peer: SocketAddr, id: u64) -> bool {
        self.open.get(&peer).is_some_and(|c| c.id == id)
    }

    /// Notes that a participant took a frame from `peer`.
    pub(crate) fn claimed(&mut self, peer: SocketAddr, now: Instant) {
        if let Some(connection) = self.open.get_mut(&peer) {
            connection.claimed_at = now;
        }
    }

    /// Queues a transmit on its connection; `false` if it was dropped. A
    /// peer that has stopped reading (its queue is full although TCP loses
    /// nothing) is disconnected.
    pub(crate) fn send(&mut self, t: &Transmit) -> bool {
        let Some(connection) = self.open.get(&t.destination) else {
            return false;
        };
        let Some(framed) = frame(&t.contents) else {
            return false;
        };
        match connection.frames.try_send(framed) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.close(t.destination, TcpCloseReason::Stalled);
                false
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }

    /// When [`TcpConnections::sweep`] is next due.
    pub(crate) fn next_sweep(&self) -> Instant {
        self.next_sweep
    }

    /// If a sweep is due, closes every connection that no live participant
    /// uses and none has claimed a frame from for the claim window.
    pub(crate) fn sweep(&mut self, now: Instant, is_routed: impl Fn(SocketAddr) -> bool) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + SWEEP_INTERVAL;
        let stale: Vec<SocketAddr> = self
            .open
            .iter()
            .filter(|(peer, c)| {
                now.saturating_duration_since(c.claimed_at) >= self.claim_window
                    && !is_routed(**peer)
            })
            .map(|(peer, _)| *peer)
            .collect();
        for peer in stale {
            self.close(peer, TcpCloseReason::Unclaimed);
        }
    }

    /// Connections open now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.open.len()
    }

    fn close(&mut self, peer: SocketAddr, reason: TcpCloseReason) {
        if self.open.remove(&peer).is_none() {
            return;
        }
        if let Some(held) = self.per_ip.get_mut(&peer.ip()) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                self.per_ip.remove(&peer.ip());
            }
        }
        self.metrics.tcp_connections.dec();
        self.metrics.close_tcp(reason);
    }
}

#[cfg(test)]
mod tests {
    use str0m::net::{DatagramSend, Protocol};

    use super::*;

    struct Peer {
        queued: mpsc::Receiver<Vec<u8>>,
        closed: oneshot::Receiver<()>,
    }

    fn table() -> (TcpConnections, Metrics) {
        let (_, events) = mpsc::channel(1);
        let metrics = Metrics::default();
        let public = "192.0.2.1:3478".parse().unwrap();
        let table = TcpConnections::new(public, events, Duration::from_secs(2), metrics.clone());
        (table, metrics)
    }

    fn open(table: &mut TcpConnections, id: u64, peer: SocketAddr, queue: usize) -> Peer {
        let (frames, queued) = mpsc::channel(queue);
        let (close, closed) = oneshot::channel();
        let event = TcpEvent::Opened {
            id,
            peer,
            frames,
            close,
        };
        assert!(table.handle(event).is_none());
        Peer { queued, closed }
    }

    fn is_closed(peer: &mut Peer) -> bool {
        peer.closed.try_recv() == Err(oneshot::error::TryRecvError::Closed)
    }

    fn transmit(to: SocketAddr) -> Transmit {
        Transmit {
            proto: Protocol::Tcp,
            source: "192.0.2.1:3478".parse().unwrap(),
            destination: to,
            contents: DatagramSend::from(vec![1, 2, 3]),
        }
    }

    #[test]
    fn a_new_connection_from_the_same_address_replaces_the_old_one() {
        let (mut table, metrics) = table();
        let addr: SocketAddr = "198.51.100.7:50000".parse().unwrap();
        let mut old = open(&mut table, 1, addr, 4);
        let mut new = open(&mut table, 2, addr, 4);
        assert!(is_closed(&mut old));
        assert!(!is_closed(&mut new));
        assert_eq!(metrics.tcp_closed(TcpCloseReason::Replaced), 1);
        assert_eq!(metrics.tcp_connections.get(), 1);

        // The old connection's late frames and close do not touch the new.
        let frame = TcpEvent::Frame {
            id: 1,
            peer: addr,
            bytes: vec![9],
        };
        assert!(table.handle(frame).is_none());
        let closed = TcpEvent::Closed {
            id: 1,
            peer: addr,
            reason: TcpCloseReason::Peer,
        };
        assert!(table.handle(closed).is_none());
        assert_eq!(table.len(), 1);
        let frame = TcpEvent::Frame {
            id: 2,
            peer: addr,
            bytes: vec![9],
        };
        assert_eq!(table.handle(frame), Some((addr, vec![9])));
        assert!(table.send(&transmit(addr)));
        assert_eq!(new.queued.try_recv().unwrap(), vec![0, 3, 1, 2, 3]);
    }

    #[test]
    fn one_address_holds_a_bounded_number_of_connections() {
        let (mut table, metrics) = table();
        let mut peers: Vec<Peer> = (0..=MAX_PER_IP)
            .map(|n| {
                let port = 40_000 + u16::try_from(n).unwrap();
                let addr = SocketAddr::new("198.51.100.7".parse().unwrap(), port);
                open(&mut table, u64::from(port), addr, 4)
            })
            .collect();
        assert_eq!(table.len(), MAX_PER_IP);
        assert!(is_closed(peers.last_mut().unwrap()));
        assert_eq!(metrics.tcp_closed(TcpCloseReason::Limit), 1);
        // Another address is not held back.
        open(&mut table, 100, "198.51.100.8:40000".parse().unwrap(), 4);
        assert_eq!(table.len(), MAX_PER_IP + 1);
    }

    #[test]
    fn a_peer_that_stops_reading_is_disconnected() {
        let (mut table, metrics) = table();
        let addr: SocketAddr = "198.51.100.7:50000".parse().unwrap();
        let mut peer = open(&mut table, 1, addr, 2);
        assert!(table.send(&transmit(addr)));
        assert!(table.send(&transmit(addr)));
        assert!(!table.send(&transmit(addr)));
        assert!(is_closed(&mut peer));
        assert_eq!(metrics.tcp_closed(TcpCloseReason::Stalled), 1);
        assert_eq!(metrics.tcp_connections.get(), 0);
    }

    #[test]
    fn the_sweep_spares_claimed_and_routed_connections() {
        let (mut table, metrics) = table();
        let start = Instant::now();
        let [quiet, claimed, routed]: [SocketAddr; 3] = [
            "198.51.100.1:1".parse().unwrap(),
            "198.51.100.2:1".parse().unwrap(),
            "198.51.100.3:1".parse().unwrap(),
        ];
        let mut peers = [
            open(&mut table, 1, quiet, 4),
            open(&mut table, 2, claimed, 4),
            open(&mut table, 3, routed, 4),
        ];
        let later = start + Duration::from_secs(3);
        table.claimed(claimed, later);
        table.sweep(later, |peer| peer == routed);
        assert!(is_closed(&mut peers[0]));
        assert!(!is_closed(&mut peers[1]));
        assert!(!is_closed(&mut peers[2]));
        assert_eq!(metrics.tcp_closed(TcpCloseReason::Unclaimed), 1);

        // Once its participant is gone, the claimed one goes too.
        let much_later = later + Duration::from_secs(3);
        table.sweep(much_later, |peer| peer == routed);
        assert!(is_closed(&mut peers[1]));
        assert!(!is_closed(&mut peers[2]));
        assert_eq!(metrics.tcp_connections.get(), 1);
    }
}
