//! Groups: membership and name travel only inside pairwise-encrypted
//! control messages; messages use Sender Keys and the server's
//! multi-recipient send. Whenever someone holding our current sender key
//! is no longer a member device, the key is rotated before the next send,
//! so a removed member can read nothing after removal. When a member is
//! removed (or leaves), every remaining member drops that member's sender
//! keys and starts a fresh one of its own, which the next message gives
//! to every member device then: someone added back later receives it like
//! any new member. Our own membership ending drops all of the group's keys.

use std::collections::BTreeSet;

use prost::Message as _;
use starling_crypto::group::{InboundGroupSession, OutboundGroupSession, SenderKeyDistribution};

use super::Client;
use crate::api::AccountEnvelopes;
use crate::content::{
    self, Content, GroupControl, Transport, group_control::Action, new_content, transport,
};
use crate::error::{ClientError, Result};
use crate::store::GroupRecord;
use starling_client_core::Event;

mod membership;

const STALE_RETRIES: usize = 4;

/// The members an update explicitly adds and removes.
#[derive(Default)]
struct Delta {
    added: Vec<String>,
    removed: Vec<String>,
}

fn holder(username: &str, device: u32) -> String {
    format!("{username}.{device}")
}

impl Client {
    /// Creates a group with `members` (we are added) and tells them.
    pub async fn create_group(&mut self, name: &str, members: &[String]) -> Result<GroupRecord> {
        let mut all: Vec<String> = members.iter().filter(|m| !m.is_empty()).cloned().collect();
        all.push(self.username.clone());
        all.sort();
        all.dedup();
        for member in &all {
            self.ensure_sessions(member).await?;
        }
        let group = GroupRecord {
            group_id: content::new_message_id(),
            name: name.to_owned(),
            members: all,
            revision: 1,
            active: true,
            expire_seconds: 0,
            member_changes: Default::default(),
        };
        self.store.save_group(&group).await?;
        self.announce(
            &group,
            &group.members.clone(),
            Action::Update,
            Delta::default(),
        )
        .await?;
        Ok(group)
    }

    /// Adds members (explicitly, so this also brings back someone who
    /// was removed).
    pub async fn add_members(&mut self, group: &str, users: &[String]) -> Result<GroupRecord> {
        let mut record = self.active_group(group).await?;
        let mut added = Vec::new();
        for user in users {
            self.ensure_sessions(user).await?;
            if !record.members.contains(user) && !added.contains(user) {
                added.push(user.clone());
            }
        }
        record.revision += 1;
        let revision = record.revision;
        for user in &added {
            membership::apply_change(&mut record, user, revision, false);
        }
        self.store.save_group(&record).await?;
        let delta = Delta {
            added,
            removed: Vec::new(),
        };
        self.announce(&record, &record.members.clone(), Action::Update, delta)
            .await?;
        Ok(record)
    }

    /// Removes members; they are told, and every remaining member rotates
    /// its sender key before its next message.
    pub async fn remove_members(&mut self, group: &str, users: &[String]) -> Result<GroupRecord> {
        let mut record = self.active_group(group).await?;
        let before = record.members.clone();
        let removed: Vec<String> = before
            .iter()
            .filter(|m| users.contains(m) && **m != self.username)
            .cloned()
            .collect();
        record.revision += 1;
        let revision = record.revision;
        for user in &removed {
            membership::apply_change(&mut record, user, revision, true);
        }
        self.store.save_group(&record).await?;
        for user in users {
            self.store
                .drop_inbound_group_sessions(&record.group_id, Some(user))
                .await?;
        }
        self.store
            .reset_outbound_group_session(&record.group_id)
            .await?;
        let delta = Delta {
            added: Vec::new(),
            removed,
        };
        self.announce(&record, &before, Action::Update, delta)
            .await?;
        Ok(record)
    }

    /// Renames a group.
    pub async fn rename_group(&mut self, group: &str, name: &str) -> Result<GroupRecord> {
        let mut record = self.active_group(group).await?;
        record.name = name.to_owned();
        record.revision += 1;
        self.store.save_group(&record).await?;
        self.announce(
            &record,
            &record.members.clone(),
            Action::Update,
            Delta::default(),
        )
        .await?;
        Ok(record)
    }

    /// Leaves a group: the others are told, our keys for it are dropped.
    pub async fn leave_group(&mut self, group: &str) -> Result<()> {
        let mut record = self.active_group(group).await?;
        self.announce(
            &record,
            &record.members.clone(),
            Action::Leave,
            Delta::default(),
        )
        .await?;
        record.active = false;
        record.members.retain(|m| *m != self.username);
        self.store.save_group(&record).await?;
        self.store
            .drop_inbound_group_sessions(&record.group_id, None)
            .await?;
        self.store
            .reset_outbound_group_session(&record.group_id)
            .await?;
        Ok(())
    }

    /// All groups this home knows.
    pub async fn groups(&self) -> Result<Vec<GroupRecord>> {
        self.store.groups().await
    }

