//! Sending again what the server refused as busy (503) or rate-limited
//! (429), after the `Retry-After` it gave. Such a refusal stored nothing,
//! so sending again cannot duplicate a message. Only the send path uses
//! this; other calls report the refusal.

use std::time::Duration;

use reqwest::{RequestBuilder, Response, StatusCode};

use crate::error::Result;

/// Attempts of a send the server refused as busy or rate-limited.
const SEND_ATTEMPTS: usize = 4;
/// Longest `Retry-After` a send waits out; a longer one is reported.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);

/// Sends `request`, and sends it again after the server's `Retry-After`
/// when the server refused it as busy (503) or rate-limited (429). Such a
/// refusal stored nothing, so sending again cannot duplicate a message.
pub(super) async fn send_with_retries(request: RequestBuilder) -> Result<Response> {
    let mut attempt = 1;
    loop {
        // Every body sent here is JSON, which clones; anything else is
        // sent once.
        let Some(this) = request.try_clone() else {
            return Ok(request.send().await?);
        };
        let response = this.send().await?;
        match retry_after(&response) {
            Some(wait) if wait <= MAX_RETRY_WAIT && attempt < SEND_ATTEMPTS => {
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            _ => return Ok(response),
        }
    }
}

/// The wait a 503 or 429 asks for, from its `Retry-After` (in seconds).
fn retry_after(response: &Response) -> Option<Duration> {
    let status = response.status();
    if status != StatusCode::SERVICE_UNAVAILABLE && status != StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    let seconds = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A server answering one request per connection with the next of
    /// `answers` (a status line and headers); yields how many it answered.
    async fn serve(answers: Vec<&'static str>) -> (String, tokio::task::JoinHandle<usize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/messages", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let mut answered = 0;
            for answer in answers {
                let (mut socket, _) = listener.accept().await.unwrap();
                read_request(&mut socket).await;
                let response =
                    format!("{answer}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                socket.write_all(response.as_bytes()).await.unwrap();
                answered += 1;
            }
            answered
        });
        (url, task)
    }

    /// Reads one request: headers, then `content-length` bytes of body.
    async fn read_request(socket: &mut tokio::net::TcpStream) {
        let mut request = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let read = socket.read(&mut buffer).await.unwrap();
            assert!(read > 0, "the client closed mid-request");
            request.extend_from_slice(&buffer[..read]);
            let text = String::from_utf8_lossy(&request);
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_owned())
                    })
                    .map_or(0, |v| v.parse().unwrap());
                if request.len() >= end + 4 + length {
                    return;
                }
            }
        }
    }

    async fn send(url: &str) -> StatusCode {
        let request = reqwest::Client::new()
            .put(url)
            .json(&serde_json::json!({ "sends": [] }));
        send_with_retries(request).await.unwrap().status()
    }

    #[tokio::test]
    async fn busy_and_rate_limited_sends_are_sent_again() {
        let (url, server) = serve(vec![
            "HTTP/1.1 503 Service Unavailable\r\nretry-after: 0",
            "HTTP/1.1 429 Too Many Requests\r\nretry-after: 0",
            "HTTP/1.1 200 OK",
        ])
        .await;
        assert_eq!(send(&url).await, StatusCode::OK);
        assert_eq!(server.await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_send_busy_every_time_is_reported_after_the_last_attempt() {
        let busy = "HTTP/1.1 503 Service Unavailable\r\nretry-after: 0";
        let (url, server) = serve(vec![busy; SEND_ATTEMPTS]).await;
        assert_eq!(send(&url).await, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(server.await.unwrap(), SEND_ATTEMPTS);
    }

    #[tokio::test]
    async fn a_long_wait_other_errors_and_no_retry_after_are_reported_at_once() {
        for answer in [
            "HTTP/1.1 503 Service Unavailable\r\nretry-after: 60",
            "HTTP/1.1 503 Service Unavailable",
            "HTTP/1.1 500 Internal Server Error\r\nretry-after: 0",
            "HTTP/1.1 409 Conflict",
        ] {
            let (url, server) = serve(vec![answer]).await;
            let status = send(&url).await;
            assert_ne!(status, StatusCode::OK, "{answer}");
            assert_eq!(server.await.unwrap(), 1, "{answer}");
        }
    }
}
