//! Attachment blobs: opaque ciphertext, uploaded in a stream (resumable
//! from the last byte the server stored), downloaded in a stream with an
//! optional byte range. Memory use is constant whatever the size.
//!
//! - `POST /v1/attachments` `{ "size": N }` → `{ "id": hex }`
//! - `PUT /v1/attachments/{id}` with `Upload-Offset: K` → appends the body
//! - `GET /v1/attachments/{id}/upload` → `{ "size", "received" }`
//! - `GET /v1/attachments/{id}` (optionally `Range: bytes=a-b`) → the blob

use std::path::PathBuf;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use rand::RngCore;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::{ApiJson, ApiPath};
use crate::AppState;
use crate::auth::AuthedDevice;
use crate::error::{AppError, ErrorCode};
use crate::store::{AttachmentRecord, now_millis};
pub use starling_protocol::api::{
    AttachmentCreated, CreateAttachment, UPLOAD_OFFSET, UploadStatus,
};

fn blob_path(state: &AppState, id: &[u8]) -> PathBuf {
    state
        .config
        .data_dir
        .join("attachments")
        .join(hex::encode(id))
}

fn parse_id(id: &str) -> Result<Vec<u8>, AppError> {
    hex::decode(id)
        .ok()
        .filter(|bytes| bytes.len() == 16)
        .ok_or_else(|| {
            AppError::bad_request(
                ErrorCode::BadAttachmentId,
                "attachment ids are 32 hex digits",
            )
        })
}

fn io_error(error: std::io::Error) -> AppError {
    AppError::Internal(format!("attachment file: {error}"))
}

async fn record(state: &AppState, id: &[u8]) -> Result<AttachmentRecord, AppError> {
    state
        .store
        .attachment(id, now_millis())
        .await?
        .ok_or(AppError::NotFound("attachment"))
}

pub(crate) async fn create(
    State(state): State<AppState>,
    device: AuthedDevice,
    ApiJson(request): ApiJson<CreateAttachment>,
) -> Result<Json<AttachmentCreated>, AppError> {
    // The limit is on the file; its encryption adds a header and a tag per
    // chunk, which the limit allows for.
    let max = state.config.attachments.max_bytes;
    if request.size > starling_crypto::attachment::ciphertext_len(max) {
        return Err(AppError::TooLarge(format!(
            "attachments are limited to {max} bytes"
        )));
    }
    let size =
        i64::try_from(request.size).map_err(|_| AppError::TooLarge("size out of range".into()))?;
    let mut id = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id);
    let path = blob_path(&state, &id);
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(io_error)?;
    }
    tokio::fs::File::create(&path).await.map_err(io_error)?;
    let now = now_millis();
    let ttl = i64::try_from(state.config.attachments.ttl_days.saturating_mul(86_400_000))
        .unwrap_or(i64::MAX);
    let expires_at = now.saturating_add(ttl);
    state
        .store
        .create_attachment(&id, device.account_id, size, now, expires_at)
        .await?;
    Ok(Json(AttachmentCreated {
        id: hex::encode(id),
        expires_at,
    }))
}

