//! Malformed input on the WebSocket (`/v1/ws`), over real connections, on
//! SQLite and PostgreSQL: garbage, truncated and unknown protobuf frames
//! and text messages get an `Error` frame and the connection carries on;
//! acknowledgements of unknown ids delete nothing; a message too big, a
//! frame that breaks the WebSocket protocol and a text message that is
//! not UTF-8 close the connection with their own code; a connection cut
//! in the middle of a frame, or gone silent there, ends. After each, the
//! server still serves a fresh connection and an HTTP request, and no
//! thread of the process panicked; a request to `/v1/ws` that is no
//! upgrade gets a coded 400. A property test feeds random messages
//! and raw frames; the fuzz seeds of the frame decoder
//! (`crypto/fuzz/seeds/decode_ws_frame/`) go over a connection too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use common::{DbKind, JsonRequest, TestServer, TestUser, Ws, b64};
use futures_util::{SinkExt, StreamExt};
use proptest::prelude::*;
use prost::Message as _;
use serde_json::json;
use starling_server::frames::{self, client_frame, server_frame};
use starling_server::ws::{
    CLOSE_INVALID_PAYLOAD, CLOSE_PROTOCOL_ERROR, CLOSE_SILENT, CLOSE_TOO_BIG,
};
use starling_test_support::both_databases;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;

/// The largest message the server takes (`ws::MAX_CLIENT_FRAME`).
const MAX_MESSAGE: usize = 4 * 1024 * 1024;
/// The request id of the probing ping: no random frame uses it.
const PROBE_ID: u64 = u64::MAX - 7;

/// Set by the panic hook: a thread of this process panicked.
static PANICKED: AtomicBool = AtomicBool::new(false);

/// Records any panic of this process (a connection's task included), then
/// prints it as usual.
fn watch_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.store(true, Ordering::SeqCst);
            default(info);
        }));
    });
}

fn assert_no_panic() {
    assert!(
        !PANICKED.load(Ordering::SeqCst),
        "a thread of the server panicked"
    );
}

/// A server whose WebSocket pings every second (so silence is found in
/// two), with alice registered.
async fn start(kind: DbKind) -> (TestServer, TestUser) {
    watch_panics();
    let server = TestServer::start_with(kind, |config| {
        config.connections.websocket_ping_seconds = 1;
    })
    .await;
    let alice = server.register("alice", 1).await;
    (server, alice)
}

/// A fresh connection of `user`, its queue drained.
async fn connect(server: &TestServer, user: &TestUser) -> Ws {
    let mut ws = server.ws(&user.auth).await;
    ws.drain().await;
    ws
}

/// How a connection answered a probe.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// It answered the ping: still open.
    Alive,
    /// The server closed it with this code (`None`: no code).
    Closed(Option<u16>),
    /// It ended without a close frame.
    Ended,
}

/// Sends a ping frame (if the socket still takes it) and reads until its
/// answer or the end of the connection. Every frame before it must be a
/// response or an error the protocol defines.
async fn probe(ws: &mut Ws) -> Outcome {
    let ping = frames::ClientFrame {
        request_id: PROBE_ID,
        body: Some(client_frame::Body::Ping(frames::Ping {})),
    };
    let _ = ws
        .socket
        .send(Message::Binary(ping.encode_to_vec().into()))
        .await;
    read_until_end_or_probe(ws).await
}

/// Reads until the probe's answer or the end of the connection.
async fn read_until_end_or_probe(ws: &mut Ws) -> Outcome {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), ws.socket.next())
            .await
            .expect("an answer or a close within 10 s");
        match next {
            Some(Ok(Message::Binary(bytes))) => {
                let frame = frames::ServerFrame::decode(&bytes[..]).expect("a ServerFrame");
                match frame.body {
                    Some(server_frame::Body::Response(r)) if frame.request_id == PROBE_ID => {
                        assert_eq!(r.status, 200, "{r:?}");
                        return Outcome::Alive;
                    }
                    Some(server_frame::Body::Error(e)) => {
                        assert!(
                            e.code == "bad_frame" || e.code == "too_many_ids",
                            "unexpected error frame {e:?}"
                        );
                    }
                    Some(_) => {}
                    None => panic!("a server frame without a body"),
                }
            }
            Some(Ok(Message::Close(frame))) => {
                return Outcome::Closed(frame.map(|f| u16::from(f.code)));
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return Outcome::Ended,
        }
    }
}

