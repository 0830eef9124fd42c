//! Simulated world for engine tests: a clock that only moves when told, an
//! in-memory network that can lose, delay and reorder datagrams, and
//! clients that are str0m `Rtc` instances in RTP mode (full ICE, offering).
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use starling_call_token::TokenSigner;
use starling_media_relay::engine::{Datagram, Event, Input, Joined, Output, ParticipantKey};
use starling_media_relay::{Engine, EngineConfig, JoinError, Metrics};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event as RtcEvent, Output as RtcOutput, Rtc};

pub const UNIX_START: u64 = 1_800_000_000;
pub const STEP: Duration = Duration::from_millis(2);

/// A datagram on the wire.
struct InFlight {
    at: Instant,
    order: u64,
    proto: Protocol,
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

/// A datagram taken off the wire before delivery (benchmarks feed these to
/// the engine themselves).
pub struct Captured {
    order: u64,
    pub proto: Protocol,
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
}

/// The network: every datagram is delayed by `latency` plus up to
/// `jitter` (which reorders), and lost with probability `loss`.
pub struct Net {
    queue: Vec<InFlight>,
    rng: ChaCha8Rng,
    order: u64,
    pub latency: Duration,
    pub jitter: Duration,
    pub loss: f64,
}

impl Net {
    fn new(seed: u64) -> Self {
        Self {
            queue: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            order: 0,
            latency: Duration::from_millis(10),
            jitter: Duration::ZERO,
            loss: 0.0,
        }
    }

    fn send(
        &mut self,
        now: Instant,
        proto: Protocol,
        from: SocketAddr,
        to: SocketAddr,
        bytes: Vec<u8>,
    ) {
        if self.loss > 0.0 && self.rng.gen_bool(self.loss) {
            return;
        }
        let jitter_us = u64::try_from(self.jitter.as_micros()).unwrap();
        let extra = if jitter_us > 0 {
            Duration::from_micros(self.rng.gen_range(0..jitter_us))
        } else {
            Duration::ZERO
        };
        self.order += 1;
        self.queue.push(InFlight {
            at: now + self.latency + extra,
            order: self.order,
            proto,
            from,
            to,
            bytes,
        });
    }

    /// A mark for [`Net::take_since`]: everything sent so far is before it.
    pub fn mark(&self) -> u64 {
        self.order
    }

    /// Takes off the wire every datagram sent after `mark`, undelivered.
    pub fn take_since(&mut self, mark: u64) -> Vec<Captured> {
        let (taken, rest): (Vec<_>, Vec<_>) = self.queue.drain(..).partition(|p| p.order > mark);
        self.queue = rest;
        let mut taken: Vec<Captured> = taken
            .into_iter()
            .map(|p| Captured {
                order: p.order,
                proto: p.proto,
                from: p.from,
                to: p.to,
                bytes: p.bytes,
            })
            .collect();
        taken.sort_by_key(|c| c.order);
        taken
    }

    fn take_due(&mut self, now: Instant) -> Vec<InFlight> {
        let (mut due, rest): (Vec<_>, Vec<_>) = self.queue.drain(..).partition(|p| p.at <= now);
        self.queue = rest;
        due.sort_by_key(|p| (p.at, p.order));
        due
    }
}

/// What a client offers.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub audio_out: bool,
    pub video_out: bool,
    pub audio_in: usize,
    pub video_in: usize,
}

impl Spec {
    /// Publishes audio and video, receives from up to `peers` others.
    pub fn av(peers: usize) -> Self {
        Self {
            audio_out: true,
            video_out: true,
            audio_in: peers,
            video_in: peers,
        }
    }
}

/// A packet a client received.
#[derive(Debug, Clone)]
pub struct Got {
    pub mid: Mid,
    pub ssrc: u32,
    pub seq: u64,
    pub payload: Vec<u8>,
}

