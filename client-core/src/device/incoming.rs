//! Incoming envelopes: decrypt (pairwise or Sender Key), trust on first
//! use, stage the content with the advanced session in one durable step,
//! then apply it. A message that cannot be decrypted is reported, never
//! fatal, and changes no session: whoever can inject or replay envelopes
//! (the server) must not be able to make a device start new sessions.
//! Repairs start only from a person's command or a peer's authenticated
//! request (`repair.rs`).
//!
//! The caller acknowledges an envelope to the server only after
//! [`Device::process_envelope`] returned `Ok`: by then what it carried is
//! durable, so a crash at any instant loses nothing.

use prost::Message as _;
use rand_core::CryptoRngCore;
use starling_crypto::ratchet::{CiphertextMessage, Decrypted, PeerSessions};
use starling_protocol::frames::Envelope;
use zeroize::Zeroizing;

use super::{Device, Result};
use crate::clock::Clock;
use crate::content::{self, Body, Content, transport};
use crate::conversation::Conversation;
use crate::error::DeviceError;
use crate::events::Event;
use crate::records::{HeldGroupMessage, InboxItem};
use crate::sealed::{Me, Rejection, SealedError, Unsealed};
use crate::storage::Storage;
use crate::tofu::TrustChange;
use crate::transport::Transport;

/// Why an envelope yielded nothing readable.
pub(super) enum Failure<E> {
    /// The envelope cannot be read: report it and acknowledge it.
    Unreadable(String),
    /// A sealed envelope from a certified sender whose message cannot be
    /// read (no session, no sender key): report it under that sender.
    UnreadableFrom((String, u32), String),
    /// A sealed envelope whose sender may not be believed: report it and
    /// acknowledge it.
    Rejected((String, u32), Rejection),
    /// A group message from a member device whose key we do not have
    /// (yet): hold it until the key comes (`held.rs`).
    NoSenderKey(Box<HeldGroupMessage>),
    /// Our side failed (store, network): do not acknowledge.
    Local(E),
}

/// Who sent an envelope: from its verified certificate when sealed, from
/// the server's header otherwise (believed only as far as decryption
/// authenticates it).
pub(super) struct Origin {
    pub(super) sender: String,
    pub(super) device: u32,
    /// The identity (`IdentityKey::public_bytes`) the certificate names;
    /// the message must decrypt under it.
    pub(super) certified: Option<[u8; 64]>,
}

impl Origin {
    fn rejected<E>(&self, reason: Rejection) -> Failure<E> {
        Failure::Rejected((self.sender.clone(), self.device), reason)
    }
}

fn unreadable<E>(error: impl std::fmt::Display) -> Failure<E> {
    Failure::Unreadable(error.to_string())
}

pub(super) type Opened<S, T> = std::result::Result<
    InboxItem,
    Failure<DeviceError<<S as Storage>::Error, <T as Transport>::Error>>,
>;

fn storage<S, T>(error: S) -> Failure<DeviceError<S, T>> {
    Failure::Local(DeviceError::Storage(error))
}

