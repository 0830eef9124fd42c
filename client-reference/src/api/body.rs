//! Reading an answer's body within a bound. The server is not trusted: a
//! broken or hostile one must not make the client hold an unbounded body
//! in memory, nor keep a JSON call waiting forever. Files are not read
//! here; they stream in chunks (`attachments`).

use std::time::Duration;

use reqwest::{RequestBuilder, Response};
use serde::de::DeserializeOwned;

use crate::error::{ClientError, Result};

/// The largest JSON answer read. The largest the server sends are a
/// whole-directory copy and a key-history proof, both far below this for
/// an organisation of tens of thousands.
pub(super) const JSON_LIMIT: usize = 16 << 20;
/// The largest error body read; longer ones are reported without it.
pub(super) const ERROR_LIMIT: usize = 64 << 10;
/// The longest a JSON call may take, from connecting to its last byte,
/// and the longest any answer's body read here may take.
pub(super) const JSON_TIMEOUT: Duration = Duration::from_secs(120);

/// `request` with the JSON calls' deadline.
pub(super) fn with_deadline(request: RequestBuilder) -> RequestBuilder {
    request.timeout(JSON_TIMEOUT)
}

/// The body of `response`, decoded as JSON, if it is at most `limit`
/// bytes long.
pub(super) async fn json<T: DeserializeOwned>(response: Response, limit: usize) -> Result<T> {
    let body = read(response, limit).await?;
    serde_json::from_slice(&body)
        .map_err(|e| ClientError::Protocol(format!("the server's answer is malformed: {e}")))
}

/// The body of `response`, if it is at most `limit` bytes long and
/// arrives within [`JSON_TIMEOUT`].
pub(crate) async fn read(response: Response, limit: usize) -> Result<Vec<u8>> {
    tokio::time::timeout(JSON_TIMEOUT, read_all(response, limit))
        .await
        .map_err(|_| {
            ClientError::Protocol("the server's answer did not arrive in time".to_owned())
        })?
}

async fn read_all(mut response: Response, limit: usize) -> Result<Vec<u8>> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large(limit));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if chunk.len() > limit - body.len() {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn too_large(limit: usize) -> ClientError {
    ClientError::Protocol(format!(
        "the server's answer is longer than {} KiB; it was not read",
        limit >> 10
    ))
}

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::http;

    use super::*;

    /// An answer whose body arrives in `chunks`, with no length declared.
    fn streamed(chunks: Vec<&'static [u8]>) -> Response {
        let stream = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|chunk| Ok::<_, std::io::Error>(chunk.to_vec())),
        );
        Response::from(http::Response::new(reqwest::Body::wrap_stream(stream)))
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_whole() {
        let body = read(streamed(vec![b"{\"a\":", b"1}"]), 7).await.unwrap();
        assert_eq!(body, b"{\"a\":1}");
        let value: serde_json::Value = json(streamed(vec![b"{\"a\":1}"]), 7).await.unwrap();
        assert_eq!(value["a"], 1);
    }

    #[tokio::test]
    async fn a_body_past_the_limit_is_refused_as_it_streams() {
        let error = read(streamed(vec![b"1234", b"5678"]), 7).await.unwrap_err();
        assert!(error.to_string().contains("longer than"), "{error}");
    }

    #[tokio::test]
    async fn a_declared_length_past_the_limit_is_refused_unread() {
        let response = Response::from(http::Response::new(vec![b'x'; 2048]));
        assert_eq!(response.content_length(), Some(2048));
        let error = read(response, 1024).await.unwrap_err();
        assert!(error.to_string().contains("longer than 1 KiB"), "{error}");
    }

    #[tokio::test]
    async fn malformed_json_is_a_protocol_error() {
        let error = json::<serde_json::Value>(streamed(vec![b"{\"a\""]), 64)
            .await
            .unwrap_err();
        assert!(matches!(error, ClientError::Protocol(_)), "{error}");
    }
}
