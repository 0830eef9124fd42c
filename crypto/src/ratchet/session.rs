//! One Double Ratchet session with one peer device (Signal's Double Ratchet
//! specification, with ChaCha20-Poly1305 as the AEAD).
//!
//! Decryption builds every new value (chain keys, root key, skipped keys) in
//! locals and commits only once the message authenticates: a failed decrypt
//! leaves the session exactly as it was. Setup lives in `setup`, state
//! encoding in `persist`.

use std::collections::VecDeque;

use rand_core::CryptoRngCore;
use thiserror::Error;
use x25519_dalek::PublicKey as DhPublic;
use zeroize::Zeroizing;

use super::chain_key::ChainKey;
use super::message::{CiphertextMessage, PreKeyMessage, RatchetMessage, message_associated_data};
use super::message_key::{AeadFailure, INFO_MESSAGE_KEYS};
use super::receiver_chain::{
    GapTooLarge, MAX_MESSAGE_GAP, MAX_RECEIVER_CHAINS, ReceiverChain, SkippedKeys,
};
use super::root_key::RootKey;
use crate::error::{DecodeError, MAX_ENCODED_LEN};
use crate::keys::{DhKeyPair, IdentityKey, NonContributoryKey, dh};

/// Largest plaintext one message may carry. Leaves room for the headers
/// within [`MAX_ENCODED_LEN`].
pub const MAX_PLAINTEXT_LEN: usize = MAX_ENCODED_LEN - 4096;

/// A message could not be encrypted.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncryptError {
    /// The plaintext exceeds [`MAX_PLAINTEXT_LEN`].
    #[error("plaintext of {0} bytes exceeds the message limit")]
    TooLarge(usize),
    /// The sending chain has used all 2^32 counters; a new session is needed.
    #[error("sending chain exhausted")]
    ChainExhausted,
    /// There is no session to encrypt with.
    #[error("no session with this peer")]
    NoSession,
}

/// A message could not be decrypted. The session is unchanged.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecryptError {
    /// The bytes do not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The message was already decrypted, or its key was dropped (too old).
    #[error("message {counter} already received or expired")]
    DuplicateOrExpired {
        /// The message's counter.
        counter: u32,
    },
    /// The message is further ahead in its chain than the session allows.
    #[error("message is {gap} positions ahead; the limit is {limit}")]
    TooFarAhead {
        /// How far ahead.
        gap: u32,
        /// [`MAX_MESSAGE_GAP`].
        limit: u32,
    },
    /// The sender's ratchet key has small order.
    #[error("non-contributory ratchet key")]
    NonContributoryKey,
    /// The ciphertext, header or associated data was altered, or the message
    /// belongs to another session.
    #[error("message failed authentication")]
    Authentication,
    /// No session with this peer could decrypt the message.
    #[error("no session with this peer matches the message")]
    NoMatchingSession,
    /// A prekey message could not set up a session.
    #[error("session setup failed: {0}")]
    Setup(#[from] super::setup::SessionSetupError),
}

impl From<NonContributoryKey> for DecryptError {
    fn from(_: NonContributoryKey) -> Self {
        Self::NonContributoryKey
    }
}

impl From<AeadFailure> for DecryptError {
    fn from(_: AeadFailure) -> Self {
        Self::Authentication
    }
}

impl From<GapTooLarge> for DecryptError {
    fn from(GapTooLarge(gap): GapTooLarge) -> Self {
        Self::TooFarAhead {
            gap,
            limit: MAX_MESSAGE_GAP,
        }
    }
}

/// What the initiator repeats in every message until the responder answers.
#[derive(Clone)]
pub(crate) struct PendingPreKey {
    pub(crate) signed_prekey_id: u32,
    pub(crate) one_time_prekey_id: Option<u32>,
    pub(crate) kem_prekey_id: Option<u32>,
    pub(crate) kem_ciphertext: Vec<u8>,
}

