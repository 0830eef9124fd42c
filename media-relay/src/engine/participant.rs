//! One participant: its str0m `Rtc` (ICE-lite, RTP mode), the streams it
//! publishes, the receive slots it offered, and its liveness deadlines.
//! Answering the offer and draining the `Rtc` live here too.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use str0m::change::SdpOffer;
use str0m::config::CryptoProvider;
use str0m::media::{KeyframeRequest, MediaAdded, MediaKind, Mid, Pt};
use str0m::net::TcpType;
use str0m::{Candidate, Event as RtcEvent, IceConnectionState, Output as RtcOutput, Rtc};

use super::admission::ParticipantKey;
use super::{CallNo, Event, Output, ParticipantId, RouteKey, Work};
use crate::config::{EngineConfig, Limits, Timeouts};
use crate::error::{OfferError, SetupError};
use crate::metrics::{LeaveReason, Metrics};

/// Source addresses remembered per participant (ICE may switch paths).
const MAX_ROUTES: usize = 4;

/// A stream the participant publishes (the relay receives it).
#[derive(Debug)]
pub(super) struct Publication {
    pub(super) mid: Mid,
    pub(super) kind: MediaKind,
    pub(super) last_keyframe_request: Option<Instant>,
}

/// Which publication feeds a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Source {
    pub(super) publisher: ParticipantId,
    pub(super) mid: Mid,
}

/// A media section the participant receives on (the relay sends on it).
#[derive(Debug)]
pub(super) struct Slot {
    pub(super) mid: Mid,
    pub(super) kind: MediaKind,
    pub(super) feed: Option<Feed>,
    /// The next sequence number after everything written on the slot.
    pub(super) next_seq: u64,
}

/// A slot's current source and how its packets are renumbered.
#[derive(Debug)]
pub(super) struct Feed {
    pub(super) source: Source,
    /// Incoming sequence number of the first packet forwarded.
    pub(super) first_in: u64,
    /// Outgoing sequence number it got.
    pub(super) base_out: u64,
    /// Incoming payload type to the receiver's, for those seen so far.
    pub(super) pts: Vec<(Pt, Option<Pt>)>,
}

/// A participant.
pub(super) struct Participant {
    pub(super) rtc: Rtc,
    call: CallNo,
    secret: [u8; 16],
    pub(super) connected: bool,
    joined_at: Instant,
    pub(super) last_rx: Instant,
    next_timeout: Instant,
    pub(super) publications: Vec<Publication>,
    pub(super) slots: Vec<Slot>,
    routes: Vec<RouteKey>,
}

/// Where a drain puts what it produces.
pub(super) struct Sink<'a> {
    pub(super) id: ParticipantId,
    pub(super) out: &'a mut VecDeque<Output>,
    pub(super) work: &'a mut VecDeque<Work>,
    pub(super) metrics: &'a Metrics,
}

/// The relay's ICE candidates: a UDP host candidate on the public address,
/// and a passive TCP one if configured.
pub(super) fn local_candidates(config: &EngineConfig) -> Result<Vec<Candidate>, SetupError> {
    let mut candidates =
        vec![Candidate::host(config.public_udp, "udp").map_err(|_| SetupError::Candidate)?];
    if let Some(tcp) = config.public_tcp {
        let candidate = Candidate::builder()
            .tcp()
            .host(tcp)
            .tcptype(TcpType::Passive)
            .build()
            .map_err(|_| SetupError::Candidate)?;
        candidates.push(candidate);
    }
    Ok(candidates)
}

/// Size and shape checks before any WebRTC state is built.
pub(super) fn check_offer(offer: &str, limits: &Limits) -> Result<(), OfferError> {
    if offer.len() > limits.max_offer_bytes {
        return Err(OfferError::TooLarge {
            limit: limits.max_offer_bytes,
        });
    }
    let media = offer
        .lines()
        .filter(|l| l.starts_with("m=audio") || l.starts_with("m=video"))
        .count();
    if media == 0 {
        return Err(OfferError::NoMedia);
    }
    if offer.lines().filter(|l| l.starts_with("m=")).count() > limits.max_media_per_offer {
        return Err(OfferError::TooManyMedia {
            limit: limits.max_media_per_offer,
        });
    }
    Ok(())
}

/// A new `Rtc` that has accepted `offer`, and its SDP answer.
pub(super) fn answer(
    offer: &str,
    candidates: &[Candidate],
    crypto: &Arc<CryptoProvider>,
    config: &EngineConfig,
    now: Instant,
) -> Result<(Rtc, String), OfferError> {
    let offer = SdpOffer::from_sdp_string(offer).map_err(|_| OfferError::Unparseable)?;
    let mut rtc = Rtc::builder()
        .set_crypto_provider(Arc::clone(crypto))
        .set_ice_lite(true)
        .set_rtp_mode(true)
        .set_stats_interval(Some(config.timeouts.stats_interval))
        .build(now);
    for candidate in candidates {
        rtc.add_local_candidate(candidate.clone());
    }
    let answer = rtc
        .sdp_api()
        .accept_offer(offer)
        .map_err(|_| OfferError::Unanswerable)?;
    Ok((rtc, answer.to_sdp_string()))
}