impl<S, T, C, R> Device<S, T, C, R>
where
    S: Storage,
    T: Transport,
    C: Clock,
    R: CryptoRngCore,
{
    /// Decrypts and applies one envelope. Store and network failures are
    /// returned (the envelope must stay on the server); unreadable
    /// envelopes become an [`Event::DecryptionFailed`].
    pub async fn process_envelope(&mut self, envelope: &Envelope) -> Result<Vec<Event>, S, T> {
        let seen = self.storage.envelope_seen(&envelope.id).await;
        if seen.map_err(DeviceError::Storage)? {
            return Ok(Vec::new());
        }
        // Decrypted before a crash: apply what was staged, do not decrypt
        // again (the session has moved on).
        let staged = self.storage.inbox_item(&envelope.id).await;
        if let Some(item) = staged.map_err(DeviceError::Storage)? {
            return self.apply_staged(item).await;
        }
        match self.open_envelope(envelope).await {
            Ok(item) => self.apply_staged(item).await,
            Err(Failure::Local(error)) => Err(error),
            Err(Failure::NoSenderKey(held)) => self.hold(*held).await,
            Err(Failure::Unreadable(reason)) => {
                // A sealed envelope that did not open names nobody: the
                // server's header is not evidence of who sent it.
                let from = if starling_crypto::sealed::is_sealed(&envelope.content) {
                    (String::new(), 0)
                } else {
                    (envelope.sender.clone(), envelope.sender_device)
                };
                self.unreadable(envelope, from, reason).await
            }
            Err(Failure::UnreadableFrom(from, reason)) => {
                self.unreadable(envelope, from, reason).await
            }
            Err(Failure::Rejected(claimed, reason)) => {
                self.rejected(envelope, claimed, reason).await
            }
        }
    }

    /// Reports a sealed envelope whose certificate was refused. Like an
    /// unreadable one it changes no session and starts no repair.
    async fn rejected(
        &mut self,
        envelope: &Envelope,
        (claimed_sender, claimed_device): (String, u32),
        reason: Rejection,
    ) -> Result<Vec<Event>, S, T> {
        tracing::warn!(%reason, "sealed sender certificate refused");
        let finished = self.storage.finish_envelope(&envelope.id).await;
        finished.map_err(DeviceError::Storage)?;
        Ok(vec![Event::SealedSenderRejected {
            claimed_sender,
            claimed_device,
            reason,
        }])
    }

    /// Reports an unreadable envelope. No repair follows: the envelope is
    /// unauthenticated (garbage under a spoofed sender, an old message
    /// replayed under a new id), so acting on it would let the server
    /// choose when sessions restart.
    async fn unreadable(
        &mut self,
        envelope: &Envelope,
        (sender, device): (String, u32),
        reason: String,
    ) -> Result<Vec<Event>, S, T> {
        tracing::warn!("undecryptable envelope");
        let finished = self.storage.finish_envelope(&envelope.id).await;
        finished.map_err(DeviceError::Storage)?;
        Ok(vec![Event::DecryptionFailed {
            sender,
            device,
            reason,
        }])
    }

    /// Applies envelopes that were decrypted but not applied when the
    /// device last stopped (a crash); their envelopes may already be gone
    /// from the server.
    pub async fn apply_pending(&mut self) -> Result<Vec<Event>, S, T> {
        let pending = self.storage.pending_inbox().await;
        let mut events = Vec::new();
        for item in pending.map_err(DeviceError::Storage)? {
            events.extend(self.apply_staged(item).await?);
        }
        Ok(events)
    }

    /// Applies a staged envelope's content, then marks it processed.
    pub(super) async fn apply_staged(&mut self, item: InboxItem) -> Result<Vec<Event>, S, T> {
        let mut events = Vec::new();
        // Validated before staging; a failure here means a damaged store.
        let content =
            Content::decode(item.content.as_slice()).map_err(DeviceError::DamagedInbox)?;
        if item.identity_changed {
            events.push(Event::IdentityChanged {
                username: item.sender.clone(),
            });
        } else {
            self.learn_profile_key(&item.sender, &content.profile_key)
                .await?;
            if item.pairwise {
                events.extend(
                    self.compare_log_root(&item.sender, item.sender_device, &content)
                        .await?,
                );
            }
        }
        if matches!(content.body, Some(Body::SenderKeyRequest(_))) {
            // Answered only in a session under keys we already trusted.
            if item.pairwise && !item.identity_changed {
                events.extend(
                    self.answer_key_request(&item.sender, item.sender_device, &content.group_id)
                        .await?,
                );
            }
        } else if matches!(content.body, Some(Body::RepairRequest(_))) {
            // Only from a peer whose keys we already knew: a request in a
            // session under a changed identity (which anyone can start) is
            // no request from the peer we trust.
            if item.pairwise && !item.identity_changed {
                events.extend(
                    self.honour_repair_request(&item.sender, item.sender_device)
                        .await?,
                );
            } else {
                tracing::info!("a repair request under a changed identity is ignored");
            }
        } else {
            events.extend(
                self.apply_content(&item.sender, item.sender_device, content, item.pairwise)
                    .await?,
            );
        }
        let finished = self.storage.finish_envelope(&item.envelope_id).await;
        finished.map_err(DeviceError::Storage)?;
        Ok(events)
    }

    /// Keeps the profile key a content carried: a contact's, to send to
    /// them unidentified; our own account's, when this device has none
    /// yet (a device linked after the key was made). Not from a sender
    /// whose keys just changed.
    async fn learn_profile_key(&mut self, sender: &str, key: &[u8]) -> Result<(), S, T> {
        let Ok(key) = <[u8; 32]>::try_from(key) else {
            return Ok(());
        };
        if sender == self.account.username {
            let adopted = self
                .sealing
                .adopt_profile_key::<S, T>(&self.storage, key)
                .await;
            return Ok(adopted?);
        }
        let known = self.storage.contact_profile_key(sender).await;
        if known.map_err(DeviceError::Storage)? != Some(key) {
            let set = self
                .storage
                .set_contact_profile_key(sender, Some(&key))
                .await;
            set.map_err(DeviceError::Storage)?;
        }
        Ok(())
    }

    async fn open_envelope(&mut self, envelope: &Envelope) -> Opened<S, T> {
        let (origin, inner) = if starling_crypto::sealed::is_sealed(&envelope.content) {
            self.unseal(envelope).await?
        } else if envelope.sender.is_empty() {
            return Err(unreadable("an envelope without a sender is not sealed"));
        } else {
            let origin = Origin {
                sender: envelope.sender.clone(),
                device: envelope.sender_device,
                certified: None,
            };
            (origin, Zeroizing::new(envelope.content.clone()))
        };
        let transport = content::Transport::decode(inner.as_slice()).map_err(unreadable);
        let opened = match transport.map(|t| t.body) {
            Ok(Some(transport::Body::Pairwise(bytes))) => {
                self.open_pairwise(&envelope.id, &origin, &bytes).await
            }
            Ok(Some(transport::Body::Group(group))) => {
                self.open_group(&envelope.id, &origin, &group).await
            }
            Ok(None) => Err(unreadable("empty transport")),
            Err(failure) => Err(failure),
        };
        opened.map_err(|failure| match failure {
            Failure::Unreadable(reason) if origin.certified.is_some() => {
                Failure::UnreadableFrom((origin.sender.clone(), origin.device), reason)
            }
            other => other,
        })
    }

    /// Removes the sealed layers and checks the certificate, at the time
    /// the envelope reached the server.
    async fn unseal(
        &mut self,
        envelope: &Envelope,
    ) -> std::result::Result<(Origin, Zeroizing<Vec<u8>>), Failure<DeviceError<S::Error, T::Error>>>
    {
        let me = Me {
            username: &self.account.username,
            device_id: self.account.device_id,
            identity: &self.account.identity,
        };
        let now = self.clock.now_millis();
        // The time certificates are checked at: the server's, which it
        // cannot put in our future by more than an hour's slack.
        if envelope.server_timestamp <= 0 {
            return Err(unreadable("a sealed envelope without a server time"));
        }
        let at = envelope
            .server_timestamp
            .min(now.saturating_add(3_600_000))
            .unsigned_abs();
        let unsealed = self
            .sealing
            .unseal(
                &self.storage,
                &self.transport,
                me,
                &envelope.content,
                at,
                now,
            )
            .await
            .map_err(|error| match error {
                SealedError::Storage(e) => Failure::Local(DeviceError::Storage(e)),
                SealedError::Transport(e) => Failure::Local(DeviceError::Transport(e)),
                SealedError::DamagedStore(e) => Failure::Local(DeviceError::DamagedSealedState(e)),
                other => unreadable(other),
            })?;
        match unsealed {
            Unsealed::Certified(sender, inner) => Ok((
                Origin {
                    sender: sender.username,
                    device: sender.device_id,
                    certified: Some(sender.identity),
                },
                inner,
            )),
            Unsealed::Rejected { claimed, reason } => Err(Failure::Rejected(claimed, reason)),
            Unsealed::Unreadable(reason) => Err(Failure::Unreadable(reason)),
        }
    }

    /// Decrypts a pairwise envelope and stages its content together with
    /// the advanced session.
    async fn open_pairwise(
        &mut self,
        envelope_id: &[u8],
        origin: &Origin,
        bytes: &[u8],
    ) -> Opened<S, T> {
        let sender = origin.sender.as_str();
        let device = origin.device;
        let message = CiphertextMessage::from_bytes(bytes).map_err(unreadable)?;
        let mut sessions = self
            .storage
            .sessions(sender, device)
            .await
            .map_err(storage)?;
        let account = &mut self.account;
        let decrypted = sessions
            .decrypt(
                &account.identity,
                &mut account.prekeys,
                &message,
                &mut self.rng,
            )
            .map_err(unreadable)?;
        let staged = self
            .stage_pairwise(envelope_id, origin, &sessions, decrypted)
            .await;
        if staged.is_err() {
            // The one-time prekey this message consumed is back in the
            // store: a redelivery must decrypt as the first attempt would.
            self.account.prekeys = self.storage.load_prekeys().await.map_err(storage)?;
        }
        staged
    }

    /// Checks a decrypted pairwise content, records the sender's identity
    /// and stages the content with the advanced session (and the consumed
    /// prekey) in one durable step.
    async fn stage_pairwise(
        &mut self,
        envelope_id: &[u8],
        origin: &Origin,
        sessions: &PeerSessions,
        decrypted: Decrypted,
    ) -> Opened<S, T> {
        let sender = origin.sender.as_str();
        let device = origin.device;
        // A sealed message must come from the identity its certificate
        // names: a certificate copied onto another key's session is refused
        // before anything is recorded.
        if origin
            .certified
            .is_some_and(|identity| identity != decrypted.sender.public_bytes())
        {
            return Err(origin.rejected(Rejection::IdentityMismatch));
        }
        Content::decode(decrypted.plaintext.as_slice()).map_err(unreadable)?;
        // Only a message that starts a session can bring an identity we
        // have not recorded (and checked) already.
        let mut certificate = None;
        if decrypted.new_session {
            let logged = crate::transparency::logged_device(
                &self.storage,
                &self.transport,
                sender,
                device,
                &decrypted.sender,
            )
            .await
            .map_err(|e| {
                Failure::Local(DeviceError::from(crate::outgoing::OutgoingError::from(e)))
            })?;
            let Some(logged) = logged else {
                return Err(origin.rejected(Rejection::NotInLog));
            };
            certificate = logged.certificate;
        }
        let own = sender == self.account.username;
        let this_device = own.then(|| (self.account.device_id, self.account.identity.public()));
        let vouched_by = crate::trust::vouched_by(
            &self.storage,
            sender,
            this_device,
            &decrypted.sender,
            certificate.as_deref(),
        )
        .await
        .map_err(storage)?;
        let change = self
            .storage
            .observe_identity(
                sender,
                device,
                &decrypted.sender,
                (own.then_some(self.account.device_id), vouched_by),
            )
            .await
            .map_err(storage)?;
        if own && change != TrustChange::Known {
            self.own_devices.forget();
        }
        let item = InboxItem {
            envelope_id: envelope_id.to_vec(),
            sender: sender.to_owned(),
            sender_device: device,
            pairwise: true,
            identity_changed: change == TrustChange::Changed && !own,
            content: decrypted.plaintext,
        };
        let consumed = decrypted.new_session.then_some(&self.account.prekeys);
        self.storage
            .stage_pairwise(sender, device, sessions, consumed, &item)
            .await
            .map_err(storage)?;
        Ok(item)
    }

    /// Decrypts a group envelope and stages its content together with the
    /// advanced sender key.
    pub(super) async fn open_group(
        &mut self,
        envelope_id: &[u8],
        origin: &Origin,
        group: &content::GroupCiphertext,
    ) -> Opened<S, T> {
        let sender = origin.sender.as_str();
        let device = origin.device;
        let inbound = self
            .storage
            .inbound_group_session(&group.group_id, sender, device)
            .await
            .map_err(storage)?;
        let Some(mut inbound) = inbound else {
            return Err(Failure::NoSenderKey(Box::new(HeldGroupMessage {
                envelope_id: envelope_id.to_vec(),
                group_id: group.group_id.clone(),
                sender: sender.to_owned(),
                sender_device: device,
                certified: origin.certified,
                message: group.message.clone(),
                received_at: self.clock.now_millis(),
            })));
        };
        if let Some(identity) = origin.certified {
            // The sender key came over a pairwise session with this
            // device: the certificate must name that session's identity.
            let known = self.storage.identity_keys(sender).await.map_err(storage)?;
            let bound = known
                .iter()
                .any(|(d, key)| *d == device && key.public_bytes() == identity);
            if !bound {
                return Err(origin.rejected(Rejection::IdentityMismatch));
            }
        }
        let plaintext = inbound
            .verify_and_decrypt(&group.message)
            .map_err(unreadable)?;
        let content = Content::decode(plaintext.as_slice()).map_err(unreadable)?;
        if content.group_id != group.group_id {
            return Err(unreadable("group message names another group"));
        }
        let item = InboxItem {
            envelope_id: envelope_id.to_vec(),
            sender: sender.to_owned(),
            sender_device: device,
            pairwise: false,
            identity_changed: false,
            content: plaintext,
        };
        self.storage
            .save_inbound_group_session(&group.group_id, sender, device, &inbound, Some(&item))
            .await
            .map_err(storage)?;
        Ok(item)
    }

    /// Applies a decrypted content from `sender`'s `device`.
    async fn apply_content(
        &mut self,
        sender: &str,
        device: u32,
        content: Content,
        pairwise: bool,
    ) -> Result<Vec<Event>, S, T> {
        let Some(conversation) = self.conversation_of(sender, &content).await? else {
            // Only a control message may apply outside a known conversation
            // (it can create the group it names).
            return match &content.body {
                Some(Body::GroupControl(control)) if pairwise => {
                    self.apply_group_control(sender, &content, control).await
                }
                Some(Body::SenderKey(key)) if pairwise && key.group.is_some() => {
                    self.apply_sender_key(sender, device, &content, key).await
                }
                _ => Ok(Vec::new()),
            };
        };
        match &content.body {
            Some(Body::SenderKey(key)) if pairwise => {
                self.apply_sender_key(sender, device, &content, key).await
            }
            Some(Body::GroupControl(control)) if pairwise => {
                self.apply_group_control(sender, &content, control).await
            }
            Some(Body::Call(call)) if pairwise && content.group_id.is_empty() => {
                self.apply_call_signal(sender, device, &conversation, &content, call)
                    .await
            }
            Some(Body::SenderKey(_) | Body::GroupControl(_) | Body::Call(_)) => Ok(Vec::new()),
            // Handled before (`apply_staged`), where its trust is known.
            Some(Body::RepairRequest(_) | Body::LogRootAnswer(_) | Body::SenderKeyRequest(_)) => {
                Ok(Vec::new())
            }
            Some(Body::SessionReset(_)) => {
                let forgot = self.storage.forget_distribution(sender, device).await;
                forgot.map_err(DeviceError::Storage)?;
                Ok(Vec::new())
            }
            Some(
                body @ (Body::Edit(_) | Body::Delete(_) | Body::Reaction(_) | Body::ReadReceipt(_)),
            ) => self.apply_update(sender, &conversation, body).await,
            Some(Body::ExpirationTimer(timer)) => {
                self.apply_timer(&conversation, timer.seconds).await?;
                self.record_received(&conversation, sender, device, &content)
                    .await
            }
            _ => {
                self.record_received(&conversation, sender, device, &content)
                    .await
            }
        }
    }

    /// Records a received content; the message event when it shows in
    /// the history.
    async fn record_received(
        &mut self,
        conversation: &Conversation,
        sender: &str,
        device: u32,
        content: &Content,
    ) -> Result<Vec<Event>, S, T> {
        let own = sender == self.account.username;
        Ok(self
            .record(conversation, sender, device, own, content, None)
            .await?
            .map(Event::Message)
            .into_iter()
            .collect())
    }

    /// The conversation a content from `sender` belongs to; `None` for a
    /// group we do not know, a group `sender` is not a member of (unless
    /// the content is a control message), or a direct message that names
    /// no valid account.
    async fn conversation_of(
        &self,
        sender: &str,
        content: &Content,
    ) -> Result<Option<Conversation>, S, T> {
        if !content.group_id.is_empty() {
            let group = self.storage.group(&content.group_id).await;
            let Some(group) = group.map_err(DeviceError::Storage)? else {
                return Ok(None);
            };
            let member = group.members.iter().any(|m| m == sender);
            let control = matches!(content.body, Some(Body::GroupControl(_)));
            return Ok((member || control).then(|| group.conversation()));
        }
        let username = self.account.username.as_str();
        let peer = match (sender == username, content.synced_to.as_str()) {
            (true, "") => username,
            (true, to) => to,
            (false, _) => sender,
        };
        match starling_protocol::Username::parse(peer) {
            Ok(peer) => Ok(Some(Conversation::Direct(peer))),
            Err(_) => {
                tracing::warn!(sender, "a message names no valid conversation");
                Ok(None)
            }
        }
    }
}
