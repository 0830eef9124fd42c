//! Why the engine refuses a join or a leave, and why a token key is
//! unusable. Messages are lowercase and carry no token, address or SDP.

use starling_call_token::TokenError;
use thiserror::Error;

/// Why a join was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JoinError {
    /// The call id in the path is not one the server issues tokens for.
    #[error("a call id is 1 to 64 characters of a-z, A-Z, 0-9, '-' and '_'")]
    BadCallId,
    /// No `Authorization: Bearer` token.
    #[error("a join needs a token: Authorization: Bearer <token>")]
    MissingToken,
    /// Not a token signed by the server.
    #[error("invalid token: {0}")]
    InvalidToken(TokenError),
    /// The token's time is over (or not yet begun).
    #[error("{0}; ask the server for a new one")]
    ExpiredToken(TokenError),
    /// The token was already used to join.
    #[error("token was already used; ask the server for a new one")]
    ReplayedToken,
    /// The relay remembers too many live tokens.
    #[error("relay is busy; retry shortly")]
    Busy,
    /// The call has as many participants as allowed.
    #[error("call is full ({limit} participants)")]
    CallFull {
        /// The limit.
        limit: usize,
    },
    /// The relay has as many calls as allowed.
    #[error("relay is at its limit of {limit} calls")]
    TooManyCalls {
        /// The limit.
        limit: usize,
    },
    /// The relay has as many participants as allowed.
    #[error("relay is at its limit of {limit} participants")]
    TooManyParticipants {
        /// The limit.
        limit: usize,
    },
    /// The SDP offer was refused.
    #[error(transparent)]
    BadOffer(#[from] OfferError),
}

impl JoinError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadCallId => "bad_call_id",
            Self::MissingToken => "missing_token",
            Self::InvalidToken(_) => "invalid_token",
            Self::ExpiredToken(_) => "expired_token",
            Self::ReplayedToken => "replayed_token",
            Self::Busy => "busy",
            Self::CallFull { .. } => "call_full",
            Self::TooManyCalls { .. } | Self::TooManyParticipants { .. } => "relay_full",
            Self::BadOffer(OfferError::TooLarge { .. }) => "offer_too_large",
            Self::BadOffer(_) => "bad_offer",
        }
    }

    pub(crate) fn from_token(error: TokenError) -> Self {
        match error {
            TokenError::Expired | TokenError::NotYetValid | TokenError::TooLongLived => {
                Self::ExpiredToken(error)
            }
            TokenError::Replayed => Self::ReplayedToken,
            TokenError::Busy => Self::Busy,
            other => Self::InvalidToken(other),
        }
    }
}

/// Why an SDP offer was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OfferError {
    /// Longer than the configured limit.
    #[error("offer exceeds {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// Not UTF-8 or not SDP.
    #[error("offer is not a valid SDP offer")]
    Unparseable,
    /// No audio or video section.
    #[error("offer has no audio or video section")]
    NoMedia,
    /// More media sections than allowed.
    #[error("offer has more than {limit} media sections")]
    TooManyMedia {
        /// The limit.
        limit: usize,
    },
    /// str0m could not answer it (codecs, BUNDLE, DTLS setup).
    #[error(
        "offer cannot be answered: it needs BUNDLE, rtcp-mux, a DTLS fingerprint and a codec the relay knows"
    )]
    Unanswerable,
}

/// Why a leave was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaveError {
    /// No such participant in this call (already gone, or a wrong id).
    #[error("no such participant in this call")]
    UnknownParticipant,
}

/// Why the engine could not start.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SetupError {
    /// The token key is not a valid Ed25519 public key.
    #[error("token key is not a valid Ed25519 public key")]
    TokenKey,
    /// A public address cannot be an ICE candidate (unspecified, multicast).
    #[error("public address cannot be an ICE candidate")]
    Candidate,
}
