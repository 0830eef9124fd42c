//! Session setup: the initiator's side from a verified bundle, the
//! responder's side from a [`PreKeyMessage`] and the device's prekeys.
//!
//! The responder decrypts the first message before anything is committed:
//! the one-time prekeys are retired (and the base key remembered) only when
//! it authenticates, so a forged initiation burns nothing, and a replayed one
//! finds its prekey gone and fails.

use std::collections::VecDeque;

use rand_core::CryptoRngCore;
use thiserror::Error;
use zeroize::Zeroizing;

use super::message::{PreKeyMessage, message_associated_data, session_associated_data};
use super::message_key::INFO_MESSAGE_KEYS;
use super::receiver_chain::SkippedKeys;
use super::root_key::RootKey;
use super::session::{PendingPreKey, RatchetStep, Session};
use crate::keys::{DhKeyPair, IdentityKeyPair, NonContributoryKey, dh};
use crate::prekey_store::PreKeyStore;
use crate::prekeys::PreKeyBundle;
use crate::{pqxdh, x3dh};

/// A session could not be set up.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionSetupError {
    /// A DH in the agreement produced an all-zero output.
    #[error("non-contributory key in the agreement")]
    NonContributoryKey,
    /// The initiation names a signed prekey this device does not have (it
    /// was retired, or never existed).
    #[error("unknown signed prekey {0}")]
    UnknownSignedPreKey(u32),
    /// The initiation names a one-time prekey that is gone: already used
    /// (a replay) or never issued.
    #[error("unknown or already used one-time prekey {0}")]
    UnknownOneTimePreKey(u32),
    /// The initiation names an ML-KEM prekey that is gone.
    #[error("unknown or already used kem prekey {0}")]
    UnknownKemPreKey(u32),
    /// The initiation was already accepted once.
    #[error("replayed initiation")]
    ReplayedInitiation,
    /// The initiation used no one-time prekey, and the signed prekey it
    /// names has remembered as many such initiations as it may: it cannot
    /// tell a replay from a new one, so it takes none until the device
    /// rotates (the sender must fetch a fresh bundle).
    #[error("signed prekey {0} takes no more initiations without a one-time prekey")]
    ReplayListFull(u32),
    /// ML-KEM encapsulation to the bundle's key failed.
    #[error("kem encapsulation failed")]
    KemEncapsulation,
    /// The first message did not authenticate: tampered, or a wrong secret.
    #[error("the first message failed authentication")]
    FirstMessageRejected,
    /// The bundle has no signed ML-KEM prekey, so the session would be
    /// classical (X3DH). Refused: the server withheld the key (a downgrade
    /// attempt), or the device runs a client without post-quantum keys.
    #[error(
        "the bundle has no signed ML-KEM prekey: a classical (X3DH) session is refused; the server may have withheld the key (a downgrade attempt), or the device's client is too old"
    )]
    MissingKemPreKey,
    /// The initiation carries no ML-KEM ciphertext (X3DH). Refused: a
    /// session recorded now could be decrypted later by whoever breaks
    /// X25519.
    #[error("the initiation is classical (X3DH, no ML-KEM): refused as a downgrade")]
    ClassicalInitiation,
}

impl From<NonContributoryKey> for SessionSetupError {
    fn from(_: NonContributoryKey) -> Self {
        Self::NonContributoryKey
    }
}