/// A Double Ratchet session with one peer device.
pub struct Session {
    pub(crate) id: [u8; 32],
    pub(crate) local_identity: IdentityKey,
    pub(crate) remote_identity: IdentityKey,
    pub(crate) local_is_initiator: bool,
    /// Derived from the identities; not persisted.
    pub(crate) associated_data: Vec<u8>,
    pub(crate) root_key: RootKey,
    pub(crate) sending_ratchet: DhKeyPair,
    pub(crate) sending_chain: ChainKey,
    pub(crate) sending_index: u32,
    pub(crate) previous_counter: u32,
    pub(crate) receiving: VecDeque<ReceiverChain>,
    pub(crate) skipped: SkippedKeys,
    pub(crate) pending_prekey: Option<PendingPreKey>,
    pub(crate) post_quantum: bool,
}

impl core::fmt::Debug for Session {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let Self {
            remote_identity,
            local_is_initiator,
            sending_index,
            receiving,
            skipped,
            pending_prekey,
            post_quantum,
            ..
        } = self;
        f.debug_struct("Session")
            .field("remote_identity", remote_identity)
            .field("local_is_initiator", local_is_initiator)
            .field("sending_index", sending_index)
            .field("receiving_chains", &receiving.len())
            .field("skipped_keys", &skipped.len())
            .field("awaiting_reply", &pending_prekey.is_some())
            .field("post_quantum", post_quantum)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The session's id: the initiator's base key. Both sides agree on it.
    pub fn id(&self) -> [u8; 32] {
        self.id
    }

    /// The peer device's identity.
    pub fn remote_identity(&self) -> &IdentityKey {
        &self.remote_identity
    }

    /// Whether the session was set up with PQXDH.
    pub fn is_post_quantum(&self) -> bool {
        self.post_quantum
    }

    /// Whether we started this session and have not yet heard back: our
    /// messages still carry the prekey header.
    pub fn is_awaiting_reply(&self) -> bool {
        self.pending_prekey.is_some()
    }

    /// Encrypts one message. While the peer has not answered, the result is
    /// a [`CiphertextMessage::PreKey`].
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<CiphertextMessage, EncryptError> {
        if plaintext.len() > MAX_PLAINTEXT_LEN {
            return Err(EncryptError::TooLarge(plaintext.len()));
        }
        let counter = self.sending_index;
        let next_index = counter.checked_add(1).ok_or(EncryptError::ChainExhausted)?;
        let (next_chain, message_key) = self.sending_chain.step();
        let ad = message_associated_data(
            &self.associated_data,
            &self.sending_ratchet.public,
            counter,
            self.previous_counter,
        );
        let ciphertext = message_key.encrypt(INFO_MESSAGE_KEYS, plaintext, &ad);
        self.sending_chain = next_chain;
        self.sending_index = next_index;
        let message = RatchetMessage {
            ratchet_key: self.sending_ratchet.public,
            counter,
            previous_counter: self.previous_counter,
            ciphertext,
        };
        Ok(match &self.pending_prekey {
            None => CiphertextMessage::Ratchet(message),
            Some(pending) => CiphertextMessage::PreKey(Box::new(PreKeyMessage {
                initiator_identity: self.local_identity.clone(),
                base_key: DhPublic::from(self.id),
                signed_prekey_id: pending.signed_prekey_id,
                one_time_prekey_id: pending.one_time_prekey_id,
                kem_prekey_id: pending.kem_prekey_id,
                kem_ciphertext: pending.kem_ciphertext.clone(),
                message,
            })),
        })
    }

    /// Decrypts one ratchet message. On any error the session is unchanged
    /// and stays usable.
    pub fn decrypt(
        &mut self,
        message: &RatchetMessage,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
        let ad = message_associated_data(
            &self.associated_data,
            &message.ratchet_key,
            message.counter,
            message.previous_counter,
        );
        let known_chain = self
            .receiving
            .iter()
            .position(|chain| chain.ratchet_key == message.ratchet_key);
        let plaintext = match known_chain {
            Some(position) => self.decrypt_in_chain(position, message, &ad)?,
            None => self.decrypt_with_ratchet_step(message, &ad, rng)?,
        };
        self.pending_prekey = None;
        Ok(plaintext)
    }

