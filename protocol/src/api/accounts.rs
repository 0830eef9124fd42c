//! Registration, device linking, device lists and removal.

use serde::{Deserialize, Serialize};

use super::Redacted;

/// `POST /v1/accounts`.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The new username.
    pub username: String,
    /// A single-use invite code (required unless registration is open).
    #[serde(default)]
    pub invite_code: Option<String>,
    /// The first device's encoded identity key (base64).
    pub identity_key: String,
}

impl std::fmt::Debug for RegisterRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            username,
            invite_code,
            identity_key: _,
        } = self;
        f.debug_struct("RegisterRequest")
            .field("username", username)
            .field("invite_code", &invite_code.as_ref().map(|_| Redacted))
            .finish_non_exhaustive()
    }
}

/// The new account's first device, or a newly linked device, and its
/// credential (shown once).
#[derive(Clone, Serialize, Deserialize)]
pub struct RegisterResponse {
    /// The username.
    pub username: String,
    /// The device id.
    pub device_id: u32,
    /// The device credential: a secret.
    pub credential: String,
    /// The server's newest sender-certificate key, for the client to pin
    /// (SPEC §15.2): it trusts later keys only through endorsements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_key: Option<super::ServerKeyPin>,
    /// The transparency log's keys, for the client to pin beside the
    /// organisation's copy (SPEC §16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<super::LogPin>,
}

impl std::fmt::Debug for RegisterResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            username,
            device_id,
            credential: _,
            server_key,
            log,
        } = self;
        f.debug_struct("RegisterResponse")
            .field("username", username)
            .field("device_id", device_id)
            .field("credential", &Redacted)
            .field("server_key", server_key)
            .field("log", log)
            .finish()
    }
}

/// `GET /v1/accounts/{username}/devices`: an account's devices.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceList {
    /// Device ids, ascending.
    pub devices: Vec<u32>,
    /// Whether the account accepts sealed envelopes from senders who do
    /// not hold its access key: reported to the account's own devices
    /// only (always false for another account's list).
    #[serde(default)]
    pub sealed_from_strangers: bool,
    /// The proof that the transparency log holds this list (SPEC §16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transparency: Option<super::TransparencyProof>,
    /// For each device another device of the account linked, its device
    /// certificate (`crypto/SPEC.md` §2.5), checked by the client.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<DeviceCertificateEntry>,
}

/// One device's certificate: which device of the account linked it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceCertificateEntry {
    /// The device.
    pub device_id: u32,
    /// The encoded certificate (base64).
    pub certificate: String,
}

/// `PUT /v1/accounts/access`: the calling account's access key (sealed
/// sender, `crypto/SPEC.md` §15.8) and stranger policy.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SetAccess {
    /// The 16-byte access key (base64); the server keeps only its hash.
    pub access_key: String,
    /// Whether anyone may send the account sealed envelopes without it.
    pub sealed_from_strangers: bool,
    /// Only set it if the account has no key yet, or has this one (409
    /// `access_key_set` otherwise): two devices of one account racing to
    /// make the first, and a device asking again after a lost answer.
    #[serde(default)]
    pub if_absent: bool,
}

impl std::fmt::Debug for SetAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            access_key: _,
            sealed_from_strangers,
            if_absent,
        } = self;
        f.debug_struct("SetAccess")
            .field("access_key", &Redacted)
            .field("sealed_from_strangers", sealed_from_strangers)
            .field("if_absent", if_absent)
            .finish()
    }
}

/// `DELETE /v1/devices/{device_id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceRemoved {
    /// The removed device.
    pub removed: u32,
}

/// The query of `POST /v1/devices/link-code`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct LinkCodeQuery {
    /// The device the code links becomes a manager (links and removes
    /// devices).
    #[serde(default)]
    pub manager: bool,
}

/// The optional body of `POST /v1/devices/link-code`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkCodeRequest {
    /// The issuing device's grant of the link key (`crypto/SPEC.md` §2.5,
    /// base64): the linked device's certificate is made from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
}

/// `POST /v1/devices/link-code`: a one-time code to link a new device
/// (shown once).
#[derive(Clone, Serialize, Deserialize)]
pub struct LinkCode {
    /// The code, to enter on the new device: a secret.
    pub code: String,
    /// Expiry, ms since the epoch.
    pub expires_at: i64,
}

impl std::fmt::Debug for LinkCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            code: _,
            expires_at,
        } = self;
        f.debug_struct("LinkCode")
            .field("code", &Redacted)
            .field("expires_at", expires_at)
            .finish()
    }
}

/// `POST /v1/devices`: a new device joins an account with a link code.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// The code an existing device issued: a secret.
    pub link_code: String,
    /// The new device's encoded identity key (base64).
    pub identity_key: String,
    /// The link key's signature over the identity key (`crypto/SPEC.md`
    /// §2.5, base64), when the code carried a link secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endorsement: Option<String>,
}

impl std::fmt::Debug for LinkRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkRequest").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug() {
        let response = RegisterResponse {
            username: "alice".into(),
            device_id: 1,
            credential: "s3cret-credential".into(),
            server_key: None,
            log: None,
        };
        let code = LinkCode {
            code: "s3cret-code".into(),
            expires_at: 1,
        };
        let request = RegisterRequest {
            username: "alice".into(),
            invite_code: Some("s3cret-invite".into()),
            identity_key: "a2V5".into(),
        };
        let link = LinkRequest {
            link_code: "s3cret-link".into(),
            identity_key: "a2V5".into(),
            endorsement: None,
        };
        let printed = format!("{response:?} {code:?} {request:?} {link:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("alice"));
    }

    #[test]
    fn requests_refuse_unknown_fields() {
        let json = r#"{"username":"a","identity_key":"","extra":1}"#;
        assert!(serde_json::from_str::<RegisterRequest>(json).is_err());
    }
}
