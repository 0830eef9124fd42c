//! A running call: the loop that reads the message connection while the
//! media tasks run, the signals of our call (answers, leaves, epochs, media
//! keys, hang-ups), the caller's epoch authority (a new epoch at every
//! join, leave and vanished participant) and every participant's own
//! sending key of each epoch, sent to the devices in the call only.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use zeroize::Zeroizing;

use super::{CallOptions, CallReport, Participant, Role, VANISHED_AFTER};
use crate::call::keys::{FrameEncryptor, new_secret};
use crate::call::media::{MediaSession, ReceivedFrame};
use crate::call::run::{Shared, lock, publish, receive};
use crate::call::streams::Device;
use crate::client::Client;
use crate::content::{self, call_signal::Kind};
use crate::error::Result;
use starling_client_core::Event;
use starling_client_core::device::CALL_KEY_VERSION;

impl Client {
    /// The call itself: media tasks run on their own while this loop reads
    /// the message connection and acts on the call's signals.
    pub(super) async fn run_call(
        &mut self,
        call_id: &[u8],
        mut role: Role,
        media: MediaSession,
        frames: mpsc::Receiver<ReceivedFrame>,
        shared: Shared,
        options: CallOptions,
    ) -> Result<CallReport> {
        lock(&shared).relay_participant = media.relay_participant();
        let media = Arc::new(media);
        let (stop_tx, stop) = watch::channel(false);
        let publisher = tokio::spawn(publish(
            Arc::clone(&media),
            Arc::clone(&shared),
            options.video,
            stop,
        ));
        let receiver = tokio::spawn(receive(frames, Arc::clone(&shared), Arc::clone(&media)));
        let outcome = self
            .call_loop(call_id, &mut role, &shared, options.duration)
            .await;
        let _ = stop_tx.send(true);
        let _ = publisher.await;
        let goodbye = match &role {
            Role::Caller { invited, .. } => (
                invited.clone(),
                self.signal(call_id, Kind::Hangup(content::CallHangup {})),
            ),
            Role::Callee { caller, .. } => (
                vec![caller.clone()],
                self.signal(call_id, Kind::Leave(content::CallLeave {})),
            ),
        };
        let said_goodbye = self.send_pairwise(&goodbye.0, &goodbye.1).await;
        media.leave().await;
        receiver.abort();
        let participants = outcome?;
        said_goodbye?;
        let crypto = lock(&shared);
        Ok(CallReport {
            call_id: hex::encode(call_id),
            participants,
            frames_sent: crypto.stats.frames_sent,
            frames_received: crypto.stats.frames_received,
            frames_without_key: crypto.stats.frames_without_key
                + u64::try_from(crypto.pending.len()).unwrap_or(u64::MAX),
            frames_corrupt: crypto.stats.frames_corrupt,
            frames_refused: crypto.stats.frames_refused,
            keys_refused: crypto.stats.keys_refused,
            epochs: crypto.epochs.clone(),
            loss: crypto.stats.loss(),
            latency_p50_ms: crypto.stats.latency_ms(500),
            latency_p99_ms: crypto.stats.latency_ms(990),
        })
    }

    /// Returns the most participants seen at once.
    async fn call_loop(
        &mut self,
        call_id: &[u8],
        role: &mut Role,
        shared: &Shared,
        duration: Duration,
    ) -> Result<usize> {
        let mut connection = self.connect().await?;
        let deadline = tokio::time::Instant::now() + duration;
        let mut drained = false;
        let mut most = 1;
        let mut check = tokio::time::interval(Duration::from_secs(1));
        loop {
            let signals: Vec<_> = self.core.calls().take_signals();
            for (sender, device, call) in signals {
                if call.call_id != call_id {
                    if matches!(call.kind, Some(Kind::Offer(_))) {
                        let busy = self.signal(&call.call_id, Kind::Busy(content::CallBusy {}));
                        let _ = self.send_pairwise(&[sender], &busy).await;
                    }
                    continue;
                }
                let ended = self
                    .on_call_signal(call_id, role, shared, &sender, device, call.kind)
                    .await?;
                most = most.max(role.participants());
                if ended {
                    connection.close().await;
                    return Ok(most);
                }
            }
            let event = tokio::select! {
                event = connection.next_event() => event?,
                _ = check.tick() => {
                    if self.drop_vanished(call_id, role, shared).await? {
                        break;
                    }
                    continue;
                }
                _ = tokio::time::sleep_until(deadline) => break,
            };
            let Some(event) = event else { break };
            let events = self
                .handle_server_event(&mut connection, event, &mut drained)
                .await?;
            count_refused_keys(&events, shared);
        }
        connection.close().await;
        Ok(most)
    }

