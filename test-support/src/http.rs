//! JSON requests, to an axum [`Router`] in process (through
//! `tower::ServiceExt::oneshot`, no socket) or to a running server over
//! HTTP(S), with the same builder and the same [`Reply`].
//!
//! ```no_run
//! # async fn example(router: axum::Router) {
//! use starling_test_support::JsonRequest;
//!
//! let reply = JsonRequest::put("/v1/messages/bob")
//!     .auth(Some("Bearer alice:1:secret"))
//!     .json(&serde_json::json!({ "envelopes": [] }))
//!     .oneshot(router)
//!     .await;
//! assert_eq!(reply.status, 400, "{}", reply.json());
//! # }
//! ```

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tower::ServiceExt;

/// A request under construction: method, path (with query), headers and
/// an optional body.
#[derive(Clone, Debug)]
pub struct JsonRequest {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
}

impl JsonRequest {
    /// A request with `method` (`"GET"`, `"PUT"`, …) for `path`, which
    /// starts with `/`.
    pub fn new(method: &str, path: impl Into<String>) -> Self {
        Self {
            method: Method::from_bytes(method.as_bytes())
                .unwrap_or_else(|e| panic!("{method:?} is not an HTTP method: {e}")),
            path: path.into(),
            headers: HeaderMap::new(),
            body: None,
        }
    }

    /// A `GET` of `path`.
    pub fn get(path: impl Into<String>) -> Self {
        Self::new("GET", path)
    }

    /// A `POST` to `path`.
    pub fn post(path: impl Into<String>) -> Self {
        Self::new("POST", path)
    }

    /// A `PUT` to `path`.
    pub fn put(path: impl Into<String>) -> Self {
        Self::new("PUT", path)
    }

    /// A `DELETE` of `path`.
    pub fn delete(path: impl Into<String>) -> Self {
        Self::new("DELETE", path)
    }

    /// Sets the `Authorization` header, if `authorization` is given (the
    /// whole value, such as `Bearer alice:1:secret`).
    pub fn auth(self, authorization: Option<&str>) -> Self {
        match authorization {
            Some(value) => self.header(header::AUTHORIZATION.as_str(), value),
            None => self,
        }
    }

    /// Sets a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes())
            .unwrap_or_else(|e| panic!("{name:?} is not a header name: {e}"));
        let value = HeaderValue::from_str(value)
            .unwrap_or_else(|e| panic!("{value:?} is not a header value: {e}"));
        self.headers.insert(name, value);
        self
    }

    /// Sends `body` serialized as JSON (any `Serialize`: a
    /// `serde_json::Value` or a `starling-protocol` request type).
    pub fn json(self, body: &impl Serialize) -> Self {
        let bytes = serde_json::to_vec(body).expect("the body serializes to JSON");
        self.raw_json(bytes)
    }

    /// Sends `bytes` as they are, labelled as JSON (for malformed bodies).
    pub fn raw_json(mut self, bytes: Vec<u8>) -> Self {
        self.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        self.body = Some(bytes);
        self
    }

    /// Sends the request through `router` in process.
    pub async fn oneshot(self, router: Router) -> Reply {
        let mut request = Request::builder().method(self.method).uri(&self.path);
        if let Some(headers) = request.headers_mut() {
            headers.extend(self.headers);
        }
        let request = request
            .body(self.body.map_or_else(Body::empty, Body::from))
            .unwrap_or_else(|e| panic!("a request for {}: {e}", self.path));
        oneshot(router, request).await
    }

    /// Sends the request to the server at `base_url` (such as
    /// `http://127.0.0.1:8080`, no trailing slash) with `client`.
    pub async fn send(self, client: &reqwest::Client, base_url: &str) -> Reply {
        let url = format!("{base_url}{}", self.path);
        let mut request = client.request(self.method, &url).headers(self.headers);
        if let Some(body) = self.body {
            request = request.body(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("the body from {url}: {e}"));
        Reply {
            status,
            headers,
            bytes,
        }
    }
}

/// Sends any `request` (a streamed body, say) through `router` in process
/// and collects the whole reply.
pub async fn oneshot(router: Router, request: Request<Body>) -> Reply {
    let response = router.oneshot(request).await.unwrap_or_else(|e| match e {});
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_else(|e| panic!("the response body: {e}"));
    Reply {
        status,
        headers,
        bytes,
    }
}

/// A reply: status, headers and the whole body.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body, as received.
    pub bytes: Bytes,
}

impl Reply {
    /// The body as JSON; a body that is not JSON comes back as a JSON
    /// string of its text (so it still shows in assertion messages).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&self.bytes).into_owned()))
    }

    /// The body parsed as `T`; panics with the status and body if it does
    /// not parse.
    pub fn parse<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.bytes).unwrap_or_else(|e| {
            panic!(
                "a {} body that is not a {}: {e}: {}",
                self.status,
                std::any::type_name::<T>(),
                String::from_utf8_lossy(&self.bytes)
            )
        })
    }

    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The status and the body as JSON ([`Self::json`]), for tests that
    /// compare both at once.
    pub fn into_pair(self) -> (StatusCode, Value) {
        let json = self.json();
        (self.status, json)
    }
}

#[cfg(test)]
mod tests {
    use axum::routing::put;

    use super::*;

    fn echo() -> Router {
        Router::new().route(
            "/echo",
            put(|headers: HeaderMap, body: Bytes| async move {
                let auth = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                (StatusCode::CREATED, [("x-auth", auth)], body)
            }),
        )
    }

    #[tokio::test]
    async fn a_json_request_goes_through_the_router() {
        let reply = JsonRequest::put("/echo")
            .auth(Some("Bearer a:1:b"))
            .json(&serde_json::json!({ "n": 1 }))
            .oneshot(echo())
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
        assert_eq!(reply.header("x-auth"), Some("Bearer a:1:b"));
        assert_eq!(reply.json(), serde_json::json!({ "n": 1 }));
        let (status, text) = JsonRequest::put("/echo")
            .raw_json(b"{not json".to_vec())
            .oneshot(echo())
            .await
            .into_pair();
        assert_eq!(
            (status, text),
            (StatusCode::CREATED, Value::from("{not json"))
        );
    }

    #[tokio::test]
    async fn the_same_request_reaches_a_running_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let base = format!("http://{}", listener.local_addr().expect("its address"));
        tokio::spawn(async move { axum::serve(listener, echo()).await });
        let reply = JsonRequest::put("/echo")
            .json(&[1, 2, 3])
            .send(&reqwest::Client::new(), &base)
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
        assert_eq!(reply.parse::<Vec<u8>>(), [1, 2, 3]);
    }
}
