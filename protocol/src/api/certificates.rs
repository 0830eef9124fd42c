//! Sealed sender: the server's certificate keys and a device's sender
//! certificate (`crypto/SPEC.md` §15).

use serde::{Deserialize, Serialize};

/// A sender-certificate key as a client pins it when it registers or links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerKeyPin {
    /// The key's id in the chain.
    pub id: u32,
    /// The Ed25519 public key (base64).
    pub public_key: String,
    /// When the key was made, milliseconds since the Unix epoch.
    pub created_at: u64,
}

/// `GET /v1/certificate/server-keys`: the newest keys of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerKeyChainResponse {
    /// The encoded `ServerKeyChain` (base64).
    pub chain: String,
}

/// `GET /v1/certificate/sender`: a certificate for the calling device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SenderCertificateResponse {
    /// The encoded `SenderCertificate` (base64).
    pub certificate: String,
    /// Its expiry, milliseconds since the Unix epoch.
    pub expires_at: u64,
}
