//! Safety numbers and verification, as the client core decides them
//! ([`starling_client_core::trust`]), over this device's store; and the
//! watch on our own account in the transparency log.

use starling_client_core::transparency::LogError;
pub use starling_client_core::transparency::OwnLogChange;
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

    /// Checks the transparency log's history of our own account: every
    /// device or key in it this device did not see published is stored as
    /// a warning (shown with [`Self::warnings`]) and returned. An answer
    /// of the server's about the log that does not verify is a warning
    /// too, and an error.
    pub async fn check_own_log(&self) -> Result<Vec<OwnLogChange>> {
        match self.core.check_own_log().await {
            Ok(changes) => Ok(changes),
            Err(LogError::Storage(e) | LogError::Transport(e)) => Err(e),
            Err(refused) => {
                // One text, whatever the server varies in its answers, so
                // that it is stored once.
                let text = "the server's answers about your own account in the transparency \
                            log do not verify: it may be showing your contacts keys you did not \
                            publish; tell your administrator";
                self.store().add_warning(self.username(), text).await?;
                Err(ClientError::Transparency(refused.to_string()))
            }
        }
    }

    /// Outstanding identity warnings: (username, text).
    pub async fn warnings(&self) -> Result<Vec<(String, String)>> {
        self.store().warnings().await
    }
}
