//! Group messages that arrive before their sender keys, and asking for
//! keys. A group message whose sender device's key this device lacks (a
//! device linked after the group was made, a key that was lost) is not
//! reported unreadable: it is held, still encrypted, its envelope
//! acknowledged in the same durable step, and the sender's account is
//! asked for its key inside the pairwise sessions (a `SenderKeyRequest`).
//! When a key from that device arrives, the messages held for it are
//! decrypted as if they had just come; what still cannot be read then, or
//! waited longer than [`HELD_FOR_MILLIS`], is reported.
//!
//! A request is answered only when it is authenticated (it came through a
//! pairwise session under keys we already trusted) and comes from a
//! member of the group (or, for every group at once, from a device of our
//! own account), at most once per [`KEY_REQUEST_INTERVAL_MILLIS`] per
//! asking device and group: the answer is our current key, at its current
//! iteration, which any member device is given with our next message
//! anyway. Both sides keep that gate in memory (bounded), so a restart may
//! open it once early.

use std::collections::HashMap;

use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use super::incoming::{Failure, Origin};
use super::{Device, Result};
use crate::clock::Clock;
use crate::content::{self, Body, GroupControl, group_control::Action};
use crate::error::DeviceError;
use crate::events::Event;
use crate::records::{GroupRecord, HeldGroupMessage};
use crate::storage::Storage;
use crate::transport::Transport;

/// How long a group message waits for its sender's key: seven days.
pub const HELD_FOR_MILLIS: i64 = 7 * 24 * 3_600_000;

/// How many messages wait for one sender device's key in one group; more
/// are reported unreadable (a member cannot fill our store).
pub const MAX_HELD_PER_DEVICE: usize = 256;

/// How many messages wait in all, whatever their groups and senders (a
/// server that names ever new groups or devices cannot fill our store).
pub const MAX_HELD: usize = 4096;

/// The length of a group id.
const GROUP_ID_LEN: usize = 16;

/// Shortest time between two key requests for one group to one device,
/// and between two answers to one asking device: ten minutes.
pub const KEY_REQUEST_INTERVAL_MILLIS: i64 = 600_000;

/// How many gates each side remembers; when full, the ones that are open
/// again are forgotten, and a request that finds no room is not sent.
const REMEMBERED: usize = 4096;

/// (group id, or empty for every group; account; device).
type Gate = (Vec<u8>, String, u32);

/// When keys were last asked for and given, per group and device.
#[derive(Debug, Default)]
pub struct KeyRequests {
    asked: HashMap<Gate, i64>,
    answered: HashMap<Gate, i64>,
}

/// Whether `gate` is open at `now` in `map`; if so it closes for the
/// interval. A time less than an interval away in either direction keeps
/// it shut, so a clock stepped back opens nothing early.
fn pass(map: &mut HashMap<Gate, i64>, gate: Gate, now: i64) -> bool {
    let interval = KEY_REQUEST_INTERVAL_MILLIS.unsigned_abs();
    if map
        .get(&gate)
        .is_some_and(|last| now.abs_diff(*last) < interval)
    {
        return false;
    }
    if map.len() >= REMEMBERED {
        map.retain(|_, last| now.abs_diff(*last) < interval);
        if map.len() >= REMEMBERED {
            return false;
        }
    }
    map.insert(gate, now);
    true
}

/// What a member tells a device about a group together with its key: an
/// update at the group's current revision, with no explicit changes.
pub(super) fn group_state(group: &GroupRecord) -> GroupControl {
    GroupControl {
        action: Action::Update.into(),
        name: group.name.clone(),
        members: group.members.clone(),
        revision: group.revision,
        added: Vec::new(),
        removed: Vec::new(),
    }
}

