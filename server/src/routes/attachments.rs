//! Attachment blobs over HTTP (`services::blobs`):
//!
//! - `POST /v1/attachments` `{ "size": N }` → `{ "id": hex }`
//! - `PUT /v1/attachments/{id}` with `Upload-Offset: K` → appends the body
//! - `GET /v1/attachments/{id}/upload` → `{ "size", "received" }`
//! - `GET /v1/attachments/{id}` (optionally `Range: bytes=a-b`) → the blob

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use starling_protocol::api::{AttachmentCreated, CreateAttachment, UPLOAD_OFFSET, UploadStatus};

use super::{ApiJson, ApiPath};
use crate::AppState;
use crate::auth::AuthedDevice;
use crate::error::{AppError, ErrorCode};
use crate::services::blobs::{self, BlobId, ByteRange};

pub(super) async fn create(
    State(state): State<AppState>,
    device: AuthedDevice,
    ApiJson(request): ApiJson<CreateAttachment>,
) -> Result<Json<AttachmentCreated>, AppError> {
    let blob = blobs::create(&state, &device, request.size).await?;
    Ok(Json(AttachmentCreated {
        id: blob.id.to_string(),
        expires_at: blob.expires_at,
    }))
}

pub(super) async fn upload_status(
    State(state): State<AppState>,
    device: AuthedDevice,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<UploadStatus>, AppError> {
    let id = BlobId::parse(&id)?;
    blobs::upload_status(&state, &device, &id).await.map(Json)
}

pub(super) async fn upload(
    State(state): State<AppState>,
    device: AuthedDevice,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<UploadStatus>, AppError> {
    let id = BlobId::parse(&id)?;
    let upload = blobs::open_upload(&state, &device, id).await?;
    let offset = upload_offset(&headers)?;
    upload
        .append(&state, offset, body.into_data_stream())
        .await
        .map(Json)
}

/// The `Upload-Offset` header; 0 when absent.
fn upload_offset(headers: &HeaderMap) -> Result<i64, AppError> {
    match headers.get(UPLOAD_OFFSET) {
        None => Ok(0),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                AppError::bad_request(ErrorCode::BadOffset, "Upload-Offset must be a number")
            }),
    }
}

pub(super) async fn download(
    State(state): State<AppState>,
    _device: AuthedDevice,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let id = BlobId::parse(&id)?;
    let blob = blobs::open_download(&state, &id).await?;
    let size = blob.size();
    let range = requested_range(&headers, size)?;
    let reader = blob.read(range).await?;
    let len = reader.limit();
    let stream = tokio_util::io::ReaderStream::new(reader);
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Some(ByteRange { first, last }) = range {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let value = format!("bytes {first}-{last}/{size}");
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::CONTENT_RANGE, value);
        }
    }
    Ok(response)
}

/// The `Range` header against a blob of `size` bytes; `None` when absent.
fn requested_range(headers: &HeaderMap, size: u64) -> Result<Option<ByteRange>, AppError> {
    let Some(value) = headers.get(header::RANGE) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| parse_range(v, size))
        .map(Some)
        .ok_or_else(|| {
            AppError::bad_request(ErrorCode::BadRange, "unsatisfiable or malformed Range")
        })
}

/// Parses `bytes=a-b` / `bytes=a-` / `bytes=-n` against a size.
fn parse_range(value: &str, size: u64) -> Option<ByteRange> {
    let spec = value.strip_prefix("bytes=")?;
    if spec.contains(',') || size == 0 {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let (first, last) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            (size.checked_sub(n.min(size))?, size - 1)
        }
        (a, "") => (a.parse().ok()?, size - 1),
        (a, b) => (a.parse().ok()?, b.parse::<u64>().ok()?.min(size - 1)),
    };
    (first <= last && first < size).then_some(ByteRange { first, last })
}

#[cfg(test)]
mod tests {
    use super::{ByteRange, parse_range};

    #[test]
    fn ranges() {
        let range = |first, last| Some(ByteRange { first, last });
        assert_eq!(parse_range("bytes=0-9", 100), range(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), range(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), range(90, 99));
        assert_eq!(parse_range("bytes=50-500", 100), range(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-2", 100), None);
        assert_eq!(parse_range("bytes=0-1,3-4", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
        assert_eq!(parse_range("bytes=x-", 100), None);
    }
}
