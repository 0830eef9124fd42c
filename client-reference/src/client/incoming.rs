//! Incoming envelopes: decrypt (pairwise or Sender Key), trust on first
//! use, apply the content, record it, and only then let the caller
//! acknowledge. A message that cannot be decrypted is reported, never
//! fatal, and starts a session repair with its sender.

use std::time::{Duration, Instant};

use prost::Message as _;
use starling_crypto::ratchet::{CiphertextMessage, Decrypted, PeerSessions};

use super::Client;
use crate::connection::{Connection, ServerEvent};
use crate::content::{self, Content, Transport, transport};
use crate::conversation::Conversation;
use crate::error::{ClientError, Result};
use crate::frames::Envelope;
use crate::store::{InboxItem, TrustChange};
use starling_client_core::Event;

/// Shortest time between two session repairs with one sender device.
pub(super) const REPAIR_INTERVAL: Duration = Duration::from_secs(600);

/// Why an envelope yielded nothing readable.
enum Failure {
    /// The envelope cannot be read: report it, acknowledge it, repair.
    Unreadable(String),
    /// Our side failed (store, network): do not acknowledge.
    Local(ClientError),
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Self {
        Self::Local(error)
    }
}

fn unreadable(error: impl std::fmt::Display) -> Failure {
    Failure::Unreadable(error.to_string())
}

impl Client {
    /// Opens the WebSocket and tops up prekeys if needed (a failed top-up
    /// is logged, not fatal).
    pub async fn connect(&mut self) -> Result<Connection> {
        let connection = Connection::open(&self.api).await?;
        self.maintain_prekeys_or_log().await;
        self.own_devices.forget();
        Ok(connection)
    }

    /// Waits for the next server event and processes it. Returns the
    /// events it produced (possibly none), or `None` once the server
    /// closed the connection. `drained` is set when the queue of envelopes
    /// waiting at connect time has been delivered.
    pub async fn next_events(
        &mut self,
        connection: &mut Connection,
        drained: &mut bool,
    ) -> Result<Option<Vec<Event>>> {
        let Some(event) = connection.next_event().await? else {
            return Ok(None);
        };
        self.handle_server_event(connection, event, drained)
            .await
            .map(Some)
    }

    /// Processes one event read from the connection (reading is cancel
    /// safe; this is not: run it to completion).
    pub(crate) async fn handle_server_event(
        &mut self,
        connection: &mut Connection,
        event: ServerEvent,
        drained: &mut bool,
    ) -> Result<Vec<Event>> {
        match event {
            ServerEvent::Envelope(envelope) => {
                let id = envelope.id.clone();
                let events = self.process_envelope(envelope).await?;
                connection.acknowledge(vec![id]).await?;
                Ok(events)
            }
            ServerEvent::QueueDrained => {
                *drained = true;
                Ok(Vec::new())
            }
            ServerEvent::PrekeysLow => {
                self.maintain_prekeys_or_log().await;
                Ok(Vec::new())
            }
            ServerEvent::Error(reason) => Err(ClientError::Protocol(reason)),
        }
    }

