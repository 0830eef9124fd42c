//! A malicious server for the end-to-end tests: a proxy in front of the
//! real server that misbehaves on purpose, as a compromised operator
//! could. Clients talk to the proxy (plain HTTP on loopback); the proxy
//! talks to the real server (TLS, pinned) and, as the test asks through
//! [`Tamper`], rewrites what it serves: it strips the ML-KEM prekey from
//! bundles, serves another account's keys for a user, drops and
//! duplicates envelopes, holds a device's envelopes back and delivers
//! them in reverse order, replays recorded envelopes or injects garbage
//! under any sender header, and answers sends with stale device lists
//! it made up. Everything else passes through unchanged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use rand::RngCore;
use starling_client::frames::{self, client_frame, server_frame};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite;

use crate::TestServer;

/// A device as the proxy tells them apart: `username:device`.
pub type DeviceName = String;

/// Where injected envelopes for one device go: its open connection, or a
/// queue its next connection takes.
enum Injector {
    Open(mpsc::UnboundedSender<frames::Envelope>),
    Waiting(Vec<frames::Envelope>),
}

/// What the proxy does wrong; every knob starts off (an honest proxy).
#[derive(Default)]
pub struct Tamper {
    /// Remove the signed ML-KEM prekey from every bundle served.
    pub strip_kem_prekeys: AtomicBool,
    /// Deliver every envelope twice.
    pub duplicate_envelopes: AtomicBool,
    /// Envelopes delivered twice so far.
    pub duplicated: AtomicUsize,
    /// Envelopes dropped so far.
    pub dropped: AtomicUsize,
    substitute_bundles: Mutex<HashMap<String, serde_json::Value>>,
    drop_next: Mutex<HashMap<DeviceName, usize>>,
    delivered: Mutex<HashMap<DeviceName, Vec<frames::Envelope>>>,
    injectors: Mutex<HashMap<DeviceName, Injector>>,
    injected: Mutex<Vec<Vec<u8>>>,
    served_bundles: Mutex<HashMap<String, serde_json::Value>>,
    claim_missing: Mutex<Option<(String, Vec<u32>)>>,
    held: Mutex<HashMap<DeviceName, Vec<frames::Envelope>>>,
}

impl Tamper {
    /// Serves `bundles` (a `BundleResponse` body, as the server answered
    /// it for someone else) whenever `username`'s keys are asked for.
    pub fn serve_bundles_for(&self, username: &str, bundles: serde_json::Value) {
        lock(&self.substitute_bundles).insert(username.to_owned(), bundles);
    }

    /// The last bundles the server served for `username` (a
    /// `BundleResponse` body), to serve them for someone else.
    pub fn bundles_served(&self, username: &str) -> Option<serde_json::Value> {
        lock(&self.served_bundles).get(username).cloned()
    }

    /// Answers the next send with a 409 calling `devices` of `username`
    /// missing, whatever the send held (without forwarding it).
    pub fn claim_missing_once(&self, username: &str, devices: &[u32]) {
        *lock(&self.claim_missing) = Some((username.to_owned(), devices.to_vec()));
    }

    /// The made-up stale-device answer for a send, if one is due.
    fn made_up_stale(&self, method: &Method, path: &str) -> Option<Response> {
        if method != Method::PUT || !path.starts_with("/v1/messages") {
            return None;
        }
        let (username, missing) = lock(&self.claim_missing).take()?;
        let body = serde_json::json!({
            "code": "stale_devices",
            "reason": "the device list is out of date",
            "missing_devices": missing,
            "extra_devices": [],
            "accounts": { username: { "missing": missing, "extra": [] } },
        });
        Some((StatusCode::CONFLICT, axum::Json(body)).into_response())
    }

    /// Drops the next `count` envelopes for `device` (`user:device`).
    pub fn drop_next(&self, device: &str, count: usize) {
        lock(&self.drop_next).insert(device.to_owned(), count);
    }

    /// The envelopes delivered to `device` so far, in order.
    pub fn delivered(&self, device: &str) -> Vec<frames::Envelope> {
        lock(&self.delivered)
            .get(device)
            .cloned()
            .unwrap_or_default()
    }

    /// Delivers `envelope` to `device`'s open connection, as if the server
    /// had it queued: on its open connection, or on the next one it
    /// opens.
    pub fn inject(&self, device: &str, envelope: frames::Envelope) {
        lock(&self.injected).push(envelope.id.clone());
        self.deliver(device, envelope);
    }

