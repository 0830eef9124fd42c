//! Prometheus metrics of the relay. Counts, sizes and loss ratios only: no
//! call ids, participant ids, addresses or media. The engine updates them
//! (they are atomics, not I/O); the shell renders them at `GET /metrics`.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Why a packet was not forwarded (or a datagram not handled).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum DropReason {
    /// A datagram no participant accepts.
    UnknownSource,
    /// The receiver has no free slot of the stream's kind.
    NoSlot,
    /// The receiver is not connected yet.
    NotConnected,
    /// The receiver did not offer the stream's codec.
    NoCodec,
    /// Older than the first packet forwarded on the slot.
    TooOld,
    /// A simulcast layer (not supported).
    Simulcast,
    /// The socket could not take it.
    SendFailed,
}

/// Label set for drops.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    /// Why.
    pub reason: DropReason,
}

/// Why a participant left.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum LeaveReason {
    /// It asked to (`DELETE`).
    Left,
    /// ICE and DTLS did not come up in time.
    ConnectTimeout,
    /// Nothing arrived from it for too long.
    IdleTimeout,
    /// ICE reported it disconnected, or the peer closed DTLS.
    Disconnected,
    /// Its WebRTC stack reported an error.
    Fault,
}

/// Why an ICE-TCP connection ended.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum TcpCloseReason {
    /// The peer closed it, or reading or writing failed.
    Peer,
    /// A new connection came from the same address and port.
    Replaced,
    /// No participant claimed it in time, or its participant left.
    Unclaimed,
    /// Refused: the relay, or the peer's IP address, holds as many as it
    /// may.
    Limit,
    /// The peer stopped reading: its write queue filled up.
    Stalled,
    /// A frame was empty or longer than any WebRTC datagram.
    BadFrame,
}

/// Label set for ICE-TCP closes.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TcpCloseLabels {
    /// Why.
    pub reason: TcpCloseReason,
}

/// Label set for leaves.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LeaveLabels {
    /// Why.
    pub reason: LeaveReason,
}

/// What became of a keyframe request from a receiver.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum KeyframeOutcome {
    /// Relayed to the publisher.
    Relayed,
    /// Dropped: another was relayed for the stream shortly before.
    Throttled,
}

/// Label set for keyframe requests.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyframeLabels {
    /// What became of it.
    pub outcome: KeyframeOutcome,
}

/// Label set for refused joins.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// The refusal's stable code.
    pub code: &'static str,
}

/// The relay's metrics. Cloning shares them.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Calls now.
    pub calls: Gauge,
    /// Participants now.
    pub participants: Gauge,
    /// Joins accepted.
    pub joins: Counter,
    /// Joins refused, by code.
    pub refusals: Family<RefusalLabels, Counter>,
    /// Participants gone, by reason.
    pub leaves: Family<LeaveLabels, Counter>,
    /// RTP packets forwarded (one per receiver).
    pub forwarded_packets: Counter,
    /// RTP payload bytes forwarded (one count per receiver).
    pub forwarded_bytes: Counter,
    /// Packets or datagrams dropped, by reason.
    pub drops: Family<DropLabels, Counter>,
    /// Keyframe requests from receivers, by outcome.
    pub keyframe_requests: Family<KeyframeLabels, Counter>,
    /// Loss ratio on legs from publishers to the relay (str0m's statistics).
    pub ingress_loss: Histogram,
    /// Loss ratio on legs from the relay to receivers (their reports).
    pub egress_loss: Histogram,
    /// ICE-TCP connections open now.
    pub tcp_connections: Gauge,
    /// ICE-TCP connections ended, by reason.
    pub tcp_closes: Family<TcpCloseLabels, Counter>,
}

