//! Prekeys: upload, bundle fetch, remaining counts.

use serde::{Deserialize, Serialize};

/// Most prekeys of each kind in one upload.
pub const MAX_PREKEYS_PER_UPLOAD: usize = 200;

/// `PUT /v1/keys`: encoded prekeys (base64), as produced by
/// starling-crypto.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyUpload {
    /// A new signed prekey.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_prekey: Option<String>,
    /// One-time X25519 prekeys.
    #[serde(default)]
    pub one_time_prekeys: Vec<String>,
    /// One-time ML-KEM prekeys.
    #[serde(default)]
    pub kem_prekeys: Vec<String>,
    /// A new last-resort ML-KEM prekey.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_resort_kem_prekey: Option<String>,
}

/// `GET /v1/keys/count` and the answer to an upload: one-time prekeys left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct PrekeyCounts {
    /// X25519 one-time prekeys.
    pub one_time: u32,
    /// ML-KEM one-time prekeys.
    pub kem: u32,
}

/// One device's bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceBundle {
    /// The device.
    pub device_id: u32,
    /// The encoded, signed `PreKeyBundle` (base64).
    pub bundle: String,
    /// The device's certificate, when another device of the account
    /// linked it (`crypto/SPEC.md` §2.5, base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

/// `GET /v1/keys/{username}/{device|*}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleResponse {
    /// Bundles of the requested devices that have a signed prekey.
    pub devices: Vec<DeviceBundle>,
    /// The proof that the transparency log holds the account's device
    /// list, whose identity keys the bundles must carry (SPEC §16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transparency: Option<super::TransparencyProof>,
}
