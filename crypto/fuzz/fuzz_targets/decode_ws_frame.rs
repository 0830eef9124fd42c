//! The server's WebSocket frame decoder: whatever bytes a client sends in
//! a binary message are decoded as a `ClientFrame`, exactly as `/v1/ws`
//! and `/v1/ws/unidentified` decode them. Decoding must never panic, and
//! a decoded frame must re-encode to bytes that decode to the same frame
//! (and re-encode identically). A send's destination then goes through the username rule,
//! as the server checks it before anything is queued.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use starling_protocol::Username;
use starling_protocol::frames::{ClientFrame, client_frame};

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = ClientFrame::decode(data) else {
        return;
    };
    let encoded = frame.encode_to_vec();
    let again = ClientFrame::decode(encoded.as_slice()).expect("re-encoded frame decodes");
    assert_eq!(again, frame);
    assert_eq!(again.encode_to_vec(), encoded, "encoding is not canonical");
    match &frame.body {
        Some(client_frame::Body::Send(send)) => {
            let _ = Username::parse(&send.destination);
            let _ = send
                .envelopes
                .iter()
                .map(|e| e.content.len())
                .sum::<usize>();
        }
        Some(client_frame::Body::UnidentifiedSend(send)) => {
            let _ = Username::parse(&send.destination);
            // The key is taken only at its exact length.
            let _ = <[u8; 16]>::try_from(send.access_key.as_slice());
        }
        Some(client_frame::Body::Ack(ack)) => {
            let _ = ack.envelope_ids.iter().filter(|id| id.len() == 16).count();
        }
        Some(client_frame::Body::Ping(_)) | None => {}
    }
});
