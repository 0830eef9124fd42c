//! Conversations: a person ([`Conversation::Direct`]) or a group
//! ([`Conversation::Group`]). A name a person types is resolved into one
//! once, where it enters (see `Client::resolve`); past that edge the client
//! passes the typed value. The history stores and shows a conversation as
//! its key, `@user` or `#<group id hex>`: [`Conversation::to_key`] writes
//! it and [`Conversation::parse_key`] reads it back.

use std::fmt;

use serde::{Deserialize, Serialize};
use starling_protocol::{IdError, Username};
use thiserror::Error;

/// A group's id: the random bytes its creator chose, shown in hex.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(Vec<u8>);

impl GroupId {
    /// The group with these id bytes.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// Parses a lowercase or uppercase hex id.
    pub fn parse_hex(text: &str) -> Result<Self, ConversationKeyError> {
        hex::decode(text)
            .map(Self)
            .map_err(|_| ConversationKeyError::GroupHex)
    }

    /// The id bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The id in lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }
}

impl AsRef<[u8]> for GroupId {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupId({})", self.to_hex())
    }
}

/// Who a message is for: one person (their devices and ours), or a group.
/// Serialized as its key (`@user`, `#<group id hex>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Conversation {
    /// Direct messages with one account (our own: our other devices).
    Direct(Username),
    /// A group.
    Group(GroupId),
}

impl Conversation {
    /// The key the history stores: `@user` or `#<group id hex>`.
    pub fn to_key(&self) -> String {
        match self {
            Self::Direct(user) => format!("@{user}"),
            Self::Group(id) => format!("#{id}"),
        }
    }

    /// Reads a key written by [`Self::to_key`].
    pub fn parse_key(key: &str) -> Result<Self, ConversationKeyError> {
        if let Some(user) = key.strip_prefix('@') {
            Ok(Self::Direct(Username::parse(user)?))
        } else if let Some(id) = key.strip_prefix('#') {
            Ok(Self::Group(GroupId::parse_hex(id)?))
        } else {
            Err(ConversationKeyError::Prefix)
        }
    }

    /// The group's id, for a group.
    pub fn group_id(&self) -> Option<&GroupId> {
        match self {
            Self::Group(id) => Some(id),
            Self::Direct(_) => None,
        }
    }

    /// The other account, for a direct conversation.
    pub fn username(&self) -> Option<&Username> {
        match self {
            Self::Direct(user) => Some(user),
            Self::Group(_) => None,
        }
    }
}

impl fmt::Display for Conversation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_key())
    }
}

impl From<Conversation> for String {
    fn from(conversation: Conversation) -> Self {
        conversation.to_key()
    }
}

impl TryFrom<String> for Conversation {
    type Error = ConversationKeyError;
    fn try_from(key: String) -> Result<Self, Self::Error> {
        Self::parse_key(&key)
    }
}

impl std::str::FromStr for Conversation {
    type Err = ConversationKeyError;
    fn from_str(key: &str) -> Result<Self, Self::Err> {
        Self::parse_key(key)
    }
}

/// Compares with a key (`@user`, `#<group id hex>`).
impl PartialEq<str> for Conversation {
    fn eq(&self, key: &str) -> bool {
        match self {
            Self::Direct(user) => key.strip_prefix('@') == Some(user.as_str()),
            Self::Group(id) => key
                .strip_prefix('#')
                .is_some_and(|hex| hex.eq_ignore_ascii_case(&id.to_hex())),
        }
    }
}

/// Compares with a key (`@user`, `#<group id hex>`).
impl PartialEq<&str> for Conversation {
    fn eq(&self, key: &&str) -> bool {
        self == *key
    }
}

/// A conversation key that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConversationKeyError {
    /// Neither `@` nor `#` in front.
    #[error("a conversation key starts with @ (a person) or # (a group)")]
    Prefix,
    /// Not a valid username after `@`.
    #[error(transparent)]
    Username(#[from] IdError),
    /// Not hex after `#`.
    #[error("a group id is written in hex")]
    GroupHex,
}

/// A conversation as a caller names it: what a person typed (`@user`,
/// `#group` by name or id prefix, or a bare name, resolved as
/// `Client::resolve` does), or one already resolved.
#[derive(Debug, Clone, Copy)]
pub enum ConversationRef<'a> {
    /// What a person typed.
    Named(&'a str),
    /// Already resolved.
    Resolved(&'a Conversation),
}

impl<'a> From<&'a str> for ConversationRef<'a> {
    fn from(name: &'a str) -> Self {
        Self::Named(name)
    }
}

impl<'a> From<&'a String> for ConversationRef<'a> {
    fn from(name: &'a String) -> Self {
        Self::Named(name)
    }
}

impl<'a> From<&'a Conversation> for ConversationRef<'a> {
    fn from(conversation: &'a Conversation) -> Self {
        Self::Resolved(conversation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let alice = Conversation::Direct(Username::parse("alice").unwrap());
        let group = Conversation::Group(GroupId::from_bytes(vec![0xab, 0x01]));
        assert_eq!(alice.to_key(), "@alice");
        assert_eq!(group.to_key(), "#ab01");
        for conversation in [&alice, &group] {
            let key = conversation.to_key();
            assert_eq!(&Conversation::parse_key(&key).unwrap(), conversation);
            assert_eq!(*conversation, key.as_str());
        }
        assert_eq!(group, "#AB01");
        assert_ne!(alice, "#alice");
    }

    #[test]
    fn bad_keys_are_refused() {
        assert_eq!(
            Conversation::parse_key("alice"),
            Err(ConversationKeyError::Prefix)
        );
        assert!(matches!(
            Conversation::parse_key("@Alice!"),
            Err(ConversationKeyError::Username(_))
        ));
        assert_eq!(
            Conversation::parse_key("#xyz"),
            Err(ConversationKeyError::GroupHex)
        );
    }

    #[test]
    fn serializes_as_its_key() {
        let group = Conversation::Group(GroupId::from_bytes(vec![0x00, 0xff]));
        assert_eq!(serde_json::to_string(&group).unwrap(), "\"#00ff\"");
        let back: Conversation = serde_json::from_str("\"@bob\"").unwrap();
        assert_eq!(back, "@bob");
        assert!(serde_json::from_str::<Conversation>("\"bob\"").is_err());
    }
}
