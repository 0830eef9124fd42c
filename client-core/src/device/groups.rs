//! Groups: membership and name travel only inside pairwise-encrypted
//! control messages; messages use Sender Keys and the server's
//! multi-recipient send. Whenever someone holding our current sender key
//! is no longer a member device, the key is rotated before the next send,
//! so a removed member can read nothing after removal. When a member is
//! removed (or leaves), every remaining member drops that member's sender
//! keys and starts a fresh one of its own, which the next message gives
//! to every member device then: someone added back later receives it like
//! any new member. Our own membership ending drops all of the group's keys.
//! Every sender key travels with the group's state (name, members,
//! revision), so a device that does not know the group yet (one linked
//! after the group was made, a member's new device) learns it from the key
//! that lets it read the group.
//!
//! Operations take the group's id and load its record themselves (refusing
//! a group we are no longer in); finding the id from the name a person
//! typed is the shell's (a name is parsed once, at the edge).

use std::collections::BTreeSet;

use prost::Message as _;
use rand_core::CryptoRngCore;
use starling_crypto::group::OutboundGroupSession;
use zeroize::Zeroizing;

use super::{Device, Result};
use crate::clock::Clock;
use crate::content::{self, Content, GroupControl, group_control::Action, transport};
use crate::conversation::GroupId;
use crate::error::DeviceError;
use crate::events::Event;
use crate::outgoing::STALE_RETRIES;
use crate::records::GroupRecord;
use crate::storage::Storage;
use crate::transport::{AccountEnvelopes, Transport};

mod membership;
mod sender_keys;

/// The members an update explicitly adds and removes.
#[derive(Default)]
struct Delta {
    added: Vec<String>,
    removed: Vec<String>,
}

/// How a member device is named in the set of sender-key holders.
fn holder(username: &str, device: u32) -> String {
    format!("{username}.{device}")
}

/// The revision of our next change to a group: a member may have sent the
/// largest revision there is, and then no change of ours can follow it.
fn next_revision<S, T>(group: &GroupRecord) -> std::result::Result<u64, DeviceError<S, T>> {
    group
        .revision
        .checked_add(1)
        .ok_or_else(|| DeviceError::RevisionsExhausted(group.name.clone()))
}

/// Maps a store failure.
fn stored<V, S, T>(result: std::result::Result<V, S>) -> std::result::Result<V, DeviceError<S, T>> {
    result.map_err(DeviceError::Storage)
}

