//! Safety numbers and verification, as the client core decides them
//! ([`starling_client_core::trust`]), over this device's store.

pub use starling_client_core::trust::SafetyNumberView;

use super::Client;
use crate::error::{ClientError, Result};

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

    /// Starts fresh (post-quantum) sessions with every device of a
    /// contact and announces them; with `ask`, asks the contact's devices,
    /// inside the working sessions, to start fresh ones with this device
    /// instead. For when a contact's messages stay unreadable: nothing
    /// else restarts a session.
    pub async fn reset_session(&mut self, username: &str, ask: bool) -> Result<()> {
        let user = username.strip_prefix('@').unwrap_or(username);
        let user = starling_protocol::Username::parse(user).map_err(|source| {
            ClientError::BadUsername {
                name: user.to_owned(),
                source,
            }
        })?;
        if ask {
            self.core.request_repair(user.as_str()).await?;
        } else {
            self.core.reset_session(user.as_str()).await?;
        }
        Ok(())
    }

    /// Outstanding identity warnings: (username, text).
    pub async fn warnings(&self) -> Result<Vec<(String, String)>> {
        self.store().warnings().await
    }
}
