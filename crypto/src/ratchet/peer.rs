//! All sessions with one peer device, and which of them is active.
//!
//! Several sessions can exist with one device: after a reinstall, a repair,
//! or when both sides start a session at the same moment. Rules (SPEC.md §5):
//! 1. Starting a session makes it active.
//! 2. An incoming initiation makes its new session active — unless the
//!    active session is one we started and the peer has not answered yet
//!    (simultaneous initiation). Then both sides keep the session whose id
//!    (initiator base key) is smaller, so they converge on the same one.
//! 3. Any kept session may decrypt; decrypting does not change the active one.

use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use super::message::{CiphertextMessage, PreKeyMessage};
use super::session::{DecryptError, EncryptError, Session};
use crate::error::{DecodeError, MAX_STATE_LEN, check_version, decode_proto};
use crate::keys::{IdentityKey, IdentityKeyPair};
use crate::prekey_store::PreKeyStore;
use crate::prekeys::PreKeyBundle;
use crate::proto::state;

use super::setup::SessionSetupError;

/// Sessions kept per peer device; the least recently made active go first.
pub const MAX_SESSIONS_PER_PEER: usize = 8;
const PEER_STATE_VERSION: u32 = 1;

/// A successfully decrypted message.
#[derive(Debug)]
pub struct Decrypted {
    /// The plaintext, wiped on drop.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The session that decrypted it.
    pub session_id: [u8; 32],
    /// Whether the message set up a new session.
    pub new_session: bool,
    /// The sender's identity.
    pub sender: IdentityKey,
}

/// The sessions with one peer device; the first is the active one.
#[derive(Debug, Default)]
pub struct PeerSessions {
    sessions: Vec<Session>,
}

impl PeerSessions {
    /// No sessions yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The active session, if any.
    pub fn active(&self) -> Option<&Session> {
        self.sessions.first()
    }

    /// How many sessions are kept.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether there is no session.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Starts a new session from a verified bundle and makes it active.
    pub fn initiate(
        &mut self,
        identity: &IdentityKeyPair,
        bundle: &PreKeyBundle,
        rng: &mut impl CryptoRngCore,
    ) -> Result<[u8; 32], SessionSetupError> {
        let session = Session::initiate(identity, bundle, rng)?;
        let id = session.id();
        self.sessions.insert(0, session);
        self.sessions.truncate(MAX_SESSIONS_PER_PEER);
        Ok(id)
    }

    /// Encrypts with the active session.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<CiphertextMessage, EncryptError> {
        self.sessions
            .first_mut()
            .ok_or(EncryptError::NoSession)?
            .encrypt(plaintext)
    }

    /// Decrypts a message from this peer, setting up a session if it is an
    /// initiation. Nothing changes unless decryption succeeds.
    pub fn decrypt(
        &mut self,
        identity: &IdentityKeyPair,
        prekeys: &mut PreKeyStore,
        message: &CiphertextMessage,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Decrypted, DecryptError> {
        match message {
            CiphertextMessage::PreKey(prekey) => {
                self.decrypt_prekey(identity, prekeys, prekey, rng)
            }
            CiphertextMessage::Ratchet(ratchet) => {
                let mut error = DecryptError::NoMatchingSession;
                for session in &mut self.sessions {
                    match session.decrypt(ratchet, rng) {
                        Ok(plaintext) => {
                            return Ok(Decrypted {
                                plaintext,
                                session_id: session.id(),
                                new_session: false,
                                sender: session.remote_identity().clone(),
                            });
                        }
                        // Report the most specific reason: a session that
                        // recognised the message (duplicate, too far ahead,
                        // bad key) says more than one it did not match.
                        Err(e) if is_more_specific(&e, &error) => error = e,
                        Err(_) => {}
                    }
                }
                Err(error)
            }
        }
    }

    fn decrypt_prekey(
        &mut self,
        identity: &IdentityKeyPair,
        prekeys: &mut PreKeyStore,
        message: &PreKeyMessage,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Decrypted, DecryptError> {
        let id = message.session_id();
        if let Some(session) = self.sessions.iter_mut().find(|s| s.id() == id) {
            if session.remote_identity().public_bytes()
                != message.initiator_identity().public_bytes()
            {
                return Err(DecryptError::Authentication);
            }
            let plaintext = session.decrypt(&message.message, rng)?;
            return Ok(Decrypted {
                plaintext,
                session_id: id,
                new_session: false,
                sender: session.remote_identity().clone(),
            });
        }
        let (session, plaintext) = Session::accept(identity, prekeys, message, rng)?;
        let sender = session.remote_identity().clone();
        self.insert_accepted(session);
        Ok(Decrypted {
            plaintext,
            session_id: id,
            new_session: true,
            sender,
        })
    }

    fn insert_accepted(&mut self, session: Session) {
        let simultaneous = self
            .sessions
            .first()
            .is_some_and(|active| active.is_awaiting_reply() && active.id() < session.id());
        let position = usize::from(simultaneous);
        self.sessions.insert(position, session);
        self.sessions.truncate(MAX_SESSIONS_PER_PEER);
    }

    /// Encodes all sessions for storage (encrypt it at rest).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let proto = state::PeerSessionsState {
            version: PEER_STATE_VERSION,
            sessions: self.sessions.iter().map(Session::to_state).collect(),
        };
        Zeroizing::new(prost::Message::encode_to_vec(&proto))
    }

    /// Decodes sessions written by [`Self::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let proto: state::PeerSessionsState = decode_proto(bytes, MAX_STATE_LEN)?;
        check_version(proto.version, PEER_STATE_VERSION)?;
        if proto.sessions.len() > MAX_SESSIONS_PER_PEER {
            return Err(DecodeError::InvalidValue("sessions"));
        }
        Ok(Self {
            sessions: proto
                .sessions
                .iter()
                .map(Session::from_state)
                .collect::<Result<_, _>>()?,
        })
    }
}

/// Whether `candidate` explains a failure better than `current`.
fn is_more_specific(candidate: &DecryptError, current: &DecryptError) -> bool {
    let rank = |e: &DecryptError| match e {
        DecryptError::NoMatchingSession => 0,
        DecryptError::Authentication => 1,
        _ => 2,
    };
    rank(candidate) > rank(current)
}
