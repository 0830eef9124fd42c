//! The headless media engine of a call, on the `webrtc` crate: one peer
//! connection to the media relay that publishes an audio and a video track
//! and offers receive slots for the other participants. What travels is
//! already SFrame ciphertext; this module only moves frames.
//!
//! Joining is WHIP-like: the SDP offer goes to the relay's
//! `POST /v1/calls/{call_id}/join` with the server's join token, the answer
//! comes back in the response. Leaving is a `DELETE` of the participant;
//! `GET …/streams` of it says which participant number publishes each
//! stream we receive.
//!
//! [`MediaSession::direct_pair`] connects two engines to each other without
//! the relay, in process, to measure what the relay adds.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine,
};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCIceServer;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState,
};

use super::frames::{MediaKind, Reassembler};
use super::streams::{MAX_STREAMS_BODY, StreamMap};
use crate::api::TurnCredentials;
use crate::error::{ClientError, Result};

const AUDIO_PAYLOAD_TYPE: u8 = 111;
const VIDEO_PAYLOAD_TYPE: u8 = 96;
/// Longest wait for ICE and DTLS to come up with the relay.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Received frames waiting to be decrypted; beyond this, frames are dropped.
const RECEIVED_QUEUE: usize = 4_096;

/// Why the media connection of a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The relay URL the server gave does not parse.
    #[error("{0}")]
    RelayUrl(#[from] url::ParseError),
    /// The relay URL names no host.
    #[error("relay URL has no host")]
    NoRelayHost,
    /// The relay's host name does not resolve.
    #[error("relay host does not resolve")]
    RelayUnresolved,
    /// The WebRTC engine failed.
    #[error("{0}")]
    WebRtc(#[from] webrtc::error::Error),
    /// A connection state or candidate channel closed early.
    #[error("{0}")]
    Closed(#[from] watch::error::RecvError),
    /// ICE candidates were not all gathered in time.
    #[error("gathering local candidates timed out")]
    GatheringTimeout,
    /// The engine has no local description after setting one.
    #[error("no local description")]
    NoLocalDescription,
    /// An HTTP client for the relay could not be made, or its answer
    /// could not be read.
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    /// The relay could not be reached.
    #[error("cannot reach the media relay: {0}")]
    Unreachable(#[source] reqwest::Error),
    /// The relay refused the join.
    #[error("the media relay refused to join ({status}): {body}")]
    Refused {
        /// Its HTTP status.
        status: reqwest::StatusCode,
        /// The start of its answer.
        body: String,
    },
    /// The connection to the relay did not come up in time.
    #[error("connecting to the media relay timed out")]
    ConnectTimeout,
    /// There is no relay to ask who publishes a stream.
    #[error("no relay to ask for its streams")]
    NoRelayStreams,
    /// The relay's stream mapping is larger than any call needs.
    #[error("the relay's stream mapping is too large")]
    StreamsTooLarge,
    /// The relay's stream mapping does not parse.
    #[error("the relay's stream mapping does not parse")]
    StreamsUnreadable,
    /// The connection to the relay failed or closed.
    #[error("connection to the media relay {0}")]
    Disconnected(RTCPeerConnectionState),
}

/// The largest answer to a join read (an SDP answer is a few KiB).
const MAX_ANSWER: usize = 64 * 1024;

/// A [`ClientError::CallMedia`] from anything [`MediaError`] wraps.
fn media_error(error: impl Into<MediaError>) -> ClientError {
    ClientError::CallMedia(error.into())
}

fn codec(kind: MediaKind) -> RTCRtpCodecParameters {
    let (mime, clock_rate, channels, payload_type) = match kind {
        MediaKind::Audio => (MIME_TYPE_OPUS, 48_000, 2, AUDIO_PAYLOAD_TYPE),
        MediaKind::Video => (MIME_TYPE_VP8, 90_000, 0, VIDEO_PAYLOAD_TYPE),
    };
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: mime.to_owned(),
            clock_rate,
            channels,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![],
        },
        payload_type,
    }
}

fn rtp_kind(kind: MediaKind) -> RtpCodecKind {
    match kind {
        MediaKind::Audio => RtpCodecKind::Audio,
        MediaKind::Video => RtpCodecKind::Video,
    }
}

/// One reassembled (still encrypted) frame from the relay.
#[derive(Debug)]
pub struct ReceivedFrame {
    /// Audio or video.
    pub kind: MediaKind,
    /// The stream (SSRC) it arrived on.
    pub ssrc: u32,
    /// The SFrame ciphertext.
    pub ciphertext: Vec<u8>,
}

struct Events {
    gathered: watch::Sender<bool>,
    state: watch::Sender<RTCPeerConnectionState>,
    frames: mpsc::Sender<ReceivedFrame>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.state.send(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let kind = match track.kind().await {
            RtpCodecKind::Video => MediaKind::Video,
            _ => MediaKind::Audio,
        };
        let frames = self.frames.clone();
        tokio::spawn(async move {
            let mut reassembler = Reassembler::default();
            while let Some(event) = track.poll().await {
                let TrackRemoteEvent::OnRtpPacket(packet) = event else {
                    continue;
                };
                let header = &packet.header;
                if let Some(ciphertext) = reassembler.push(
                    kind,
                    header.sequence_number,
                    header.timestamp,
                    header.marker,
                    &packet.payload,
                ) {
                    // A full queue means we cannot keep up: drop, never block
                    // the connection.
                    let _ = frames.try_send(ReceivedFrame {
                        kind,
                        ssrc: header.ssrc,
                        ciphertext,
                    });
                }
            }
        });
    }
}

struct Publisher {
    track: Arc<TrackLocalStaticSample>,
    ssrc: u32,
    payload_type: u8,
}

/// A participant's connection to the relay.
pub struct MediaSession {
    connection: Box<dyn PeerConnection>,
    audio: Publisher,
    video: Publisher,
    leave_url: Option<String>,
    http: reqwest::Client,
    state: watch::Receiver<RTCPeerConnectionState>,
}

impl std::fmt::Debug for MediaSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaSession").finish_non_exhaustive()
    }
}

