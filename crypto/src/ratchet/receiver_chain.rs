//! Receiving chains and the store of skipped message keys.
//!
//! Advancing a chain is computed into an [`Advance`] value without touching
//! the chain; the session commits it only after the message authenticates,
//! so a forged message cannot move a chain or fill the skipped-key store.

use std::collections::VecDeque;

use x25519_dalek::PublicKey as DhPublic;

use super::chain_key::ChainKey;
use super::message_key::MessageKey;

/// A message may be at most this many positions ahead of the next expected
/// one in its chain; further is refused. Bounds the work (HMACs) and memory a
/// single message can cost.
pub const MAX_MESSAGE_GAP: u32 = 2_000;
/// Skipped message keys stored per session, across all its chains. When
/// full, the oldest key is dropped (its message can no longer be decrypted).
pub const MAX_SKIPPED_KEYS: usize = 5_000;
/// Receiving chains kept per session, newest first: messages delayed across
/// more DH ratchet steps than this are lost.
pub const MAX_RECEIVER_CHAINS: usize = 5;

/// The chain of messages from one of the peer's ratchet keys.
pub(crate) struct ReceiverChain {
    pub(crate) ratchet_key: DhPublic,
    pub(crate) chain_key: ChainKey,
    pub(crate) index: u32,
}

/// The outcome of advancing a chain to a counter, not yet committed.
pub(crate) struct Advance {
    pub(crate) message_key: MessageKey,
    pub(crate) next_chain_key: ChainKey,
    pub(crate) next_index: u32,
    pub(crate) skipped: Vec<(u32, MessageKey)>,
}

/// The counter is further ahead than [`MAX_MESSAGE_GAP`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GapTooLarge(pub(crate) u32);

impl ReceiverChain {
    /// The key for message `counter` (which must be `>= self.index`) and the
    /// keys skipped on the way.
    pub(crate) fn advance_to(&self, counter: u32) -> Result<Advance, GapTooLarge> {
        advance(&self.chain_key, self.index, counter)
    }

    pub(crate) fn commit(&mut self, next_chain_key: ChainKey, next_index: u32) {
        self.chain_key = next_chain_key;
        self.index = next_index;
    }
}

/// Advances `chain_key` (at `index`) to `counter`.
pub(crate) fn advance(
    chain_key: &ChainKey,
    index: u32,
    counter: u32,
) -> Result<Advance, GapTooLarge> {
    let gap = counter.saturating_sub(index);
    if gap > MAX_MESSAGE_GAP {
        return Err(GapTooLarge(gap));
    }
    let next_index = counter.checked_add(1).ok_or(GapTooLarge(gap))?;
    let mut skipped = Vec::with_capacity(gap as usize);
    let (mut chain, mut key) = chain_key.step();
    for skipped_index in index..counter {
        skipped.push((skipped_index, key));
        (chain, key) = chain.step();
    }
    Ok(Advance {
        message_key: key,
        next_chain_key: chain,
        next_index,
        skipped,
    })
}

/// Keys of messages not yet received, oldest first.
#[derive(Default)]
pub(crate) struct SkippedKeys {
    keys: VecDeque<(DhPublic, u32, MessageKey)>,
}

impl SkippedKeys {
    pub(crate) fn position(&self, ratchet_key: &DhPublic, counter: u32) -> Option<usize> {
        self.keys
            .iter()
            .position(|(key, n, _)| *n == counter && key == ratchet_key)
    }

    pub(crate) fn get(&self, position: usize) -> Option<&MessageKey> {
        self.keys.get(position).map(|(_, _, key)| key)
    }

    pub(crate) fn remove(&mut self, position: usize) {
        self.keys.remove(position);
    }

    pub(crate) fn extend(&mut self, ratchet_key: DhPublic, keys: Vec<(u32, MessageKey)>) {
        for (counter, key) in keys {
            if self.keys.len() >= MAX_SKIPPED_KEYS {
                self.keys.pop_front();
            }
            self.keys.push_back((ratchet_key, counter, key));
        }
    }

    /// Drops the keys of a chain that is no longer kept: they could never
    /// be used again.
    pub(crate) fn forget_chain(&mut self, ratchet_key: &DhPublic) {
        self.keys.retain(|(key, _, _)| key != ratchet_key);
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &(DhPublic, u32, MessageKey)> {
        self.keys.iter()
    }

    pub(crate) fn push(&mut self, ratchet_key: DhPublic, counter: u32, key: MessageKey) {
        self.extend(ratchet_key, vec![(counter, key)]);
    }
}
