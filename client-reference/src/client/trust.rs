//! Safety numbers and verification, as the client core decides them
//! ([`starling_client_core::trust`]), against this device's store. The
//! shell's own step is learning a contact's keys when none are known yet.

use starling_client_core::trust::{self, OwnDevice};

pub use starling_client_core::trust::SafetyNumberView;

use super::Client;
use crate::error::Result;

impl Client {
    /// This device, as the safety number sees it.
    fn own_device(&self) -> OwnDevice<'_> {
        OwnDevice {
            username: &self.username,
            device_id: self.device_id,
            identity: self.identity.public(),
        }
    }

    /// Learns a contact's keys if none are known: starting sessions claims
    /// nothing lasting (they are kept for the first message).
    async fn learn_keys_if_unknown(&mut self, username: &str) -> Result<()> {
        if self.store.identity_keys(username).await?.is_empty() {
            self.ensure_sessions(username).await?;
        }
        Ok(())
    }

    /// The safety number with a contact.
    pub async fn safety_number(&mut self, username: &str) -> Result<SafetyNumberView> {
        self.learn_keys_if_unknown(username).await?;
        Ok(trust::safety_number_view(&self.store, self.own_device(), username).await?)
    }

    /// Marks a contact verified. With `digits`, they must match the safety
    /// number (compared in constant time).
    pub async fn verify(&mut self, username: &str, digits: Option<&str>) -> Result<()> {
        self.learn_keys_if_unknown(username).await?;
        Ok(trust::verify(&self.store, self.own_device(), username, digits).await?)
    }

    /// Refuses to send to a verified contact whose keys changed.
    pub(super) async fn check_sendable(&self, username: &str) -> Result<()> {
        Ok(trust::check_sendable(&self.store, username).await?)
    }

    /// Outstanding identity warnings: (username, text).
    pub async fn warnings(&self) -> Result<Vec<(String, String)>> {
        self.store.warnings().await
    }
}
