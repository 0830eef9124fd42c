//! Safety numbers and verification: compare the number with a contact in
//! person, then mark them verified; a verified contact whose keys change
//! is blocked from sending until verified again.
//!
//! The number covers every device key known on both sides: this device's
//! own key, the other devices of our account and all of the contact's.
//! Learning a contact's keys first (by starting sessions) is the shell's
//! step; these functions read what [`Storage`] holds.

use starling_crypto::IdentityKey;
use starling_crypto::fingerprint::SafetyNumber;
use thiserror::Error;

use crate::storage::Storage;

mod vouch;
pub use vouch::vouched_by;

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

/// Why a trust operation failed. Exhaustive on purpose: a shell maps each
/// arm to its own error type.
#[derive(Debug, Error)]
pub enum TrustError<S> {
    /// The local store failed.
    #[error(transparent)]
    Storage(S),
    /// No key is known for the contact.
    #[error("unknown user `{0}`")]
    UnknownUser(String),
    /// The digits given are not the safety number.
    #[error("those digits are not the safety number with {0}")]
    SafetyNumberMismatch(String),
    /// A verified contact's keys changed: sending is blocked until the
    /// safety number is compared again.
    #[error("{0}'s safety number changed since it was verified")]
    UntrustedIdentity(String),
}

/// This device, as the safety number sees it.
#[derive(Debug, Clone, Copy)]
pub struct OwnDevice<'a> {
    /// Our username.
    pub username: &'a str,
    /// This device's id.
    pub device_id: u32,
    /// This device's public identity key.
    pub identity: &'a IdentityKey,
}

/// The safety number with `username`, from the keys the store knows.
pub async fn safety_number<S: Storage>(
    storage: &S,
    own: OwnDevice<'_>,
    username: &str,
) -> Result<SafetyNumber, TrustError<S::Error>> {
    let remote: Vec<_> = storage
        .identity_keys(username)
        .await
        .map_err(TrustError::Storage)?
        .into_iter()
        .map(|(_, k)| k)
        .collect();
    if remote.is_empty() {
        return Err(TrustError::UnknownUser(username.to_owned()));
    }
    let mut local: Vec<_> = storage
        .identity_keys(own.username)
        .await
        .map_err(TrustError::Storage)?
        .into_iter()
        .filter(|(d, _)| *d != own.device_id)
        .map(|(_, k)| k)
        .collect();
    local.push(own.identity.clone());
    Ok(SafetyNumber::new(
        own.username.as_bytes(),
        &local,
        username.as_bytes(),
        &remote,
    ))
}

/// The safety number with `username`, with their verification state.
pub async fn safety_number_view<S: Storage>(
    storage: &S,
    own: OwnDevice<'_>,
    username: &str,
) -> Result<SafetyNumberView, TrustError<S::Error>> {
    let number = safety_number(storage, own, username).await?;
    let contact = storage
        .contact(username)
        .await
        .map_err(TrustError::Storage)?;
    Ok(SafetyNumberView {
        username: username.to_owned(),
        display: number.display(),
        scannable_hex: hex::encode(number.scannable()),
        verified: contact.verified,
        identity_changed: contact.identity_changed,
    })
}

/// Marks `username` verified. With `digits`, they must match the safety
/// number (compared in constant time; anything but digits is ignored).
pub async fn verify<S: Storage>(
    storage: &S,
    own: OwnDevice<'_>,
    username: &str,
    digits: Option<&str>,
) -> Result<(), TrustError<S::Error>> {
    let number = safety_number(storage, own, username).await?;
    if let Some(digits) = digits {
        let cleaned: String = digits.chars().filter(char::is_ascii_digit).collect();
        if !number.matches_digits(&cleaned) {
            return Err(TrustError::SafetyNumberMismatch(username.to_owned()));
        }
    }
    storage
        .set_verified(username)
        .await
        .map_err(TrustError::Storage)
}

/// Refuses to send to a verified contact whose keys changed.
pub async fn check_sendable<S: Storage>(
    storage: &S,
    username: &str,
) -> Result<(), TrustError<S::Error>> {
    let contact = storage
        .contact(username)
        .await
        .map_err(TrustError::Storage)?;
    if contact.verified && contact.identity_changed {
        return Err(TrustError::UntrustedIdentity(username.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
#[path = "trust/tests.rs"]
mod tests;
