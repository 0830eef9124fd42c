//! [`Memory`] as a [`Storage`]: what the shell's SQLCipher store keeps,
//! in maps, with the same conditions on every change as its queries
//! (`client-reference/src/store/`). Sessions, prekeys and Sender Key
//! sessions are kept serialised, as the store keeps them. Any call can be
//! made to fail ([`Memory::fail`]), as a full disk or a crash would.

use std::collections::BTreeSet;

use starling_crypto::group::{InboundGroupSession, OutboundGroupSession};
use starling_crypto::ratchet::PeerSessions;
use starling_crypto::{IdentityKey, PreKeyStore};

use super::{Fake, Memory, StoredMessage};
use crate::conversation::Conversation;
use crate::records::{GroupRecord, HeldGroupMessage, InboxItem, NewMessage};
use crate::sealed::SealedRecord;
use crate::storage::{ContactRecord, Storage};
use crate::tofu::TrustChange;
use crate::transparency::{LogRecord, OwnLogState};

impl Memory {
    /// Stages an item unless one of its envelope is staged already (the
    /// store's `INSERT OR IGNORE`).
    fn stage(&self, item: &InboxItem) {
        let mut inbox = self.inbox.borrow_mut();
        if !inbox.iter().any(|i| i.envelope_id == item.envelope_id) {
            inbox.push(item.clone());
        }
    }

    /// Applies `change` to the first message matching `wanted`; false when
    /// none does.
    fn change_message(
        &self,
        wanted: impl Fn(&StoredMessage) -> bool,
        change: impl FnOnce(&mut StoredMessage),
    ) -> bool {
        let mut messages = self.messages.borrow_mut();
        match messages.iter_mut().find(|m| wanted(m)) {
            Some(message) => {
                change(message);
                true
            }
            None => false,
        }
    }
}

/// Whether a stored message is `message_id` in `conversation`.
fn is(message: &StoredMessage, message_id: &[u8], conversation: &Conversation) -> bool {
    message.message.message_id == message_id && message.message.conversation == *conversation
}

impl Storage for Memory {
    type Error = Fake;

    async fn load_prekeys(&self) -> Result<PreKeyStore, Fake> {
        self.check("load_prekeys")?;
        let bytes = self.saved.borrow().clone().ok_or(Fake)?;
        PreKeyStore::from_bytes(&bytes).map_err(|_| Fake)
    }

    async fn save_prekeys(&self, prekeys: &PreKeyStore) -> Result<(), Fake> {
        self.check("save_prekeys")?;
        *self.saved.borrow_mut() = Some(prekeys.to_bytes().to_vec());
        Ok(())
    }

    async fn identity_keys(&self, username: &str) -> Result<Vec<(u32, IdentityKey)>, Fake> {
        self.check("identity_keys")?;
        Ok(self
            .identities
            .borrow()
            .get(username)
            .cloned()
            .unwrap_or_default())
    }

    async fn contact(&self, username: &str) -> Result<ContactRecord, Fake> {
        self.check("contact")?;
        Ok(self
            .contacts
            .borrow()
            .get(username)
            .cloned()
            .unwrap_or_default())
    }

    async fn set_verified(&self, username: &str) -> Result<(), Fake> {
        self.check("set_verified")?;
        let mut contacts = self.contacts.borrow_mut();
        let contact = contacts.entry(username.to_owned()).or_default();
        contact.verified = true;
        contact.identity_changed = false;
        self.no_vouch
            .borrow_mut()
            .retain(|(user, _)| user != username);
        Ok(())
    }

    async fn vouching_key(
        &self,
        username: &str,
        device_id: u32,
    ) -> Result<Option<IdentityKey>, Fake> {
        self.check("vouching_key")?;
        if self
            .no_vouch
            .borrow()
            .contains(&(username.to_owned(), device_id))
        {
            return Ok(None);
        }
        Ok(self
            .identities
            .borrow()
            .get(username)
            .and_then(|keys| keys.iter().find(|(d, _)| *d == device_id))
            .map(|(_, key)| key.clone()))
    }

