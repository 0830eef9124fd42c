//! The sans-IO SFU core: calls, participants and the routing of RTP between
//! them. Time, datagrams and randomness come in as arguments; datagrams to
//! send, events and the next timeout come out of [`Engine::poll_output`].
//! Nothing here touches a socket or a clock.

mod admission;
mod forward;
mod guard;
mod participant;
mod teardown;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::CryptoRngCore;
use starling_call_token::TokenVerifier;
use str0m::crypto::CryptoProvider;
use str0m::media::KeyframeRequest;
use str0m::net::{Protocol, Transmit};
use str0m::rtp::RtpPacket;
use str0m::{Candidate, RtcError};

pub use self::admission::{Admission, ParticipantKey};
use self::guard::guarded;
use self::participant::Participant;
use crate::config::EngineConfig;
use crate::error::{JoinError, LeaveError, OfferError, SetupError};
use crate::metrics::{DropReason, LeaveReason, Metrics};

/// A participant's number on this relay (not secret; used in logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(pub u64);

impl std::fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "p{}", self.0)
    }
}

/// A call's number on this relay (the call id itself is not logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct CallNo(u64);

/// One datagram that arrived on a socket.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    /// UDP, or TCP (one RFC 4571 frame).
    pub proto: Protocol,
    /// The sender.
    pub source: SocketAddr,
    /// The public address it was sent to.
    pub destination: SocketAddr,
    /// The bytes.
    pub contents: &'a [u8],
}

/// Input to the engine.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// Time has passed (the last [`Output::Timeout`] was reached).
    Timeout(Instant),
    /// A datagram arrived at this time.
    Datagram(Instant, Datagram<'a>),
}

/// Something that happened to a participant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// ICE and DTLS are up.
    Connected(ParticipantId),
    /// The participant is gone and its state freed.
    Left(ParticipantId, LeaveReason),
}

/// Output of the engine.
#[derive(Debug)]
pub enum Output {
    /// Send this datagram.
    Transmit(Transmit),
    /// Something happened.
    Event(Event),
    /// Nothing more until this time (or the next input).
    Timeout(Instant),
}

/// A successful join.
#[derive(Debug)]
pub struct Joined {
    /// The participant's handle (secret: it authorises the leave).
    pub key: ParticipantKey,
    /// The SDP answer.
    pub answer: String,
}

/// The publisher behind one of a receiver's slots.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StreamSource {
    /// The SSRC the relay sends the slot with.
    pub ssrc: u32,
    /// The publisher's participant number (the relay knows no accounts:
    /// clients learn whose number it is end to end, from the caller).
    pub participant: u64,
}

/// Work produced while draining one participant, done after it.
// Nearly every item is a packet; boxing it would allocate once per packet.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Work {
    /// Forward a publisher's packet to the rest of its call.
    Forward(ParticipantId, RtpPacket),
    /// A receiver asked for a keyframe on one of its slots.
    Keyframe(ParticipantId, KeyframeRequest),
    /// Free a participant.
    Remove(ParticipantId, LeaveReason),
}

/// Where a datagram came from, for demultiplexing.
type RouteKey = (Protocol, SocketAddr);

