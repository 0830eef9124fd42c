//! Encoding a [`Session`] for storage and decoding it back.
//!
//! The encoded form holds every secret of the session: callers encrypt it at
//! rest. The generated state types wipe themselves on drop.

use std::collections::VecDeque;

use zeroize::Zeroizing;

use super::chain_key::ChainKey;
use super::message::session_associated_data;
use super::message_key::MessageKey;
use super::receiver_chain::{MAX_RECEIVER_CHAINS, MAX_SKIPPED_KEYS, ReceiverChain, SkippedKeys};
use super::root_key::RootKey;
use super::session::{PendingPreKey, Session};
use crate::error::{DecodeError, MAX_STATE_LEN, check_version, decode_proto, fixed};
use crate::keys::{DhKeyPair, IdentityKey, dh_public};
use crate::proto::state;

const SESSION_STATE_VERSION: u32 = 1;

fn secret32(field: &'static str, bytes: &[u8]) -> Result<Box<[u8; 32]>, DecodeError> {
    let mut out = Box::new([0u8; 32]);
    if bytes.len() != 32 {
        return Err(DecodeError::BadLength {
            field,
            actual: bytes.len(),
            expected: 32,
        });
    }
    out.copy_from_slice(bytes);
    Ok(out)
}

fn identity(field: &'static str, bytes: &[u8]) -> Result<IdentityKey, DecodeError> {
    IdentityKey::from_bytes(bytes).map_err(|_| DecodeError::InvalidValue(field))
}

impl Session {
    /// Encodes the session for storage (encrypt it at rest).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(prost::Message::encode_to_vec(&self.to_state()))
    }

    /// Decodes a session written by [`Self::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let state: state::SessionState = decode_proto(bytes, MAX_STATE_LEN)?;
        Self::from_state(&state)
    }

    pub(crate) fn to_state(&self) -> state::SessionState {
        state::SessionState {
            version: SESSION_STATE_VERSION,
            session_id: self.id.to_vec(),
            local_identity: self.local_identity.to_bytes(),
            remote_identity: self.remote_identity.to_bytes(),
            local_is_initiator: self.local_is_initiator,
            root_key: self.root_key.as_bytes().to_vec(),
            sending_ratchet: Some(self.sending_ratchet.to_state()),
            sending_chain: Some(state::ChainState {
                ratchet_key: self.sending_ratchet.public.to_bytes().to_vec(),
                chain_key: self.sending_chain.as_bytes().to_vec(),
                index: self.sending_index,
            }),
            previous_counter: self.previous_counter,
            receiving_chains: self
                .receiving
                .iter()
                .map(|chain| state::ChainState {
                    ratchet_key: chain.ratchet_key.to_bytes().to_vec(),
                    chain_key: chain.chain_key.as_bytes().to_vec(),
                    index: chain.index,
                })
                .collect(),
            skipped_keys: self
                .skipped
                .iter()
                .map(|(ratchet_key, counter, key)| state::SkippedKey {
                    ratchet_key: ratchet_key.to_bytes().to_vec(),
                    counter: *counter,
                    message_key: key.as_bytes().to_vec(),
                })
                .collect(),
            pending_prekey: self.pending_prekey.as_ref().map(|p| state::PendingPreKey {
                base_key: self.id.to_vec(),
                signed_prekey_id: p.signed_prekey_id,
                one_time_prekey_id: p.one_time_prekey_id,
                kem_prekey_id: p.kem_prekey_id,
                kem_ciphertext: p.kem_ciphertext.clone(),
            }),
            post_quantum: self.post_quantum,
        }
    }

    pub(crate) fn from_state(state: &state::SessionState) -> Result<Self, DecodeError> {
        check_version(state.version, SESSION_STATE_VERSION)?;
        let local_identity = identity("local_identity", &state.local_identity)?;
        let remote_identity = identity("remote_identity", &state.remote_identity)?;
        let associated_data = if state.local_is_initiator {
            session_associated_data(&local_identity, &remote_identity)
        } else {
            session_associated_data(&remote_identity, &local_identity)
        };
        if let Some(pending) = &state.pending_prekey {
            let expected = if pending.kem_prekey_id.is_some() {
                crate::prekeys::KEM_CIPHERTEXT_LEN
            } else {
                0
            };
            if pending.kem_ciphertext.len() != expected {
                return Err(DecodeError::BadLength {
                    field: "pending_prekey.kem_ciphertext",
                    actual: pending.kem_ciphertext.len(),
                    expected,
                });
            }
        }
        let sending = state
            .sending_chain
            .as_ref()
            .ok_or(DecodeError::MissingField("sending_chain"))?;
        if state.receiving_chains.len() > MAX_RECEIVER_CHAINS
            || state.skipped_keys.len() > MAX_SKIPPED_KEYS
        {
            return Err(DecodeError::InvalidValue("session limits"));
        }
        let receiving = state
            .receiving_chains
            .iter()
            .map(|chain| {
                Ok(ReceiverChain {
                    ratchet_key: dh_public("ratchet_key", &chain.ratchet_key)?,
                    chain_key: ChainKey::new(secret32("chain_key", &chain.chain_key)?),
                    index: chain.index,
                })
            })
            .collect::<Result<VecDeque<_>, DecodeError>>()?;
        let mut skipped = SkippedKeys::default();
        for key in &state.skipped_keys {
            skipped.push(
                dh_public("ratchet_key", &key.ratchet_key)?,
                key.counter,
                MessageKey::new(secret32("message_key", &key.message_key)?),
            );
        }
        Ok(Self {
            id: fixed("session_id", &state.session_id)?,
            local_identity,
            remote_identity,
            local_is_initiator: state.local_is_initiator,
            associated_data,
            root_key: RootKey::new(secret32("root_key", &state.root_key)?),
            sending_ratchet: DhKeyPair::from_state(state.sending_ratchet.as_ref())?,
            sending_chain: ChainKey::new(secret32("chain_key", &sending.chain_key)?),
            sending_index: sending.index,
            previous_counter: state.previous_counter,
            receiving,
            skipped,
            pending_prekey: state.pending_prekey.as_ref().map(|p| PendingPreKey {
                signed_prekey_id: p.signed_prekey_id,
                one_time_prekey_id: p.one_time_prekey_id,
                kem_prekey_id: p.kem_prekey_id,
                kem_ciphertext: p.kem_ciphertext.clone(),
            }),
            post_quantum: state.post_quantum,
        })
    }
}