/// The local address the system would use to reach `relay` (no packet is
/// sent), so host candidates are on the right interface, loopback included.
fn local_address_towards(relay: &str) -> Result<IpAddr> {
    let url = url::Url::parse(relay).map_err(media_error)?;
    let host = url.host_str().ok_or(MediaError::NoRelayHost)?;
    let port = url.port_or_known_default().unwrap_or(443);
    let target: SocketAddr = (host.trim_matches(['[', ']']), port)
        .to_socket_addrs()?
        .next()
        .ok_or(MediaError::RelayUnresolved)?;
    let bind = if target.is_ipv4() {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
    };
    let probe = UdpSocket::bind(bind)?;
    probe.connect(target)?;
    Ok(probe.local_addr()?.ip())
}

async fn publisher(connection: &dyn PeerConnection, kind: MediaKind) -> Result<Publisher> {
    let ssrc = rand::random::<u32>();
    let codec = codec(kind);
    let track = Arc::new(
        TrackLocalStaticSample::new(
            Instant::now(),
            MediaStreamTrack::new(
                "starling".to_owned(),
                format!("starling-{kind:?}").to_lowercase(),
                format!("starling-{kind:?}").to_lowercase(),
                rtp_kind(kind),
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec: codec.rtp_codec.clone(),
                    ..Default::default()
                }],
            ),
        )
        .map_err(media_error)?,
    );
    connection
        .add_transceiver_from_track(
            Arc::clone(&track) as Arc<dyn TrackLocal>,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                ..Default::default()
            }),
        )
        .await
        .map_err(media_error)?;
    Ok(Publisher {
        track,
        ssrc,
        payload_type: codec.payload_type,
    })
}

/// One side of a call's peer connection before negotiation: our two
/// published tracks and the channels its events arrive on. [`MediaSession::join`]
/// negotiates it with the relay, [`MediaSession::direct_pair`] with another
/// endpoint in the same process.
struct Endpoint {
    connection: Box<dyn PeerConnection>,
    audio: Publisher,
    video: Publisher,
    gathered: watch::Receiver<bool>,
    state: watch::Receiver<RTCPeerConnectionState>,
    frames: mpsc::Receiver<ReceivedFrame>,
}

impl Endpoint {
    /// A peer connection on `local` (host candidates only, plus a relayed
    /// one through `turn` if given) publishing an audio and a video track.
    async fn new(local: IpAddr, turn: Option<&TurnCredentials>) -> Result<Self> {
        let mut media_engine = MediaEngine::default();
        for kind in [MediaKind::Audio, MediaKind::Video] {
            media_engine
                .register_codec(codec(kind), rtp_kind(kind))
                .map_err(media_error)?;
        }
        let (gathered_tx, gathered) = watch::channel(false);
        let (state_tx, state) = watch::channel(RTCPeerConnectionState::New);
        let (frames_tx, frames) = mpsc::channel(RECEIVED_QUEUE);
        let events = Arc::new(Events {
            gathered: gathered_tx,
            state: state_tx,
            frames: frames_tx,
        });
        let connection = PeerConnectionBuilder::new()
            .with_configuration(
                RTCConfigurationBuilder::new()
                    .with_ice_servers(
                        turn.map(|t| RTCIceServer {
                            urls: t.urls.clone(),
                            username: t.username.clone(),
                            credential: t.password.clone(),
                        })
                        .into_iter()
                        .collect(),
                    )
                    .build(),
            )
            .with_media_engine(media_engine)
            .with_handler(events)
            .with_udp_addrs(vec![SocketAddr::new(local, 0)])
            .build()
            .await
            .map_err(media_error)?;
        let connection: Box<dyn PeerConnection> = Box::new(connection);
        let audio = publisher(connection.as_ref(), MediaKind::Audio).await?;
        let video = publisher(connection.as_ref(), MediaKind::Video).await?;
        Ok(Self {
            connection,
            audio,
            video,
            gathered,
            state,
            frames,
        })
    }

