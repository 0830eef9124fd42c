//! Other member devices' sender keys as they arrive. A distribution is
//! taken only from a member of an active group, and only when it is bound
//! to the identity of the device whose pairwise session delivered it (the
//! identity recorded when that message was decrypted) and names a signing
//! key no other member device of the group holds. Anything else is refused
//! and reported as [`Event::SenderKeyRefused`]: a member cannot pass off
//! another member's chain (and so her messages) as its own.

use rand_core::CryptoRngCore;
use starling_crypto::IdentityKey;
use starling_crypto::group::{InboundGroupSession, SenderKeyDistribution};

use super::stored;
use crate::clock::Clock;
use crate::content::{self, Content, group_control::Action};
use crate::device::{Device, Result};
use crate::error::SenderKeyRefusal;
use crate::events::Event;
use crate::storage::Storage;
use crate::transport::Transport;

impl<S, T, C, R> Device<S, T, C, R>
where
    S: Storage,
    T: Transport,
    C: Clock,
    R: CryptoRngCore,
{
    /// A member device's sender key: the group it travels with applied
    /// first (so a device that did not know the group learns it), then the
    /// key stored, then the messages that waited for it decrypted.
    pub(in crate::device) async fn apply_sender_key(
        &mut self,
        sender: &str,
        device: u32,
        content: &Content,
        key: &content::SenderKey,
    ) -> Result<Vec<Event>, S, T> {
        let mut events = Vec::new();
        // The state teaches a group this device does not know; it never
        // changes one it knows (changes come as group updates, recorded in
        // the history), and it carries no explicit changes.
        if let Some(group) = &key.group
            && group.action == i32::from(Action::Update)
            && group.added.is_empty()
            && group.removed.is_empty()
            && stored(self.storage.group(&content.group_id).await)?.is_none()
        {
            events.extend(self.apply_group_control(sender, content, group).await?);
        }
        if key.distribution.is_empty() {
            return Ok(events);
        }
        let imported = self
            .import_sender_key(sender, device, &content.group_id, &key.distribution)
            .await?;
        let refused = !imported.is_empty();
        events.extend(imported);
        if !refused {
            events.extend(self.release_held(&content.group_id, sender, device).await?);
        }
        Ok(events)
    }

    /// Stores a member device's sender key, or reports why it was refused.
    /// Distributions for groups we do not know or are not in, or from
    /// someone not a member, are ignored.
    pub(in crate::device) async fn import_sender_key(
        &mut self,
        sender: &str,
        device: u32,
        group_id: &[u8],
        distribution: &[u8],
    ) -> Result<Vec<Event>, S, T> {
        let Some(group) = stored(self.storage.group(group_id).await)? else {
            return Ok(Vec::new());
        };
        if !group.active || !group.members.iter().any(|m| m == sender) {
            return Ok(Vec::new());
        }
        let session = match self
            .bound_session(sender, device, group_id, distribution)
            .await?
        {
            Ok(session) => session,
            Err(refusal) => {
                tracing::warn!(sender, device, %refusal, "sender key refused");
                return Ok(vec![Event::SenderKeyRefused {
                    sender: sender.to_owned(),
                    device,
                    group_id: hex::encode(group_id),
                    reason: refusal.to_string(),
                }]);
            }
        };
        let saved = self
            .storage
            .save_inbound_group_session(group_id, sender, device, &session, None)
            .await;
        stored(saved)?;
        Ok(Vec::new())
    }

    /// The inbound session of `sender`'s `device` with `distribution`
    /// added, when it is bound to that device and its signing key to no
    /// other device; the store is not changed.
    async fn bound_session(
        &self,
        sender: &str,
        device: u32,
        group_id: &[u8],
        distribution: &[u8],
    ) -> Result<std::result::Result<InboundGroupSession, SenderKeyRefusal>, S, T> {
        let distribution = match SenderKeyDistribution::from_bytes(distribution) {
            Ok(distribution) => distribution,
            Err(error) => return Ok(Err(SenderKeyRefusal::Decode(error))),
        };
        if distribution.group_id() != group_id {
            return Ok(Err(SenderKeyRefusal::WrongGroup));
        }
        let Some(identity) = self.identity_of(sender, device).await? else {
            return Ok(Err(SenderKeyRefusal::UnknownIdentity));
        };
        let holders = self
            .storage
            .group_signing_key_holders(group_id, &distribution.signing_key_bytes())
            .await;
        if let Some((holder, holder_device)) = stored(holders)?
            .into_iter()
            .find(|(user, d)| user != sender || *d != device)
        {
            return Ok(Err(SenderKeyRefusal::KeyOfAnotherSender {
                holder,
                device: holder_device,
            }));
        }
        let existing = self
            .storage
            .inbound_group_session(group_id, sender, device)
            .await;
        let session = match stored(existing)? {
            // The same device identity: its chains move forward.
            Some(mut session) if session.is_from(&identity) => session
                .add_distribution(&distribution, &identity)
                .map(|()| session),
            // A new identity on this device (it was set up again): its old
            // chains go.
            _ => InboundGroupSession::new(&distribution, &identity),
        };
        Ok(session.map_err(SenderKeyRefusal::NotBound))
    }

    /// The identity key recorded for `sender`'s `device`: the one its
    /// pairwise messages were last decrypted under.
    async fn identity_of(&self, sender: &str, device: u32) -> Result<Option<IdentityKey>, S, T> {
        let keys = stored(self.storage.identity_keys(sender).await)?;
        Ok(keys
            .into_iter()
            .find(|(d, _)| *d == device)
            .map(|(_, key)| key))
    }
}
