//! The device's WebSocket to the server: protobuf frames in and out.
//! Envelopes arrive here and are acknowledged only after the caller has
//! stored what they carried.

use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use starling_protocol::{ErrorBody, ErrorCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::api::Api;
use crate::error::{ClientError, Result, ServerUrlError};
use crate::frames::{self, client_frame, server_frame};

/// The server's refusal of the WebSocket upgrade, with its reason when
/// its body is the API's error body: a removed device is told so, as on
/// any other request.
fn refused(response: &Response<Option<Vec<u8>>>) -> ClientError {
    let status = response.status().as_u16();
    let body = response
        .body()
        .as_deref()
        .and_then(|body| serde_json::from_slice::<ErrorBody>(body).ok());
    match body {
        Some(body) if status == 401 && body.error_code() == Some(ErrorCode::DeviceRemoved) => {
            ClientError::DeviceRemoved
        }
        Some(body) => ClientError::Server {
            status,
            code: body.code.into_owned(),
            reason: body.reason,
        },
        None => ClientError::Server {
            status,
            code: "websocket_refused".into(),
            reason: "the server refused the connection (check the credentials)".into(),
        },
    }
}

/// [`refused`]; a 401 whose body did not come with its headers (the
/// handshake reads no further) is asked about over HTTP, so that a
/// removed device is told so whatever the timing.
async fn why_refused(api: &Api, response: &Response<Option<Vec<u8>>>) -> ClientError {
    let error = refused(response);
    if matches!(&error, ClientError::Server { status: 401, code, .. } if code == "websocket_refused")
        && let Err(ClientError::DeviceRemoved) = api.key_count().await
    {
        return ClientError::DeviceRemoved;
    }
    error
}

/// Any byte stream the socket can run over (TCP, or TLS over TCP).
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// What the server pushed.
#[derive(Debug)]
pub enum ServerEvent {
    /// An envelope for this device.
    Envelope(frames::Envelope),
    /// Everything queued at connect time has been sent.
    QueueDrained,
    /// The server's stock of our one-time prekeys is low.
    PrekeysLow,
    /// An error frame.
    Error(String),
}

/// An open WebSocket.
pub struct Connection {
    socket: WebSocketStream<Box<dyn Io>>,
    next_request: u64,
}

/// Bytes read from the socket at a time.
const READ_BUFFER: usize = 16 * 1024;

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").finish_non_exhaustive()
    }
}

impl Connection {
    /// Opens the authenticated WebSocket of `api`'s device.
    pub async fn open(api: &Api) -> Result<Self> {
        let url = api.websocket_url()?;
        let host = url.host_str().ok_or(ServerUrlError::NoHost)?.to_owned();
        let port = url.port_or_known_default().unwrap_or(443);
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| ClientError::Network(e.to_string()))?;
        tcp.set_nodelay(true)?;
        let stream: Box<dyn Io> = if url.scheme() == "wss" {
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(ServerUrlError::from)?;
            let tls = tokio_rustls::TlsConnector::from(api.tls())
                .connect(name, tcp)
                .await
                .map_err(|e| {
                    if crate::tls::is_pin_mismatch(&e) {
                        ClientError::CertificateMismatch
                    } else {
                        ClientError::Network(e.to_string())
                    }
                })?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| ServerUrlError::Request(Box::new(e)))?;
        if let Some(auth) = api.authorization() {
            let mut value = HeaderValue::from_str(&auth)?;
            value.set_sensitive(true);
            request.headers_mut().insert("authorization", value);
        }
        // tungstenite zeroes its whole read buffer before every read; its
        // 128 KiB default costs more than the frames it reads.
        let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
        let opened =
            tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await;
        let socket = match opened {
            Ok((socket, _)) => socket,
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                return Err(why_refused(api, &response).await);
            }
            Err(other) => return Err(ClientError::Network(other.to_string())),
        };
        Ok(Self {
            socket,
            next_request: 1,
        })
    }

    /// The next server event; `None` when the server closed the socket.
    pub async fn next_event(&mut self) -> Result<Option<ServerEvent>> {
        loop {
            let Some(message) = self.socket.next().await else {
                return Ok(None);
            };
            let message = message.map_err(|e| ClientError::Network(e.to_string()))?;
            let bytes = match message {
                Message::Binary(bytes) => bytes,
                Message::Close(_) => return Ok(None),
                _ => continue,
            };
            let frame = frames::ServerFrame::decode(bytes.as_ref())?;
            let event = match frame.body {
                Some(server_frame::Body::Envelope(envelope)) => ServerEvent::Envelope(envelope),
                Some(server_frame::Body::QueueDrained(_)) => ServerEvent::QueueDrained,
                Some(server_frame::Body::PrekeysLow(_)) => ServerEvent::PrekeysLow,
                Some(server_frame::Body::Error(e)) => {
                    ServerEvent::Error(format!("{}: {}", e.code, e.reason))
                }
                Some(server_frame::Body::Response(_)) | None => continue,
            };
            return Ok(Some(event));
        }
    }

    /// Acknowledges envelopes: the server deletes them.
    pub async fn acknowledge(&mut self, envelope_ids: Vec<Vec<u8>>) -> Result<()> {
        if envelope_ids.is_empty() {
            return Ok(());
        }
        self.send(client_frame::Body::Ack(frames::Acknowledge {
            envelope_ids,
        }))
        .await
    }

    /// Sends a keep-alive ping frame.
    pub async fn ping(&mut self) -> Result<()> {
        self.send(client_frame::Body::Ping(frames::Ping {})).await
    }

    async fn send(&mut self, body: client_frame::Body) -> Result<()> {
        let frame = frames::ClientFrame {
            request_id: self.next_request,
            body: Some(body),
        };
        self.next_request = self.next_request.wrapping_add(1);
        self.socket
            .send(Message::Binary(frame.encode_to_vec().into()))
            .await
            .map_err(|e| ClientError::Network(e.to_string()))
    }

    /// Closes the socket politely.
    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: Option<&[u8]>) -> Response<Option<Vec<u8>>> {
        Response::builder()
            .status(status)
            .body(body.map(<[u8]>::to_vec))
            .unwrap()
    }

    #[test]
    fn a_refusal_is_read_from_the_apis_error_body() {
        let removed = br#"{"code":"device_removed","reason":"this device was removed"}"#;
        assert!(matches!(
            refused(&answer(401, Some(removed))),
            ClientError::DeviceRemoved
        ));
        let busy = br#"{"code":"server_busy","reason":"busy"}"#;
        assert!(matches!(
            refused(&answer(503, Some(busy))),
            ClientError::Server { status: 503, ref code, .. } if code == "server_busy"
        ));
        for body in [None, Some(&b"<html>"[..])] {
            assert!(matches!(
                refused(&answer(401, body)),
                ClientError::Server { status: 401, ref code, .. } if code == "websocket_refused"
            ));
        }
    }
}