    /// The caller's check for participants that vanished without a word (a
    /// crash, a killed process, a lost network): one silent for
    /// [`VANISHED_AFTER`] is dropped and the key changes, so it gets no key
    /// of what follows. Returns whether a 1:1 call is thereby over.
    async fn drop_vanished(
        &mut self,
        call_id: &[u8],
        role: &mut Role,
        shared: &Shared,
    ) -> Result<bool> {
        let Role::Caller {
            invited,
            participants,
            epoch,
        } = role
        else {
            return Ok(false);
        };
        let now = crate::call::run::now_micros();
        let silent_micros = u64::try_from(VANISHED_AFTER.as_micros()).unwrap_or(u64::MAX);
        let before = participants.len();
        {
            let crypto = lock(shared);
            participants.retain(|p| {
                p.index == 0
                    || p.joined_at.elapsed() < VANISHED_AFTER
                    || crypto
                        .stats
                        .last_heard(p.index)
                        .is_some_and(|heard| now.saturating_sub(heard) < silent_micros)
            });
        }
        if participants.len() == before {
            return Ok(false);
        }
        *epoch += 1;
        self.distribute_call_key(call_id, *epoch, participants, shared)
            .await?;
        Ok(participants.len() == 1 && invited.len() == 1)
    }

    /// Acts on one signal of our call; returns whether the call is over.
    async fn on_call_signal(
        &mut self,
        call_id: &[u8],
        role: &mut Role,
        shared: &Shared,
        sender: &str,
        device: u32,
        kind: Option<Kind>,
    ) -> Result<bool> {
        match (role, kind) {
            (_, Some(Kind::MediaKey(mut key))) => {
                let secret = Zeroizing::new(std::mem::take(&mut key.secret));
                let from: Device = (sender.to_owned(), device);
                let mut crypto = lock(shared);
                let taken = key.version == CALL_KEY_VERSION
                    && crypto.add_sender(key.epoch, &from, &secret)?;
                if !taken {
                    crypto.stats.keys_refused += 1;
                }
                Ok(false)
            }
            (
                Role::Caller {
                    invited,
                    participants,
                    epoch,
                },
                Some(kind),
            ) => {
                if !invited.iter().any(|u| u == sender) {
                    return Ok(false);
                }
                let present = participants
                    .iter()
                    .position(|p| p.username == sender && p.device == device);
                match (kind, present) {
                    (Kind::Answer(answer), None) => {
                        // Its relay number, once: a number already listed
                        // (or none) would let it pass its stream off as
                        // another's, or hide whose stream it is.
                        let relay = answer.relay_participant;
                        let ours = lock(shared).relay_participant;
                        if (ours != 0 && relay == 0)
                            || participants.iter().any(|p| p.relay == relay && relay != 0)
                        {
                            tracing::warn!(
                                "an answer with a relay number already taken was ignored"
                            );
                            return Ok(false);
                        }
                        let Some(index) =
                            (1..=u8::MAX).find(|i| participants.iter().all(|p| p.index != *i))
                        else {
                            return Ok(false);
                        };
                        participants.push(Participant {
                            username: sender.to_owned(),
                            device,
                            index,
                            relay,
                            joined_at: std::time::Instant::now(),
                        });
                    }
                    (Kind::Leave(_), Some(at)) => {
                        participants.remove(at);
                    }
                    (Kind::Busy(_), None) => return Ok(invited.len() == 1),
                    _ => return Ok(false),
                }
                *epoch += 1;
                self.distribute_call_key(call_id, *epoch, participants, shared)
                    .await?;
                Ok(participants.len() == 1 && invited.len() == 1)
            }
            (
                Role::Callee {
                    caller,
                    caller_device,
                    participants,
                },
                Some(Kind::Key(mut key)),
            ) => {
                // The client core's key gate let through only an epoch of
                // the current version from the offering device, newer
                // than any before; checked again here all the same.
                let from_authority = sender == caller.as_str() && device == *caller_device;
                if !from_authority || key.version != CALL_KEY_VERSION {
                    lock(shared).stats.keys_refused += 1;
                    return Ok(false);
                }
                let members = members_of(&key.participants);
                let me: Device = (self.username().to_owned(), self.device_id());
                let Some(index) = members
                    .iter()
                    .find_map(|(i, (d, _))| (*d == me).then_some(*i))
                else {
                    return Ok(false);
                };
                *participants = members.len();
                let secret = new_secret(&mut rand::rngs::OsRng);
                {
                    let mut crypto = lock(shared);
                    if crypto.epochs.last().is_some_and(|last| key.epoch <= *last) {
                        crypto.stats.keys_refused += 1;
                        return Ok(false);
                    }
                    crypto.add_epoch(key.epoch, members.clone());
                    let caller_secret = Zeroizing::new(std::mem::take(&mut key.secret));
                    let authority: Device = (sender.to_owned(), device);
                    crypto.add_sender(key.epoch, &authority, &caller_secret)?;
                }
                let others: Vec<Device> = members
                    .into_values()
                    .map(|(d, _)| d)
                    .filter(|d| *d != me)
                    .collect();
                self.send_media_key(call_id, key.epoch, &secret, &others)
                    .await?;
                lock(shared).encryptor = Some(FrameEncryptor::new(key.epoch, index, &secret)?);
                Ok(false)
            }
            (Role::Callee { caller, .. }, Some(Kind::Hangup(_))) => Ok(sender == caller.as_str()),
            _ => Ok(false),
        }
    }