    async fn observe_identity(
        &self,
        username: &str,
        device_id: u32,
        key: &IdentityKey,
        (own_device, vouched_by): (Option<u32>, Option<u32>),
    ) -> Result<TrustChange, Fake> {
        self.check("observe_identity")?;
        let mut identities = self.identities.borrow_mut();
        let devices = identities.entry(username.to_owned()).or_default();
        // An account stays known once seen, as in the real store, even
        // when all its devices were forgotten.
        let first = self.known.borrow_mut().insert(username.to_owned());
        let new_device = match devices.iter_mut().find(|(d, _)| *d == device_id) {
            Some((_, old)) if old == key => return Ok(TrustChange::Known),
            Some((_, old)) => {
                *old = key.clone();
                false
            }
            None => {
                devices.push((device_id, key.clone()));
                devices.sort_by_key(|(d, _)| *d);
                true
            }
        };
        let gate = (username.to_owned(), device_id);
        if new_device && vouched_by.is_some() {
            self.no_vouch.borrow_mut().remove(&gate);
            return Ok(TrustChange::Linked);
        }
        if first && own_device.is_none() {
            return Ok(TrustChange::FirstContact);
        }
        // Warned of (an own device is, unless vouched for): it vouches for
        // nothing until verified.
        self.no_vouch.borrow_mut().insert(gate);
        if first {
            return Ok(TrustChange::FirstContact);
        }
        if own_device.is_none() {
            self.contacts
                .borrow_mut()
                .entry(username.to_owned())
                .or_default()
                .identity_changed = true;
        }
        Ok(TrustChange::Changed)
    }

    async fn forget_device(&self, username: &str, device_id: u32) -> Result<(), Fake> {
        self.check("forget_device")?;
        if let Some(devices) = self.identities.borrow_mut().get_mut(username) {
            devices.retain(|(d, _)| *d != device_id);
        }
        self.sessions
            .borrow_mut()
            .remove(&(username.to_owned(), device_id));
        Ok(())
    }

    async fn sessions(&self, username: &str, device_id: u32) -> Result<PeerSessions, Fake> {
        self.check("sessions")?;
        match self
            .sessions
            .borrow()
            .get(&(username.to_owned(), device_id))
        {
            Some(bytes) => PeerSessions::from_bytes(bytes).map_err(|_| Fake),
            None => Ok(PeerSessions::new()),
        }
    }

    async fn save_sessions(
        &self,
        username: &str,
        device_id: u32,
        sessions: &PeerSessions,
    ) -> Result<(), Fake> {
        self.check("save_sessions")?;
        self.sessions.borrow_mut().insert(
            (username.to_owned(), device_id),
            sessions.to_bytes().to_vec(),
        );
        Ok(())
    }

    async fn envelope_seen(&self, envelope_id: &[u8]) -> Result<bool, Fake> {
        self.check("envelope_seen")?;
        Ok(self.seen.borrow().contains(envelope_id))
    }

    async fn inbox_item(&self, envelope_id: &[u8]) -> Result<Option<InboxItem>, Fake> {
        self.check("inbox_item")?;
        Ok(self
            .inbox
            .borrow()
            .iter()
            .find(|i| i.envelope_id == envelope_id)
            .cloned())
    }

    async fn pending_inbox(&self) -> Result<Vec<InboxItem>, Fake> {
        self.check("pending_inbox")?;
        Ok(self.inbox.borrow().clone())
    }

    async fn finish_envelope(&self, envelope_id: &[u8]) -> Result<(), Fake> {
        self.check("finish_envelope")?;
        self.inbox
            .borrow_mut()
            .retain(|i| i.envelope_id != envelope_id);
        self.seen.borrow_mut().insert(envelope_id.to_vec());
        Ok(())
    }

    async fn stage_pairwise(
        &self,
        username: &str,
        device_id: u32,
        sessions: &PeerSessions,
        consumed: Option<&PreKeyStore>,
        item: &InboxItem,
    ) -> Result<(), Fake> {
        self.check("stage_pairwise")?;
        self.stage(item);
        self.sessions.borrow_mut().insert(
            (username.to_owned(), device_id),
            sessions.to_bytes().to_vec(),
        );
        if let Some(prekeys) = consumed {
            *self.saved.borrow_mut() = Some(prekeys.to_bytes().to_vec());
        }
        Ok(())
    }

    async fn group(&self, group_id: &[u8]) -> Result<Option<GroupRecord>, Fake> {
        self.check("group")?;
        Ok(self.groups.borrow().get(group_id).cloned())
    }

    async fn groups(&self) -> Result<Vec<GroupRecord>, Fake> {
        self.check("groups")?;
        Ok(self.groups.borrow().values().cloned().collect())
    }

    async fn save_group(&self, group: &GroupRecord) -> Result<(), Fake> {
        self.check("save_group")?;
        // The outbound session stays, as the store's upsert leaves it.
        self.groups
            .borrow_mut()
            .insert(group.group_id.clone(), group.clone());
        Ok(())
    }

