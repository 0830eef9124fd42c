//! ICE-TCP through the real network shell: two str0m clients with only an
//! active TCP candidate hold a call through the relay's passive listener
//! (RFC 4571 framing on real loopback sockets), and connections that are
//! never claimed, send a bad frame, or exceed the limit are closed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use starling_call_token::TokenSigner;
use starling_media_relay::EngineConfig;
use starling_media_relay::net::{MetricsToken, Relay, RelayOptions};
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event as RtcEvent, Input as RtcInput, Output as RtcOutput, Rtc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tower::ServiceExt;

/// Generous bound for anything the tests wait for.
const PATIENCE: Duration = Duration::from_secs(20);

struct TestRelay {
    app: axum::Router,
    tcp: SocketAddr,
    signer: TokenSigner,
    rng: ChaCha8Rng,
}

async fn relay(configure: impl FnOnce(&mut RelayOptions)) -> TestRelay {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let signer = TokenSigner::generate(&mut rng);
    let mut options = RelayOptions {
        http_listen: Some("127.0.0.1:0".parse().unwrap()),
        udp_listen: "127.0.0.1:0".parse().unwrap(),
        tcp_listen: Some("127.0.0.1:0".parse().unwrap()),
        max_tcp_connections: 100,
        // Clients here have no UDP candidate: the UDP address is never used.
        engine: EngineConfig::new("127.0.0.1:9".parse().unwrap()),
        token_key: signer.public_key(),
        metrics_token: Some(MetricsToken("tcp-test".into())),
    };
    configure(&mut options);
    let relay = Relay::bind(options).await.unwrap();
    TestRelay {
        app: relay.router(),
        tcp: relay.public_tcp().unwrap(),
        signer,
        rng,
    }
}