    /// A new epoch: its participant list and our own sending secret of it
    /// go to the devices in the call (every participant but us), then we
    /// send with it. The other participants answer with theirs.
    async fn distribute_call_key(
        &mut self,
        call_id: &[u8],
        epoch: u32,
        participants: &[Participant],
        shared: &Shared,
    ) -> Result<()> {
        let secret = new_secret(&mut rand::rngs::OsRng);
        let listed: Vec<content::CallParticipant> = participants
            .iter()
            .map(|p| content::CallParticipant {
                username: p.username.clone(),
                device_id: p.device,
                index: u32::from(p.index),
                relay_participant: p.relay,
            })
            .collect();
        let key = |secret: Vec<u8>, participants: Vec<content::CallParticipant>| {
            Kind::Key(content::CallKey {
                version: CALL_KEY_VERSION,
                epoch,
                secret,
                participants,
            })
        };
        let devices: Vec<Device> = participants
            .iter()
            .map(|p| (p.username.clone(), p.device))
            .collect();
        self.core.calls().own_epoch(epoch, &devices);
        lock(shared).add_epoch(
            epoch,
            participants
                .iter()
                .map(|p| (p.index, ((p.username.clone(), p.device), p.relay)))
                .collect(),
        );
        let me: Device = (self.username().to_owned(), self.device_id());
        let others: Vec<Device> = devices.into_iter().filter(|d| *d != me).collect();
        if !others.is_empty() {
            let content = self.signal(call_id, key(secret.to_vec(), listed));
            let elsewhere = self.signal(call_id, key(Vec::new(), Vec::new()));
            self.core
                .send_pairwise_to(&others, &content, &elsewhere)
                .await?;
        }
        lock(shared).encryptor = Some(FrameEncryptor::new(epoch, 0, &secret)?);
        Ok(())
    }

    /// Our own sending secret of `epoch`, to the other participants'
    /// devices in the call only.
    async fn send_media_key(
        &mut self,
        call_id: &[u8],
        epoch: u32,
        secret: &[u8],
        others: &[Device],
    ) -> Result<()> {
        if others.is_empty() {
            return Ok(());
        }
        let key = |secret: Vec<u8>| {
            Kind::MediaKey(content::CallMediaKey {
                version: CALL_KEY_VERSION,
                epoch,
                secret,
            })
        };
        let content = self.signal(call_id, key(secret.to_vec()));
        let elsewhere = self.signal(call_id, key(Vec::new()));
        Ok(self
            .core
            .send_pairwise_to(others, &content, &elsewhere)
            .await?)
    }
}

/// The participants of an epoch as the caller listed them: index → device
/// and relay number (entries with an index beyond 255 are left out).
fn members_of(participants: &[content::CallParticipant]) -> BTreeMap<u8, (Device, u64)> {
    participants
        .iter()
        .filter_map(|p| {
            let index = u8::try_from(p.index).ok()?;
            let device = (p.username.clone(), p.device_id);
            Some((index, (device, p.relay_participant)))
        })
        .collect()
}

/// Counts the call key messages the client core refused.
fn count_refused_keys(events: &[Event], shared: &Shared) {
    let refused = events
        .iter()
        .filter(|e| matches!(e, Event::CallKeyRefused { .. }))
        .count();
    if refused > 0 {
        for event in events {
            if let Event::CallKeyRefused { epoch, reason, .. } = event {
                tracing::warn!(epoch, %reason, "call key refused");
            }
        }
        lock(shared).stats.keys_refused += u64::try_from(refused).unwrap_or(u64::MAX);
    }
}
