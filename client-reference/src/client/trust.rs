//! Safety numbers and verification: compare the number with a contact in
//! person, then mark them verified; a verified contact whose keys change
//! is blocked from sending until verified again.

use starling_crypto::fingerprint::SafetyNumber;

use super::Client;
use crate::error::{ClientError, Result};

/// A safety number with what it covers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SafetyNumberView {
    /// The contact.
    pub username: String,
    /// 60 digits in groups of five.
    pub display: String,
    /// Hex of the scannable payload (for a QR code).
    pub scannable_hex: String,
    /// Marked verified.
    pub verified: bool,
    /// Keys changed since trust was established.
    pub identity_changed: bool,
}

impl Client {
    async fn safety_number_of(&mut self, username: &str) -> Result<SafetyNumber> {
        if self.store.identity_keys(username).await?.is_empty() {
            // Never talked: learn their keys (claims nothing lasting: the
            // sessions are kept for the first message).
            self.ensure_sessions(username).await?;
        }
        let remote: Vec<_> = self
            .store
            .identity_keys(username)
            .await?
            .into_iter()
            .map(|(_, k)| k)
            .collect();
        if remote.is_empty() {
            return Err(ClientError::UnknownUser(username.to_owned()));
        }
        let mut local: Vec<_> = self
            .store
            .identity_keys(&self.username)
            .await?
            .into_iter()
            .filter(|(d, _)| *d != self.device_id)
            .map(|(_, k)| k)
            .collect();
        local.push(self.identity.public().clone());
        Ok(SafetyNumber::new(
            self.username.as_bytes(),
            &local,
            username.as_bytes(),
            &remote,
        ))
    }

    /// The safety number with a contact.
    pub async fn safety_number(&mut self, username: &str) -> Result<SafetyNumberView> {
        let number = self.safety_number_of(username).await?;
        let contact = self.store.contact(username).await?;
        Ok(SafetyNumberView {
            username: username.to_owned(),
            display: number.display(),
            scannable_hex: hex::encode(number.scannable()),
            verified: contact.verified,
            identity_changed: contact.identity_changed,
        })
    }

    /// Marks a contact verified. With `digits`, they must match the safety
    /// number (compared in constant time).
    pub async fn verify(&mut self, username: &str, digits: Option<&str>) -> Result<()> {
        let number = self.safety_number_of(username).await?;
        if let Some(digits) = digits {
            let cleaned: String = digits.chars().filter(char::is_ascii_digit).collect();
            if !number.matches_digits(&cleaned) {
                return Err(ClientError::SafetyNumberMismatch(username.to_owned()));
            }
        }
        self.store.set_verified(username).await
    }

    /// Refuses to send to a verified contact whose keys changed.
    pub(super) async fn check_sendable(&self, username: &str) -> Result<()> {
        let contact = self.store.contact(username).await?;
        if contact.verified && contact.identity_changed {
            return Err(ClientError::UntrustedIdentity(username.to_owned()));
        }
        Ok(())
    }

    /// Outstanding identity warnings: (username, text).
    pub async fn warnings(&self) -> Result<Vec<(String, String)>> {
        self.store.warnings().await
    }
}