impl<S, T, C, R> Device<S, T, C, R>
where
    S: Storage,
    T: Transport,
    C: Clock,
    R: CryptoRngCore,
{
    /// Holds a group message that came before its sender key and asks the
    /// sender for the key; reports it instead when too many wait already.
    /// A group we are not in (any more), or a sender who is not a member
    /// of it, has nothing to wait for: the message is reported at once.
    pub(super) async fn hold(&mut self, held: HeldGroupMessage) -> Result<Vec<Event>, S, T> {
        let mut events = self.expire_held().await?;
        let group = stored(self.storage.group(&held.group_id).await)?;
        let known = group.is_some();
        let refusal = match group {
            _ if held.group_id.len() != GROUP_ID_LEN => Some("not a group message"),
            Some(group) if !group.active || !group.members.contains(&held.sender) => {
                Some("no sender key from this member")
            }
            _ if stored(self.storage.held_count().await)? >= MAX_HELD => {
                Some("no sender key from this member, and too many messages wait for keys")
            }
            _ => {
                let waiting = self
                    .storage
                    .held_group_messages(&held.group_id, &held.sender, held.sender_device)
                    .await;
                (stored(waiting)?.len() >= MAX_HELD_PER_DEVICE).then_some(
                    "no sender key from this member, and too many of its messages wait for one",
                )
            }
        };
        if let Some(reason) = refusal {
            let finished = self.storage.finish_envelope(&held.envelope_id).await;
            finished.map_err(DeviceError::Storage)?;
            events.push(Event::DecryptionFailed {
                sender: held.sender,
                device: held.sender_device,
                reason: reason.to_owned(),
            });
            return Ok(events);
        }
        let kept = self.storage.hold_group_message(&held).await;
        kept.map_err(DeviceError::Storage)?;
        // A group this device does not know yet comes with its state from
        // our own devices (asked when this one was linked) or with the
        // sender's key; a stranger is not asked (it would learn that we
        // exist, and our profile key).
        if known {
            self.ask_for_sender_key(&held.group_id, &held.sender, held.sender_device)
                .await;
        }
        events.push(Event::WaitingForSenderKey {
            sender: held.sender,
            device: held.sender_device,
            group_id: hex::encode(&held.group_id),
        });
        Ok(events)
    }

    /// Reports and drops the messages that waited too long for a key.
    async fn expire_held(&mut self) -> Result<Vec<Event>, S, T> {
        let before = self.clock.now_millis().saturating_sub(HELD_FOR_MILLIS);
        let expired = self.storage.held_group_messages_before(before).await;
        let mut events = Vec::new();
        for held in expired.map_err(DeviceError::Storage)? {
            let dropped = self
                .storage
                .drop_held_group_message(&held.envelope_id)
                .await;
            dropped.map_err(DeviceError::Storage)?;
            events.push(Event::DecryptionFailed {
                sender: held.sender,
                device: held.sender_device,
                reason: "its sender key did not come within seven days".to_owned(),
            });
        }
        Ok(events)
    }

    /// Asks `sender`'s account for its key of the group, unless this
    /// device was asked within the interval. Best effort: a request that
    /// cannot be sent now goes with the next held message.
    async fn ask_for_sender_key(&mut self, group_id: &[u8], sender: &str, device: u32) {
        let now = self.clock.now_millis();
        let gate = (group_id.to_vec(), sender.to_owned(), device);
        if !pass(&mut self.key_requests.asked, gate.clone(), now) {
            return;
        }
        let mut request = self.new_content(Body::SenderKeyRequest(content::SenderKeyRequest {}));
        request.group_id = group_id.to_vec();
        if let Err(error) = self.send_pairwise(&[sender.to_owned()], &request).await {
            tracing::warn!(%error, "a sender key request could not be sent");
            self.key_requests.asked.remove(&gate);
        }
    }

    /// Asks the account's other devices for every group it is in and
    /// their keys of them: for a device just linked.
    pub async fn request_group_sync(&mut self) -> Result<(), S, T> {
        let request = self.new_content(Body::SenderKeyRequest(content::SenderKeyRequest {}));
        let own = self.account.username.clone();
        self.send_pairwise(&[own], &request).await
    }

    /// Answers an authenticated key request from `requester`'s `device`:
    /// our key of the group it names (with the group), when it is a
    /// member; of every active group, when it is a device of our own
    /// account and names none.
    pub(super) async fn answer_key_request(
        &mut self,
        requester: &str,
        device: u32,
        group_id: &[u8],
    ) -> Result<Vec<Event>, S, T> {
        let own = requester == self.account.username;
        if group_id.is_empty() && !own {
            return Ok(Vec::new());
        }
        let groups = if group_id.is_empty() {
            stored(self.storage.groups().await)?
        } else {
            stored(self.storage.group(group_id).await)?
                .into_iter()
                .collect()
        };
        let groups: Vec<GroupRecord> = groups
            .into_iter()
            .filter(|g| g.active && g.members.iter().any(|m| m == requester))
            .collect();
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.clock.now_millis();
        let gate = (group_id.to_vec(), requester.to_owned(), device);
        if !pass(&mut self.key_requests.answered, gate, now) {
            tracing::info!("a sender key request within the interval is ignored");
            return Ok(Vec::new());
        }
        if group_id.is_empty() && !self.vouched_own_device(device).await? {
            // Every group at once only to a device one of ours linked.
            tracing::warn!(
                device,
                "a request for every group from an unvouched device is ignored"
            );
            return Ok(Vec::new());
        }
        for group in &groups {
            self.give_sender_key(group, requester, device).await?;
        }
        Ok(Vec::new())
    }

    /// Whether our own `device` was linked by a device of ours whose key
    /// this device holds (its certificate, `crypto/SPEC.md` §2.5, checked
    /// here): a device the server added to our account is not.
    async fn vouched_own_device(&mut self, device: u32) -> Result<bool, S, T> {
        let own = self.account.username.clone();
        let keys = stored(self.storage.identity_keys(&own).await)?;
        let Some((_, identity)) = keys.into_iter().find(|(d, _)| *d == device) else {
            return Ok(false);
        };
        let served = match self.transport.devices(&own).await {
            Ok(served) => served,
            Err(error) => {
                // Not answered now; the device may ask again later.
                tracing::warn!(%error, "our device list could not be fetched");
                return Ok(false);
            }
        };
        let this_device = (self.account.device_id, self.account.identity.public());
        let vouched = crate::trust::vouched_by(
            &self.storage,
            &own,
            Some(this_device),
            &identity,
            served.certificate(device),
        )
        .await;
        Ok(stored(vouched)?.is_some())
    }

    /// How a device given our key is named among those given one: by its
    /// identity key too, so that a device id that holds another key now
    /// (set up again, or planted by the server) is never handed what the
    /// earlier key was given. `None` for a device whose key we do not hold.
    pub(super) async fn given_holder(
        &self,
        username: &str,
        device: u32,
    ) -> Result<Option<String>, S, T> {
        let keys = stored(self.storage.identity_keys(username).await)?;
        Ok(keys
            .into_iter()
            .find(|(d, _)| *d == device)
            .map(|(_, key)| format!("{username}.{device}.{}", hex::encode(key.public_bytes()))))
    }

    /// Sends our key of `group` with the group's state to every device of
    /// `to`: to the asking `device`, the key as it was first given to it
    /// (within [`HELD_FOR_MILLIS`]), so that what it holds can be read; to
    /// the others, the current one. No key when we have not sent in the
    /// group yet.
    async fn give_sender_key(
        &mut self,
        group: &GroupRecord,
        to: &str,
        device: u32,
    ) -> Result<(), S, T> {
        let existing = stored(self.storage.outbound_group_session(&group.group_id).await)?;
        let identity = &self.account.identity;
        let current = match existing {
            Some((outbound, _)) if outbound.is_from(identity.public()) => {
                outbound.distribution(identity)?.to_bytes()
            }
            _ => Zeroizing::new(Vec::new()),
        };
        if current.is_empty() && to != self.account.username {
            // Nothing of ours to read: only our own new devices need the
            // group without a key.
            return Ok(());
        }
        let given = match self.given_holder(to, device).await? {
            Some(holder) => stored(self.storage.given_key(&group.group_id, &holder).await)?,
            None => None,
        };
        let oldest = self.clock.now_millis().saturating_sub(HELD_FOR_MILLIS);
        let first = match given {
            Some((given, at)) if !current.is_empty() && at >= oldest => given,
            _ => current.clone(),
        };
        let key = |this: &mut Self, distribution: &[u8]| {
            let mut key = this.new_content(Body::SenderKey(content::SenderKey {
                distribution: distribution.to_vec(),
                group: Some(group_state(group)),
            }));
            key.group_id = group.group_id.clone();
            key
        };
        let to_device = key(self, &first);
        let elsewhere = key(self, &current);
        self.send_pairwise_to(&[(to.to_owned(), device)], &to_device, &elsewhere)
            .await
    }

    /// Decrypts the messages held for `sender`'s `device` in a group, now
    /// that its key came; reports those that still cannot be read.
    pub(super) async fn release_held(
        &mut self,
        group_id: &[u8],
        sender: &str,
        device: u32,
    ) -> Result<Vec<Event>, S, T> {
        let held = self
            .storage
            .held_group_messages(group_id, sender, device)
            .await;
        let mut events = Vec::new();
        for held in held.map_err(DeviceError::Storage)? {
            let origin = Origin {
                sender: held.sender.clone(),
                device: held.sender_device,
                certified: held.certified,
            };
            let ciphertext = content::GroupCiphertext {
                group_id: held.group_id.clone(),
                message: held.message.clone(),
            };
            match self
                .open_group(&held.envelope_id, &origin, &ciphertext)
                .await
            {
                Ok(item) => events.extend(Box::pin(self.apply_staged(item)).await?),
                Err(Failure::Local(error)) => return Err(error),
                // Still no key (the one that came was refused): it waits.
                Err(Failure::NoSenderKey(_)) => {}
                Err(Failure::Unreadable(reason) | Failure::UnreadableFrom(_, reason)) => {
                    self.drop_unreadable_held(&held, reason, &mut events)
                        .await?;
                }
                Err(Failure::Rejected(_, reason)) => {
                    self.drop_unreadable_held(&held, reason.to_string(), &mut events)
                        .await?;
                }
            }
        }
        Ok(events)
    }

    /// Drops a held message the key did not open, reporting why.
    async fn drop_unreadable_held(
        &mut self,
        held: &HeldGroupMessage,
        reason: String,
        events: &mut Vec<Event>,
    ) -> Result<(), S, T> {
        let dropped = self
            .storage
            .drop_held_group_message(&held.envelope_id)
            .await;
        dropped.map_err(DeviceError::Storage)?;
        events.push(Event::DecryptionFailed {
            sender: held.sender.clone(),
            device: held.sender_device,
            reason: format!("sent before this device had the sender's key ({reason})"),
        });
        Ok(())
    }
}