    /// Sends `envelope` down `device`'s open connection, or queues it for
    /// the next one.
    fn deliver(&self, device: &str, envelope: frames::Envelope) {
        let mut injectors = lock(&self.injectors);
        let slot = injectors
            .entry(device.to_owned())
            .or_insert_with(|| Injector::Waiting(Vec::new()));
        let unsent = match slot {
            Injector::Open(sender) => sender.send(envelope).err().map(|e| e.0),
            Injector::Waiting(waiting) => {
                waiting.push(envelope);
                None
            }
        };
        // The connection closed meanwhile: the next one takes it.
        if let Some(envelope) = unsent {
            *slot = Injector::Waiting(vec![envelope]);
        }
    }

    /// Holds back every envelope for `device` from now on, until
    /// [`Tamper::release_reversed`].
    pub fn hold(&self, device: &str) {
        lock(&self.held).entry(device.to_owned()).or_default();
    }

    /// Stops holding `device`'s envelopes and delivers the held ones, last
    /// first (real envelopes: their acknowledgements reach the server).
    /// Returns how many there were.
    pub fn release_reversed(&self, device: &str) -> usize {
        let held = lock(&self.held).remove(device).unwrap_or_default();
        let count = held.len();
        for envelope in held.into_iter().rev() {
            self.deliver(device, envelope);
        }
        count
    }

    /// Delivers a recorded envelope again under a fresh id (a replay the
    /// client cannot tell by its id).
    pub fn replay(&self, device: &str, envelope: &frames::Envelope) {
        let mut replayed = envelope.clone();
        replayed.id = random_id();
        self.inject(device, replayed);
    }

    /// Delivers random bytes under the sender header `sender`/`device`.
    pub fn inject_garbage(&self, to: &str, sender: &str, sender_device: u32) {
        let mut content = vec![0u8; 200];
        rand::thread_rng().fill_bytes(&mut content);
        self.inject(
            to,
            frames::Envelope {
                id: random_id(),
                sender: sender.to_owned(),
                sender_device,
                server_timestamp: 0,
                content,
            },
        );
    }

    /// What to deliver for one envelope the server sent `device`.
    fn on_envelope(&self, device: &str, envelope: frames::Envelope) -> Vec<frames::Envelope> {
        lock(&self.delivered)
            .entry(device.to_owned())
            .or_default()
            .push(envelope.clone());
        if let Some(held) = lock(&self.held).get_mut(device) {
            held.push(envelope);
            return Vec::new();
        }
        if let Some(left) = lock(&self.drop_next).get_mut(device)
            && *left > 0
        {
            *left -= 1;
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Vec::new();
        }
        if self.duplicate_envelopes.load(Ordering::Relaxed) {
            self.duplicated.fetch_add(1, Ordering::Relaxed);
            return vec![envelope.clone(), envelope];
        }
        vec![envelope]
    }

    /// Rewrites a response body of the server's.
    fn on_response(&self, method: &Method, path: &str, body: Bytes) -> Bytes {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (method, segments.as_slice()) {
            (&Method::GET, ["v1", "keys", username, _device]) => {
                if let Ok(served) = serde_json::from_slice(&body) {
                    lock(&self.served_bundles).insert((*username).to_owned(), served);
                }
                if let Some(bundles) = lock(&self.substitute_bundles).get(*username) {
                    return Bytes::from(bundles.to_string());
                }
                if self.strip_kem_prekeys.load(Ordering::Relaxed) {
                    return strip_kem(&body).map_or(body, Bytes::from);
                }
                body
            }
            _ => body,
        }
    }
}

/// Field number of `kem_prekey` in the `PreKeyBundle` message.
const KEM_PREKEY_FIELD: u32 = 5;

/// A `BundleResponse` body with the `kem_prekey` field removed from every
/// bundle (a server cannot forge the signatures, but it can leave a
/// signed part out).
fn strip_kem(body: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let mut response: serde_json::Value = serde_json::from_slice(body).ok()?;
    for device in response["devices"].as_array_mut()? {
        let bundle = engine.decode(device["bundle"].as_str()?).ok()?;
        device["bundle"] = engine
            .encode(without_field(&bundle, KEM_PREKEY_FIELD)?)
            .into();
    }
    serde_json::to_vec(&response).ok()
}

