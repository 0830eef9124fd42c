//! Sends: one envelope per device of each destination account.

use serde::{Deserialize, Serialize};

/// Most accounts one multi-recipient send may address.
pub const MAX_DESTINATIONS: usize = 1_000;

/// One envelope of a send.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceEnvelope {
    /// Destination device.
    pub device_id: u32,
    /// Opaque ciphertext, base64.
    pub content: String,
}

/// `PUT /v1/messages/{username}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// One per device of the destination (excluding the sending device
    /// when writing to one's own account).
    pub envelopes: Vec<DeviceEnvelope>,
    /// Hide the sender from the stored envelope.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sealed: bool,
}

/// One destination of a multi-recipient send.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccountEnvelopes {
    /// Destination username.
    pub destination: String,
    /// One per device of the destination.
    pub envelopes: Vec<DeviceEnvelope>,
    /// On an unidentified send (no `Authorization`): the destination's
    /// access key (base64 of 16 bytes); absent for an account that takes
    /// sealed envelopes from strangers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key: Option<String>,
}

/// The header an unidentified `PUT /v1/messages/{username}` carries the
/// destination's access key in (base64 of 16 bytes).
pub const UNIDENTIFIED_ACCESS_KEY_HEADER: &str = "unidentified-access-key";

/// `PUT /v1/messages`: one request, envelopes for many accounts (groups).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MultiSendRequest {
    /// The destinations.
    pub sends: Vec<AccountEnvelopes>,
    /// Hide the sender from the stored envelopes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sealed: bool,
}

/// `PUT /v1/multi-recipient`: one multi-recipient sealed envelope
/// (`crypto/SPEC.md` §15.6) uploaded once: the shared ephemeral key and
/// ciphertext, and per device only its `C` and `AT`. The server stores
/// `0x32 ‖ C ‖ AT ‖ E ‖ ct` for each device, as if each had been sent on
/// its own. With a credential it is an authenticated send; without, each
/// destination needs its access key, as in [`AccountEnvelopes`].
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MultiRecipientRequest {
    /// `E`, base64 of 32 bytes.
    pub ephemeral_public: String,
    /// `ct`, base64: the padded content, encrypted once.
    pub ciphertext: String,
    /// The destinations.
    pub recipients: Vec<MultiRecipient>,
}

/// One destination account of a [`MultiRecipientRequest`].
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MultiRecipient {
    /// Destination username.
    pub destination: String,
    /// On an unidentified upload: the destination's access key (base64 of
    /// 16 bytes); absent for an account that takes strangers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key: Option<String>,
    /// One per device of the destination.
    pub devices: Vec<RecipientDevice>,
}

/// One device's part of a [`MultiRecipientRequest`].
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientDevice {
    /// Destination device.
    pub device_id: u32,
    /// `C`, base64 of 32 bytes.
    pub c: String,
    /// `AT`, base64 of 16 bytes.
    pub at: String,
}

/// A stored send.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SendResponse {
    /// Envelopes stored.
    pub stored: usize,
    /// Devices whose envelope was not stored because their queue is full
    /// (the device has not fetched its messages for a long time): the
    /// rest of the send was stored. Absent when every envelope was.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queue_full: Vec<FullQueue>,
}

/// A device whose queue of undelivered envelopes reached the server's cap
/// (count or bytes), so that it is sent nothing more until it catches up.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FullQueue {
    /// The device's account.
    pub destination: String,
    /// The device.
    pub device_id: u32,
}

/// A stale device list, as a `stale_devices` refusal reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleLists {
    /// Devices the send lacked.
    pub missing: Vec<u32>,
    /// Devices the send named that do not exist.
    pub extra: Vec<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsealed_send_is_written_as_before() {
        let request = SendRequest {
            envelopes: vec![DeviceEnvelope {
                device_id: 2,
                content: "AA==".into(),
            }],
            sealed: false,
        };
        assert_eq!(
            serde_json::to_string(&request).unwrap(),
            r#"{"envelopes":[{"device_id":2,"content":"AA=="}]}"#
        );
        let read: SendRequest = serde_json::from_str(r#"{"envelopes":[]}"#).unwrap();
        assert!(!read.sealed);
    }
}
