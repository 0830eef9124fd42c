//! Calls between clients: signalling over the end-to-end encrypted sessions
//! (offer, answer, leave, hang-up, busy, and the caller's media keys), and
//! the loop that runs a headless call through the media relay.
//!
//! The caller's device that sent the offer is the call's epoch authority:
//! at every join and every leave it starts a new epoch and sends the
//! participant list, with its own sending secret of the epoch, to the
//! devices in the call only. Every participant then draws its own sending
//! secret of the epoch and sends it to the other participants' devices, so
//! each sender has a key no one else made, a newcomer cannot read what came
//! before it and a leaver nothing after. Epochs from any other device, or
//! not newer than the last, are refused (by the client core's key gate).
//! Media keys never reach the server or relay.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::Client;
use crate::call::keys::{FrameEncryptor, new_secret};
use crate::call::media::{MediaSession, ReceivedFrame};
use crate::call::run::{Shared, lock};
use crate::call::streams::Device;
use starling_client_core::device::call_signal;

mod session;
use crate::content::{self, call_signal::Kind};
use crate::conversation::{Conversation, ConversationRef};
use crate::error::{ClientError, Result};

/// Most participants a call may have (SFrame key ids hold 8 bits of index).
pub(crate) const MAX_CALL_PARTICIPANTS: usize = 64;
/// A participant the caller has not heard from for this long is dropped
/// (as the relay frees it after its idle timeout).
pub(super) const VANISHED_AFTER: Duration = Duration::from_secs(10);
/// How to run a headless call.
#[derive(Debug, Clone, Copy)]
pub struct CallOptions {
    /// How long to stay in the call.
    pub duration: Duration,
    /// Whether to publish video as well as audio.
    pub video: bool,
}

/// A call that rang.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IncomingCall {
    /// The call (hex).
    pub call_id: String,
    /// Who calls.
    pub caller: String,
    /// The caller's device that sent the offer: the only one whose epochs
    /// are taken.
    pub caller_device: u32,
    /// Participants the caller expects at most.
    pub max_participants: u32,
    /// Whether the caller publishes video.
    pub video: bool,
}

/// What a headless call measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CallReport {
    /// The call (hex).
    pub call_id: String,
    /// Most participants at once, ourselves included.
    pub participants: usize,
    /// Frames we sent.
    pub frames_sent: u64,
    /// Frames received, decrypted and verified byte for byte.
    pub frames_received: u64,
    /// Frames under a key we were never given (sent before we joined or
    /// after we left).
    pub frames_without_key: u64,
    /// Frames that failed authentication or verification.
    pub frames_corrupt: u64,
    /// Frames refused unplayed: replays, and frames whose key id is not
    /// the participant's whose stream carried them.
    pub frames_refused: u64,
    /// Call key messages refused (see `Event::CallKeyRefused`).
    pub keys_refused: u64,
    /// Share of frames lost between the first and last of each stream.
    pub loss: f64,
    /// The key epochs we were given, in order: a newcomer's first is the
    /// one made at its join, a leaver's last the one before its leave.
    pub epochs: Vec<u32>,
    /// Median latency from the sender's stamp to the verified frame.
    pub latency_p50_ms: f64,
    /// 99th percentile of that latency.
    pub latency_p99_ms: f64,
}

#[derive(Debug, Clone)]
pub(super) struct Participant {
    pub(super) username: String,
    pub(super) device: u32,
    pub(super) index: u8,
    /// Its participant number on the relay (0: none).
    pub(super) relay: u64,
    pub(super) joined_at: std::time::Instant,
}

/// Who we are in the call.
pub(super) enum Role {
    Caller {
        invited: Vec<String>,
        participants: Vec<Participant>,
        epoch: u32,
    },
    Callee {
        caller: String,
        /// The caller's device that offered the call.
        caller_device: u32,
        /// Participants in the newest epoch the caller sent.
        participants: usize,
    },
}

impl Role {
    pub(super) fn participants(&self) -> usize {
        match self {
            Self::Caller { participants, .. } => participants.len(),
            Self::Callee { participants, .. } => *participants,
        }
    }
}

impl Client {
    /// A call signal as content, with a fresh id from the core.
    pub(super) fn signal(&mut self, call_id: &[u8], kind: Kind) -> content::Content {
        self.core.new_content(call_signal(call_id, kind))
    }