/// The address of the `n`th client created: unique up to 6,250,000
/// clients (250 hosts × 25,000 ports).
fn client_addr(n: usize) -> SocketAddr {
    let port = 40_000 + (n / 250) % 25_000;
    format!("198.51.100.{}:{port}", 1 + n % 250)
        .parse()
        .unwrap()
}

/// A client: a str0m `Rtc` that offers, and what it received.
pub struct Client {
    pub rtc: Rtc,
    pub addr: SocketAddr,
    pub key: Option<ParticipantKey>,
    pub connected: bool,
    /// Neither sends nor receives any more (a vanished device).
    pub silent: bool,
    pub audio_out: Option<Mid>,
    pub video_out: Option<Mid>,
    pub got: Vec<Got>,
    pub keyframe_requests: usize,
    next: Instant,
    seq: u64,
    pending: Option<SdpPendingOffer>,
}

impl Client {
    pub fn new(addr: SocketAddr, spec: Spec, now: Instant) -> (Self, String) {
        let mut rtc = Rtc::builder()
            .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
            .set_rtp_mode(true)
            .build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let mut api = rtc.sdp_api();
        let mut add = |kind, dir| api.add_media(kind, dir, None, None, None);
        let audio_out = spec
            .audio_out
            .then(|| add(MediaKind::Audio, Direction::SendOnly));
        let video_out = spec
            .video_out
            .then(|| add(MediaKind::Video, Direction::SendOnly));
        for _ in 0..spec.audio_in {
            add(MediaKind::Audio, Direction::RecvOnly);
        }
        for _ in 0..spec.video_in {
            add(MediaKind::Video, Direction::RecvOnly);
        }
        let (offer, pending) = api.apply().unwrap();
        let client = Self {
            rtc,
            addr,
            key: None,
            connected: false,
            silent: false,
            audio_out,
            video_out,
            got: Vec::new(),
            keyframe_requests: 0,
            next: now,
            seq: 0,
            pending: Some(pending),
        };
        (client, offer.to_sdp_string())
    }

    fn accept(&mut self, answer: &str) {
        let answer = SdpAnswer::from_sdp_string(answer).unwrap();
        let pending = self.pending.take().unwrap();
        self.rtc.sdp_api().accept_answer(pending, answer).unwrap();
    }

    fn drain(&mut self, now: Instant, net: &mut Net) {
        loop {
            match self.rtc.poll_output().unwrap() {
                RtcOutput::Timeout(t) => {
                    self.next = t.max(now + Duration::from_micros(100));
                    return;
                }
                RtcOutput::Transmit(t) => {
                    if !self.silent {
                        net.send(now, t.proto, self.addr, t.destination, t.contents.to_vec());
                    }
                }
                RtcOutput::Event(e) => self.on_event(e),
            }
        }
    }

    fn on_event(&mut self, event: RtcEvent) {
        match event {
            RtcEvent::Connected => self.connected = true,
            RtcEvent::RtpPacket(p) => {
                let mid = self
                    .rtc
                    .direct_api()
                    .stream_rx(&p.header.ssrc)
                    .map(|s| s.mid())
                    .unwrap();
                self.got.push(Got {
                    mid,
                    ssrc: *p.header.ssrc,
                    seq: *p.seq_no,
                    payload: p.payload.to_vec(),
                });
            }
            RtcEvent::KeyframeRequest(_) => self.keyframe_requests += 1,
            _ => {}
        }
    }