impl Participant {
    pub(super) fn new(rtc: Rtc, call: CallNo, secret: [u8; 16], now: Instant) -> Self {
        Self {
            rtc,
            call,
            secret,
            connected: false,
            joined_at: now,
            last_rx: now,
            next_timeout: now,
            publications: Vec::new(),
            slots: Vec::new(),
            routes: Vec::new(),
        }
    }

    pub(super) fn call(&self) -> CallNo {
        self.call
    }

    pub(super) fn has_secret(&self, key: &ParticipantKey) -> bool {
        key.matches(&self.secret)
    }

    /// The first moment something is due: str0m's timeout or a deadline.
    pub(super) fn next_wakeup(&self, timeouts: &Timeouts) -> Instant {
        self.next_timeout.min(self.deadline(timeouts))
    }

    fn deadline(&self, timeouts: &Timeouts) -> Instant {
        if self.connected {
            self.last_rx + timeouts.idle
        } else {
            self.joined_at + timeouts.connect
        }
    }

    /// Why the participant must go at `now`, if it must.
    pub(super) fn expired(&self, now: Instant, timeouts: &Timeouts) -> Option<LeaveReason> {
        if now < self.deadline(timeouts) {
            None
        } else if self.connected {
            Some(LeaveReason::IdleTimeout)
        } else {
            Some(LeaveReason::ConnectTimeout)
        }
    }

    /// Remembers a source address; returns one it forgot to make room.
    pub(super) fn remember_route(&mut self, key: RouteKey) -> Option<RouteKey> {
        if self.routes.contains(&key) {
            return None;
        }
        self.routes.push(key);
        (self.routes.len() > MAX_ROUTES).then(|| self.routes.remove(0))
    }

    pub(super) fn forget_route(&mut self, key: RouteKey) {
        self.routes.retain(|k| *k != key);
    }

    pub(super) fn routes(&self) -> &[RouteKey] {
        &self.routes
    }

    /// Polls the `Rtc` until it returns its next timeout. An error or a
    /// disconnect is returned as the reason to remove the participant.
    pub(super) fn drain(&mut self, now: Instant, mut sink: Sink<'_>) -> Result<(), LeaveReason> {
        if !self.rtc.is_alive() {
            return Err(LeaveReason::Disconnected);
        }
        loop {
            match self.rtc.poll_output() {
                Ok(RtcOutput::Timeout(t)) => {
                    // str0m may answer "now"; never ask to be woken in the past.
                    self.next_timeout = t.max(now);
                    return Ok(());
                }
                Ok(RtcOutput::Transmit(t)) => sink.out.push_back(Output::Transmit(t)),
                Ok(RtcOutput::Event(event)) => self.on_event(event, &mut sink)?,
                Err(e) => {
                    tracing::warn!(participant = %sink.id, error = %e, "webrtc fault");
                    return Err(LeaveReason::Fault);
                }
            }
        }
    }

    fn on_event(&mut self, event: RtcEvent, sink: &mut Sink<'_>) -> Result<(), LeaveReason> {
        match event {
            RtcEvent::Connected => {
                self.connected = true;
                tracing::info!(participant = %sink.id, "connected");
                sink.out.push_back(Output::Event(Event::Connected(sink.id)));
            }
            RtcEvent::IceConnectionStateChange(IceConnectionState::Disconnected)
            | RtcEvent::Closed => return Err(LeaveReason::Disconnected),
            RtcEvent::MediaAdded(added) => self.add_media(&added),
            RtcEvent::RtpPacket(packet) => sink.work.push_back(Work::Forward(sink.id, packet)),
            RtcEvent::KeyframeRequest(request) => self.keyframe_request(request, sink),
            RtcEvent::MediaIngressStats(stats) => {
                if let Some(loss) = stats.loss {
                    sink.metrics.ingress_loss.observe(f64::from(loss));
                }
            }
            RtcEvent::MediaEgressStats(stats) => {
                if let Some(loss) = stats.loss {
                    sink.metrics.egress_loss.observe(f64::from(loss));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn keyframe_request(&self, request: KeyframeRequest, sink: &mut Sink<'_>) {
        sink.work.push_back(Work::Keyframe(sink.id, request));
    }

    fn add_media(&mut self, added: &MediaAdded) {
        // Directions are the relay's: it receives what the client publishes.
        if added.direction.is_receiving() {
            self.publications.push(Publication {
                mid: added.mid,
                kind: added.kind,
                last_keyframe_request: None,
            });
        }
        if added.direction.is_sending() {
            self.slots.push(Slot {
                mid: added.mid,
                kind: added.kind,
                feed: None,
                next_seq: 1,
            });
        }
    }

    /// Frees every slot fed by `publisher`.
    pub(super) fn release_slots_of(&mut self, publisher: ParticipantId) {
        for slot in &mut self.slots {
            if slot
                .feed
                .as_ref()
                .is_some_and(|f| f.source.publisher == publisher)
            {
                slot.feed = None;
            }
        }
    }
}
