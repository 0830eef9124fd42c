//! Prekeys: the upkeep the client core decides
//! ([`starling_client_core::prekeys`]), run by this device's core against
//! its store, the server and the system clock.

use super::Client;
use crate::error::Result;

pub use starling_client_core::prekeys::{
    PREKEY_BATCH, PREKEY_LOW_WATER, SIGNED_PREKEY_MAX_AGE_SECS,
};

impl Client {
    /// Tops up the server's stock of one-time prekeys when it is low, and
    /// rotates the signed prekey when it is due. Called when the server
    /// says the stock is low and whenever the client connects.
    pub async fn maintain_prekeys(&mut self) -> Result<()> {
        self.core.maintain_prekeys().await?;
        Ok(())
    }

    /// [`Self::maintain_prekeys`] where a failure must not keep messages
    /// from arriving: it is logged, and the server's next low-stock signal
    /// or the next connect retries.
    pub(super) async fn maintain_prekeys_or_log(&mut self) {
        if let Err(error) = self.maintain_prekeys().await {
            tracing::warn!(%error, "prekey maintenance failed; will retry");
        }
    }
}