    async fn outbound_group_session(
        &self,
        group_id: &[u8],
    ) -> Result<Option<(OutboundGroupSession, BTreeSet<String>)>, Fake> {
        self.check("outbound_group_session")?;
        if !self.groups.borrow().contains_key(group_id) {
            return Ok(None);
        }
        match self.outbound.borrow().get(group_id) {
            Some((bytes, holders)) => {
                let session = OutboundGroupSession::from_bytes(bytes).map_err(|_| Fake)?;
                Ok(Some((session, holders.clone())))
            }
            None => Ok(None),
        }
    }

    async fn save_outbound_group_session(
        &self,
        group_id: &[u8],
        session: &OutboundGroupSession,
        holders: &BTreeSet<String>,
    ) -> Result<(), Fake> {
        self.check("save_outbound_group_session")?;
        // An update of the group's row: nothing without the group.
        if self.groups.borrow().contains_key(group_id) {
            self.outbound.borrow_mut().insert(
                group_id.to_vec(),
                (session.to_bytes().to_vec(), holders.clone()),
            );
        }
        Ok(())
    }

    async fn reset_outbound_group_session(&self, group_id: &[u8]) -> Result<(), Fake> {
        self.check("reset_outbound_group_session")?;
        self.outbound.borrow_mut().remove(group_id);
        self.given.borrow_mut().retain(|(g, _), _| g != group_id);
        Ok(())
    }

    async fn inbound_group_session(
        &self,
        group_id: &[u8],
        sender: &str,
        device_id: u32,
    ) -> Result<Option<InboundGroupSession>, Fake> {
        self.check("inbound_group_session")?;
        let key = (group_id.to_vec(), sender.to_owned(), device_id);
        self.inbound
            .borrow()
            .get(&key)
            .map(|bytes| InboundGroupSession::from_bytes(bytes).map_err(|_| Fake))
            .transpose()
    }

    async fn save_inbound_group_session(
        &self,
        group_id: &[u8],
        sender: &str,
        device_id: u32,
        session: &InboundGroupSession,
        item: Option<&InboxItem>,
    ) -> Result<(), Fake> {
        self.check("save_inbound_group_session")?;
        if let Some(item) = item {
            self.stage(item);
            self.held
                .borrow_mut()
                .retain(|h| h.envelope_id != item.envelope_id);
        }
        self.inbound.borrow_mut().insert(
            (group_id.to_vec(), sender.to_owned(), device_id),
            session.to_bytes().to_vec(),
        );
        Ok(())
    }

    async fn group_signing_key_holders(
        &self,
        group_id: &[u8],
        signing_key: &[u8; 32],
    ) -> Result<Vec<(String, u32)>, Fake> {
        self.check("group_signing_key_holders")?;
        let mut holders = Vec::new();
        for ((group, user, device), bytes) in self.inbound.borrow().iter() {
            if group != group_id {
                continue;
            }
            let session = InboundGroupSession::from_bytes(bytes).map_err(|_| Fake)?;
            if session.signing_keys().contains(signing_key) {
                holders.push((user.clone(), *device));
            }
        }
        Ok(holders)
    }

    async fn drop_inbound_group_sessions(
        &self,
        group_id: &[u8],
        member: Option<&str>,
    ) -> Result<(), Fake> {
        self.check("drop_inbound_group_sessions")?;
        self.inbound.borrow_mut().retain(|(group, user, _), _| {
            group != group_id || member.is_some_and(|member| member != user)
        });
        Ok(())
    }

    async fn record_given_key(
        &self,
        group_id: &[u8],
        holders: &[String],
        distribution: &[u8],
        at_millis: i64,
    ) -> Result<(), Fake> {
        self.check("record_given_key")?;
        let mut given = self.given.borrow_mut();
        for holder in holders {
            given
                .entry((group_id.to_vec(), holder.clone()))
                .or_insert_with(|| (distribution.to_vec(), at_millis));
        }
        Ok(())
    }

    async fn given_key(
        &self,
        group_id: &[u8],
        holder: &str,
    ) -> Result<Option<(zeroize::Zeroizing<Vec<u8>>, i64)>, Fake> {
        self.check("given_key")?;
        Ok(self
            .given
            .borrow()
            .get(&(group_id.to_vec(), holder.to_owned()))
            .map(|(d, at)| (zeroize::Zeroizing::new(d.clone()), *at)))
    }