/// Maps a store failure.
fn stored<V, S, T>(result: std::result::Result<V, S>) -> std::result::Result<V, DeviceError<S, T>> {
    result.map_err(DeviceError::Storage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_shuts_for_the_interval_both_ways() {
        let mut map = HashMap::new();
        let gate = (vec![1], "bob".to_owned(), 2);
        assert!(pass(&mut map, gate.clone(), 1_000_000));
        assert!(!pass(&mut map, gate.clone(), 1_000_001));
        // A clock stepped back does not open it.
        assert!(!pass(&mut map, gate.clone(), 1_000_000 - 1));
        let other = (vec![1], "bob".to_owned(), 3);
        assert!(pass(&mut map, other, 1_000_001), "gates are per device");
        assert!(pass(
            &mut map,
            gate,
            1_000_000 + KEY_REQUEST_INTERVAL_MILLIS
        ));
    }

    #[test]
    fn a_full_memory_forgets_open_gates_and_refuses_when_none_is() {
        let mut map = HashMap::new();
        for i in 0..REMEMBERED {
            let device = u32::try_from(i).unwrap();
            assert!(pass(&mut map, (vec![], "x".to_owned(), device), 0));
        }
        assert!(!pass(&mut map, (vec![], "y".to_owned(), 0), 1));
        assert!(pass(
            &mut map,
            (vec![], "y".to_owned(), 0),
            KEY_REQUEST_INTERVAL_MILLIS
        ));
        assert_eq!(map.len(), 1);
    }
}