/// The selective forwarding unit. See the crate docs for the run loop.
pub struct Engine {
    config: EngineConfig,
    crypto: Arc<CryptoProvider>,
    candidates: Vec<Candidate>,
    verifier: TokenVerifier,
    call_numbers: HashMap<String, CallNo>,
    members: HashMap<CallNo, Vec<ParticipantId>>,
    participants: HashMap<ParticipantId, Participant>,
    routes: HashMap<RouteKey, ParticipantId>,
    out: VecDeque<Output>,
    work: VecDeque<Work>,
    next_number: u64,
    last_now: Instant,
    metrics: Metrics,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("calls", &self.members.len())
            .field("participants", &self.participants.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine that admits joins signed by `token_key` (the server's
    /// Ed25519 public key), starting at `now`.
    pub fn new(
        config: EngineConfig,
        token_key: &[u8; 32],
        metrics: Metrics,
        now: Instant,
    ) -> Result<Self, SetupError> {
        let verifier = TokenVerifier::new(token_key).map_err(|_| SetupError::TokenKey)?;
        let candidates = participant::local_candidates(&config)?;
        Ok(Self {
            config,
            crypto: Arc::new(str0m::crypto::from_feature_flags()),
            candidates,
            verifier,
            call_numbers: HashMap::new(),
            members: HashMap::new(),
            participants: HashMap::new(),
            routes: HashMap::new(),
            out: VecDeque::new(),
            work: VecDeque::new(),
            next_number: 1,
            last_now: now,
            metrics,
        })
    }

    /// The metrics this engine updates.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Calls now.
    pub fn call_count(&self) -> usize {
        self.members.len()
    }

    /// Participants now.
    pub fn participant_count(&self) -> usize {
        self.participants.len()
    }

    /// Entries in the demultiplexing table (freed with their participant).
    pub fn route_count(&self) -> usize {
        self.routes.len()
    }

    /// Whether a live participant has taken datagrams from `source` over
    /// `proto` (the shell closes ICE-TCP connections nobody claims).
    pub fn is_routed(&self, proto: Protocol, source: SocketAddr) -> bool {
        self.routes.contains_key(&(proto, source))
    }

    /// Joins `admission`'s call with an SDP offer; returns the answer.
    pub fn join(
        &mut self,
        admission: Admission,
        offer: &str,
        now: Instant,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Joined, JoinError> {
        let result = self.try_join(admission, offer, now, rng);
        if let Err(e) = &result {
            self.metrics.refuse(e.code());
        }
        result
    }

    fn try_join(
        &mut self,
        admission: Admission,
        offer: &str,
        now: Instant,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Joined, JoinError> {
        self.advance(now);
        participant::check_offer(offer, &self.config.limits)?;
        let call = self.check_limits(&admission)?;
        // The offer is the peer's input: a str0m panic on it refuses the join.
        let (rtc, answer) = guarded(|| {
            participant::answer(offer, &self.candidates, &self.crypto, &self.config, now)
        })
        .ok_or(OfferError::Unanswerable)??;
        let id = self.new_participant_id(rng);
        let mut secret = [0u8; 16];
        rng.fill_bytes(&mut secret);
        let call = call.unwrap_or_else(|| self.open_call(admission.call_id()));
        let participant = Participant::new(rtc, call, secret, now);
        self.participants.insert(id, participant);
        self.members.entry(call).or_default().push(id);
        self.metrics.joins.inc();
        self.update_gauges();
        tracing::info!(participant = %id, "joined");
        self.drain(id, now);
        self.run_work(now);
        Ok(Joined {
            key: ParticipantKey::new(id, secret),
            answer,
        })
    }

    /// A random participant number, non-zero and unused, below 2^53 (so
    /// JSON readers that hold numbers as doubles read it exactly). Random,
    /// so that nobody can guess the number a participant will get.
    fn new_participant_id(&self, rng: &mut impl CryptoRngCore) -> ParticipantId {
        loop {
            let n = rng.next_u64() & ((1 << 53) - 1);
            if n != 0 && !self.participants.contains_key(&ParticipantId(n)) {
                return ParticipantId(n);
            }
        }
    }

    /// The existing call's number, or `None` for a new call; refuses a
    /// join beyond a limit.
    fn check_limits(&self, admission: &Admission) -> Result<Option<CallNo>, JoinError> {
        let limits = &self.config.limits;
        if self.participants.len() >= limits.max_participants {
            return Err(JoinError::TooManyParticipants {
                limit: limits.max_participants,
            });
        }
        match self.call_numbers.get(admission.call_id()) {
            Some(call) => {
                let size = self.members.get(call).map_or(0, Vec::len);
                if size >= limits.max_participants_per_call {
                    return Err(JoinError::CallFull {
                        limit: limits.max_participants_per_call,
                    });
                }
                Ok(Some(*call))
            }
            None if self.members.len() >= limits.max_calls => Err(JoinError::TooManyCalls {
                limit: limits.max_calls,
            }),
            None => Ok(None),
        }
    }

    fn open_call(&mut self, call_id: &str) -> CallNo {
        let call = CallNo(self.next_number);
        self.next_number += 1;
        self.call_numbers.insert(call_id.to_owned(), call);
        call
    }

    /// Whether `key` is a participant of `call_id` and holds its secret.
    fn check_participant(&self, call_id: &str, key: &ParticipantKey) -> Result<(), LeaveError> {
        let call = self.call_numbers.get(call_id).copied();
        let found = self
            .participants
            .get(&key.id())
            .is_some_and(|p| Some(p.call()) == call && p.has_secret(key));
        if found {
            Ok(())
        } else {
            Err(LeaveError::UnknownParticipant)
        }
    }

    /// Leaves the call; `key` is the handle [`Engine::join`] returned.
    pub fn leave(&mut self, call_id: &str, key: &ParticipantKey) -> Result<(), LeaveError> {
        self.check_participant(call_id, key)?;
        self.remove(key.id(), LeaveReason::Left);
        Ok(())
    }

    /// Who publishes what the participant `key` receives: for each of its
    /// receive slots now fed, the slot's SSRC and the publisher's
    /// participant number. Receivers map the number to the device the
    /// caller listed with it, and check each frame's SFrame key id against
    /// that.
    pub fn streams(
        &mut self,
        call_id: &str,
        key: &ParticipantKey,
    ) -> Result<Vec<StreamSource>, LeaveError> {
        self.check_participant(call_id, key)?;
        let fed: Vec<(str0m::media::Mid, ParticipantId)> = self
            .participants
            .get(&key.id())
            .map(|p| {
                p.slots
                    .iter()
                    .filter_map(|s| s.feed.as_ref().map(|f| (s.mid, f.source.publisher)))
                    .collect()
            })
            .unwrap_or_default();
        let mut streams = Vec::with_capacity(fed.len());
        for (mid, publisher) in fed {
            if !self.participants.contains_key(&publisher) {
                continue;
            }
            let ssrc = self.participants.get_mut(&key.id()).and_then(|p| {
                guarded(|| {
                    p.rtc
                        .direct_api()
                        .stream_tx_by_mid(mid, None)
                        .map(|s| *s.ssrc())
                })
                .flatten()
            });
            if let Some(ssrc) = ssrc {
                streams.push(StreamSource {
                    ssrc,
                    participant: publisher.0,
                });
            }
        }
        Ok(streams)
    }

    /// Feeds time or a datagram. Never fails: a participant whose WebRTC
    /// stack errs is removed, and the others go on.
    pub fn handle_input(&mut self, input: Input<'_>) {
        match input {
            Input::Timeout(now) => self.handle_timeout(now),
            Input::Datagram(now, datagram) => self.handle_datagram(now, datagram),
        }
    }

    /// The next thing to do: transmit, event, or the time to call back.
    pub fn poll_output(&mut self) -> Output {
        if let Some(output) = self.out.pop_front() {
            return output;
        }
        let timeouts = self.config.timeouts;
        let next = self
            .participants
            .values()
            .map(|p| p.next_wakeup(&timeouts))
            .min()
            .unwrap_or(self.last_now + Duration::from_secs(1));
        Output::Timeout(next)
    }

    fn advance(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        let timeouts = self.config.timeouts;
        let due: Vec<ParticipantId> = self
            .participants
            .iter()
            .filter(|(_, p)| p.next_wakeup(&timeouts) <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(p) = self.participants.get_mut(&id) else {
                continue;
            };
            if let Some(reason) = p.expired(now, &timeouts) {
                self.remove(id, reason);
                continue;
            }
            let handled = guarded(|| p.rtc.handle_input(str0m::Input::Timeout(now)));
            if !matches!(handled, Some(Ok(()))) {
                self.remove(id, LeaveReason::Fault);
                continue;
            }
            self.drain(id, now);
            self.run_work(now);
        }
    }

    fn handle_datagram(&mut self, now: Instant, d: Datagram<'_>) {
        self.advance(now);
        let Ok(receive) = str0m::net::Receive::new(d.proto, d.source, d.destination, d.contents)
        else {
            self.metrics.drop_packet(DropReason::UnknownSource);
            return;
        };
        let input = str0m::Input::Receive(now, receive);
        // A panic while matching drops the datagram: no participant is
        // to blame yet.
        let Some(id) = guarded(|| self.demux(&input, (d.proto, d.source))).flatten() else {
            self.metrics.drop_packet(DropReason::UnknownSource);
            return;
        };
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        p.last_rx = now;
        match guarded(|| p.rtc.handle_input(input)) {
            Some(Ok(())) => {}
            Some(Err(e)) => return self.fault(id, &e),
            None => return self.remove(id, LeaveReason::Fault),
        }
        self.drain(id, now);
        self.run_work(now);
    }

    /// Which participant a datagram is for: the one last seen at its
    /// source, else the one whose ICE accepts it (a STUN check names it).
    fn demux(&mut self, input: &str0m::Input<'_>, key: RouteKey) -> Option<ParticipantId> {
        if let Some(id) = self.routes.get(&key)
            && self
                .participants
                .get(id)
                .is_some_and(|p| p.rtc.accepts(input))
        {
            return Some(*id);
        }
        let id = self
            .participants
            .iter()
            .find(|(_, p)| p.rtc.accepts(input))
            .map(|(id, _)| *id)?;
        self.add_route(id, key);
        Some(id)
    }

    fn add_route(&mut self, id: ParticipantId, key: RouteKey) {
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        if let Some(evicted) = p.remember_route(key)
            && self.routes.get(&evicted) == Some(&id)
        {
            self.routes.remove(&evicted);
        }
        if let Some(previous) = self.routes.insert(key, id)
            && previous != id
            && let Some(other) = self.participants.get_mut(&previous)
        {
            other.forget_route(key);
        }
    }

    /// Polls one participant until its next timeout, queueing transmits
    /// and routing work.
    fn drain(&mut self, id: ParticipantId, now: Instant) {
        let Some(p) = self.participants.get_mut(&id) else {
            return;
        };
        let sink = participant::Sink {
            id,
            out: &mut self.out,
            work: &mut self.work,
            metrics: &self.metrics,
        };
        match guarded(|| p.drain(now, sink)) {
            Some(Ok(())) => {}
            Some(Err(reason)) => self.work.push_back(Work::Remove(id, reason)),
            None => self.work.push_back(Work::Remove(id, LeaveReason::Fault)),
        }
    }

    fn run_work(&mut self, now: Instant) {
        while let Some(work) = self.work.pop_front() {
            match work {
                Work::Forward(from, packet) => self.forward(from, &packet, now),
                Work::Keyframe(from, request) => self.relay_keyframe(from, &request, now),
                Work::Remove(id, reason) => self.remove(id, reason),
            }
        }
    }

    fn fault(&mut self, id: ParticipantId, error: &RtcError) {
        // str0m's errors describe protocol state, not media or addresses.
        tracing::warn!(participant = %id, error = %error, "webrtc fault; removing participant");
        self.remove(id, LeaveReason::Fault);
    }

    fn update_gauges(&self) {
        self.metrics
            .calls
            .set(i64::try_from(self.members.len()).unwrap_or(i64::MAX));
        self.metrics
            .participants
            .set(i64::try_from(self.participants.len()).unwrap_or(i64::MAX));
    }

    /// Checks a bearer token for `call_id` at `unix_now` (seconds) and
    /// marks it used.
    pub fn admit(
        &mut self,
        call_id: &str,
        bearer: Option<&str>,
        unix_now: u64,
    ) -> Result<Admission, JoinError> {
        let result = admission::admit(&mut self.verifier, call_id, bearer, unix_now);
        if let Err(e) = &result {
            self.metrics.refuse(e.code());
        }
        result
    }
}