    fn decrypt_in_chain(
        &mut self,
        position: usize,
        message: &RatchetMessage,
        ad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
        let Some(chain) = self.receiving.get_mut(position) else {
            return Err(DecryptError::NoMatchingSession);
        };
        if message.counter < chain.index {
            let stored = self
                .skipped
                .position(&message.ratchet_key, message.counter)
                .ok_or(DecryptError::DuplicateOrExpired {
                    counter: message.counter,
                })?;
            let key =
                self.skipped
                    .get(stored)
                    .cloned()
                    .ok_or(DecryptError::DuplicateOrExpired {
                        counter: message.counter,
                    })?;
            let plaintext = key.decrypt(INFO_MESSAGE_KEYS, &message.ciphertext, ad)?;
            self.skipped.remove(stored);
            return Ok(plaintext);
        }
        let advance = chain.advance_to(message.counter)?;
        let plaintext = advance
            .message_key
            .decrypt(INFO_MESSAGE_KEYS, &message.ciphertext, ad)?;
        chain.commit(advance.next_chain_key, advance.next_index);
        self.skipped.extend(message.ratchet_key, advance.skipped);
        Ok(plaintext)
    }

    fn decrypt_with_ratchet_step(
        &mut self,
        message: &RatchetMessage,
        ad: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
        // Keys left in the current receiving chain, up to the sender's PN.
        // If more are missing than MAX_MESSAGE_GAP, those messages are given
        // up on, but the new chain is still accepted: refusing it would
        // strand the session for good.
        let previous = match self.receiving.front() {
            Some(chain) if message.previous_counter > chain.index => {
                super::receiver_chain::advance(
                    &chain.chain_key,
                    chain.index,
                    message.previous_counter - 1,
                )
                .ok()
                .map(|advance| (chain.ratchet_key, advance))
            }
            _ => None,
        };
        let step = RatchetStep::receive(&self.root_key, &self.sending_ratchet, message)?;
        let advance = step.chain.advance_to(message.counter)?;
        let plaintext = advance
            .message_key
            .decrypt(INFO_MESSAGE_KEYS, &message.ciphertext, ad)?;

        let sending_ratchet = DhKeyPair::generate(rng);
        let (root_key, sending_chain) = step
            .root_key
            .advance(&*dh(&sending_ratchet.secret, &message.ratchet_key)?);

        // Authenticated: commit.
        if let Some((ratchet_key, previous)) = previous {
            // The sender has closed that chain at PN: move it to its end so
            // its remaining keys live only in the skipped store.
            let mut skipped = previous.skipped;
            skipped.push((previous.next_index - 1, previous.message_key));
            if let Some(chain) = self.receiving.front_mut() {
                chain.commit(previous.next_chain_key, previous.next_index);
            }
            self.skipped.extend(ratchet_key, skipped);
        }
        let mut chain = step.chain;
        chain.commit(advance.next_chain_key, advance.next_index);
        self.skipped.extend(message.ratchet_key, advance.skipped);
        self.receiving.push_front(chain);
        while self.receiving.len() > MAX_RECEIVER_CHAINS {
            if let Some(dropped) = self.receiving.pop_back() {
                self.skipped.forget_chain(&dropped.ratchet_key);
            }
        }
        self.root_key = root_key;
        self.previous_counter = self.sending_index;
        self.sending_ratchet = sending_ratchet;
        self.sending_chain = sending_chain;
        self.sending_index = 0;
        Ok(plaintext)
    }
}

/// The receiving half of a DH ratchet step, computed but not committed.
pub(crate) struct RatchetStep {
    pub(crate) root_key: RootKey,
    pub(crate) chain: ReceiverChain,
}

impl RatchetStep {
    /// KDF_RK(rk, DH(our ratchet key, their new ratchet key)).
    pub(crate) fn receive(
        root_key: &RootKey,
        our_ratchet: &DhKeyPair,
        message: &RatchetMessage,
    ) -> Result<Self, NonContributoryKey> {
        let shared = dh(&our_ratchet.secret, &message.ratchet_key)?;
        let (root_key, chain_key) = root_key.advance(&shared);
        Ok(Self {
            root_key,
            chain: ReceiverChain {
                ratchet_key: message.ratchet_key,
                chain_key,
                index: 0,
            },
        })
    }
}