fn loss_histogram() -> Histogram {
    Histogram::new([0.0, 0.001, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5])
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            calls: Gauge::default(),
            participants: Gauge::default(),
            joins: Counter::default(),
            refusals: Family::default(),
            leaves: Family::default(),
            forwarded_packets: Counter::default(),
            forwarded_bytes: Counter::default(),
            drops: Family::default(),
            keyframe_requests: Family::default(),
            ingress_loss: loss_histogram(),
            egress_loss: loss_histogram(),
            tcp_connections: Gauge::default(),
            tcp_closes: Family::default(),
        }
    }
}

impl Metrics {
    /// Registers every metric (prefix `starling_relay`).
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("starling_relay");
        r.register("calls", "Calls now", self.calls.clone());
        r.register(
            "participants",
            "Participants now",
            self.participants.clone(),
        );
        r.register("joins", "Joins accepted", self.joins.clone());
        r.register("join_refusals", "Joins refused", self.refusals.clone());
        r.register("leaves", "Participants gone", self.leaves.clone());
        r.register(
            "forwarded_packets",
            "RTP packets forwarded, one per receiver",
            self.forwarded_packets.clone(),
        );
        r.register(
            "forwarded_bytes",
            "RTP payload bytes forwarded, one count per receiver",
            self.forwarded_bytes.clone(),
        );
        r.register("drops", "Packets not forwarded", self.drops.clone());
        r.register(
            "keyframe_requests",
            "Keyframe requests from receivers",
            self.keyframe_requests.clone(),
        );
        r.register(
            "ingress_loss_ratio",
            "Loss on publisher-to-relay legs, per stats period",
            self.ingress_loss.clone(),
        );
        r.register(
            "egress_loss_ratio",
            "Loss on relay-to-receiver legs, per stats period",
            self.egress_loss.clone(),
        );
        r.register(
            "tcp_connections",
            "ICE-TCP connections open now",
            self.tcp_connections.clone(),
        );
        r.register(
            "tcp_closes",
            "ICE-TCP connections ended",
            self.tcp_closes.clone(),
        );
    }

    /// Counts a drop.
    pub fn drop_packet(&self, reason: DropReason) {
        self.drops.get_or_create(&DropLabels { reason }).inc();
    }

    /// Counts `n` drops.
    pub fn drop_packets(&self, reason: DropReason, n: usize) {
        if n > 0 {
            let n = u64::try_from(n).unwrap_or(u64::MAX);
            self.drops.get_or_create(&DropLabels { reason }).inc_by(n);
        }
    }

    /// Packets dropped for `reason` so far.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops.get_or_create(&DropLabels { reason }).get()
    }

    /// Counts a departure.
    pub fn leave(&self, reason: LeaveReason) {
        self.leaves.get_or_create(&LeaveLabels { reason }).inc();
    }

    /// Departures for `reason` so far.
    pub fn left(&self, reason: LeaveReason) -> u64 {
        self.leaves.get_or_create(&LeaveLabels { reason }).get()
    }

    /// Counts a keyframe request.
    pub fn keyframe(&self, outcome: KeyframeOutcome) {
        self.keyframe_requests
            .get_or_create(&KeyframeLabels { outcome })
            .inc();
    }

    /// Keyframe requests with `outcome` so far.
    pub fn keyframes(&self, outcome: KeyframeOutcome) -> u64 {
        self.keyframe_requests
            .get_or_create(&KeyframeLabels { outcome })
            .get()
    }

    /// Counts an ended ICE-TCP connection.
    pub fn close_tcp(&self, reason: TcpCloseReason) {
        self.tcp_closes
            .get_or_create(&TcpCloseLabels { reason })
            .inc();
    }

    /// ICE-TCP connections ended for `reason` so far.
    pub fn tcp_closed(&self, reason: TcpCloseReason) -> u64 {
        self.tcp_closes
            .get_or_create(&TcpCloseLabels { reason })
            .get()
    }

    /// Counts a refused join.
    pub fn refuse(&self, code: &'static str) {
        self.refusals.get_or_create(&RefusalLabels { code }).inc();
    }
}