/// The server still opens a connection for alice, answers a ping on it,
/// and serves an HTTP request over its listener; nothing panicked.
async fn assert_serves(server: &TestServer, user: &TestUser) {
    let mut ws = connect(server, user).await;
    assert_eq!(probe(&mut ws).await, Outcome::Alive);
    let client = reqwest::Client::new();
    let reply = JsonRequest::get("/v1/keys/count")
        .auth(Some(&user.auth))
        .send(&client, &format!("http://{}", server.addr))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json());
    assert_no_panic();
}

/// The next frame, which must be an `Error`; returns its request id and
/// code.
async fn expect_error(ws: &mut Ws) -> (u64, String) {
    let frame = ws.next_frame().await;
    match frame.body {
        Some(server_frame::Body::Error(e)) => (frame.request_id, e.code),
        other => panic!("expected an Error frame, got {other:?}"),
    }
}

/// Writes `bytes` to the connection's socket as they are, under the
/// WebSocket framing.
async fn write_raw(ws: &mut Ws, bytes: &[u8]) {
    let MaybeTlsStream::Plain(tcp) = ws.socket.get_mut() else {
        panic!("the test server speaks plain HTTP");
    };
    // The server may already have closed (an earlier frame of the same
    // case): the outcome is read afterwards.
    let _ = tcp.write_all(bytes).await;
    let _ = tcp.flush().await;
}

