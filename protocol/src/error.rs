//! The error codes of the HTTP API and the WebSocket, and the JSON body an
//! error response carries. A code is stable: clients act on it, people read
//! the reason beside it.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api::StaleLists;

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $text:literal,)*) => {
        /// Every error code a server sends.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, for documentation and tests.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)*];

            /// The code as it travels.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }

            /// The code named by `text`, if it is one.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some(Self::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

error_codes! {
    /// A field is not valid base64.
    BadBase64 = "bad_base64",
    /// The body is not the JSON the operation takes.
    BadJson = "bad_json",
    /// A path segment is malformed.
    BadPath = "bad_path",
    /// A query string is malformed.
    BadQuery = "bad_query",
    /// A request to the WebSocket route is not a WebSocket upgrade.
    BadUpgrade = "bad_upgrade",
    /// A username breaks the username rule.
    BadUsername = "bad_username",
    /// An identity key does not decode.
    BadIdentityKey = "bad_identity_key",
    /// A prekey does not decode or its signature fails.
    BadPrekey = "bad_prekey",
    /// A device id is malformed.
    BadDevice = "bad_device",
    /// A link grant or endorsement does not decode or does not verify
    /// (`crypto/SPEC.md` §2.5).
    BadLinkSignature = "bad_link_signature",
    /// A multi-recipient send names too few or too many accounts.
    BadDestinations = "bad_destinations",
    /// A send names one account twice.
    DuplicateDestination = "duplicate_destination",
    /// A send names one device twice.
    DuplicateDevice = "duplicate_device",
    /// A send carries no envelope.
    NoEnvelopes = "no_envelopes",
    /// A send carries more envelopes than allowed.
    TooManyEnvelopes = "too_many_envelopes",
    /// A sealed envelope's length is not a padding bucket (SPEC §14.2).
    UnpaddedEnvelope = "unpadded_envelope",
    /// An unidentified send (no credential) held content that is not a
    /// sealed envelope.
    UnsealedUnidentified = "unsealed_unidentified",
    /// An unidentified send's access key was refused for a destination
    /// (wrong key, no key and the account takes none from strangers, or
    /// no such account: the answers are alike).
    BadAccessKey = "bad_access_key",
    /// An attachment id is malformed.
    BadAttachmentId = "bad_attachment_id",
    /// An attachment's size is not that of a padded stream (SPEC §9).
    UnpaddedAttachment = "unpadded_attachment",
    /// An upload offset is malformed.
    BadOffset = "bad_offset",
    /// An upload resumes at another offset than the stored one.
    WrongOffset = "wrong_offset",
    /// Another upload of the same attachment is running.
    ConcurrentUpload = "concurrent_upload",
    /// The attachment is not completely uploaded yet.
    Incomplete = "incomplete",
    /// The account's unexpired attachments would exceed its storage quota.
    AttachmentQuotaExceeded = "attachment_quota_exceeded",
    /// A `Range` header is malformed or unsatisfiable.
    BadRange = "bad_range",
    /// A call id is malformed.
    BadCallId = "bad_call_id",
    /// A push endpoint is refused (scheme, host or address).
    PushEndpointRefused = "push_endpoint_refused",
    /// Registration needs an invite code.
    InviteRequired = "invite_required",
    /// The account already has an access key (a `PUT /v1/accounts/access`
    /// with `if_absent`).
    AccessKeySet = "access_key_set",
    /// The username belongs to another account.
    UsernameTaken = "username_taken",
    /// The account has as many devices as allowed.
    TooManyDevices = "too_many_devices",
    /// The device stores as many prekeys as allowed.
    TooManyPrekeys = "too_many_prekeys",
    /// Every destination device of a send has a full queue: nothing was
    /// stored.
    QueueFull = "queue_full",
    /// A frame is not a protobuf `ClientFrame`.
    BadFrame = "bad_frame",
    /// An acknowledgement names more ids than allowed.
    TooManyIds = "too_many_ids",
    /// Credentials are missing or wrong.
    Unauthorized = "unauthorized",
    /// The credentials are those of a device removed from its account.
    DeviceRemoved = "device_removed",
    /// Authenticated, but not allowed.
    Forbidden = "forbidden",
    /// The named thing does not exist.
    NotFound = "not_found",
    /// The sender's device list of a destination is out of date.
    StaleDevices = "stale_devices",
    /// The body is larger than allowed.
    TooLarge = "too_large",
    /// A rate limit was reached; retry later.
    RateLimited = "rate_limited",
    /// The server is overloaded; nothing was done; retry later.
    ServerBusy = "server_busy",
    /// A failure on the server's side.
    Internal = "internal",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JSON body of an error response (HTTP), and of a WebSocket
/// `Response` with an error status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code (an [`ErrorCode`]; a client meets
    /// codes of newer servers too, so it is kept as text).
    pub code: Cow<'static, str>,
    /// Explanation for a person.
    pub reason: String,
    /// With `rate_limited` and `server_busy`: seconds before a retry (the
    /// `Retry-After` header says the same; WebSocket responses have only
    /// this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
    /// With `stale_devices`: devices to add.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_devices: Option<Vec<u32>>,
    /// With `stale_devices`: devices to drop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_devices: Option<Vec<u32>>,
    /// With `stale_devices` on a multi-recipient send: per account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<BTreeMap<String, StaleLists>>,
    /// With `bad_access_key`: the destinations whose access key was
    /// refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<Vec<String>>,
}

impl ErrorBody {
    /// The known code this body carries, if it is one.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::parse(&self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_distinct() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(*code));
            assert!(seen.insert(code.as_str()), "{code} twice");
        }
        assert_eq!(ErrorCode::parse("no_such_code"), None);
    }

    #[test]
    fn a_body_omits_what_it_lacks() {
        let body = ErrorBody {
            code: ErrorCode::RateLimited.as_str().into(),
            reason: "slow down".into(),
            retry_after_secs: Some(3),
            missing_devices: None,
            extra_devices: None,
            accounts: None,
            refused: None,
        };
        let json = serde_json::to_string(&body).unwrap();
        assert_eq!(
            json,
            r#"{"code":"rate_limited","reason":"slow down","retry_after_secs":3}"#
        );
        let back: ErrorBody = serde_json::from_str(&json).unwrap();
        assert_eq!(back.error_code(), Some(ErrorCode::RateLimited));
    }
}
