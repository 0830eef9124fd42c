//! The server's HTTP API (`/v1`, JSON), as typed calls. Only ciphertext,
//! public keys and routing data pass through here.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use starling_crypto::link::{self, LinkSecret};
use starling_crypto::{IdentityKey, PreKeyBundle};
use zeroize::Zeroizing;

use crate::error::{ClientError, Result, ServerUrlError};

use starling_protocol::api::{
    AttachmentCreated, BundleResponse, CreateAttachment, DeviceEnvelope, DeviceList, LinkCode,
    LinkCodeRequest, LinkRequest, MultiSendRequest, RegisterRequest, SendRequest, UPLOAD_OFFSET,
    UploadStatus,
};
pub use starling_protocol::api::{
    DirectoryEntry, JoinToken as CallToken, KeyUpload, PrekeyCounts,
    RegisterResponse as Registered, SenderCertificateResponse, ServerKeyChainResponse, StaleLists,
    TurnCredentials,
};
use starling_protocol::{ErrorBody, ErrorCode};

pub use starling_client_core::transparency::Proved;
pub use starling_client_core::transport::{AccountEnvelopes, SendOutcome};

pub(crate) mod body;
mod multi;
mod retry;
pub mod transparency;

/// A device's credentials for the server.
#[derive(Clone)]
pub struct Credentials {
    /// Username.
    pub username: String,
    /// Device id.
    pub device_id: u32,
    /// The device's secret.
    pub secret: Zeroizing<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    fn bearer(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "Bearer {}:{}:{}",
            self.username, self.device_id, *self.secret
        ))
    }
}

fn encode_envelopes(envelopes: &[(u32, Vec<u8>)]) -> Vec<DeviceEnvelope> {
    envelopes
        .iter()
        .map(|(device_id, content)| DeviceEnvelope {
            device_id: *device_id,
            content: B64.encode(content),
        })
        .collect()
}

/// The client for unidentified requests: a TLS configuration of its own
/// with session resumption off (a ticket would link its handshakes), and
/// no connection kept after a request, so that no connection carries two
/// unidentified sends the server could link to each other.
fn anonymous_client(fingerprint: Option<&str>) -> Result<reqwest::Client> {
    let mut tls = crate::tls::client_config(fingerprint)?;
    tls.resumption = rustls::client::Resumption::disabled();
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(std::time::Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()?)
}

/// The HTTP API of one server.
#[derive(Clone, Debug)]
pub struct Api {
    http: reqwest::Client,
    /// For unidentified sends only: its own connections and TLS state, so
    /// that no connection, session ticket or pooled stream carries both
    /// an authenticated request and an unidentified one.
    anonymous: reqwest::Client,
    base: url::Url,
    credentials: Option<Credentials>,
    tls: std::sync::Arc<rustls::ClientConfig>,
}