    /// Offers `slots` receive slots of each kind (the other participants).
    async fn add_receive_slots(&self, slots: usize) -> Result<()> {
        for _ in 0..slots {
            for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
                self.connection
                    .add_transceiver_from_kind(
                        kind,
                        Some(RTCRtpTransceiverInit {
                            direction: RTCRtpTransceiverDirection::Recvonly,
                            ..Default::default()
                        }),
                    )
                    .await
                    .map_err(media_error)?;
            }
        }
        Ok(())
    }

    /// Sets `description` (our offer or answer) as the local one and
    /// returns it once every local candidate is in it (no trickle ICE).
    async fn describe(
        &mut self,
        description: RTCSessionDescription,
    ) -> Result<RTCSessionDescription> {
        self.connection
            .set_local_description(description)
            .await
            .map_err(media_error)?;
        tokio::time::timeout(CONNECT_TIMEOUT, self.gathered.wait_for(|done| *done))
            .await
            .map_err(|_| MediaError::GatheringTimeout)?
            .map_err(media_error)?;
        self.connection
            .local_description()
            .await
            .ok_or_else(|| MediaError::NoLocalDescription.into())
    }

    /// The session, once the remote description is set; not yet connected.
    fn into_session(
        self,
        leave_url: Option<String>,
        http: reqwest::Client,
    ) -> (MediaSession, mpsc::Receiver<ReceivedFrame>) {
        let session = MediaSession {
            connection: self.connection,
            audio: self.audio,
            video: self.video,
            leave_url,
            http,
            state: self.state,
        };
        (session, self.frames)
    }
}

fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(CONNECT_TIMEOUT)
        .build()
        .map_err(media_error)
}

impl MediaSession {
    /// Joins `call_id` on the relay at `relay_url` with `token`, offering
    /// `slots` receive slots of each kind (the other participants).
    /// `turn` (when the server has a TURN service) adds a relayed
    /// candidate for networks that block UDP to the relay.
    pub async fn join(
        relay_url: &str,
        call_id: &str,
        token: &str,
        slots: usize,
        turn: Option<&TurnCredentials>,
    ) -> Result<(Self, mpsc::Receiver<ReceivedFrame>)> {
        Self::join_via(http_client()?, relay_url, call_id, token, slots, turn).await
    }

