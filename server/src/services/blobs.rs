//! Attachment blobs: opaque ciphertext kept as one file each in the data
//! folder's `attachments/`, uploaded in a stream (resumable from the last
//! byte the server recorded), read back whole or as one byte range, and
//! deleted once expired. Memory use is constant whatever the size.
//!
//! An account's unexpired attachments, finished or not, may take at most
//! `[attachments] quota_bytes_per_account` bytes by their announced sizes,
//! and each account creates at most `creations_per_hour` of them (after a
//! burst of `creation_burst`).
//!
//! An upload records its progress every [`CHECKPOINT_BYTES`] (after making
//! the bytes durable), so even a crash of the server loses at most one
//! checkpoint's worth; bytes written past the last checkpoint are dropped
//! when the upload resumes.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use rand::RngCore;
use starling_protocol::api::UploadStatus;
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, Take};

use crate::AppState;
use crate::auth::AuthedDevice;
use crate::error::{AppError, ErrorCode};
use crate::store::{AttachmentRecord, NewAttachment, QuotaOutcome, now_millis};

/// Bytes of an upload between two recorded checkpoints.
pub const CHECKPOINT_BYTES: i64 = 8 << 20;

/// Bytes an upload must deliver in each window of `upload_stall_seconds`
/// (64 KiB in 30 s by default: about 17 kbit/s, below the slowest mobile
/// data link a client uploads over), or it is ended and left to resume.
pub const MIN_PROGRESS_BYTES: usize = 64 * 1024;

/// An attachment's id: 16 random bytes, written as 32 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobId([u8; 16]);

impl BlobId {
    /// Parses the hex form.
    pub fn parse(id: &str) -> Result<Self, AppError> {
        hex::decode(id)
            .ok()
            .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
            .map(Self)
            .ok_or_else(|| {
                AppError::bad_request(
                    ErrorCode::BadAttachmentId,
                    "attachment ids are 32 hex digits",
                )
            })
    }

    fn generate() -> Self {
        let mut id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        Self(id)
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// An attachment just created, empty.
#[derive(Debug)]
pub struct NewBlob {
    /// Its id.
    pub id: BlobId,
    /// When it is deleted (milliseconds since the epoch).
    pub expires_at: i64,
}

/// Where a blob's file lives.
fn blob_path(state: &AppState, id: &[u8]) -> PathBuf {
    state
        .config
        .data_dir
        .join("attachments")
        .join(hex::encode(id))
}

fn io_error(error: std::io::Error) -> AppError {
    AppError::Internal(format!("attachment file: {error}"))
}

async fn record(state: &AppState, id: &BlobId) -> Result<AttachmentRecord, AppError> {
    state
        .store
        .attachment(&id.0, now_millis())
        .await?
        .ok_or(AppError::NotFound("attachment"))
}

/// A number of bytes for a person: `1.5 GiB (1610612736 bytes)`.
fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = None;
    for name in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = Some(name);
    }
    match unit {
        Some(unit) => format!("{value:.1} {unit} ({bytes} bytes)"),
        None => format!("{bytes} bytes"),
    }
}

/// Creates an empty attachment of `size` bytes (of ciphertext) for
/// `owner` to upload, within the account's creation rate and quota.
pub async fn create(
    state: &AppState,
    owner: &AuthedDevice,
    size: u64,
) -> Result<NewBlob, AppError> {
    // The limit is on the file; its encryption pads it (to its Padmé
    // length) and adds a header and a tag per chunk, which the limit
    // allows for.
    let max = state.config.attachments.max_bytes;
    if size > starling_crypto::attachment::stored_len(max).unwrap_or(u64::MAX) {
        return Err(AppError::TooLarge(format!(
            "attachments are limited to {max} bytes"
        )));
    }
    // Only padded sizes are stored, so that a size says little about a file.
    if starling_crypto::attachment::padded_plaintext_len_of(size).is_none() {
        return Err(AppError::bad_request(
            ErrorCode::UnpaddedAttachment,
            format!("{size} bytes is not the size of a padded attachment stream (SPEC §9)"),
        ));
    }
    let size = i64::try_from(size).map_err(|_| AppError::TooLarge("size out of range".into()))?;
    if let Err(refused) = state.limits.attachment_creation(owner.account_id) {
        state.metrics.attachments_refused_rate.inc();
        return Err(refused);
    }
    let id = BlobId::generate();
    let path = blob_path(state, &id.0);
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(io_error)?;
    }
    File::create(&path).await.map_err(io_error)?;
    let now = now_millis();
    let config = &state.config.attachments;
    let ttl = i64::try_from(config.ttl_days.saturating_mul(86_400_000)).unwrap_or(i64::MAX);
    let expires_at = now.saturating_add(ttl);
    let quota = i64::try_from(config.quota_bytes_per_account).unwrap_or(i64::MAX);
    let new = NewAttachment {
        id: &id.0,
        account_id: owner.account_id,
        size,
        now,
        expires_at,
    };
    let outcome = state.store.create_attachment(new, quota).await;
    match outcome {
        Ok(QuotaOutcome::Created) => Ok(NewBlob { id, expires_at }),
        Ok(QuotaOutcome::Exceeded { used }) => {
            let _ = tokio::fs::remove_file(&path).await;
            state.metrics.attachments_refused_quota.inc();
            Err(AppError::Conflict {
                code: ErrorCode::AttachmentQuotaExceeded,
                reason: format!(
                    "this account's attachments take {} of its {} quota, and this one needs {}; \
                     space frees as older attachments expire, {} days after they were created",
                    human_bytes(used),
                    human_bytes(quota),
                    human_bytes(size),
                    config.ttl_days,
                ),
            })
        }
        Err(error) => {
            let _ = tokio::fs::remove_file(&path).await;
            Err(error.into())
        }
    }
}