    /// The group `name` (its name or an id prefix, with or without `#`),
    /// if we are still a member.
    pub(super) async fn active_group(&self, name: &str) -> Result<GroupRecord> {
        let group = self
            .store
            .find_group(name.strip_prefix('#').unwrap_or(name))
            .await?;
        if !group.active {
            return Err(ClientError::NotAMember(name.to_owned()));
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
    ) -> Result<()> {
        let mut content = new_content(content::Body::GroupControl(GroupControl {
            action: action.into(),
            name: group.name.clone(),
            members: group.members.clone(),
            revision: group.revision,
            added: delta.added,
            removed: delta.removed,
        }));
        content.group_id = group.group_id.clone();
        let mut to: Vec<String> = recipients.to_vec();
        if !to.contains(&self.username) {
            to.push(self.username.clone());
        }
        self.send_pairwise(&to, &content).await?;
        self.record_outgoing(&group.conversation(), &content, None)
            .await?;
        Ok(())
    }

    /// Applies a control message from `sender`.
    pub(super) async fn apply_group_control(
        &mut self,
        sender: &str,
        content: &Content,
        control: &GroupControl,
    ) -> Result<Vec<Event>> {
        let existing = self.store.group(&content.group_id).await?;
        let leaving = control.action == i32::from(Action::Leave);
        let mut group = match existing {
            Some(group) => {
                if !group.members.iter().any(|m| m == sender) {
                    return Ok(Vec::new());
                }
                group
            }
            // Group ids are 16 random bytes; anything else is refused.
            None if content.group_id.len() != 16 => return Ok(Vec::new()),
            None if !leaving
                && control.members.contains(&self.username)
                && control.members.iter().any(|m| m == sender) =>
            {
                GroupRecord {
                    group_id: content.group_id.clone(),
                    name: control.name.clone(),
                    members: Vec::new(),
                    revision: 0,
                    active: true,
                    expire_seconds: 0,
                    member_changes: Default::default(),
                }
            }
            None => return Ok(Vec::new()),
        };
        let before = group.clone();
        if leaving {
            membership::apply_leave(&mut group, sender, control.revision);
        } else {
            membership::apply_update(&mut group, control);
        }
        group.active = group.members.contains(&self.username);
        if group == before {
            // Outdated: a later change of everything it says already won.
            return Ok(Vec::new());
        }
        let previous: BTreeSet<String> = before.members.iter().cloned().collect();
        let mut someone_left = false;
        for gone in previous.iter().filter(|m| !group.members.contains(m)) {
            someone_left = true;
            self.store
                .drop_inbound_group_sessions(&group.group_id, Some(gone))
                .await?;
        }
        if !group.active {
            self.store
                .drop_inbound_group_sessions(&group.group_id, None)
                .await?;
        }
        if someone_left || !group.active {
            self.store
                .reset_outbound_group_session(&group.group_id)
                .await?;
        }
        self.store.save_group(&group).await?;
        let mut events: Vec<Event> = self
            .record(
                &group.conversation(),
                sender,
                0,
                sender == self.username,
                content,
                None,
            )
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

    /// Stores a member device's sender key.
    pub(super) async fn import_sender_key(
        &mut self,
        sender: &str,
        device: u32,
        group_id: &[u8],
        distribution: &[u8],
    ) -> Result<()> {
        let Some(group) = self.store.group(group_id).await? else {
            return Ok(());
        };
        if !group.active || !group.members.iter().any(|m| m == sender) {
            return Ok(());
        }
        let Ok(distribution) = SenderKeyDistribution::from_bytes(distribution) else {
            return Ok(());
        };
        if distribution.group_id() != group_id {
            return Ok(());
        }
        let session = match self
            .store
            .inbound_group_session(group_id, sender, device)
            .await?
        {
            Some(mut session) => {
                session.add_distribution(&distribution);
                session
            }
            None => InboundGroupSession::new(&distribution),
        };
        self.store
            .save_inbound_group_session(group_id, sender, device, &session)
            .await
    }

    /// Encrypts once with our sender key and sends the same ciphertext to
    /// every member device, distributing (or rotating) the key first.
    pub(super) async fn send_group_content(
        &mut self,
        group: &GroupRecord,
        content: &Content,
    ) -> Result<()> {
        if !group.active {
            return Err(ClientError::NotAMember(group.name.clone()));
        }
        let others: Vec<String> = group
            .members
            .iter()
            .filter(|m| **m != self.username)
            .cloned()
            .collect();
        for member in &others {
            self.check_sendable(member).await?;
        }
        let mut recipients = others.clone();
        recipients.push(self.username.clone());
        for _ in 0..STALE_RETRIES {
            let mut targets = Vec::new();
            for user in &recipients {
                for device in self.ensure_sessions(user).await? {
                    targets.push((user.clone(), device));
                }
            }
            let holders: BTreeSet<String> = targets.iter().map(|(u, d)| holder(u, *d)).collect();
            let (mut outbound, mut distributed) =
                match self.store.outbound_group_session(&group.group_id).await? {
                    Some(existing) => existing,
                    None => (
                        OutboundGroupSession::new(&group.group_id, &mut rand::rngs::OsRng)?,
                        BTreeSet::new(),
                    ),
                };
            if !distributed.is_subset(&holders) {
                outbound.rotate(&mut rand::rngs::OsRng);
                distributed.clear();
            }
            let needing: BTreeSet<String> = targets
                .iter()
                .filter(|(u, d)| !distributed.contains(&holder(u, *d)))
                .map(|(u, _)| u.clone())
                .collect();
            self.store
                .save_outbound_group_session(&group.group_id, &outbound, &distributed)
                .await?;
            if !needing.is_empty() {
                let mut key = new_content(content::Body::SenderKey(content::SenderKey {
                    distribution: outbound.distribution().to_bytes().to_vec(),
                }));
                key.group_id = group.group_id.clone();
                let needing: Vec<String> = needing.into_iter().collect();
                self.send_pairwise(&needing, &key).await?;
                for (user, device) in &targets {
                    if needing.contains(user) {
                        distributed.insert(holder(user, *device));
                    }
                }
            }
            let message = outbound.encrypt(&content.encode_to_vec())?;
            self.store
                .save_outbound_group_session(&group.group_id, &outbound, &distributed)
                .await?;
            let transport = Transport {
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
            if self.send_or_fix(&sends).await? {
                return Ok(());
            }
        }
        Err(ClientError::Protocol(
            "the members' device lists kept changing; try again".into(),
        ))
    }
}