impl Api {
    /// An API client for `server` ("https://host:port"), TLS pinned to
    /// `fingerprint` when given.
    pub fn new(server: &str, fingerprint: Option<&str>) -> Result<Self> {
        let base = url::Url::parse(server).map_err(|source| ServerUrlError::Parse {
            url: server.to_owned(),
            source,
        })?;
        if !matches!(base.scheme(), "https" | "http") {
            return Err(ServerUrlError::Scheme.into());
        }
        let tls = crate::tls::client_config(fingerprint)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls.clone())
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()?;
        Ok(Self {
            http,
            anonymous: anonymous_client(fingerprint)?,
            base,
            credentials: None,
            tls: std::sync::Arc::new(tls),
        })
    }

    /// The same API, authenticated as a device.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// The server's base URL.
    pub fn base(&self) -> &url::Url {
        &self.base
    }

    /// The relay at `url` as the server gave it (absolute, or relative to
    /// the server's URL when the relay runs inside the server), with the
    /// client to reach it by: this API's own (its pinned TLS) for the
    /// server's origin, a client trusting the system's roots otherwise.
    pub fn relay(&self, url: &str) -> Result<(url::Url, reqwest::Client)> {
        let relay = self
            .base
            .join(url)
            .map_err(|source| ServerUrlError::Parse {
                url: url.to_owned(),
                source,
            })?;
        if relay.origin() == self.base.origin() {
            return Ok((relay, self.http.clone()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()?;
        Ok((relay, http))
    }

    /// The credentials in use.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    fn request(&self, method: Method, path: &str) -> Result<RequestBuilder> {
        let url = self.base.join(path).map_err(ServerUrlError::Join)?;
        let mut request = self.http.request(method, url);
        if let Some(credentials) = &self.credentials {
            request = request.header(
                reqwest::header::AUTHORIZATION,
                credentials.bearer().as_str(),
            );
        }
        Ok(request)
    }

    /// Sends and turns a non-success status into [`ClientError::Server`].
    async fn call(&self, request: RequestBuilder) -> Result<Response> {
        let response = request.send().await?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(server_error(response).await)
    }

    async fn json<T: serde::de::DeserializeOwned>(&self, request: RequestBuilder) -> Result<T> {
        let response = self.call(body::with_deadline(request)).await?;
        body::json(response, body::JSON_LIMIT).await
    }

    /// Registers an account and its first device.
    pub async fn register(
        &self,
        username: &str,
        invite: Option<&str>,
        identity_key: &[u8],
    ) -> Result<Registered> {
        let body = RegisterRequest {
            username: username.to_owned(),
            invite_code: invite.map(str::to_owned),
            identity_key: B64.encode(identity_key),
        };
        self.json(self.request(Method::POST, "v1/accounts")?.json(&body))
            .await
    }

    /// Links a new device with a one-time code from an existing one (the
    /// server's part of it), endorsing the identity with the code's link
    /// secret when it has one (`crypto/SPEC.md` §2.5).
    pub async fn link(
        &self,
        code: &str,
        identity: &IdentityKey,
        secret: Option<&LinkSecret>,
    ) -> Result<Registered> {
        let body = LinkRequest {
            link_code: code.to_owned(),
            identity_key: B64.encode(identity.to_bytes()),
            endorsement: secret.map(|secret| B64.encode(link::endorse(secret, identity))),
        };
        self.json(self.request(Method::POST, "v1/devices")?.json(&body))
            .await
    }

    /// A sender certificate for this device (the encoded certificate).
    pub async fn sender_certificate(&self) -> Result<Vec<u8>> {
        let response: SenderCertificateResponse = self
            .json(self.request(Method::GET, "v1/certificate/sender")?)
            .await?;
        B64.decode(&response.certificate)
            .map_err(|_| ClientError::Protocol("the sender certificate is not base64".into()))
    }

    /// The server's certificate key chain (the encoded chain).
    pub async fn server_key_chain(&self) -> Result<Vec<u8>> {
        let response: ServerKeyChainResponse = self
            .json(self.request(Method::GET, "v1/certificate/server-keys")?)
            .await?;
        B64.decode(&response.chain)
            .map_err(|_| ClientError::Protocol("the server key chain is not base64".into()))
    }

    /// Issues a one-time code that links a new device to this account (a
    /// manager device, which may link and remove devices, when `manager`).
    /// Only a manager device may issue one. `grant` is this device's grant
    /// of the code's link key (`crypto/SPEC.md` §2.5).
    pub async fn link_code(&self, manager: bool, grant: &[u8]) -> Result<String> {
        let path = if manager {
            "v1/devices/link-code?manager=true"
        } else {
            "v1/devices/link-code"
        };
        let body = LinkCodeRequest {
            grant: Some(B64.encode(grant)),
        };
        let code: LinkCode = self
            .json(self.request(Method::POST, path)?.json(&body))
            .await?;
        Ok(code.code)
    }

    /// A token to join one call on the media relay, and where the relay
    /// is. The token names neither the call nor this device.
    pub async fn call_token(&self) -> Result<CallToken> {
        self.json(self.request(Method::POST, "v1/calls/tokens")?)
            .await
    }

    /// Time-limited TURN credentials (coturn's REST scheme), or `None` when
    /// the server has no TURN service configured.
    pub async fn turn_credentials(&self) -> Result<Option<TurnCredentials>> {
        match self.json(self.request(Method::GET, "v1/calls/turn")?).await {
            Ok(credentials) => Ok(Some(credentials)),
            Err(ClientError::Server { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// An account's device ids.
    pub async fn devices(&self, username: &str) -> Result<Vec<u32>> {
        Ok(self.device_list(username).await?.devices)
    }

    /// An account's device ids, and whether it takes sealed envelopes
    /// from strangers.
    pub async fn device_list(&self, username: &str) -> Result<DeviceList> {
        let path = format!("v1/accounts/{}/devices", path_segment(username));
        match self
            .json::<DeviceList>(self.request(Method::GET, &path)?)
            .await
        {
            Ok(d) => Ok(d),
            Err(ClientError::Server { status: 404, .. }) => {
                Err(ClientError::UnknownUser(username.to_owned()))
            }
            Err(e) => Err(e),
        }
    }

    /// Removes one of this account's devices.
    pub async fn remove_device(&self, device_id: u32) -> Result<()> {
        self.call(self.request(Method::DELETE, &format!("v1/devices/{device_id}"))?)
            .await?;
        Ok(())
    }

    /// Uploads prekeys; returns the stock left on the server.
    pub async fn upload_keys(&self, upload: &KeyUpload) -> Result<PrekeyCounts> {
        self.json(self.request(Method::PUT, "v1/keys")?.json(upload))
            .await
    }

    /// The stock of one-time prekeys on the server.
    pub async fn key_count(&self) -> Result<PrekeyCounts> {
        self.json(self.request(Method::GET, "v1/keys/count")?).await
    }

    /// Fetches (and claims one-time prekeys of) the bundles of an account's
    /// devices: all of them when `device` is `None`. Each bundle's
    /// signatures are verified here.
    /// The transparency log's proof comes with them, for the client core
    /// to check before any key is used.
    pub async fn bundles(
        &self,
        username: &str,
        device: Option<u32>,
    ) -> Result<Proved<Vec<(u32, PreKeyBundle)>>> {
        let which = device.map_or_else(|| "*".to_owned(), |d| d.to_string());
        let path = format!("v1/keys/{}/{which}", path_segment(username));
        let bundles: BundleResponse = match self.json(self.request(Method::GET, &path)?).await {
            Ok(b) => b,
            Err(ClientError::Server { status: 404, .. }) => {
                return Err(ClientError::UnknownUser(username.to_owned()));
            }
            Err(e) => return Err(e),
        };
        // A certificate that does not decode is as none: the client
        // checks every one it uses, and an unvouched device is warned of.
        let certificates = bundles
            .devices
            .iter()
            .filter_map(|d| Some((d.device_id, B64.decode(d.certificate.as_ref()?).ok()?)))
            .collect();
        let value = bundles
            .devices
            .into_iter()
            .map(|d| {
                let bytes = B64.decode(&d.bundle).map_err(ClientError::protocol)?;
                let bundle = PreKeyBundle::from_bytes(&bytes)?;
                Ok((d.device_id, bundle))
            })
            .collect::<Result<_>>()?;
        Ok(Proved {
            value,
            proof: transparency::proof(bundles.transparency)?,
            certificates,
        })
    }

    /// Sends one envelope per device of an account.
    pub async fn send(
        &self,
        destination: &str,
        envelopes: &[(u32, Vec<u8>)],
    ) -> Result<SendOutcome> {
        let body = SendRequest {
            envelopes: encode_envelopes(envelopes),
            sealed: false,
        };
        let path = format!("v1/messages/{}", path_segment(destination));
        self.send_request(
            self.request(Method::PUT, &path)?.json(&body),
            Some(destination),
        )
        .await
    }

    /// Sends to many accounts in one request (groups): copies of one
    /// multi-recipient seal go as one upload of it.
    pub async fn send_many(&self, sends: &[AccountEnvelopes]) -> Result<SendOutcome> {
        let plain: Vec<_> = sends.iter().map(|s| (s, None)).collect();
        if let Some(body) = multi::compact(&plain) {
            let request = self.request(Method::PUT, "v1/multi-recipient")?;
            return self.send_request(request.json(&body), None).await;
        }
        let body = MultiSendRequest {
            sends: sends
                .iter()
                .map(|s| starling_protocol::api::AccountEnvelopes {
                    destination: s.destination.clone(),
                    envelopes: encode_envelopes(&s.envelopes),
                    access_key: None,
                })
                .collect(),
            sealed: false,
        };
        self.send_request(self.request(Method::PUT, "v1/messages")?.json(&body), None)
            .await
    }

    /// Sends sealed envelopes to many accounts without this device's
    /// credential, each destination with its access key.
    pub async fn send_unidentified(
        &self,
        sends: &[(AccountEnvelopes, [u8; 16])],
    ) -> Result<SendOutcome> {
        let keyed: Vec<_> = sends.iter().map(|(s, key)| (s, Some(key))).collect();
        if let Some(body) = multi::compact(&keyed) {
            let url = self
                .base
                .join("v1/multi-recipient")
                .map_err(ServerUrlError::Join)?;
            let request = self.anonymous.request(Method::PUT, url).json(&body);
            return self.send_request(request, None).await;
        }
        let body = MultiSendRequest {
            sends: sends
                .iter()
                .map(|(s, key)| starling_protocol::api::AccountEnvelopes {
                    destination: s.destination.clone(),
                    envelopes: encode_envelopes(&s.envelopes),
                    access_key: Some(B64.encode(key)),
                })
                .collect(),
            sealed: false,
        };
        let url = self
            .base
            .join("v1/messages")
            .map_err(ServerUrlError::Join)?;
        // No Authorization header, and not on a connection that carried
        // one: the server must not learn who sends.
        let request = self.anonymous.request(Method::PUT, url).json(&body);
        self.send_request(request, None).await
    }

    /// Sets the account's access key and whether strangers may send it
    /// sealed envelopes (`if_absent`: only when it has no key); false when
    /// it already had one.
    pub async fn set_access(
        &self,
        access_key: &[u8; 16],
        sealed_from_strangers: bool,
        if_absent: bool,
    ) -> Result<bool> {
        let body = starling_protocol::api::SetAccess {
            access_key: B64.encode(access_key),
            sealed_from_strangers,
            if_absent,
        };
        match self
            .call(self.request(Method::PUT, "v1/accounts/access")?.json(&body))
            .await
        {
            Ok(_) => Ok(true),
            Err(ClientError::Server { code, .. }) if code == ErrorCode::AccessKeySet.as_str() => {
                Ok(false)
            }
            Err(error) => Err(error),
        }
    }

    async fn send_request(
        &self,
        request: RequestBuilder,
        single: Option<&str>,
    ) -> Result<SendOutcome> {
        let response = retry::send_with_retries(request).await?;
        if response.status().is_success() {
            // The server may have left out devices whose queue is full
            // (they have not fetched their messages for a long time).
            if let Ok(stored) =
                body::json::<starling_protocol::api::SendResponse>(response, body::JSON_LIMIT).await
            {
                for full in &stored.queue_full {
                    tracing::warn!(
                        destination = %full.destination,
                        device = full.device_id,
                        "not delivered to this device: its queue on the server is full"
                    );
                }
            }
            return Ok(SendOutcome::Stored);
        }
        let status = response.status();
        if status == StatusCode::CONFLICT {
            let body: ErrorBody = body::json(response, body::ERROR_LIMIT).await?;
            if body.error_code() == Some(ErrorCode::StaleDevices) {
                let accounts = match (single, body.accounts) {
                    (_, Some(accounts)) => accounts,
                    (Some(destination), None) => BTreeMap::from([(
                        destination.to_owned(),
                        StaleLists {
                            missing: body.missing_devices.unwrap_or_default(),
                            extra: body.extra_devices.unwrap_or_default(),
                        },
                    )]),
                    (None, None) => BTreeMap::new(),
                };
                return Ok(SendOutcome::Stale(accounts));
            }
            return Err(ClientError::Server {
                status: status.as_u16(),
                code: body.code.into_owned(),
                reason: body.reason,
            });
        }
        if status == StatusCode::UNAUTHORIZED {
            let body: ErrorBody = body::json(response, body::ERROR_LIMIT).await?;
            if body.error_code() == Some(ErrorCode::BadAccessKey) {
                return Ok(SendOutcome::Unauthorized(body.refused.unwrap_or_default()));
            }
            return Err(ClientError::Server {
                status: status.as_u16(),
                code: body.code.into_owned(),
                reason: body.reason,
            });
        }
        if status == StatusCode::NOT_FOUND
            && let Some(destination) = single
        {
            return Err(ClientError::UnknownUser(destination.to_owned()));
        }
        Err(server_error(response).await)
    }

    /// Searches the organisation's directory.
    pub async fn directory(&self, query: &str, limit: u32) -> Result<Vec<DirectoryEntry>> {
        let request = self
            .request(Method::GET, "v1/directory")?
            .query(&[("q", query), ("limit", &limit.to_string())]);
        self.json(request).await
    }

    /// The whole published directory.
    pub async fn directory_all(&self) -> Result<Vec<DirectoryEntry>> {
        self.json(self.request(Method::GET, "v1/directory/all")?)
            .await
    }

    /// Creates an attachment of `size` ciphertext bytes; returns its id.
    pub async fn create_attachment(&self, size: u64) -> Result<String> {
        let created: AttachmentCreated = self
            .json(
                self.request(Method::POST, "v1/attachments")?
                    .json(&CreateAttachment { size }),
            )
            .await?;
        Ok(created.id)
    }

    /// Bytes of an attachment the server already has.
    pub async fn attachment_received(&self, id: &str) -> Result<u64> {
        let status: UploadStatus = self
            .json(self.request(
                Method::GET,
                &format!("v1/attachments/{}/upload", path_segment(id)),
            )?)
            .await?;
        u64::try_from(status.received).map_err(|_| {
            ClientError::Protocol("the server reported a negative upload offset".into())
        })
    }

    /// Appends `body` to an attachment at `offset`.
    pub async fn upload_attachment(
        &self,
        id: &str,
        offset: u64,
        length: u64,
        body: reqwest::Body,
    ) -> Result<()> {
        let request = self
            .request(Method::PUT, &format!("v1/attachments/{}", path_segment(id)))?
            .header(UPLOAD_OFFSET, offset.to_string())
            .header(reqwest::header::CONTENT_LENGTH, length.to_string())
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body);
        self.call(request).await?;
        Ok(())
    }

    /// Downloads an attachment from `offset` on, as a streaming response.
    pub async fn download_attachment(&self, id: &str, offset: u64) -> Result<Response> {
        let mut request =
            self.request(Method::GET, &format!("v1/attachments/{}", path_segment(id)))?;
        if offset > 0 {
            request = request.header(reqwest::header::RANGE, format!("bytes={offset}-"));
        }
        self.call(request).await
    }

    /// The WebSocket URL of this server.
    pub fn websocket_url(&self) -> Result<url::Url> {
        let mut url = self.base.join("v1/ws").map_err(ServerUrlError::Join)?;
        let scheme = if self.base.scheme() == "https" {
            "wss"
        } else {
            "ws"
        };
        url.set_scheme(scheme)
            .map_err(|()| ServerUrlError::WebSocket)?;
        Ok(url)
    }

    /// The TLS configuration (for the WebSocket).
    pub(crate) fn tls(&self) -> std::sync::Arc<rustls::ClientConfig> {
        self.tls.clone()
    }

    /// The `Authorization` header value, for the WebSocket upgrade.
    pub(crate) fn authorization(&self) -> Option<Zeroizing<String>> {
        self.credentials.as_ref().map(Credentials::bearer)
    }
}

/// Percent-encodes one path segment.
fn path_segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn server_error(response: Response) -> ClientError {
    let status = response.status().as_u16();
    match body::json::<ErrorBody>(response, body::ERROR_LIMIT).await {
        Ok(body) if status == 401 && body.code == ErrorCode::DeviceRemoved.as_str() => {
            ClientError::DeviceRemoved
        }
        Ok(body) => ClientError::Server {
            status,
            code: body.code.into_owned(),
            reason: body.reason,
        },
        Err(_) => ClientError::Server {
            status,
            code: "unknown".into(),
            reason: "no error body".into(),
        },
    }
}