    /// Calls `target` (`@user`, `#group`, or a bare name as elsewhere) and
    /// stays for `options.duration`, publishing synthetic media; returns
    /// what was measured. The call ends for everyone when it returns.
    pub async fn place_call<'a>(
        &mut self,
        target: impl Into<ConversationRef<'a>>,
        options: CallOptions,
    ) -> Result<CallReport> {
        let invited = self.invited(target.into()).await?;
        let mut call_id = vec![0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut call_id);
        let (media, frames) = self.join_media(&call_id, invited.len()).await?;
        let shared: Shared = Arc::default();
        let secret = new_secret(&mut rand::rngs::OsRng);
        let me: Device = (self.username().to_owned(), self.device_id());
        {
            let mut crypto = lock(&shared);
            crypto.encryptor = Some(FrameEncryptor::new(0, 0, &secret)?);
            let relay = media.relay_participant();
            crypto.relay_participant = relay;
            crypto.add_epoch(0, [(0, (me.clone(), relay))].into());
        }
        let offer = self.signal(
            &call_id,
            Kind::Offer(content::CallOffer {
                video: options.video,
                max_participants: u32::try_from(invited.len() + 1).unwrap_or(u32::MAX),
            }),
        );
        self.core.calls().join(&call_id);
        self.core.calls().own_epoch(0, std::slice::from_ref(&me));
        let role = Role::Caller {
            invited: invited.clone(),
            participants: vec![Participant {
                username: self.username().to_owned(),
                device: self.device_id(),
                index: 0,
                relay: media.relay_participant(),
                joined_at: std::time::Instant::now(),
            }],
            epoch: 0,
        };
        let result = match self.send_pairwise(&invited, &offer).await {
            Ok(()) => {
                self.run_call(&call_id, role, media, frames, shared, options)
                    .await
            }
            Err(e) => {
                media.leave().await;
                Err(e)
            }
        };
        self.core.calls().idle();
        result
    }

    /// Waits up to `wait` for a call to ring, answers it and stays for
    /// `options.duration` (or until the caller hangs up).
    pub async fn answer_call(
        &mut self,
        wait: Duration,
        options: CallOptions,
    ) -> Result<CallReport> {
        let incoming = self.wait_for_call(wait).await?;
        self.answer(incoming, options).await
    }

    /// Waits up to `wait` for a call to ring (an app shows it, then calls
    /// [`Self::answer`] or lets it ring out).
    pub async fn wait_for_call(&mut self, wait: Duration) -> Result<IncomingCall> {
        self.core.calls().ring();
        let result = self.first_offer(wait).await;
        self.core.calls().idle();
        result
    }

    async fn first_offer(&mut self, wait: Duration) -> Result<IncomingCall> {
        // Staged envelopes from before a crash are applied (and stored)
        // first, like `receive` does.
        self.apply_pending().await?;
        let mut connection = self.connect().await?;
        let deadline = tokio::time::Instant::now() + wait;
        let mut drained = false;
        loop {
            if let Some((caller, device, call)) = self.core.calls().next_signal() {
                if let Some(Kind::Offer(offer)) = call.kind {
                    connection.close().await;
                    return Ok(IncomingCall {
                        call_id: hex::encode(&call.call_id),
                        caller,
                        caller_device: device,
                        max_participants: offer.max_participants,
                        video: offer.video,
                    });
                }
                continue;
            }
            let event = tokio::select! {
                event = connection.next_event() => event?,
                _ = tokio::time::sleep_until(deadline) => {
                    connection.close().await;
                    return Err(ClientError::NoCall);
                }
            };
            let Some(event) = event else {
                return Err(ClientError::Network(
                    "the server closed the connection".into(),
                ));
            };
            self.handle_server_event(&mut connection, event, &mut drained)
                .await?;
        }
    }

    /// Joins a call that rang and stays for `options.duration` (or until
    /// the caller hangs up).
    pub async fn answer(
        &mut self,
        incoming: IncomingCall,
        options: CallOptions,
    ) -> Result<CallReport> {
        let call_id = hex::decode(&incoming.call_id).map_err(ClientError::protocol)?;
        let caller = incoming.caller;
        let slots = usize::try_from(incoming.max_participants)
            .unwrap_or(MAX_CALL_PARTICIPANTS)
            .clamp(2, MAX_CALL_PARTICIPANTS)
            - 1;
        let (media, frames) = self.join_media(&call_id, slots).await?;
        let caller_device = incoming.caller_device;
        self.core.calls().answer(&call_id, &caller, caller_device);
        let relay_participant = media.relay_participant();
        let answer = self.signal(
            &call_id,
            Kind::Answer(content::CallAnswer { relay_participant }),
        );
        if let Err(e) = self
            .send_pairwise(std::slice::from_ref(&caller), &answer)
            .await
        {
            media.leave().await;
            self.core.calls().idle();
            return Err(e);
        }
        let role = Role::Callee {
            caller,
            caller_device,
            participants: 1,
        };
        let result = self
            .run_call(&call_id, role, media, frames, Arc::default(), options)
            .await;
        self.core.calls().idle();
        result
    }

    /// Who a call to `target` rings: the person, or the group's other
    /// members while we are one of them.
    async fn invited(&self, target: ConversationRef<'_>) -> Result<Vec<String>> {
        let invited: Vec<String> = match self.conversation(target).await? {
            Conversation::Group(id) => {
                let group = self
                    .store()
                    .group(id.as_bytes())
                    .await?
                    .ok_or_else(|| ClientError::UnknownGroup(id.to_hex()))?;
                if !group.active {
                    return Err(ClientError::NotAMember(id.to_hex()));
                }
                group
                    .members
                    .into_iter()
                    .filter(|m| *m != self.username())
                    .collect()
            }
            Conversation::Direct(user) => vec![user.into_string()],
        };
        if invited.is_empty() || invited.len() >= MAX_CALL_PARTICIPANTS {
            return Err(ClientError::CallSize {
                max: MAX_CALL_PARTICIPANTS,
            });
        }
        Ok(invited)
    }

    async fn join_media(
        &self,
        call_id: &[u8],
        slots: usize,
    ) -> Result<(MediaSession, mpsc::Receiver<ReceivedFrame>)> {
        let call = hex::encode(call_id);
        let token = self.api().call_token().await?;
        let relay = token
            .relay_url
            .as_deref()
            .ok_or(ClientError::NoMediaRelay)?;
        let (relay, http) = self.api().relay(relay)?;
        let turn = self.api().turn_credentials().await?;
        MediaSession::join_via(
            http,
            relay.as_str(),
            &call,
            &token.token,
            slots,
            turn.as_ref(),
        )
        .await
    }
}
