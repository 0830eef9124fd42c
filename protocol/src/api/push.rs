//! Where a device gets content-free wake-ups.

use serde::{Deserialize, Serialize};

/// `PUT /v1/push`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PushRegistration {
    /// The push endpoint URL.
    pub endpoint: String,
}

/// The answer to `PUT` and `DELETE /v1/push`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
pub struct PushRegistered {
    /// Whether an endpoint is now registered.
    pub registered: bool,
}
