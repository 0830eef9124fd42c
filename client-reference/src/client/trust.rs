//! Safety numbers and verification, as the client core decides them
//! ([`starling_client_core::trust`]), over this device's store.

pub use starling_client_core::trust::SafetyNumberView;

use super::Client;
use crate::error::Result;

impl Client {
    /// The safety number with a contact (learning their keys first when
    /// none are known).
    pub async fn safety_number(&mut self, username: &str) -> Result<SafetyNumberView> {
        Ok(self.core.safety_number(username).await?)
    }

    /// Marks a contact verified. With `digits`, they must match the safety
    /// number (compared in constant time).
    pub async fn verify(&mut self, username: &str, digits: Option<&str>) -> Result<()> {
        Ok(self.core.verify(username, digits).await?)
    }

    /// Outstanding identity warnings: (username, text).
    pub async fn warnings(&self) -> Result<Vec<(String, String)>> {
        self.store().warnings().await
    }
}
