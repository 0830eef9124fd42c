//! Admission to a call: the token check that comes before any WebRTC state
//! exists, and the secret handle a participant later leaves with.

use std::str::FromStr;

use starling_call_token::TokenVerifier;
use subtle::ConstantTimeEq;

use super::ParticipantId;
use crate::error::{JoinError, LeaveError};

/// Proof that a token was valid and is now used up, for one call. Only
/// [`Engine::admit`](super::Engine::admit) makes one, and
/// [`Engine::join`](super::Engine::join) consumes it. It names no account
/// or device: the token carries none.
#[derive(Debug)]
pub struct Admission {
    call_id: String,
}

impl Admission {
    /// The call.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }
}

/// The rule the server applies to call ids.
pub(crate) fn valid_call_id(call_id: &str) -> bool {
    (1..=64).contains(&call_id.len())
        && call_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(super) fn admit(
    verifier: &mut TokenVerifier,
    call_id: &str,
    bearer: Option<&str>,
    unix_now: u64,
) -> Result<Admission, JoinError> {
    if !valid_call_id(call_id) {
        return Err(JoinError::BadCallId);
    }
    let token = bearer
        .filter(|t| !t.is_empty())
        .ok_or(JoinError::MissingToken)?;
    verifier
        .verify(token, unix_now)
        .map_err(JoinError::from_token)?;
    Ok(Admission {
        call_id: call_id.to_owned(),
    })
}

/// A participant's handle: its number and a random secret. Whoever holds
/// it may end the participation. Written `<number>-<32 hex digits>`.
#[derive(Clone, PartialEq, Eq)]
pub struct ParticipantKey {
    id: ParticipantId,
    secret: [u8; 16],
}

impl std::fmt::Debug for ParticipantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { id, secret: _ } = self;
        f.debug_struct("ParticipantKey")
            .field("id", id)
            .finish_non_exhaustive()
    }
}

impl ParticipantKey {
    pub(super) fn new(id: ParticipantId, secret: [u8; 16]) -> Self {
        Self { id, secret }
    }

    /// The participant's number.
    pub fn id(&self) -> ParticipantId {
        self.id
    }

    /// Whether `secret` is this key's secret (constant time).
    pub(crate) fn matches(&self, secret: &[u8; 16]) -> bool {
        self.secret.ct_eq(secret).into()
    }

    /// The text form, for the `Location` header.
    pub fn to_text(&self) -> String {
        format!("{}-{}", self.id.0, hex::encode(self.secret))
    }
}

impl FromStr for ParticipantKey {
    type Err = LeaveError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (id, secret) = text.split_once('-').ok_or(LeaveError::UnknownParticipant)?;
        let id = id.parse().map_err(|_| LeaveError::UnknownParticipant)?;
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(secret, &mut bytes).map_err(|_| LeaveError::UnknownParticipant)?;
        Ok(Self::new(ParticipantId(id), bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_hide_their_secret() {
        let key = ParticipantKey::new(ParticipantId(7), [0xab; 16]);
        let text = key.to_text();
        assert_eq!(text, format!("7-{}", "ab".repeat(16)));
        assert_eq!(text.parse::<ParticipantKey>().unwrap(), key);
        assert!(!format!("{key:?}").contains("ab"));
        assert!("7".parse::<ParticipantKey>().is_err());
        assert!("x-00".parse::<ParticipantKey>().is_err());
        assert!(
            format!("7-{}", "0".repeat(30))
                .parse::<ParticipantKey>()
                .is_err()
        );
    }

    #[test]
    fn call_ids_follow_the_servers_rule() {
        assert!(valid_call_id("c0ffee-12_AB"));
        assert!(!valid_call_id(""));
        assert!(!valid_call_id("a/b"));
        assert!(!valid_call_id(&"a".repeat(65)));
    }
}