/// An encoded protobuf message without the fields numbered `field`.
fn without_field(message: &[u8], field: u32) -> Option<Vec<u8>> {
    use prost::encoding::{WireType, decode_key, decode_varint};
    let mut rest = message;
    let mut kept = Vec::with_capacity(message.len());
    while !rest.is_empty() {
        let start = rest;
        let (number, wire_type) = decode_key(&mut rest).ok()?;
        match wire_type {
            WireType::Varint => {
                decode_varint(&mut rest).ok()?;
            }
            WireType::LengthDelimited => {
                let len = usize::try_from(decode_varint(&mut rest).ok()?).ok()?;
                rest = rest.get(len..)?;
            }
            WireType::SixtyFourBit => rest = rest.get(8..)?,
            WireType::ThirtyTwoBit => rest = rest.get(4..)?,
            _ => return None,
        }
        if number != field {
            kept.extend_from_slice(&start[..start.len() - rest.len()]);
        }
    }
    Some(kept)
}

fn random_id() -> Vec<u8> {
    let mut id = vec![0u8; 16];
    rand::thread_rng().fill_bytes(&mut id);
    id
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The real server behind a misbehaving proxy.
pub struct MaliciousServer {
    /// The real server.
    pub server: TestServer,
    /// What the proxy does wrong (shared with the running proxy).
    pub tamper: Arc<Tamper>,
    /// The proxy's base URL, which clients are given.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    tls: Arc<rustls::ClientConfig>,
    tamper: Arc<Tamper>,
}

impl MaliciousServer {
    /// Starts a real server on `db` and the proxy in front of it.
    pub async fn start(db: crate::DbKind) -> Self {
        Self::in_front_of(TestServer::start(db).await).await
    }

    /// Starts the proxy in front of a running `server` (one started with
    /// a relay, say).
    pub async fn in_front_of(server: TestServer) -> Self {
        let tls = starling_client::tls::client_config(Some(&server.fingerprint)).unwrap();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls.clone())
            .no_proxy()
            .build()
            .unwrap();
        let tamper = Arc::new(Tamper::default());
        let proxy = Proxy {
            upstream: server.url.clone(),
            http,
            tls: Arc::new(tls),
            tamper: tamper.clone(),
        };
        let router = axum::Router::new()
            .route("/v1/ws", axum::routing::get(websocket))
            .fallback(forward)
            .with_state(proxy);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            server,
            tamper,
            url,
            task,
        }
    }

    /// The configuration clients use: the proxy's address.
    pub fn config(&self) -> starling_client::ServerConfig {
        starling_client::ServerConfig {
            url: self.url.clone(),
            ca_fingerprint: None,
        }
    }

    /// Registers a library client, through the proxy, in a fresh home.
    pub async fn client(&self, username: &str) -> crate::TestClient {
        let home = tempfile::tempdir().unwrap();
        let key = crate::test_key(username);
        let client =
            starling_client::Client::register(home.path(), &key, &self.config(), username, None)
                .await
                .unwrap();
        crate::TestClient::new(client, home, key)
    }
}

impl Drop for MaliciousServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forwards one HTTP request to the real server and rewrites the answer.
async fn forward(State(proxy): State<Proxy>, request: Request) -> Response {
    let method = request.method().clone();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or_else(|| request.uri().path().to_owned(), ToString::to_string);
    let path = request.uri().path().to_owned();
    if let Some(made_up) = proxy.tamper.made_up_stale(&method, &path) {
        return made_up;
    }
    let headers = request.headers().clone();
    let Ok(body) = axum::body::to_bytes(request.into_body(), 256 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut upstream = proxy
        .http
        .request(
            method.clone(),
            format!("{}{path_and_query}", proxy.upstream),
        )
        .body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            upstream = upstream.header(name, value);
        }
    }
    let Ok(answer) = upstream.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = answer.status();
    let mut answer_headers = HeaderMap::new();
    for (name, value) in answer.headers() {
        if name != "content-length" && name != "transfer-encoding" {
            answer_headers.insert(name.clone(), value.clone());
        }
    }
    let body = answer.bytes().await.unwrap_or_default();
    let body = if status.is_success() {
        proxy.tamper.on_response(&method, &path, body)
    } else {
        body
    };
    (status, answer_headers, body).into_response()
}

/// The device an `Authorization: Bearer user:device:credential` names.
fn device_of(headers: &HeaderMap) -> Option<DeviceName> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let mut parts = value.strip_prefix("Bearer ")?.splitn(3, ':');
    Some(format!("{}:{}", parts.next()?, parts.next()?))
}