    /// Writes one RTP packet on a published media section.
    pub fn send(&mut self, mid: Mid, payload: &[u8], now: Instant, net: &mut Net) {
        let kind = self.rtc.media(mid).unwrap().kind();
        let codec = if kind.is_audio() {
            Codec::Opus
        } else {
            Codec::Vp8
        };
        let pt = self
            .rtc
            .codec_config()
            .find(|p| p.spec().codec == codec)
            .unwrap()
            .pt();
        self.seq += 1;
        let time = u32::try_from(self.seq * 960 % u64::from(u32::MAX)).unwrap();
        let write = RtpWrite::new(pt, (self.seq + 100).into(), time, now, payload.to_vec())
            .marker(true)
            .nackable(kind.is_video());
        let mut direct = self.rtc.direct_api();
        direct.stream_tx_by_mid(mid, None).unwrap().write_rtp(write);
        // str0m's pacer releases written packets on the next timeout.
        self.rtc.handle_input(str0m::Input::Timeout(now)).unwrap();
        self.drain(now, net);
    }

    /// Asks for a keyframe on a receive slot.
    pub fn request_keyframe(&mut self, mid: Mid, now: Instant, net: &mut Net) {
        if let Some(stream) = self.rtc.direct_api().stream_rx_by_mid(mid, None) {
            stream.request_keyframe(KeyframeRequestKind::Pli);
        }
        self.drain(now, net);
    }

    /// Payloads received on any media section.
    pub fn payloads(&self) -> Vec<Vec<u8>> {
        self.got.iter().map(|g| g.payload.clone()).collect()
    }
}

/// The engine, its clients and the network, on one simulated clock.
pub struct Sim {
    pub now: Instant,
    pub start: Instant,
    pub engine: Engine,
    pub clients: Vec<Client>,
    pub net: Net,
    pub relay: SocketAddr,
    pub signer: TokenSigner,
    pub events: Vec<Event>,
    pub rng: ChaCha8Rng,
    engine_next: Instant,
    /// Clients ever created (their addresses stay unique if `clients` is
    /// truncated).
    created: usize,
}