impl Session {
    /// Starts a session with the device a verified bundle belongs to, by
    /// PQXDH. A bundle without an ML-KEM prekey is refused
    /// ([`SessionSetupError::MissingKemPreKey`]): there is no classical
    /// fallback for a server to force.
    pub fn initiate(
        identity: &IdentityKeyPair,
        bundle: &PreKeyBundle,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Session, SessionSetupError> {
        let kem_prekey = bundle
            .kem_prekey
            .as_ref()
            .ok_or(SessionSetupError::MissingKemPreKey)?;
        let base = DhKeyPair::generate(rng);
        let one_time = bundle.one_time_prekey.as_ref();
        let dhs = x3dh::initiator_dhs(
            identity,
            &base,
            &bundle.identity,
            &bundle.signed_prekey.public,
            one_time.map(|k| &k.public),
        )?;
        let (kem_ciphertext, kem_secret) = pqxdh::encapsulate(&kem_prekey.public, rng)
            .ok_or(SessionSetupError::KemEncapsulation)?;
        let shared = x3dh::shared_secret(&dhs, &kem_secret);

        // Signal's RatchetInitAlice: the responder's signed prekey is its
        // first ratchet key.
        let sending_ratchet = DhKeyPair::generate(rng);
        let (root_key, sending_chain) = RootKey::new(shared)
            .advance(&*dh(&sending_ratchet.secret, &bundle.signed_prekey.public)?);
        Ok(Session {
            id: base.public.to_bytes(),
            local_identity: identity.public().clone(),
            remote_identity: bundle.identity.clone(),
            local_is_initiator: true,
            associated_data: session_associated_data(identity.public(), &bundle.identity),
            root_key,
            sending_ratchet,
            sending_chain,
            sending_index: 0,
            previous_counter: 0,
            receiving: VecDeque::new(),
            skipped: SkippedKeys::default(),
            pending_prekey: Some(PendingPreKey {
                signed_prekey_id: bundle.signed_prekey.id,
                one_time_prekey_id: one_time.map(|k| k.id),
                kem_prekey_id: Some(kem_prekey.id),
                kem_ciphertext,
            }),
            post_quantum: true,
        })
    }

    /// Accepts an initiation: derives the session from this device's
    /// prekeys, decrypts the message it carries, and only then retires the
    /// one-time prekeys it used. Returns the session and the plaintext. A
    /// classical initiation (no ML-KEM) is refused before any work.
    pub fn accept(
        identity: &IdentityKeyPair,
        prekeys: &mut PreKeyStore,
        message: &PreKeyMessage,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Session, Zeroizing<Vec<u8>>), SessionSetupError> {
        let kem_prekey_id = message
            .kem_prekey_id
            .ok_or(SessionSetupError::ClassicalInitiation)?;
        let base_key = message.base_key.to_bytes();
        let signed = prekeys.signed_prekey(message.signed_prekey_id).ok_or(
            SessionSetupError::UnknownSignedPreKey(message.signed_prekey_id),
        )?;
        let one_time = match message.one_time_prekey_id {
            Some(id) => Some(
                prekeys
                    .one_time_prekey(id)
                    .ok_or(SessionSetupError::UnknownOneTimePreKey(id))?,
            ),
            None if prekeys.has_seen_base_key(message.signed_prekey_id, &base_key) => {
                return Err(SessionSetupError::ReplayedInitiation);
            }
            None if prekeys.replay_list_full(message.signed_prekey_id) => {
                return Err(SessionSetupError::ReplayListFull(message.signed_prekey_id));
            }
            None => None,
        };
        let kem = prekeys
            .kem_prekey(kem_prekey_id)
            .ok_or(SessionSetupError::UnknownKemPreKey(kem_prekey_id))?;
        let kem_secret = pqxdh::decapsulate(&kem.secret, &message.kem_ciphertext)
            .ok_or(SessionSetupError::FirstMessageRejected)?;
        let dhs = x3dh::responder_dhs(
            identity,
            &signed.key,
            one_time,
            &message.initiator_identity,
            &message.base_key,
        )?;
        let shared = x3dh::shared_secret(&dhs, &kem_secret);
        let session = accept_first_message(identity, &signed.key, shared, message, rng)?;
        prekeys.consume(
            message.signed_prekey_id,
            base_key,
            message.one_time_prekey_id,
            message.kem_prekey_id,
        );
        Ok(session)
    }
}

/// Signal's RatchetInitBob followed by the first decryption, all in locals.
fn accept_first_message(
    identity: &IdentityKeyPair,
    signed_prekey: &DhKeyPair,
    shared: Box<[u8; 32]>,
    message: &PreKeyMessage,
    rng: &mut impl CryptoRngCore,
) -> Result<(Session, Zeroizing<Vec<u8>>), SessionSetupError> {
    let inner = &message.message;
    let associated_data = session_associated_data(&message.initiator_identity, identity.public());
    let ad = message_associated_data(
        &associated_data,
        &inner.ratchet_key,
        inner.counter,
        inner.previous_counter,
    );
    let step = RatchetStep::receive(&RootKey::new(shared), signed_prekey, inner)?;
    let advance = step
        .chain
        .advance_to(inner.counter)
        .map_err(|_| SessionSetupError::FirstMessageRejected)?;
    let plaintext = advance
        .message_key
        .decrypt(INFO_MESSAGE_KEYS, &inner.ciphertext, &ad)
        .map_err(|_| SessionSetupError::FirstMessageRejected)?;

    let sending_ratchet = DhKeyPair::generate(rng);
    let (root_key, sending_chain) = step
        .root_key
        .advance(&*dh(&sending_ratchet.secret, &inner.ratchet_key)?);
    let mut chain = step.chain;
    chain.commit(advance.next_chain_key, advance.next_index);
    let mut skipped = SkippedKeys::default();
    skipped.extend(inner.ratchet_key, advance.skipped);
    let session = Session {
        id: message.base_key.to_bytes(),
        local_identity: identity.public().clone(),
        remote_identity: message.initiator_identity.clone(),
        local_is_initiator: false,
        associated_data,
        root_key,
        sending_ratchet,
        sending_chain,
        sending_index: 0,
        previous_counter: 0,
        receiving: VecDeque::from([chain]),
        skipped,
        pending_prekey: None,
        post_quantum: true,
    };
    Ok((session, plaintext))
}
