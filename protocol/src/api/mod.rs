//! The JSON bodies of the `/v1` HTTP API, one module per resource. Binary
//! fields travel as standard base64 strings; request bodies refuse unknown
//! fields. Usernames and ids travel as plain strings and numbers here: the
//! server parses them into [`crate::ids`] types where it checks them, so
//! that a bad one gets its own error code rather than `bad_json`.
//!
//! Types that carry a secret (a credential, a code, a token, a password)
//! print it as `<redacted>` in `Debug`.

mod accounts;
mod attachments;
mod calls;
mod certificates;
mod directory;
mod keys;
mod messages;
mod push;
mod transparency;

pub use accounts::{
    DeviceCertificateEntry, DeviceList, DeviceRemoved, LinkCode, LinkCodeQuery, LinkCodeRequest,
    LinkRequest, RegisterRequest, RegisterResponse, SetAccess,
};
pub use attachments::{AttachmentCreated, CreateAttachment, UPLOAD_OFFSET, UploadStatus};
pub use calls::{JoinToken, TokenKey, TurnCredentials};
pub use certificates::{SenderCertificateResponse, ServerKeyChainResponse, ServerKeyPin};
pub use directory::{DirectoryEntry, DirectoryQuery, MAX_DIRECTORY_RESULTS};
pub use keys::{BundleResponse, DeviceBundle, KeyUpload, MAX_PREKEYS_PER_UPLOAD, PrekeyCounts};
pub use messages::{
    AccountEnvelopes, DeviceEnvelope, FullQueue, MAX_DESTINATIONS, MultiRecipient,
    MultiRecipientRequest, MultiSendRequest, RecipientDevice, SendRequest, SendResponse,
    StaleLists, UNIDENTIFIED_ACCESS_KEY_HEADER,
};
pub use push::{PushRegistered, PushRegistration};
pub use transparency::{
    AuditQuery, AuditResponse, AuditStep, LogPin, TransparencyHistory, TransparencyProof,
    TransparencyRoot,
};

/// Writes `<redacted>` in place of a secret field.
struct Redacted;

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}