    /// The events arriving for this device, as a stream that runs until the
    /// server closes the connection (or an error, which ends it). Staged
    /// envelopes from before a crash come first. Each envelope is stored
    /// before it is acknowledged.
    pub async fn events(&mut self) -> Result<impl futures_util::Stream<Item = Result<Event>> + '_> {
        let pending: std::collections::VecDeque<Event> = self.apply_pending().await?.into();
        let connection = self.connect().await?;
        let state = (self, Some(connection), pending);
        Ok(futures_util::stream::unfold(
            state,
            |(client, mut connection, mut pending)| async move {
                loop {
                    if let Some(event) = pending.pop_front() {
                        return Some((Ok(event), (client, connection, pending)));
                    }
                    let conn = connection.as_mut()?;
                    let mut drained = false;
                    match client.next_events(conn, &mut drained).await {
                        Ok(Some(events)) => pending.extend(events),
                        Ok(None) => return None,
                        Err(e) => return Some((Err(e), (client, None, pending))),
                    }
                }
            },
        ))
    }

    /// Receives what is queued; when `wait` is given, keeps listening until
    /// something arrives or the time is up. Returns everything that happened.
    ///
    /// Everything returned is already stored. When an error cuts the
    /// exchange short after something arrived, what arrived is returned
    /// (the error is logged, and the next call meets it again if it lasts).
    pub async fn receive(&mut self, wait: Option<Duration>) -> Result<Vec<Event>> {
        let mut events = self.apply_pending().await?;
        let mut connection = self.connect().await?;
        let deadline = tokio::time::Instant::now() + wait.unwrap_or_default();
        let mut drained = false;
        loop {
            let done = drained && (wait.is_none() || !events.is_empty());
            if done {
                break;
            }
            let next = if drained {
                match tokio::time::timeout_at(
                    deadline,
                    self.next_events(&mut connection, &mut drained),
                )
                .await
                {
                    Ok(next) => next,
                    Err(_) => break,
                }
            } else {
                self.next_events(&mut connection, &mut drained).await
            };
            match next {
                Ok(Some(new)) => events.extend(new),
                Ok(None) => break,
                Err(error) if !events.is_empty() => {
                    tracing::warn!(%error, "receiving stopped early");
                    break;
                }
                Err(error) => return Err(error),
            }
        }
        connection.close().await;
        self.delete_expired().await?;
        Ok(events)
    }

    /// Decrypts and applies one envelope. Store and network failures are
    /// returned (the envelope stays on the server); unreadable envelopes
    /// become a [`Event::DecryptionFailed`].
    pub async fn process_envelope(&mut self, envelope: Envelope) -> Result<Vec<Event>> {
        if self.store.envelope_seen(&envelope.id).await? {
            return Ok(Vec::new());
        }
        // Decrypted before a crash: apply what was staged, do not decrypt
        // again (the session has moved on).
        if let Some(item) = self.store.inbox_item(&envelope.id).await? {
            return self.apply_staged(item).await;
        }
        match self.open_envelope(&envelope).await {
            Ok(item) => self.apply_staged(item).await,
            Err(Failure::Local(error)) => Err(error),
            Err(Failure::Unreadable(reason)) => {
                tracing::warn!(sender = %envelope.sender, device = envelope.sender_device, "undecryptable envelope");
                // Done with the envelope first: a repair that cannot happen
                // now (the sender's server unreachable) must not block the
                // messages queued behind it.
                self.store.finish_envelope(&envelope.id).await?;
                if !envelope.sender.is_empty()
                    && let Err(error) = self
                        .repair_session(&envelope.sender, envelope.sender_device)
                        .await
                {
                    tracing::warn!(%error, "session repair failed; the next unreadable message retries it");
                }
                Ok(vec![Event::DecryptionFailed {
                    sender: envelope.sender.clone(),
                    device: envelope.sender_device,
                    reason,
                }])
            }
        }
    }

    /// Applies envelopes that were decrypted but not applied when the
    /// client last stopped (a crash); their envelopes may already be gone
    /// from the server.
    pub async fn apply_pending(&mut self) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        for item in self.store.pending_inbox().await? {
            events.extend(self.apply_staged(item).await?);
        }
        Ok(events)
    }

    /// Applies a staged envelope's content, then marks it processed.
    async fn apply_staged(&mut self, item: InboxItem) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        // Validated before staging; a failure here means a damaged store.
        let content = Content::decode(item.content.as_slice())?;
        if item.identity_changed {
            events.push(Event::IdentityChanged {
                username: item.sender.clone(),
            });
        }
        events.extend(
            self.apply_content(&item.sender, item.sender_device, content, item.pairwise)
                .await?,
        );
        self.store.finish_envelope(&item.envelope_id).await?;
        Ok(events)
    }

    async fn open_envelope(&mut self, envelope: &Envelope) -> Result<InboxItem, Failure> {
        if envelope.sender.is_empty() {
            return Err(unreadable(
                "sealed envelopes are not supported by this client",
            ));
        }
        let transport = Transport::decode(envelope.content.as_slice()).map_err(unreadable)?;
        match transport.body {
            Some(transport::Body::Pairwise(bytes)) => self.open_pairwise(envelope, &bytes).await,
            Some(transport::Body::Group(group)) => self.open_group(envelope, &group).await,
            None => Err(unreadable("empty transport")),
        }
    }

    /// Decrypts a pairwise envelope and stages its content together with
    /// the advanced session.
    async fn open_pairwise(
        &mut self,
        envelope: &Envelope,
        bytes: &[u8],
    ) -> Result<InboxItem, Failure> {
        let sender = envelope.sender.as_str();
        let device = envelope.sender_device;
        let message = CiphertextMessage::from_bytes(bytes).map_err(unreadable)?;
        let mut sessions = self.store.sessions(sender, device).await?;
        let decrypted = sessions
            .decrypt(
                &self.identity,
                &mut self.prekeys,
                &message,
                &mut rand::rngs::OsRng,
            )
            .map_err(unreadable)?;
        let staged = self.stage_pairwise(envelope, &sessions, decrypted).await;
        if staged.is_err() {
            // The one-time prekey this message consumed is back in the
            // store: a redelivery must decrypt as the first attempt would.
            self.prekeys = self.store.load_prekeys().await?;
        }
        staged
    }

    /// Checks a decrypted pairwise content, records the sender's identity
    /// and stages the content with the advanced session (and the consumed
    /// prekey) in one transaction.
    async fn stage_pairwise(
        &mut self,
        envelope: &Envelope,
        sessions: &PeerSessions,
        decrypted: Decrypted,
    ) -> Result<InboxItem, Failure> {
        let sender = envelope.sender.as_str();
        let device = envelope.sender_device;
        Content::decode(decrypted.plaintext.as_slice()).map_err(unreadable)?;
        let own = sender == self.username;
        let change = self
            .store
            .observe_identity(
                sender,
                device,
                &decrypted.sender,
                own.then_some(self.device_id),
            )
            .await?;
        if own && change != TrustChange::Known {
            self.own_devices.forget();
        }
        let item = InboxItem {
            envelope_id: envelope.id.clone(),
            sender: sender.to_owned(),
            sender_device: device,
            pairwise: true,
            identity_changed: change == TrustChange::Changed && !own,
            content: decrypted.plaintext,
        };
        let consumed = decrypted.new_session.then_some(&self.prekeys);
        self.store
            .save_sessions_with_inbox(sender, device, sessions, consumed, Some(&item))
            .await?;
        Ok(item)
    }

    /// Decrypts a group envelope and stages its content together with the
    /// advanced sender key.
    async fn open_group(
        &mut self,
        envelope: &Envelope,
        group: &content::GroupCiphertext,
    ) -> Result<InboxItem, Failure> {
        let sender = envelope.sender.as_str();
        let device = envelope.sender_device;
        let mut inbound = self
            .store
            .inbound_group_session(&group.group_id, sender, device)
            .await?
            .ok_or_else(|| unreadable("no sender key from this member"))?;
        let plaintext = inbound
            .verify_and_decrypt(&group.message)
            .map_err(unreadable)?;
        let content = Content::decode(plaintext.as_slice()).map_err(unreadable)?;
        if content.group_id != group.group_id {
            return Err(unreadable("group message names another group"));
        }
        let item = InboxItem {
            envelope_id: envelope.id.clone(),
            sender: sender.to_owned(),
            sender_device: device,
            pairwise: false,
            identity_changed: false,
            content: plaintext,
        };
        self.store
            .save_inbound_group_session_with_inbox(
                &group.group_id,
                sender,
                device,
                &inbound,
                Some(&item),
            )
            .await?;
        Ok(item)
    }

    /// Applies a decrypted content from `sender`'s `device`.
    async fn apply_content(
        &mut self,
        sender: &str,
        device: u32,
        content: Content,
        pairwise: bool,
    ) -> Result<Vec<Event>> {
        use content::Body;
        let own = sender == self.username;
        let Some(conversation) = self.conversation_of(sender, &content).await? else {
            // Only a control message may apply outside a known conversation
            // (it can create the group it names).
            return match &content.body {
                Some(Body::GroupControl(control)) if pairwise => {
                    self.apply_group_control(sender, &content, control).await
                }
                _ => Ok(Vec::new()),
            };
        };
        let events = match &content.body {
            Some(Body::SenderKey(key)) if pairwise => {
                self.import_sender_key(sender, device, &content.group_id, &key.distribution)
                    .await?;
                Vec::new()
            }
            Some(Body::SenderKey(_)) => Vec::new(),
            Some(Body::GroupControl(control)) if pairwise => {
                self.apply_group_control(sender, &content, control).await?
            }
            Some(Body::GroupControl(_)) => Vec::new(),
            Some(Body::Call(call)) if pairwise && content.group_id.is_empty() => {
                self.apply_call_signal(sender, device, &conversation, &content, call)
                    .await?
            }
            Some(Body::Call(_)) => Vec::new(),
            Some(Body::SessionReset(_)) => {
                self.store.forget_distribution(sender, device).await?;
                Vec::new()
            }
            Some(
                body @ (Body::Edit(_) | Body::Delete(_) | Body::Reaction(_) | Body::ReadReceipt(_)),
            ) => self.apply_update(sender, &conversation, body).await?,
            Some(Body::ExpirationTimer(timer)) => {
                self.apply_timer(&conversation, timer.seconds).await?;
                self.record(&conversation, sender, device, own, &content, None)
                    .await?
                    .map(Event::Message)
                    .into_iter()
                    .collect()
            }
            _ => self
                .record(&conversation, sender, device, own, &content, None)
                .await?
                .map(Event::Message)
                .into_iter()
                .collect(),
        };
        Ok(events)
    }

    /// The conversation a content from `sender` belongs to; `None` for a
    /// group we do not know, a group `sender` is not a member of (unless
    /// the content is a control message), or a direct message that names
    /// no valid account.
    async fn conversation_of(
        &self,
        sender: &str,
        content: &Content,
    ) -> Result<Option<Conversation>> {
        if !content.group_id.is_empty() {
            let Some(group) = self.store.group(&content.group_id).await? else {
                return Ok(None);
            };
            let member = group.members.iter().any(|m| m == sender);
            let control = matches!(content.body, Some(content::Body::GroupControl(_)));
            return Ok((member || control).then(|| group.conversation()));
        }
        let peer = match (sender == self.username, content.synced_to.as_str()) {
            (true, "") => self.username.as_str(),
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

    /// After an unreadable message: a fresh session with the sender's
    /// device, announced with a reset message so its next messages use it.
    /// At most one repair per sender device in [`REPAIR_INTERVAL`], so a
    /// burst of unreadable messages costs one bundle; a failed attempt may
    /// be retried at once.
    async fn repair_session(&mut self, sender: &str, device: u32) -> Result<()> {
        let now = Instant::now();
        self.repaired
            .retain(|_, started| now.duration_since(*started) < REPAIR_INTERVAL);
        let key = (sender.to_owned(), device);
        if self.repaired.contains_key(&key) {
            return Ok(());
        }
        self.repaired.insert(key.clone(), now);
        let result = self.establish_and_reset(sender, device).await;
        if result.is_err() {
            self.repaired.remove(&key);
        }
        result
    }

    async fn establish_and_reset(&mut self, sender: &str, device: u32) -> Result<()> {
        match self.establish_from_server(sender, device).await {
            Ok(()) => {}
            // The device is gone: nothing to repair.
            Err(ClientError::UnknownUser(_) | ClientError::Server { status: 404, .. }) => {
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        let reset = content::new_content(content::Body::SessionReset(content::SessionReset {}));
        self.send_pairwise(&[sender.to_owned()], &reset).await
    }
}
