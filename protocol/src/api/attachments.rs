//! Resumable attachment upload and ranged download of opaque ciphertext.

use serde::{Deserialize, Serialize};

/// Header naming where an upload resumes (`PUT /v1/attachments/{id}`).
pub const UPLOAD_OFFSET: &str = "upload-offset";

/// `POST /v1/attachments`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAttachment {
    /// Ciphertext size in bytes.
    pub size: u64,
}

/// A created attachment.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AttachmentCreated {
    /// Hex id.
    pub id: String,
    /// Expiry, ms since the epoch.
    pub expires_at: i64,
}

/// `GET /v1/attachments/{id}/upload`: upload progress.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct UploadStatus {
    /// Announced size.
    pub size: i64,
    /// Bytes stored.
    pub received: i64,
}