/// How much of an attachment its uploader has sent.
pub async fn upload_status(
    state: &AppState,
    device: &AuthedDevice,
    id: &BlobId,
) -> Result<UploadStatus, AppError> {
    let record = record(state, id).await?;
    if record.account_id != device.account_id {
        return Err(AppError::Forbidden(
            "only the uploader may see upload progress",
        ));
    }
    Ok(UploadStatus {
        size: record.size,
        received: record.received,
    })
}

/// Opens an attachment for its uploader to write ([`Upload::append`]).
pub async fn open_upload(
    state: &AppState,
    device: &AuthedDevice,
    id: BlobId,
) -> Result<Upload, AppError> {
    let record = record(state, &id).await?;
    if record.account_id != device.account_id {
        return Err(AppError::Forbidden(
            "only the uploader may write an attachment",
        ));
    }
    Ok(Upload { id, record })
}

/// An attachment its uploader may write.
#[derive(Debug)]
pub struct Upload {
    id: BlobId,
    record: AttachmentRecord,
}

impl Upload {
    /// Appends `body` at `offset`, which must be where the upload stands.
    /// A body that ends early (the client went away) keeps what arrived,
    /// so the upload can resume; one that runs past the announced size is
    /// refused once what fits is recorded.
    pub async fn append<S, B, E>(
        self,
        state: &AppState,
        offset: i64,
        body: S,
    ) -> Result<UploadStatus, AppError>
    where
        S: Stream<Item = Result<B, E>>,
        B: AsRef<[u8]>,
    {
        if offset != self.record.received {
            return Err(AppError::Conflict {
                code: ErrorCode::WrongOffset,
                reason: format!("the upload continues at byte {}", self.record.received),
            });
        }
        let mut writer = BlobWriter::open(state, self.id, offset).await?;
        let outcome = self.receive(state, &mut writer, body).await?;
        writer.finish(state).await?;
        outcome?;
        Ok(UploadStatus {
            size: self.record.size,
            received: writer.written,
        })
    }

    /// Writes the body's chunks until it ends; the inner error refuses a
    /// body larger than announced, after the bytes that fit.
    async fn receive<S, B, E>(
        &self,
        state: &AppState,
        writer: &mut BlobWriter,
        body: S,
    ) -> Result<Result<(), AppError>, AppError>
    where
        S: Stream<Item = Result<B, E>>,
        B: AsRef<[u8]>,
    {
        let mut body = std::pin::pin!(body);
        let stall = Duration::from_secs(state.config.connections.upload_stall_seconds.max(1));
        // An error of the body is the client going away, and a body that
        // delivers less than MIN_PROGRESS_BYTES in a window of `stall`
        // (a trickle of a byte at a time, or nothing) is taken for one:
        // keep what arrived, so that the upload can resume.
        let mut window_ends = tokio::time::Instant::now() + stall;
        let mut progress = 0usize;
        loop {
            let next = match tokio::time::timeout_at(window_ends, body.next()).await {
                Ok(next) => next,
                Err(_) if progress < MIN_PROGRESS_BYTES => break,
                Err(_) => {
                    window_ends += stall;
                    progress = 0;
                    continue;
                }
            };
            let Some(Ok(chunk)) = next else { break };
            let chunk = chunk.as_ref();
            progress = progress.saturating_add(chunk.len());
            let now = tokio::time::Instant::now();
            if now >= window_ends {
                if progress < MIN_PROGRESS_BYTES {
                    break;
                }
                window_ends = now + stall;
                progress = 0;
            }
            let len = i64::try_from(chunk.len()).unwrap_or(i64::MAX);
            if writer.written.saturating_add(len) > self.record.size {
                return Ok(Err(AppError::TooLarge(format!(
                    "the attachment was announced as {} bytes",
                    self.record.size
                ))));
            }
            writer.write(state, chunk).await?;
        }
        Ok(Ok(()))
    }
}