/// One WebSocket frame as a client writes it (RFC 6455 §5.2): `rsv` are
/// the three reserved bits, `masked` whether the payload is masked (a
/// client must mask).
fn raw_frame(fin: bool, rsv: u8, opcode: u8, masked: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | ((rsv & 0b111) << 4) | (opcode & 0x0f)];
    let mask_bit = if masked { 0x80 } else { 0 };
    let len = payload.len();
    if let Some(short) = u8::try_from(len).ok().filter(|l| *l < 126) {
        out.push(mask_bit | short);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(mask_bit | 126);
        out.extend(len.to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend(u64::try_from(len).unwrap().to_be_bytes());
    }
    if masked {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        out.extend(key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend(payload);
    }
    out
}

/// A masked frame header announcing `len` payload bytes, without them.
fn header_announcing(opcode: u8, len: u64) -> Vec<u8> {
    let mut out = vec![0x80 | opcode, 0x80 | 127];
    out.extend(len.to_be_bytes());
    out.extend([1, 2, 3, 4]);
    out
}

async fn malformed_frames_get_an_error_and_the_connection_carries_on(kind: DbKind) {
    let (server, alice) = start(kind).await;
    let mut ws = connect(&server, &alice).await;
    let send = frames::ClientFrame {
        request_id: 4,
        body: Some(client_frame::Body::Send(frames::SendMessage {
            destination: "bob".into(),
            envelopes: vec![frames::OutgoingEnvelope {
                device_id: 1,
                content: vec![7; 100],
            }],
            sealed: false,
        })),
    }
    .encode_to_vec();
    // (what, bytes, the request id the error carries)
    let cases: Vec<(&str, Vec<u8>, u64)> = vec![
        ("garbage", vec![0xff, 0xfe, 0xfd, 0x00, 0x13], 0),
        ("an empty message", vec![], 0),
        ("a zero tag", vec![0x00, 0x01], 0),
        ("a truncated send", send[..send.len() - 50].to_vec(), 0),
        ("a length past the end", vec![0x1a, 0x7f, 0x0a], 0),
        (
            "a varint of eleven bytes",
            [vec![0x08], vec![0xff; 10], vec![0x01]].concat(),
            0,
        ),
        // request id 7, then field 9 (a kind of frame this server does
        // not know), empty
        ("an unknown kind of frame", vec![0x08, 0x07, 0x4a, 0x00], 7),
        ("only a request id", vec![0x08, 0x09], 9),
        (
            "an unknown field of a wire type 5",
            vec![0x08, 0x0b, 0x7d, 1, 2, 3, 4],
            11,
        ),
    ];
    for (what, bytes, request_id) in cases {
        ws.socket.send(Message::Binary(bytes.into())).await.unwrap();
        let (id, code) = expect_error(&mut ws).await;
        assert_eq!((id, code.as_str()), (request_id, "bad_frame"), "{what}");
    }
    ws.socket
        .send(Message::Text("{\"ack\": []}".into()))
        .await
        .unwrap();
    assert_eq!(expect_error(&mut ws).await.1, "bad_frame", "a text message");
    // A message of exactly the largest size is read, and refused as a
    // frame.
    ws.socket
        .send(Message::Binary(vec![0u8; MAX_MESSAGE].into()))
        .await
        .unwrap();
    assert_eq!(expect_error(&mut ws).await.1, "bad_frame", "4 MiB of zeros");
    assert_eq!(probe(&mut ws).await, Outcome::Alive);
    assert_serves(&server, &alice).await;
}
both_databases!(
    malformed_frames,
    malformed_frames_get_an_error_and_the_connection_carries_on
);

async fn acknowledgements_of_unknown_ids_delete_nothing(kind: DbKind) {
    let (server, alice) = start(kind).await;
    let bob = server.register("bob", 2).await;
    let body = json!({ "envelopes": [{ "device_id": 1, "content": b64(b"hello") }] });
    let (status, reply) = server
        .request("PUT", "/v1/messages/alice", Some(&bob.auth), Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let mut ws = server.ws(&alice.auth).await;
    let queued = ws.drain().await;
    assert_eq!(queued.len(), 1);
    let ack = |request_id, envelope_ids| frames::ClientFrame {
        request_id,
        body: Some(client_frame::Body::Ack(frames::Acknowledge {
            envelope_ids,
        })),
    };
    // Unknown ids, of the right length and of others: answered 200.
    for (request_id, ids) in [
        (5, vec![vec![0u8; 16]]),
        (6, vec![vec![], vec![1], vec![2; 300]]),
        (7, vec![]),
    ] {
        ws.send_frame(ack(request_id, ids)).await;
        let frame = ws.next_frame().await;
        assert_eq!(frame.request_id, request_id);
        assert!(
            matches!(frame.body, Some(server_frame::Body::Response(ref r)) if r.status == 200),
            "{frame:?}"
        );
    }
    // Without a request id: no answer at all; the probe's is next.
    ws.send_frame(ack(0, vec![vec![9; 16]])).await;
    assert_eq!(probe(&mut ws).await, Outcome::Alive);
    // Too many at once.
    ws.send_frame(ack(8, vec![vec![0; 16]; 1025])).await;
    assert_eq!(expect_error(&mut ws).await, (8, "too_many_ids".to_string()));
    // Nothing was deleted: the envelope comes again, and its own
    // acknowledgement still works.
    drop(ws);
    let mut ws = server.ws(&alice.auth).await;
    let again = ws.drain().await;
    assert_eq!(
        again.iter().map(|e| &e.id).collect::<Vec<_>>(),
        vec![&queued[0].id]
    );
    ws.ack(vec![queued[0].id.clone()]).await;
    drop(ws);
    let mut ws = server.ws(&alice.auth).await;
    assert!(ws.drain().await.is_empty());
    assert_serves(&server, &alice).await;
}
both_databases!(
    unknown_acknowledgements,
    acknowledgements_of_unknown_ids_delete_nothing
);

async fn a_message_too_big_is_closed_with_1009(kind: DbKind) {
    let (server, alice) = start(kind).await;
    let mut ws = connect(&server, &alice).await;
    ws.socket
        .send(Message::Binary(vec![0u8; MAX_MESSAGE + 1].into()))
        .await
        .unwrap();
    assert_eq!(probe(&mut ws).await, Outcome::Closed(Some(CLOSE_TOO_BIG)));
    // A frame header announcing a terabyte: refused before any of it.
    let mut ws = connect(&server, &alice).await;
    write_raw(&mut ws, &header_announcing(0x2, 1 << 40)).await;
    assert_eq!(
        read_until_end_or_probe(&mut ws).await,
        Outcome::Closed(Some(CLOSE_TOO_BIG))
    );
    assert_serves(&server, &alice).await;
}
both_databases!(oversized_messages, a_message_too_big_is_closed_with_1009);

async fn protocol_violations_are_closed_with_their_code(kind: DbKind) {
    let (server, alice) = start(kind).await;
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "an unmasked frame",
            raw_frame(true, 0, 0x2, false, b"abc"),
            CLOSE_PROTOCOL_ERROR,
        ),
        (
            "a reserved bit",
            raw_frame(true, 0b100, 0x2, true, b"abc"),
            CLOSE_PROTOCOL_ERROR,
        ),
        (
            "an unknown data opcode",
            raw_frame(true, 0, 0x3, true, b"abc"),
            CLOSE_PROTOCOL_ERROR,
        ),
        (
            "an unknown control opcode",
            raw_frame(true, 0, 0xb, true, b""),
            CLOSE_PROTOCOL_ERROR,
        ),
        (
            "a fragmented ping",
            raw_frame(false, 0, 0x9, true, b""),
            CLOSE_PROTOCOL_ERROR,
        ),
        (
            "a ping of 200 bytes",
            raw_frame(true, 0, 0x9, true, &[0; 200]),
            CLOSE_PROTOCOL_ERROR,
        ),
        (
            "a continuation with nothing to continue",
            raw_frame(true, 0, 0x0, true, b"abc"),
            CLOSE_PROTOCOL_ERROR,
        ),
        (
            "a new message inside a fragmented one",
            [
                raw_frame(false, 0, 0x2, true, b"ab"),
                raw_frame(true, 0, 0x2, true, b"cd"),
            ]
            .concat(),
            CLOSE_PROTOCOL_ERROR,
        ),
        (
            "a text message that is not UTF-8",
            raw_frame(true, 0, 0x1, true, &[0x68, 0xff, 0xfe]),
            CLOSE_INVALID_PAYLOAD,
        ),
        (
            "fragments adding up past 4 MiB",
            [
                raw_frame(false, 0, 0x2, true, &vec![0; MAX_MESSAGE / 2 + 1]),
                raw_frame(true, 0, 0x0, true, &vec![0; MAX_MESSAGE / 2 + 1]),
            ]
            .concat(),
            CLOSE_TOO_BIG,
        ),
    ];
    for (what, bytes, code) in cases {
        let mut ws = connect(&server, &alice).await;
        write_raw(&mut ws, &bytes).await;
        assert_eq!(
            read_until_end_or_probe(&mut ws).await,
            Outcome::Closed(Some(code)),
            "{what}"
        );
    }
    assert_serves(&server, &alice).await;
}
both_databases!(
    protocol_violations,
    protocol_violations_are_closed_with_their_code
);