impl<S, T, C, R> Device<S, T, C, R>
where
    S: Storage,
    T: Transport,
    C: Clock,
    R: CryptoRngCore,
{
    /// Creates a group with `members` (we are added) and tells them.
    pub async fn create_group(
        &mut self,
        name: &str,
        members: &[String],
    ) -> Result<GroupRecord, S, T> {
        let mut all: Vec<String> = members.iter().filter(|m| !m.is_empty()).cloned().collect();
        all.push(self.account.username.clone());
        all.sort();
        all.dedup();
        for member in &all {
            self.ensure_sessions(member).await?;
        }
        let group = GroupRecord {
            group_id: content::random_message_id(&mut self.rng),
            name: name.to_owned(),
            members: all,
            revision: 1,
            active: true,
            expire_seconds: 0,
            member_changes: Default::default(),
        };
        stored(self.storage.save_group(&group).await)?;
        let members = group.members.clone();
        self.announce(&group, &members, Action::Update, Delta::default())
            .await?;
        Ok(group)
    }

    /// Adds members (explicitly, so this also brings back someone who
    /// was removed).
    pub async fn add_members(
        &mut self,
        group: &GroupId,
        users: &[String],
    ) -> Result<GroupRecord, S, T> {
        let mut record = self.active_group(group).await?;
        let mut added = Vec::new();
        for user in users {
            self.ensure_sessions(user).await?;
            if !record.members.contains(user) && !added.contains(user) {
                added.push(user.clone());
            }
        }
        record.revision = next_revision(&record)?;
        let revision = record.revision;
        for user in &added {
            membership::apply_change(&mut record, user, revision, false);
        }
        stored(self.storage.save_group(&record).await)?;
        let delta = Delta {
            added,
            removed: Vec::new(),
        };
        let members = record.members.clone();
        self.announce(&record, &members, Action::Update, delta)
            .await?;
        Ok(record)
    }

    /// Removes members; they are told, and every remaining member rotates
    /// its sender key before its next message.
    pub async fn remove_members(
        &mut self,
        group: &GroupId,
        users: &[String],
    ) -> Result<GroupRecord, S, T> {
        let mut record = self.active_group(group).await?;
        let before = record.members.clone();
        let removed: Vec<String> = before
            .iter()
            .filter(|m| users.contains(m) && **m != self.account.username)
            .cloned()
            .collect();
        record.revision = next_revision(&record)?;
        let revision = record.revision;
        for user in &removed {
            membership::apply_change(&mut record, user, revision, true);
        }
        stored(self.storage.save_group(&record).await)?;
        for user in &removed {
            let dropped = self
                .storage
                .drop_inbound_group_sessions(&record.group_id, Some(user))
                .await;
            stored(dropped)?;
        }
        let reset = self
            .storage
            .reset_outbound_group_session(&record.group_id)
            .await;
        stored(reset)?;
        let delta = Delta {
            added: Vec::new(),
            removed,
        };
        self.announce(&record, &before, Action::Update, delta)
            .await?;
        Ok(record)
    }

    /// Renames a group.
    pub async fn rename_group(&mut self, group: &GroupId, name: &str) -> Result<GroupRecord, S, T> {
        let mut record = self.active_group(group).await?;
        record.name = name.to_owned();
        record.revision = next_revision(&record)?;
        stored(self.storage.save_group(&record).await)?;
        let members = record.members.clone();
        self.announce(&record, &members, Action::Update, Delta::default())
            .await?;
        Ok(record)
    }

    /// Leaves a group: the others are told, our keys for it are dropped.
    pub async fn leave_group(&mut self, group: &GroupId) -> Result<(), S, T> {
        let before = self.active_group(group).await?;
        self.announce(&before, &before.members, Action::Leave, Delta::default())
            .await?;
        let mut record = before.clone();
        record.active = false;
        record.members.retain(|m| *m != self.account.username);
        stored(self.storage.save_group(&record).await)?;
        self.drop_keys_of_leavers(&before, &record).await
    }

    /// The group `id`, if we are still a member.
    async fn active_group(&self, id: &GroupId) -> Result<GroupRecord, S, T> {
        let group = stored(self.storage.group(id.as_bytes()).await)?
            .ok_or_else(|| DeviceError::UnknownGroup(id.to_hex()))?;
        if !group.active {
            return Err(DeviceError::NotAMember(group.name));
        }
        Ok(group)
    }

    /// Sends a control message to `recipients` (pairwise).
    async fn announce(
        &mut self,
        group: &GroupRecord,
        recipients: &[String],
        action: Action,
        delta: Delta,
    ) -> Result<(), S, T> {
        let mut content = self.new_content(content::Body::GroupControl(GroupControl {
            action: action.into(),
            name: group.name.clone(),
            members: group.members.clone(),
            revision: group.revision,
            added: delta.added,
            removed: delta.removed,
        }));
        content.group_id = group.group_id.clone();
        let mut to: Vec<String> = recipients.to_vec();
        if !to.contains(&self.account.username) {
            to.push(self.account.username.clone());
        }
        self.send_pairwise(&to, &content).await?;
        self.record_outgoing(&group.conversation(), &content, None)
            .await?;
        Ok(())
    }

    /// The group a control message from `sender` changes: the one we know
    /// if `sender` is a member of it, or a new one that names both of us;
    /// `None` when the message must be ignored.
    async fn controlled_group(
        &self,
        sender: &str,
        content: &Content,
        control: &GroupControl,
    ) -> Result<Option<GroupRecord>, S, T> {
        let existing = stored(self.storage.group(&content.group_id).await)?;
        let leaving = control.action == i32::from(Action::Leave);
        Ok(match existing {
            Some(group) => group.members.iter().any(|m| m == sender).then_some(group),
            // Group ids are 16 random bytes; anything else is refused.
            None if content.group_id.len() != 16 => None,
            None if !leaving
                && control.members.contains(&self.account.username)
                && control.members.iter().any(|m| m == sender) =>
            {
                Some(GroupRecord {
                    group_id: content.group_id.clone(),
                    name: control.name.clone(),
                    members: Vec::new(),
                    revision: 0,
                    active: true,
                    expire_seconds: 0,
                    member_changes: Default::default(),
                })
            }
            None => None,
        })
    }

    /// Applies a control message from `sender`.
    pub(super) async fn apply_group_control(
        &mut self,
        sender: &str,
        content: &Content,
        control: &GroupControl,
    ) -> Result<Vec<Event>, S, T> {
        let Some(mut group) = self.controlled_group(sender, content, control).await? else {
            return Ok(Vec::new());
        };
        let before = group.clone();
        if control.action == i32::from(Action::Leave) {
            membership::apply_leave(&mut group, sender, control.revision);
        } else {
            membership::apply_update(&mut group, control);
        }
        group.active = group.members.contains(&self.account.username);
        if group == before {
            // Outdated: a later change of everything it says already won.
            return Ok(Vec::new());
        }
        self.drop_keys_of_leavers(&before, &group).await?;
        stored(self.storage.save_group(&group).await)?;
        let own = sender == self.account.username;
        let mut events: Vec<Event> = self
            .record(&group.conversation(), sender, 0, own, content, None)
            .await?
            .map(Event::Message)
            .into_iter()
            .collect();
        events.push(Event::GroupChanged {
            group_id: hex::encode(&group.group_id),
            name: group.name.clone(),
            members: group.members.clone(),
            active: group.active,
        });
        Ok(events)
    }

    /// After a change from `before` to `group`: drops the sender keys of
    /// members who are gone (all of them when we are), and starts a new
    /// sender key of ours.
    async fn drop_keys_of_leavers(
        &self,
        before: &GroupRecord,
        group: &GroupRecord,
    ) -> Result<(), S, T> {
        let previous: BTreeSet<&String> = before.members.iter().collect();
        let mut someone_left = false;
        for gone in previous.into_iter().filter(|m| !group.members.contains(m)) {
            someone_left = true;
            let dropped = self
                .storage
                .drop_inbound_group_sessions(&group.group_id, Some(gone))
                .await;
            stored(dropped)?;
        }
        if !group.active {
            let dropped = self
                .storage
                .drop_inbound_group_sessions(&group.group_id, None)
                .await;
            stored(dropped)?;
        }
        if someone_left || !group.active {
            let reset = self
                .storage
                .reset_outbound_group_session(&group.group_id)
                .await;
            stored(reset)?;
        }
        Ok(())
    }

    /// Encrypts once with our sender key and sends the same ciphertext to
    /// every member device, distributing (or rotating) the key first.
    pub(super) async fn send_group_content(
        &mut self,
        group: &GroupRecord,
        content: &Content,
    ) -> Result<(), S, T> {
        if !group.active {
            return Err(DeviceError::NotAMember(group.name.clone()));
        }
        let mut recipients: Vec<String> = group
            .members
            .iter()
            .filter(|m| **m != self.account.username)
            .cloned()
            .collect();
        for member in &recipients {
            self.check_sendable(member).await?;
        }
        recipients.push(self.account.username.clone());
        for _ in 0..STALE_RETRIES {
            if self.try_group_send(group, &recipients, content).await? {
                return Ok(());
            }
        }
        Err(DeviceError::MembersKeptChanging)
    }

    /// One attempt of a group send: true when stored; false when the
    /// server refused stale device lists, which are now fixed.
    async fn try_group_send(
        &mut self,
        group: &GroupRecord,
        recipients: &[String],
        content: &Content,
    ) -> Result<bool, S, T> {
        let mut targets = Vec::new();
        for user in recipients {
            for device in self.ensure_sessions(user).await? {
                targets.push((user.clone(), device));
            }
        }
        let holders: BTreeSet<String> = targets.iter().map(|(u, d)| holder(u, *d)).collect();
        let existing = stored(self.storage.outbound_group_session(&group.group_id).await)?;
        let identity = &self.account.identity;
        let (mut outbound, mut distributed, mut new_chain) = match existing {
            // A key made for another identity of this device (none should
            // be) cannot be distributed: start a new one.
            Some((outbound, distributed)) if outbound.is_from(identity.public()) => {
                (outbound, distributed, false)
            }
            _ => (
                OutboundGroupSession::new(identity.public(), &group.group_id, &mut self.rng)?,
                BTreeSet::new(),
                true,
            ),
        };
        if !distributed.is_subset(&holders) {
            outbound.rotate(identity, &mut self.rng)?;
            distributed.clear();
            new_chain = true;
        }
        if new_chain {
            stored(self.storage.forget_given_keys(&group.group_id).await)?;
        }
        let needing: Vec<String> = targets
            .iter()
            .filter(|(u, d)| !distributed.contains(&holder(u, *d)))
            .map(|(u, _)| u.clone())
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect();
        let saved = self
            .storage
            .save_outbound_group_session(&group.group_id, &outbound, &distributed)
            .await;
        stored(saved)?;
        if !needing.is_empty() {
            let distribution = outbound.distribution(&self.account.identity)?.to_bytes();
            let mut key = self.new_content(content::Body::SenderKey(content::SenderKey {
                distribution: distribution.to_vec(),
                group: Some(super::held::group_state(group)),
            }));
            key.group_id = group.group_id.clone();
            self.send_pairwise(&needing, &key).await?;
            let given: Vec<(String, u32)> = targets
                .iter()
                .filter(|(user, _)| needing.contains(user))
                .cloned()
                .collect();
            let mut named = Vec::with_capacity(given.len());
            for (user, device) in &given {
                named.extend(self.given_holder(user, *device).await?);
            }
            let now = self.clock.now_millis();
            let recorded = self
                .storage
                .record_given_key(&group.group_id, &named, &distribution, now)
                .await;
            stored(recorded)?;
            distributed.extend(given.iter().map(|(user, device)| holder(user, *device)));
        }
        let mut content = content.clone();
        if let Some(key) = self.profile_key().await? {
            content.profile_key = key.to_vec();
        }
        let plaintext = Zeroizing::new(content.encode_to_vec());
        let message = outbound.encrypt(&plaintext)?;
        let saved = self
            .storage
            .save_outbound_group_session(&group.group_id, &outbound, &distributed)
            .await;
        stored(saved)?;
        let transport = content::Transport {
            body: Some(transport::Body::Group(content::GroupCiphertext {
                group_id: group.group_id.clone(),
                message,
            })),
        }
        .encode_to_vec();
        let sends: Vec<AccountEnvelopes> = recipients
            .iter()
            .map(|user| AccountEnvelopes {
                destination: user.clone(),
                envelopes: targets
                    .iter()
                    .filter(|(u, _)| u == user)
                    .map(|(_, d)| (*d, transport.clone()))
                    .collect(),
            })
            .filter(|s| !s.envelopes.is_empty())
            .collect();
        self.send_or_fix(&sends).await
    }
}
