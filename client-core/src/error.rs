//! [`DeviceError`]: what an operation of a [`crate::Device`] fails with.
//! The shell's own store and server errors come back whole; the rest say
//! what the protocol refused.

use starling_crypto::DecodeError;
use starling_crypto::group::{DistributionError, GroupEncryptError};
use thiserror::Error;

use crate::outgoing::OutgoingError;
use crate::prekeys::PrekeyError;
use crate::trust::TrustError;

/// Why a device operation failed, for a store failing with `S` and a
/// server failing with `T`. Exhaustive on purpose: a shell maps each arm
/// to its own error type.
#[derive(Debug, Error)]
pub enum DeviceError<S, T> {
    /// The local store failed.
    #[error(transparent)]
    Storage(S),
    /// The server call failed.
    #[error(transparent)]
    Transport(T),
    /// A pairwise send failed.
    #[error(transparent)]
    Outgoing(OutgoingError<S, T>),
    /// A trust rule refused (a verified contact's keys changed, a safety
    /// number did not match).
    #[error(transparent)]
    Trust(TrustError<S>),
    /// Prekey upkeep failed.
    #[error(transparent)]
    Prekeys(PrekeyError<S, T>),
    /// A group message could not be encrypted.
    #[error(transparent)]
    GroupEncrypt(GroupEncryptError),
    /// No group with this id (hex) is known.
    #[error("unknown group `{0}`")]
    UnknownGroup(String),
    /// We left the group (named here) or were removed from it.
    #[error("you are no longer a member of `{0}`")]
    NotAMember(String),
    /// This device cannot be removed from itself.
    #[error("this is the device you are using; remove it from another device")]
    ThisDevice,
    /// A member sent the largest revision there is: the group (named
    /// here) can take no further change.
    #[error(
        "group `{0}` can take no further change (its revision is at the maximum); create a new group"
    )]
    RevisionsExhausted(String),
    /// A staged message no longer decodes: the local store is damaged.
    #[error("the local store holds a damaged message: {0}")]
    DamagedInbox(prost::DecodeError),
    /// The group members' device lists changed on every attempt.
    #[error("the members' device lists kept changing; try again")]
    MembersKeptChanging,
    /// The stored sealed-sender state (trusted server keys, certificate)
    /// is damaged; nothing received is acknowledged until it is repaired.
    #[error("the local store's sealed-sender state is damaged: {0}")]
    DamagedSealedState(starling_crypto::DecodeError),
}

/// Why a member device's sender key was refused: reported as
/// [`crate::Event::SenderKeyRefused`], never fatal. Until it sends one we
/// take, its group messages stay unreadable.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SenderKeyRefusal {
    /// The distribution does not decode (or is of an older version, bound
    /// to no sender).
    #[error("the sender key does not decode: {0}")]
    Decode(DecodeError),
    /// It names another group than the message carrying it.
    #[error("the sender key is for another group")]
    WrongGroup,
    /// We know no identity key for the sending device.
    #[error("no identity key is known for the sending device")]
    UnknownIdentity,
    /// It is not bound to the sending device's identity (see
    /// [`DistributionError`]).
    #[error(transparent)]
    NotBound(DistributionError),
    /// Its signing key is already held for another member device of the
    /// group: a member passing off another's sender key as its own.
    #[error("the sender key's signing key is already {holder}'s (device {device})")]
    KeyOfAnotherSender {
        /// Who holds it.
        holder: String,
        /// Their device.
        device: u32,
    },
}

impl<S, T> From<OutgoingError<S, T>> for DeviceError<S, T> {
    fn from(error: OutgoingError<S, T>) -> Self {
        match error {
            OutgoingError::Storage(e) => Self::Storage(e),
            OutgoingError::Transport(e) => Self::Transport(e),
            other => Self::Outgoing(other),
        }
    }
}

impl<S, T> From<crate::sealed::SealedError<S, T>> for DeviceError<S, T> {
    fn from(error: crate::sealed::SealedError<S, T>) -> Self {
        OutgoingError::from(error).into()
    }
}

impl<S, T> From<TrustError<S>> for DeviceError<S, T> {
    fn from(error: TrustError<S>) -> Self {
        match error {
            TrustError::Storage(e) => Self::Storage(e),
            other => Self::Trust(other),
        }
    }
}

impl<S, T> From<PrekeyError<S, T>> for DeviceError<S, T> {
    fn from(error: PrekeyError<S, T>) -> Self {
        match error {
            PrekeyError::Storage(e) => Self::Storage(e),
            PrekeyError::Transport(e) => Self::Transport(e),
            other => Self::Prekeys(other),
        }
    }
}

impl<S, T> From<GroupEncryptError> for DeviceError<S, T> {
    fn from(error: GroupEncryptError) -> Self {
        Self::GroupEncrypt(error)
    }
}