async fn truncated_frames_end_the_connection(kind: DbKind) {
    let (server, alice) = start(kind).await;
    // Ten bytes of a thousand, then nothing: silent, closed with 1001
    // after two ping intervals.
    let mut ws = connect(&server, &alice).await;
    let mut bytes = header_announcing(0x2, 1000);
    bytes.extend([0u8; 10]);
    write_raw(&mut ws, &bytes).await;
    assert_eq!(
        read_until_end_or_probe(&mut ws).await,
        Outcome::Closed(Some(CLOSE_SILENT))
    );
    // Ten bytes of a thousand, then the client hangs up: the connection
    // ends (there is nobody left to tell).
    let mut ws = connect(&server, &alice).await;
    write_raw(&mut ws, &bytes).await;
    let MaybeTlsStream::Plain(tcp) = ws.socket.get_mut() else {
        panic!("the test server speaks plain HTTP");
    };
    tcp.shutdown().await.unwrap();
    assert_eq!(read_until_end_or_probe(&mut ws).await, Outcome::Ended);
    assert_serves(&server, &alice).await;
}
both_databases!(truncated_frames, truncated_frames_end_the_connection);

/// What a client may put on the connection.
#[derive(Debug, Clone)]
enum Input {
    /// A binary message of these bytes.
    Binary(Vec<u8>),
    /// A text message.
    Text(String),
    /// One raw frame: fin, reserved bits, opcode (never close), masked,
    /// payload.
    Raw(bool, u8, u8, bool, Vec<u8>),
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..200).prop_map(Input::Binary),
        1 => ".{0,40}".prop_map(Input::Text),
        2 => (
            any::<bool>(),
            0u8..8,
            (0u8..16).prop_filter("not a close", |op| *op != 0x8),
            proptest::bool::weighted(0.8),
            proptest::collection::vec(any::<u8>(), 0..140),
        )
            .prop_map(|(fin, rsv, op, masked, payload)| Input::Raw(fin, rsv, op, masked, payload)),
    ]
}