    async fn forget_given_keys(&self, group_id: &[u8]) -> Result<(), Fake> {
        self.check("forget_given_keys")?;
        self.given.borrow_mut().retain(|(g, _), _| g != group_id);
        Ok(())
    }

    async fn hold_group_message(&self, held: &HeldGroupMessage) -> Result<(), Fake> {
        self.check("hold_group_message")?;
        let mut all = self.held.borrow_mut();
        all.retain(|h| h.envelope_id != held.envelope_id);
        all.push(held.clone());
        self.seen.borrow_mut().insert(held.envelope_id.clone());
        Ok(())
    }

    async fn held_group_messages(
        &self,
        group_id: &[u8],
        sender: &str,
        device_id: u32,
    ) -> Result<Vec<HeldGroupMessage>, Fake> {
        self.check("held_group_messages")?;
        let mut held: Vec<HeldGroupMessage> = self
            .held
            .borrow()
            .iter()
            .filter(|h| {
                h.group_id == group_id && h.sender == sender && h.sender_device == device_id
            })
            .cloned()
            .collect();
        held.sort_by_key(|h| h.received_at);
        Ok(held)
    }

    async fn held_group_messages_before(
        &self,
        before_millis: i64,
    ) -> Result<Vec<HeldGroupMessage>, Fake> {
        self.check("held_group_messages_before")?;
        let mut held: Vec<HeldGroupMessage> = self
            .held
            .borrow()
            .iter()
            .filter(|h| h.received_at < before_millis)
            .cloned()
            .collect();
        held.sort_by_key(|h| h.received_at);
        Ok(held)
    }

    async fn held_count(&self) -> Result<usize, Fake> {
        self.check("held_count")?;
        Ok(self.held.borrow().len())
    }

    async fn drop_held_group_message(&self, envelope_id: &[u8]) -> Result<(), Fake> {
        self.check("drop_held_group_message")?;
        self.held
            .borrow_mut()
            .retain(|h| h.envelope_id != envelope_id);
        Ok(())
    }

    async fn forget_distribution(&self, username: &str, device_id: u32) -> Result<(), Fake> {
        self.check("forget_distribution")?;
        let holder = format!("{username}.{device_id}");
        for (_, holders) in self.outbound.borrow_mut().values_mut() {
            holders.remove(&holder);
        }
        Ok(())
    }

    async fn last_repair(&self, username: &str, device_id: u32) -> Result<Option<i64>, Fake> {
        self.check("last_repair")?;
        let key = (username.to_owned(), device_id);
        Ok(self.repairs.borrow().get(&key).copied())
    }

    async fn record_repair(&self, username: &str, device_id: u32, at: i64) -> Result<(), Fake> {
        self.check("record_repair")?;
        self.repairs
            .borrow_mut()
            .insert((username.to_owned(), device_id), at);
        Ok(())
    }

    async fn insert_message(&self, message: &NewMessage) -> Result<bool, Fake> {
        self.check("insert_message")?;
        let mut messages = self.messages.borrow_mut();
        // Message ids are unique across the whole history.
        if messages
            .iter()
            .any(|m| m.message.message_id == message.message_id)
        {
            return Ok(false);
        }
        messages.push(StoredMessage {
            message: message.clone(),
            edited: false,
            deleted: false,
            read: false,
            reactions: Default::default(),
        });
        Ok(true)
    }

    async fn quoted_message(
        &self,
        message_id: &[u8],
        conversation: &Conversation,
    ) -> Result<Option<(String, String)>, Fake> {
        self.check("quoted_message")?;
        Ok(self
            .messages
            .borrow()
            .iter()
            .find(|m| is(m, message_id, conversation) && !m.deleted)
            .map(|m| (m.message.sender.clone(), m.message.body.clone())))
    }

    async fn edit_message(
        &self,
        message_id: &[u8],
        conversation: &Conversation,
        sender: &str,
        body: &str,
    ) -> Result<bool, Fake> {
        self.check("edit_message")?;
        Ok(self.change_message(
            |m| is(m, message_id, conversation) && m.message.sender == sender && !m.deleted,
            |m| {
                m.message.body = body.to_owned();
                m.edited = true;
            },
        ))
    }