pub(crate) async fn upload_status(
    State(state): State<AppState>,
    device: AuthedDevice,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<UploadStatus>, AppError> {
    let id = parse_id(&id)?;
    let record = record(&state, &id).await?;
    if record.account_id != device.account_id {
        return Err(AppError::Forbidden(
            "only the uploader may see upload progress",
        ));
    }
    Ok(Json(UploadStatus {
        size: record.size,
        received: record.received,
    }))
}

/// Bytes of an upload between two recorded checkpoints.
const CHECKPOINT_BYTES: i64 = 8 << 20;

/// Makes the bytes up to `written` durable and records them as received.
async fn checkpoint(
    state: &AppState,
    id: &[u8],
    file: &mut tokio::fs::File,
    recorded: i64,
    written: i64,
) -> Result<(), AppError> {
    file.flush().await.map_err(io_error)?;
    file.sync_data().await.map_err(io_error)?;
    if !state
        .store
        .set_attachment_received(id, recorded, written)
        .await?
    {
        return Err(AppError::Conflict {
            code: ErrorCode::ConcurrentUpload,
            reason: "another upload of this attachment is in progress".into(),
        });
    }
    Ok(())
}

pub(crate) async fn upload(
    State(state): State<AppState>,
    device: AuthedDevice,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<UploadStatus>, AppError> {
    let id = parse_id(&id)?;
    let record = record(&state, &id).await?;
    if record.account_id != device.account_id {
        return Err(AppError::Forbidden(
            "only the uploader may write an attachment",
        ));
    }
    let offset: i64 = match headers.get(UPLOAD_OFFSET) {
        None => 0,
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                AppError::bad_request(ErrorCode::BadOffset, "Upload-Offset must be a number")
            })?,
    };
    if offset != record.received {
        return Err(AppError::Conflict {
            code: ErrorCode::WrongOffset,
            reason: format!("the upload continues at byte {}", record.received),
        });
    }
    let path = blob_path(&state, &id);
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .await
        .map_err(io_error)?;
    // Bytes past `received` were written but never recorded: drop them.
    let start = u64::try_from(offset).unwrap_or(0);
    file.set_len(start).await.map_err(io_error)?;
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(io_error)?;
    let mut written = offset;
    let mut recorded = offset;
    let mut stream = body.into_data_stream();
    let mut outcome = Ok(());
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            // The client went away: keep what arrived, so it can resume.
            break;
        };
        let len = i64::try_from(chunk.len()).unwrap_or(i64::MAX);
        if written.saturating_add(len) > record.size {
            outcome = Err(AppError::TooLarge(format!(
                "the attachment was announced as {} bytes",
                record.size
            )));
            break;
        }
        file.write_all(&chunk).await.map_err(io_error)?;
        written += len;
        state
            .metrics
            .attachment_bytes_received
            .inc_by(chunk.len() as u64);
        // Record progress as it goes, so even a crash of the server loses
        // at most one checkpoint's worth of the upload.
        if written - recorded >= CHECKPOINT_BYTES {
            checkpoint(&state, &id, &mut file, recorded, written).await?;
            recorded = written;
        }
    }
    if written != recorded {
        checkpoint(&state, &id, &mut file, recorded, written).await?;
    }
    outcome?;
    Ok(Json(UploadStatus {
        size: record.size,
        received: written,
    }))
}

/// Parses `bytes=a-b` / `bytes=a-` / `bytes=-n` against a size.
fn parse_range(value: &str, size: u64) -> Option<(u64, u64)> {
    let spec = value.strip_prefix("bytes=")?;
    if spec.contains(',') || size == 0 {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            (size.checked_sub(n.min(size))?, size - 1)
        }
        (a, "") => (a.parse().ok()?, size - 1),
        (a, b) => (a.parse().ok()?, b.parse::<u64>().ok()?.min(size - 1)),
    };
    (start <= end && start < size).then_some((start, end))
}

pub(crate) async fn download(
    State(state): State<AppState>,
    _device: AuthedDevice,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    let record = record(&state, &id).await?;
    if record.received != record.size {
        return Err(AppError::Conflict {
            code: ErrorCode::Incomplete,
            reason: "the upload has not finished".into(),
        });
    }
    let size = u64::try_from(record.size).unwrap_or(0);
    let range = match headers.get(header::RANGE) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| parse_range(v, size))
                .ok_or_else(|| {
                    AppError::bad_request(ErrorCode::BadRange, "unsatisfiable or malformed Range")
                })?,
        ),
    };
    let mut file = tokio::fs::File::open(blob_path(&state, &id))
        .await
        .map_err(io_error)?;
    let (start, len) = range.map_or((0, size), |(a, b)| (a, b - a + 1));
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(io_error)?;
    let stream = tokio_util::io::ReaderStream::new(tokio::io::AsyncReadExt::take(file, len));
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(
        header::ACCEPT_RANGES,
        header::HeaderValue::from_static("bytes"),
    );
    headers.insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    if let Some((a, b)) = range {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let value = format!("bytes {a}-{b}/{size}");
        if let Ok(value) = header::HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::CONTENT_RANGE, value);
        }
    }
    Ok(response)
}

/// Deletes the files of expired attachments.
pub async fn delete_expired(state: &AppState) -> Result<usize, sqlx::Error> {
    let ids = state.store.delete_expired_attachments(now_millis()).await?;
    for id in &ids {
        let _ = tokio::fs::remove_file(blob_path(state, id)).await;
    }
    Ok(ids.len())
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=50-500", 100), Some((50, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-2", 100), None);
        assert_eq!(parse_range("bytes=0-1,3-4", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
        assert_eq!(parse_range("bytes=x-", 100), None);
    }
}