    /// [`Self::join`] over `http`: the server's own client (its pinned
    /// TLS) when the relay runs inside the server.
    pub async fn join_via(
        http: reqwest::Client,
        relay_url: &str,
        call_id: &str,
        token: &str,
        slots: usize,
        turn: Option<&TurnCredentials>,
    ) -> Result<(Self, mpsc::Receiver<ReceivedFrame>)> {
        let local = local_address_towards(relay_url)?;
        let mut endpoint = Endpoint::new(local, turn).await?;
        endpoint.add_receive_slots(slots).await?;
        let offer = endpoint
            .connection
            .create_offer(None)
            .await
            .map_err(media_error)?;
        let offer = endpoint.describe(offer).await?;
        let base = relay_url.trim_end_matches('/');
        let response = http
            .post(format!("{base}/v1/calls/{call_id}/join"))
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/sdp")
            .body(offer.sdp)
            .send()
            .await
            .map_err(MediaError::Unreachable)?;
        let status = response.status();
        let leave_url = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|path| format!("{base}{path}"));
        let body = crate::api::body::read(response, MAX_ANSWER).await?;
        let body = String::from_utf8_lossy(&body).into_owned();
        if !status.is_success() {
            return Err(media_error(MediaError::Refused {
                status,
                body: body.chars().take(200).collect(),
            }));
        }
        let answer = RTCSessionDescription::answer(body).map_err(media_error)?;
        endpoint
            .connection
            .set_remote_description(answer)
            .await
            .map_err(media_error)?;
        let (mut session, frames) = endpoint.into_session(leave_url, http);
        if session.relay_participant() == 0 {
            // Without our number the others could not tell our stream.
            session.leave().await;
            return Err(media_error(MediaError::Refused {
                status,
                body: "the relay gave no participant number".into(),
            }));
        }
        session.wait_connected().await?;
        Ok((session, frames))
    }

    /// Two sessions connected directly to each other on 127.0.0.1, no
    /// relay: the first offers (its tracks and one receive slot of each
    /// kind), the second sets that offer as its remote description and
    /// answers, in process. Each receives what the other sends. For
    /// measuring what the relay adds; calls always go through the relay.
    pub async fn direct_pair() -> Result<[(Self, mpsc::Receiver<ReceivedFrame>); 2]> {
        let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut offerer = Endpoint::new(local, None).await?;
        offerer.add_receive_slots(1).await?;
        let offer = offerer
            .connection
            .create_offer(None)
            .await
            .map_err(media_error)?;
        let offer = offerer.describe(offer).await?;
        // The answerer's published tracks take the offer's receive slots;
        // the offer's published tracks get new receive-only transceivers.
        let mut answerer = Endpoint::new(local, None).await?;
        answerer
            .connection
            .set_remote_description(offer)
            .await
            .map_err(media_error)?;
        let answer = answerer
            .connection
            .create_answer(None)
            .await
            .map_err(media_error)?;
        let answer = answerer.describe(answer).await?;
        offerer
            .connection
            .set_remote_description(answer)
            .await
            .map_err(media_error)?;
        let http = http_client()?;
        let (mut first, first_frames) = offerer.into_session(None, http.clone());
        let (mut second, second_frames) = answerer.into_session(None, http);
        tokio::try_join!(first.wait_connected(), second.wait_connected())?;
        Ok([(first, first_frames), (second, second_frames)])
    }

    async fn wait_connected(&mut self) -> Result<()> {
        let state = tokio::time::timeout(
            CONNECT_TIMEOUT,
            self.state.wait_for(|s| {
                matches!(
                    s,
                    RTCPeerConnectionState::Connected
                        | RTCPeerConnectionState::Failed
                        | RTCPeerConnectionState::Closed
                )
            }),
        )
        .await
        .map_err(|_| MediaError::ConnectTimeout)?
        .map_err(media_error)?
        .to_owned();
        if state == RTCPeerConnectionState::Connected {
            Ok(())
        } else {
            Err(media_error(MediaError::Disconnected(state)))
        }
    }

    /// Whether the connection to the relay is still up.
    pub fn is_connected(&self) -> bool {
        *self.state.borrow() == RTCPeerConnectionState::Connected
    }

    /// Sends one (encrypted) frame on the track of its kind.
    pub async fn send(&self, kind: MediaKind, frame: Vec<u8>) -> Result<()> {
        let publisher = match kind {
            MediaKind::Audio => &self.audio,
            MediaKind::Video => &self.video,
        };
        let sample = Sample {
            data: Bytes::from(frame),
            duration: kind.interval(),
            ..Sample::new(Instant::now())
        };
        publisher
            .track
            .write_sample(publisher.ssrc, publisher.payload_type, &sample, &[])
            .await
            .map_err(media_error)
    }

    /// Our participant number on the relay (from the handle it gave us,
    /// `…/participants/<number>-<secret>`); 0 without a relay. Announced
    /// end to end, so the others can tell which streams are ours.
    pub fn relay_participant(&self) -> u64 {
        self.leave_url
            .as_deref()
            .and_then(|url| url.rsplit('/').next())
            .and_then(|handle| handle.split_once('-'))
            .and_then(|(number, _)| number.parse().ok())
            .unwrap_or(0)
    }

    /// Which participant publishes each stream we receive, as the relay
    /// says now. An error without a relay (a direct pair).
    pub async fn streams(&self) -> Result<StreamMap> {
        let url = self.leave_url.as_ref().ok_or(MediaError::NoRelayStreams)?;
        let response = self
            .http
            .get(format!("{url}/streams"))
            .send()
            .await
            .map_err(MediaError::Unreachable)?;
        let status = response.status();
        if !status.is_success() {
            return Err(media_error(MediaError::Refused {
                status,
                body: String::new(),
            }));
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_STREAMS_BODY)
        {
            return Err(media_error(MediaError::StreamsTooLarge));
        }
        let bytes = response.bytes().await.map_err(media_error)?;
        if bytes.len() as u64 > MAX_STREAMS_BODY {
            return Err(media_error(MediaError::StreamsTooLarge));
        }
        StreamMap::parse(&bytes).ok_or_else(|| media_error(MediaError::StreamsUnreadable))
    }

    /// Leaves the call on the relay and closes the connection.
    pub async fn leave(&self) {
        if let Some(url) = &self.leave_url {
            let _ = self.http.delete(url).send().await;
        }
        let _ = self.connection.close().await;
    }
}
