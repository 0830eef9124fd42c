//! Identifiers with one validation rule each, parsed once where they enter
//! a program (a request path, a command line, a stored row) so that nothing
//! past that edge checks a string again.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum IdError {
    /// Not a valid username.
    #[error(
        "usernames are 3 to 32 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
    )]
    Username,
    /// Not a valid device id.
    #[error("a device id is a whole number from 1 to 4294967295")]
    DeviceId,
    /// Not a valid envelope id.
    #[error("an envelope id is 16 bytes")]
    EnvelopeId,
}

/// A username: 3 to 32 of `a-z 0-9 . _ -`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    /// Fewest characters in a username.
    pub const MIN_LEN: usize = 3;
    /// Most characters in a username.
    pub const MAX_LEN: usize = 32;

    /// Parses `name`, refusing anything that breaks the rule.
    pub fn parse(name: &str) -> Result<Self, IdError> {
        if Self::is_valid(name) {
            Ok(Self(name.to_owned()))
        } else {
            Err(IdError::Username)
        }
    }

    /// Whether `name` follows the username rule.
    pub fn is_valid(name: &str) -> bool {
        let valid_chars = name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        let starts_well = name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        (Self::MIN_LEN..=Self::MAX_LEN).contains(&name.len()) && valid_chars && starts_well
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl FromStr for Username {
    type Err = IdError;
    fn from_str(name: &str) -> Result<Self, IdError> {
        Self::parse(name)
    }
}

impl TryFrom<String> for Username {
    type Error = IdError;
    fn try_from(name: String) -> Result<Self, IdError> {
        if Self::is_valid(&name) {
            Ok(Self(name))
        } else {
            Err(IdError::Username)
        }
    }
}

impl From<Username> for String {
    fn from(name: Username) -> Self {
        name.0
    }
}

impl AsRef<str> for Username {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Username {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Username {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// A device of an account: 1 for the first, the next ones as they link.
/// 0 is never a device (the frames use it for "no sender").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct DeviceId(u32);

impl DeviceId {
    /// The device an account registers with.
    pub const FIRST: Self = Self(1);

    /// `id`, when it names a device (not 0).
    pub fn new(id: u32) -> Result<Self, IdError> {
        if id == 0 {
            Err(IdError::DeviceId)
        } else {
            Ok(Self(id))
        }
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for DeviceId {
    type Error = IdError;
    fn try_from(id: u32) -> Result<Self, IdError> {
        Self::new(id)
    }
}

impl From<DeviceId> for u32 {
    fn from(id: DeviceId) -> Self {
        id.0
    }
}

impl FromStr for DeviceId {
    type Err = IdError;
    fn from_str(text: &str) -> Result<Self, IdError> {
        text.parse::<u32>()
            .map_err(|_| IdError::DeviceId)
            .and_then(Self::new)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The server's own number for an account. It never leaves the server:
/// clients name accounts by [`Username`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountId(pub i64);

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An envelope's id: 16 random bytes the server assigns, used to
/// acknowledge it and, by clients, to drop a redelivered copy.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnvelopeId([u8; Self::LEN]);

impl EnvelopeId {
    /// Bytes in an envelope id.
    pub const LEN: usize = 16;

    /// An id from its bytes.
    pub fn new(bytes: [u8; Self::LEN]) -> Self {
        Self(bytes)
    }

    /// An id from a frame's bytes, refusing any other length.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, IdError> {
        <[u8; Self::LEN]>::try_from(bytes)
            .map(Self)
            .map_err(|_| IdError::EnvelopeId)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }
}

impl fmt::Display for EnvelopeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for EnvelopeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EnvelopeId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn usernames_follow_the_rule() {
        for good in ["bob", "alice.smith", "a_b-c", "0day", &"x".repeat(32)] {
            assert!(Username::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "ab",
            "Bob",
            ".bob",
            "-bob",
            "bo b",
            "bob\0",
            "ä-bob",
            &"x".repeat(33),
        ] {
            assert_eq!(Username::parse(bad), Err(IdError::Username), "{bad:?}");
        }
    }

    #[test]
    fn usernames_deserialize_only_when_valid() {
        let name: Username = serde_json::from_str("\"carol\"").unwrap();
        assert_eq!(name, "carol");
        assert!(serde_json::from_str::<Username>("\"Carol\"").is_err());
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"carol\"");
    }

    #[test]
    fn device_zero_is_no_device() {
        assert_eq!(DeviceId::new(0), Err(IdError::DeviceId));
        assert_eq!("7".parse::<DeviceId>().map(DeviceId::get), Ok(7));
        assert!("-1".parse::<DeviceId>().is_err());
        assert!(serde_json::from_str::<DeviceId>("0").is_err());
    }

    #[test]
    fn envelope_ids_are_sixteen_bytes() {
        assert!(EnvelopeId::from_slice(&[0; 15]).is_err());
        assert!(EnvelopeId::from_slice(&[0; 17]).is_err());
        let id = EnvelopeId::from_slice(&[0xab; 16]).unwrap();
        assert_eq!(id.to_string(), "ab".repeat(16));
    }

    proptest! {
        #[test]
        fn parse_agrees_with_is_valid(name in "\\PC{0,40}") {
            prop_assert_eq!(Username::parse(&name).is_ok(), Username::is_valid(&name));
        }

        #[test]
        fn valid_names_round_trip(name in "[a-z0-9][a-z0-9._-]{2,31}") {
            let parsed = Username::parse(&name).unwrap();
            prop_assert_eq!(parsed.as_str(), name.as_str());
        }
    }
}