    async fn delete_message(
        &self,
        message_id: &[u8],
        conversation: &Conversation,
        sender: &str,
    ) -> Result<bool, Fake> {
        self.check("delete_message")?;
        // As the store's query: an already deleted message matches too.
        Ok(self.change_message(
            |m| is(m, message_id, conversation) && m.message.sender == sender,
            |m| {
                m.message.body.clear();
                m.message.content.clear();
                m.message.attachment_file = None;
                m.deleted = true;
            },
        ))
    }

    async fn react(
        &self,
        message_id: &[u8],
        conversation: &Conversation,
        username: &str,
        emoji: Option<&str>,
    ) -> Result<bool, Fake> {
        self.check("react")?;
        Ok(self.change_message(
            |m| is(m, message_id, conversation) && !m.deleted,
            |m| match emoji {
                Some(emoji) => {
                    m.reactions.insert(username.to_owned(), emoji.to_owned());
                }
                None => {
                    m.reactions.remove(username);
                }
            },
        ))
    }

    async fn mark_read(
        &self,
        conversation: &Conversation,
        message_ids: &[Vec<u8>],
    ) -> Result<Vec<Vec<u8>>, Fake> {
        self.check("mark_read")?;
        // As the store's query: every id of ours there, read before or not.
        Ok(message_ids
            .iter()
            .filter(|id| {
                self.change_message(
                    |m| is(m, id, conversation) && m.message.outgoing,
                    |m| m.read = true,
                )
            })
            .cloned()
            .collect())
    }

    async fn set_contact_timer(&self, username: &str, seconds: u32) -> Result<(), Fake> {
        self.check("set_contact_timer")?;
        self.contacts
            .borrow_mut()
            .entry(username.to_owned())
            .or_default()
            .expire_seconds = seconds;
        Ok(())
    }

    async fn sealed_record(&self) -> Result<SealedRecord, Fake> {
        self.check("sealed_record")?;
        Ok(self.sealed.borrow().clone())
    }

    async fn save_sealed_record(&self, record: &SealedRecord) -> Result<(), Fake> {
        self.check("save_sealed_record")?;
        *self.sealed.borrow_mut() = record.clone();
        Ok(())
    }

    async fn log_record(&self) -> Result<Option<LogRecord>, Fake> {
        self.check("log_record")?;
        Ok(*self.log_record.borrow())
    }

    async fn save_log_record(&self, record: &LogRecord) -> Result<(), Fake> {
        self.check("save_log_record")?;
        let mut stored = self.log_record.borrow_mut();
        let epoch = |r: &LogRecord| r.newest_root().map(|(epoch, _)| epoch);
        match stored.as_mut() {
            None => *stored = Some(*record),
            Some(s) if epoch(s) < epoch(record) => s.newest = record.newest,
            Some(_) => {}
        }
        Ok(())
    }

    async fn log_version(&self, username: &str) -> Result<Option<u64>, Fake> {
        self.check("log_version")?;
        Ok(self.log_versions.borrow().get(username).copied())
    }

    async fn save_log_version(&self, username: &str, version: u64) -> Result<(), Fake> {
        self.check("save_log_version")?;
        let mut versions = self.log_versions.borrow_mut();
        let stored = versions.entry(username.to_owned()).or_insert(version);
        *stored = (*stored).max(version);
        Ok(())
    }

    async fn own_log_state(&self) -> Result<Option<OwnLogState>, Fake> {
        self.check("own_log_state")?;
        Ok(self.own_log.borrow().clone())
    }

    async fn save_own_log_state(&self, state: &OwnLogState) -> Result<(), Fake> {
        self.check("save_own_log_state")?;
        *self.own_log.borrow_mut() = Some(state.clone());
        Ok(())
    }

    async fn add_warning(&self, username: &str, text: &str) -> Result<bool, Fake> {
        self.check("add_warning")?;
        let warning = (username.to_owned(), text.to_owned());
        let mut warnings = self.warnings.borrow_mut();
        if warnings.contains(&warning) {
            return Ok(false);
        }
        warnings.push(warning);
        Ok(true)
    }

    async fn contact_profile_key(&self, username: &str) -> Result<Option<[u8; 32]>, Fake> {
        self.check("contact_profile_key")?;
        Ok(self.profile_keys.borrow().get(username).copied())
    }

    async fn set_contact_profile_key(
        &self,
        username: &str,
        key: Option<&[u8; 32]>,
    ) -> Result<(), Fake> {
        self.check("set_contact_profile_key")?;
        let mut keys = self.profile_keys.borrow_mut();
        match key {
            Some(key) => keys.insert(username.to_owned(), *key),
            None => keys.remove(username),
        };
        Ok(())
    }
}