impl TestRelay {
    /// Joins `call_id` with `offer`; returns the SDP answer and the
    /// participant's URL.
    async fn join(&mut self, call_id: &str, offer: &str) -> (String, String) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let token = self.signer.issue(now, 60, &mut self.rng).unwrap();
        let request = Request::post(format!("/v1/calls/{call_id}/join"))
            .header("content-type", "application/sdp")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::from(offer.to_owned()))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (String::from_utf8(body.to_vec()).unwrap(), location)
    }

    async fn leave(&self, location: &str) {
        let request = Request::delete(location).body(Body::empty()).unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }

    async fn metrics(&self) -> String {
        let request = Request::get("/metrics")
            .header("authorization", "Bearer tcp-test")
            .body(Body::empty())
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    /// Waits until `/metrics` has `line`.
    async fn wait_for_metric(&self, line: &str) {
        let start = Instant::now();
        loop {
            let metrics = self.metrics().await;
            if metrics.contains(line) {
                return;
            }
            assert!(start.elapsed() < PATIENCE, "no {line:?} in\n{metrics}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn frame(bytes: &[u8]) -> Vec<u8> {
    let mut framed = u16::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    framed
}

/// The payload of the `n`th packet a peer publishes.
fn payload(tag: u8, n: u32) -> Vec<u8> {
    let mut bytes = vec![tag; 40];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    bytes
}

/// A str0m client whose only candidate is an active TCP one, connected
/// to the relay's listener.
struct Peer {
    rtc: Rtc,
    local: SocketAddr,
    relay: SocketAddr,
    write: OwnedWriteHalf,
    incoming: mpsc::Receiver<Vec<u8>>,
    audio_out: Mid,
    location: String,
    tag: u8,
    sent: u32,
    connected: bool,
    received: Vec<Vec<u8>>,
}

impl Peer {
    async fn join(relay: &mut TestRelay, call_id: &str, tag: u8) -> Self {
        let stream = TcpStream::connect(relay.tcp).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let local = stream.local_addr().unwrap();
        let (mut read, write) = stream.into_split();
        let (frames, incoming) = mpsc::channel(1024);
        tokio::spawn(async move {
            loop {
                let Ok(len) = read.read_u16().await else {
                    return;
                };
                let mut bytes = vec![0; usize::from(len)];
                if read.read_exact(&mut bytes).await.is_err() || frames.send(bytes).await.is_err() {
                    return;
                }
            }
        });
        let mut rtc = Rtc::builder()
            .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
            .set_rtp_mode(true)
            .build(Instant::now());
        let candidate = Candidate::builder()
            .tcp()
            .host(local)
            .tcptype(TcpType::Active)
            .build()
            .unwrap();
        rtc.add_local_candidate(candidate);
        let mut api = rtc.sdp_api();
        let audio_out = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().unwrap();
        let (answer, location) = relay.join(call_id, &offer.to_sdp_string()).await;
        assert!(answer.contains("tcptype passive"), "{answer}");
        let answer = SdpAnswer::from_sdp_string(&answer).unwrap();
        rtc.sdp_api().accept_answer(pending, answer).unwrap();
        Self {
            rtc,
            local,
            relay: relay.tcp,
            write,
            incoming,
            audio_out,
            location,
            tag,
            sent: 0,
            connected: false,
            received: Vec::new(),
        }
    }

    /// Sends what str0m has queued and handles its events; returns when
    /// it next wants the time.
    async fn drain(&mut self) -> Instant {
        loop {
            match self.rtc.poll_output().unwrap() {
                RtcOutput::Timeout(t) => return t,
                RtcOutput::Transmit(t) => {
                    assert_eq!(t.proto, Protocol::Tcp);
                    self.write.write_all(&frame(&t.contents)).await.unwrap();
                }
                RtcOutput::Event(RtcEvent::Connected) => self.connected = true,
                RtcOutput::Event(RtcEvent::RtpPacket(p)) => self.received.push(p.payload.to_vec()),
                RtcOutput::Event(_) => {}
            }
        }
    }

    /// Runs str0m for `period`, feeding it the frames that arrive.
    async fn run_for(&mut self, period: Duration) {
        let until = Instant::now() + period;
        loop {
            let next = self.drain().await.min(until);
            let frame = tokio::select! {
                f = self.incoming.recv() => f,
                () = tokio::time::sleep_until(next.into()) => None,
            };
            let now = Instant::now();
            let input = match &frame {
                Some(bytes) => RtcInput::Receive(
                    now,
                    Receive::new(Protocol::Tcp, self.relay, self.local, bytes).unwrap(),
                ),
                None => RtcInput::Timeout(now),
            };
            self.rtc.handle_input(input).unwrap();
            if now >= until {
                return;
            }
        }
    }

    /// Publishes one audio packet.
    fn publish(&mut self) {
        let pt = self
            .rtc
            .codec_config()
            .find(|p| p.spec().codec == Codec::Opus)
            .unwrap()
            .pt();
        let n = self.sent;
        self.sent += 1;
        let write = RtpWrite::new(
            pt,
            u64::from(n + 1).into(),
            n * 960,
            Instant::now(),
            payload(self.tag, n),
        )
        .marker(true);
        let mut direct = self.rtc.direct_api();
        direct
            .stream_tx_by_mid(self.audio_out, None)
            .unwrap()
            .write_rtp(write);
    }
}

/// What `peer` received from the peer tagged `from`: their packet numbers,
/// checking that each payload is byte-exact.
fn numbers_from(peer: &Peer, from: u8) -> Vec<u32> {
    peer.received
        .iter()
        .map(|p| {
            let n = u32::from_be_bytes(p[..4].try_into().unwrap());
            assert_eq!(*p, payload(from, n), "payload altered in transit");
            n
        })
        .collect()
}

#[tokio::test]
async fn a_call_runs_over_ice_tcp() {
    // A short connect timeout is also a short claim window: the call
    // outlasts it, and its connections must stay open.
    let claim_window = Duration::from_millis(1_500);
    let mut relay = relay(|o| o.engine.timeouts.connect = claim_window).await;
    let mut alice = Peer::join(&mut relay, "call-tcp", 0xA1).await;
    let mut bob = Peer::join(&mut relay, "call-tcp", 0xB0).await;
    relay
        .wait_for_metric("starling_relay_tcp_connections 2")
        .await;

    let start = Instant::now();
    while !(alice.connected && bob.connected) {
        assert!(
            start.elapsed() < PATIENCE,
            "ICE-TCP and DTLS did not come up"
        );
        alice.run_for(Duration::from_millis(10)).await;
        bob.run_for(Duration::from_millis(10)).await;
    }
    let media_start = Instant::now();
    while bob.received.len() < 30
        || alice.received.len() < 30
        || media_start.elapsed() < claim_window * 2
    {
        assert!(start.elapsed() < PATIENCE, "media did not arrive over TCP");
        alice.publish();
        bob.publish();
        alice.run_for(Duration::from_millis(10)).await;
        bob.run_for(Duration::from_millis(10)).await;
    }

    // TCP loses nothing: once a stream reaches its receiver, every later
    // packet arrives, in order and unaltered.
    for (receiver, from) in [(&bob, 0xA1), (&alice, 0xB0)] {
        let numbers = numbers_from(receiver, from);
        let first = numbers[0];
        let expected: Vec<u32> = (first..first + u32::try_from(numbers.len()).unwrap()).collect();
        assert_eq!(numbers, expected);
    }
    let metrics = relay.metrics().await;
    assert!(
        !metrics.contains("reason=\"SendFailed\""),
        "the relay dropped frames it should have written:\n{metrics}"
    );
    assert!(
        metrics.contains("starling_relay_tcp_connections 2\n"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("starling_relay_tcp_closes_total"),
        "a connection in use was closed:\n{metrics}"
    );

    // A participant that leaves gives up its connection.
    relay.leave(&alice.location).await;
    relay
        .wait_for_metric("starling_relay_tcp_closes_total{reason=\"Unclaimed\"} 1")
        .await;
    relay
        .wait_for_metric("starling_relay_tcp_connections 1\n")
        .await;
}

/// Waits until the relay ends `stream` (end of stream or reset).
async fn closed_by_relay(stream: &mut TcpStream, otherwise: &str) {
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
        .await
        .expect(otherwise);
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test]
async fn an_unclaimed_connection_is_closed() {
    let relay = relay(|o| o.engine.timeouts.connect = Duration::from_millis(500)).await;
    let mut stream = TcpStream::connect(relay.tcp).await.unwrap();
    // A well-formed frame that no participant's ICE accepts.
    stream
        .write_all(&frame(b"not a stun request"))
        .await
        .unwrap();
    closed_by_relay(&mut stream, "the relay kept an unclaimed connection open").await;
    relay
        .wait_for_metric("starling_relay_tcp_closes_total{reason=\"Unclaimed\"} 1")
        .await;
    relay
        .wait_for_metric("starling_relay_tcp_connections 0")
        .await;
}

#[tokio::test]
async fn a_bad_frame_ends_the_connection() {
    let relay = relay(|_| {}).await;
    for bad in [vec![0, 0], vec![0xFF, 0xFF]] {
        let mut stream = TcpStream::connect(relay.tcp).await.unwrap();
        stream.write_all(&bad).await.unwrap();
        closed_by_relay(&mut stream, "the relay kept reading after a bad frame").await;
    }
    relay
        .wait_for_metric("starling_relay_tcp_closes_total{reason=\"BadFrame\"} 2")
        .await;
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused() {
    let relay = relay(|o| o.max_tcp_connections = 1).await;
    let _first = TcpStream::connect(relay.tcp).await.unwrap();
    relay
        .wait_for_metric("starling_relay_tcp_connections 1")
        .await;
    let mut second = TcpStream::connect(relay.tcp).await.unwrap();
    closed_by_relay(&mut second, "the relay kept a connection beyond its limit").await;
    relay
        .wait_for_metric("starling_relay_tcp_closes_total{reason=\"Limit\"} 1")
        .await;
    relay
        .wait_for_metric("starling_relay_tcp_connections 1")
        .await;
}