/// Feeds `inputs` over a fresh connection and probes it: it must answer,
/// have been closed with one of the codes for malformed input, or have
/// been reset. A client that goes on writing after a frame the server
/// closes on can have the connection reset under it (the server hangs up
/// on bytes it never read), and the reset can overtake the close frame;
/// `protocol_violations` checks each code where nothing follows the bad
/// frame.
async fn feed(server: &TestServer, alice: &TestUser, inputs: &[Input]) -> Result<(), String> {
    let mut ws = connect(server, alice).await;
    for input in inputs {
        match input {
            Input::Binary(bytes) => {
                let _ = ws.socket.send(Message::Binary(bytes.clone().into())).await;
            }
            Input::Text(text) => {
                let _ = ws.socket.send(Message::Text(text.clone().into())).await;
            }
            Input::Raw(fin, rsv, opcode, masked, payload) => {
                write_raw(&mut ws, &raw_frame(*fin, *rsv, *opcode, *masked, payload)).await;
            }
        }
    }
    match probe(&mut ws).await {
        Outcome::Alive => Ok(()),
        Outcome::Closed(Some(CLOSE_PROTOCOL_ERROR | CLOSE_INVALID_PAYLOAD | CLOSE_TOO_BIG)) => {
            Ok(())
        }
        Outcome::Ended if inputs.iter().any(closes_the_connection) => Ok(()),
        other => Err(format!("{other:?} after {inputs:?}")),
    }
}

/// Whether `input` may be a frame the server closes on: only raw frames
/// can be (the client library writes every message well formed).
fn closes_the_connection(input: &Input) -> bool {
    matches!(input, Input::Raw(..))
}

/// Random messages and raw frames over real connections, one connection
/// a case: each answers or closes with a code; the server serves on.
fn random_frames(kind: DbKind) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (server, alice) = runtime.block_on(start(kind));
    let config = ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let strategy = proptest::collection::vec(input(), 1..6);
    let result = runner.run(&strategy, |inputs| {
        runtime
            .block_on(feed(&server, &alice, &inputs))
            .map_err(TestCaseError::fail)
    });
    if let Err(error) = result {
        panic!("{error}");
    }
    runtime.block_on(async move {
        assert_serves(&server, &alice).await;
        drop(server);
    });
}

mod random_frames {
    #[test]
    fn sqlite() {
        super::random_frames(super::DbKind::Sqlite);
    }
    #[test]
    fn postgres() {
        super::random_frames(super::DbKind::Postgres);
    }
}

async fn fuzz_seeds_over_a_connection(kind: DbKind) {
    let (server, alice) = start(kind).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crypto/fuzz/seeds/decode_ws_frame");
    let mut seeds: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    for path in seeds {
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // `valid_*` seeds decode as a ClientFrame; the others need not.
        if name.starts_with("valid_") {
            frames::ClientFrame::decode(&bytes[..]).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        feed(&server, &alice, &[Input::Binary(bytes)])
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert_serves(&server, &alice).await;
}
both_databases!(fuzz_seeds, fuzz_seeds_over_a_connection);

async fn a_request_that_is_no_upgrade_gets_a_coded_400(kind: DbKind) {
    let (server, alice) = start(kind).await;
    let client = reqwest::Client::new();
    let reply = JsonRequest::get("/v1/ws")
        .auth(Some(&alice.auth))
        .send(&client, &format!("http://{}", server.addr))
        .await;
    let body = reply.json();
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "bad_upgrade", "{body}");
    assert!(body["reason"].is_string(), "{body}");
    assert_serves(&server, &alice).await;
}
both_databases!(
    not_an_upgrade,
    a_request_that_is_no_upgrade_gets_a_coded_400
);