/// A blob's file open for an upload, and how far it got.
struct BlobWriter {
    id: BlobId,
    file: File,
    /// Bytes in the file.
    written: i64,
    /// Bytes recorded as received.
    recorded: i64,
}

impl BlobWriter {
    /// Opens the file at `offset`; bytes past it were written but never
    /// recorded, and are dropped.
    async fn open(state: &AppState, id: BlobId, offset: i64) -> Result<Self, AppError> {
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .open(blob_path(state, &id.0))
            .await
            .map_err(io_error)?;
        let start = u64::try_from(offset).unwrap_or(0);
        file.set_len(start).await.map_err(io_error)?;
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(io_error)?;
        Ok(Self {
            id,
            file,
            written: offset,
            recorded: offset,
        })
    }

    /// Writes a chunk, recording progress every [`CHECKPOINT_BYTES`].
    async fn write(&mut self, state: &AppState, chunk: &[u8]) -> Result<(), AppError> {
        self.file.write_all(chunk).await.map_err(io_error)?;
        self.written += i64::try_from(chunk.len()).unwrap_or(i64::MAX);
        state
            .metrics
            .attachment_bytes_received
            .inc_by(chunk.len() as u64);
        if self.written - self.recorded >= CHECKPOINT_BYTES {
            self.checkpoint(state).await?;
        }
        Ok(())
    }

    /// Records whatever was written since the last checkpoint.
    async fn finish(&mut self, state: &AppState) -> Result<(), AppError> {
        if self.written != self.recorded {
            self.checkpoint(state).await?;
        }
        Ok(())
    }

    /// Makes the bytes written durable and records them as received.
    async fn checkpoint(&mut self, state: &AppState) -> Result<(), AppError> {
        self.file.flush().await.map_err(io_error)?;
        self.file.sync_data().await.map_err(io_error)?;
        if !state
            .store
            .set_attachment_received(&self.id.0, self.recorded, self.written)
            .await?
        {
            return Err(AppError::Conflict {
                code: ErrorCode::ConcurrentUpload,
                reason: "another upload of this attachment is in progress".into(),
            });
        }
        self.recorded = self.written;
        Ok(())
    }
}

/// Opens a fully uploaded attachment for reading ([`Blob::read`]).
pub async fn open_download(state: &AppState, id: &BlobId) -> Result<Blob, AppError> {
    let record = record(state, id).await?;
    if record.received != record.size {
        return Err(AppError::Conflict {
            code: ErrorCode::Incomplete,
            reason: "the upload has not finished".into(),
        });
    }
    Ok(Blob {
        path: blob_path(state, &id.0),
        size: u64::try_from(record.size).unwrap_or(0),
    })
}

/// A fully uploaded attachment.
#[derive(Debug)]
pub struct Blob {
    path: PathBuf,
    size: u64,
}

/// Bytes `first..=last` of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub first: u64,
    /// Last byte (included).
    pub last: u64,
}

impl Blob {
    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// A reader of the whole blob, or of `range` (which must lie within
    /// it); its `limit()` is the number of bytes it yields.
    pub async fn read(&self, range: Option<ByteRange>) -> Result<Take<File>, AppError> {
        let mut file = File::open(&self.path).await.map_err(io_error)?;
        let (start, len) = range.map_or((0, self.size), |r| (r.first, r.last - r.first + 1));
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(io_error)?;
        Ok(file.take(len))
    }
}

/// Deletes expired attachments and their files; returns how many.
pub async fn delete_expired(state: &AppState) -> Result<usize, sqlx::Error> {
    let ids = state.store.delete_expired_attachments(now_millis()).await?;
    for id in &ids {
        let _ = tokio::fs::remove_file(blob_path(state, id)).await;
    }
    Ok(ids.len())
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_for_a_person() {
        assert_eq!(human_bytes(1000), "1000 bytes");
        assert_eq!(human_bytes(6 << 20), "6.0 MiB (6291456 bytes)");
        assert_eq!(human_bytes(4 << 30), "4.0 GiB (4294967296 bytes)");
    }
}