impl Sim {
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    pub fn with(configure: impl FnOnce(&mut EngineConfig)) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let signer = TokenSigner::generate(&mut rng);
        let relay: SocketAddr = "203.0.113.1:3478".parse().unwrap();
        let mut config = EngineConfig::new(relay);
        configure(&mut config);
        let now = Instant::now();
        let engine = Engine::new(config, &signer.public_key(), Metrics::default(), now).unwrap();
        Self {
            now,
            start: now,
            engine,
            clients: Vec::new(),
            net: Net::new(11),
            relay,
            signer,
            events: Vec::new(),
            rng,
            engine_next: now,
            created: 0,
        }
    }

    pub fn unix_now(&self) -> u64 {
        UNIX_START + (self.now - self.start).as_secs()
    }

    /// A fresh token: it names no call and no one.
    pub fn token(&mut self) -> String {
        let now = self.unix_now();
        self.signer.issue(now, 60, &mut self.rng).unwrap()
    }

    /// Admits with `token` and joins with a new client; returns its index.
    pub fn join_with(
        &mut self,
        call: &str,
        token: Option<&str>,
        spec: Spec,
    ) -> Result<usize, JoinError> {
        let n = self.clients.len();
        let addr = client_addr(self.created);
        self.created += 1;
        let (mut client, offer) = Client::new(addr, spec, self.now);
        let unix = self.unix_now();
        let admission = self.engine.admit(call, token, unix)?;
        let Joined { key, answer } =
            self.engine
                .join(admission, &offer, self.now, &mut self.rng)?;
        client.accept(&answer);
        client.key = Some(key);
        client.drain(self.now, &mut self.net);
        self.clients.push(client);
        self.drain_engine();
        Ok(n)
    }

    /// Joins `call` with a fresh token. `_who` only names the joiner for
    /// the reader: the relay learns no account.
    pub fn join(&mut self, call: &str, _who: &str, spec: Spec) -> usize {
        let token = self.token();
        self.join_with(call, Some(&token), spec).unwrap()
    }

    pub fn leave(&mut self, client: usize, call: &str) {
        let key = self.clients[client].key.clone().unwrap();
        self.engine.leave(call, &key).unwrap();
        self.clients[client].silent = true;
        self.drain_engine();
    }

    /// Hands one datagram to the engine at the current time and runs it
    /// as the shell does (draining it, and feeding it the current time
    /// while it asks for that) until it waits for the future; returns how
    /// many datagrams it sent, which are dropped.
    pub fn relay_input(&mut self, datagram: &Captured) -> usize {
        let input = Datagram {
            proto: datagram.proto,
            source: datagram.from,
            destination: self.relay,
            contents: &datagram.bytes,
        };
        self.engine.handle_input(Input::Datagram(self.now, input));
        let mut sent = 0;
        for _ in 0..16 {
            loop {
                match self.engine.poll_output() {
                    Output::Transmit(_) => sent += 1,
                    Output::Event(e) => self.events.push(e),
                    Output::Timeout(t) => {
                        self.engine_next = t;
                        break;
                    }
                }
            }
            if self.engine_next > self.now {
                break;
            }
            self.engine.handle_input(Input::Timeout(self.now));
        }
        sent
    }

    fn drain_engine(&mut self) {
        loop {
            match self.engine.poll_output() {
                Output::Transmit(t) => self.net.send(
                    self.now,
                    t.proto,
                    self.relay,
                    t.destination,
                    t.contents.to_vec(),
                ),
                Output::Event(e) => self.events.push(e),
                Output::Timeout(t) => {
                    self.engine_next = t;
                    return;
                }
            }
        }
    }

    /// Moves the clock one step and handles what is due.
    pub fn step(&mut self) {
        self.now += STEP;
        let now = self.now;
        for packet in self.net.take_due(now) {
            self.deliver(packet);
        }
        if self.engine_next <= now {
            self.engine.handle_input(Input::Timeout(now));
            self.drain_engine();
        }
        for client in self
            .clients
            .iter_mut()
            .filter(|c| !c.silent && c.next <= now)
        {
            client.rtc.handle_input(str0m::Input::Timeout(now)).unwrap();
            client.drain(now, &mut self.net);
        }
    }

    fn deliver(&mut self, packet: InFlight) {
        let now = self.now;
        if packet.to == self.relay {
            let datagram = Datagram {
                proto: packet.proto,
                source: packet.from,
                destination: self.relay,
                contents: &packet.bytes,
            };
            self.engine.handle_input(Input::Datagram(now, datagram));
            self.drain_engine();
            return;
        }
        let Some(client) = self
            .clients
            .iter_mut()
            .find(|c| c.addr == packet.to && !c.silent)
        else {
            return;
        };
        let receive = Receive::new(packet.proto, packet.from, packet.to, &packet.bytes).unwrap();
        client
            .rtc
            .handle_input(str0m::Input::Receive(now, receive))
            .unwrap();
        client.drain(now, &mut self.net);
    }

    pub fn run(&mut self, duration: Duration) {
        let end = self.now + duration;
        while self.now < end {
            self.step();
        }
    }

    /// Runs until `done` holds; panics after `limit`.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Sim) -> bool) {
        let end = self.now + limit;
        while !done(self) {
            assert!(self.now < end, "condition not reached in {limit:?}");
            self.step();
        }
    }

    /// Runs until every listed client is connected.
    pub fn connect(&mut self, clients: &[usize]) {
        let clients = clients.to_vec();
        self.run_until(Duration::from_secs(5), |s| {
            clients.iter().all(|c| s.clients[*c].connected)
        });
        // Let the relay's side of DTLS settle too.
        self.run(Duration::from_millis(200));
    }

    /// `client` sends `count` audio packets 20 ms apart, each payload
    /// tagged with `tag` and its index.
    pub fn talk(&mut self, client: usize, tag: u8, count: u8) {
        let mid = self.clients[client].audio_out.unwrap();
        for i in 0..count {
            let now = self.now;
            self.clients[client].send(mid, &[tag, i, 0xAA, 0x55], now, &mut self.net);
            self.run(Duration::from_millis(20));
        }
        self.run(Duration::from_millis(200));
    }
}