async fn websocket(
    State(proxy): State<Proxy>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(device) = device_of(&headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let Some(authorization) = headers.get("authorization").cloned() else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    upgrade.on_upgrade(move |client| async move {
        if let Ok(server) = connect_upstream(&proxy, authorization).await {
            pump(proxy.tamper.clone(), device, client, server).await;
        }
    })
}

type Upstream =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

async fn connect_upstream(
    proxy: &Proxy,
    authorization: axum::http::HeaderValue,
) -> Result<Upstream, Box<dyn std::error::Error + Send + Sync>> {
    use tungstenite::client::IntoClientRequest as _;
    let url = url_of(&proxy.upstream)?;
    let tcp = tokio::net::TcpStream::connect(url.as_str()).await?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1")?;
    let tls = tokio_rustls::TlsConnector::from(proxy.tls.clone())
        .connect(name, tcp)
        .await?;
    let mut request = format!("wss://{url}/v1/ws").into_client_request()?;
    request.headers_mut().insert("authorization", authorization);
    let (socket, _) = tokio_tungstenite::client_async(request, tls).await?;
    Ok(socket)
}

/// `host:port` of an `https://host:port` URL.
fn url_of(base: &str) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    Ok(base
        .strip_prefix("https://")
        .ok_or("the upstream is https")?
        .to_owned())
}

/// Carries frames both ways until either side closes, rewriting the
/// server's envelopes and adding the injected ones.
async fn pump(tamper: Arc<Tamper>, device: DeviceName, client: WebSocket, server: Upstream) {
    let (injector, mut injected) = mpsc::unbounded_channel();
    if let Some(Injector::Waiting(waiting)) =
        lock(&tamper.injectors).insert(device.clone(), Injector::Open(injector.clone()))
    {
        for envelope in waiting {
            let _ = injector.send(envelope);
        }
    }
    let (mut to_client, mut from_client) = client.split();
    let (mut to_server, mut from_server) = server.split();
    loop {
        tokio::select! {
            message = from_server.next() => {
                let Some(Ok(message)) = message else { break };
                let outgoing = match message {
                    tungstenite::Message::Binary(bytes) => server_frames(&tamper, &device, &bytes),
                    tungstenite::Message::Close(_) => break,
                    _ => Vec::new(),
                };
                for frame in outgoing {
                    if to_client.send(Message::Binary(frame.into())).await.is_err() {
                        return;
                    }
                }
            }
            Some(envelope) = injected.recv() => {
                let frame = frames::ServerFrame {
                    request_id: 0,
                    body: Some(server_frame::Body::Envelope(envelope)),
                };
                if to_client.send(Message::Binary(frame.encode_to_vec().into())).await.is_err() {
                    return;
                }
            }
            message = from_client.next() => {
                let Some(Ok(message)) = message else { break };
                let forwarded = match message {
                    Message::Binary(bytes) => client_frame_to_server(&tamper, &bytes),
                    Message::Close(_) => break,
                    _ => None,
                };
                if let Some(bytes) = forwarded
                    && to_server.send(tungstenite::Message::Binary(bytes.into())).await.is_err()
                {
                    return;
                }
            }
        }
    }
    lock(&tamper.injectors).remove(&device);
}

/// What the client is sent for one frame of the server's.
fn server_frames(tamper: &Tamper, device: &str, bytes: &[u8]) -> Vec<Vec<u8>> {
    let Ok(frame) = frames::ServerFrame::decode(bytes) else {
        return vec![bytes.to_vec()];
    };
    match frame.body {
        Some(server_frame::Body::Envelope(envelope)) => tamper
            .on_envelope(device, envelope)
            .into_iter()
            .map(|envelope| {
                frames::ServerFrame {
                    request_id: frame.request_id,
                    body: Some(server_frame::Body::Envelope(envelope)),
                }
                .encode_to_vec()
            })
            .collect(),
        _ => vec![bytes.to_vec()],
    }
}

/// A client's frame as the server gets it: acknowledgements of injected
/// envelopes (which the server never sent) are left out.
fn client_frame_to_server(tamper: &Tamper, bytes: &[u8]) -> Option<Vec<u8>> {
    let Ok(mut frame) = frames::ClientFrame::decode(bytes) else {
        return Some(bytes.to_vec());
    };
    if let Some(client_frame::Body::Ack(ack)) = &mut frame.body {
        let injected = lock(&tamper.injected);
        ack.envelope_ids.retain(|id| !injected.contains(id));
    }
    Some(frame.encode_to_vec())
}
