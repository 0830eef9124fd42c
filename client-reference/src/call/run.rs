//! The media side of a running call: the state the send task, the receive
//! task and the call loop share (keys, the members of each epoch, the
//! relay's stream mapping, frames waiting for their sender's key,
//! statistics), and the two tasks. No signalling here.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};

use super::frames::{MediaKind, synthetic_frame, verify_frame};
use super::keys::{
    EPOCHS_KEPT, FrameDecryptor, FrameEncryptor, OpenError, frame_key_id, split_key_id,
};
use super::media::{MediaSession, ReceivedFrame};
use super::stats::CallStats;
use super::streams::{Device, Members, StreamCheck, StreamMap, check};
use crate::error::Result;

/// Frames kept while their sender's key is on its way.
const MAX_PENDING_FRAMES: usize = 1_024;
/// Shortest time between two reads of the relay's stream mapping.
const STREAMS_REFRESH: Duration = Duration::from_millis(250);

pub(crate) fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Media state shared by the send and receive tasks and the call loop.
#[derive(Default)]
pub(crate) struct MediaCrypto {
    pub(crate) encryptor: Option<FrameEncryptor>,
    /// Our participant number on the relay (0: none): the caller lists
    /// it for everyone, a callee sends it in its answer.
    pub(crate) relay_participant: u64,
    decryptor: FrameDecryptor,
    members: Members,
    streams: StreamMap,
    /// Frames waiting for their sender's key: stream and ciphertext.
    pub(crate) pending: VecDeque<(u32, Vec<u8>)>,
    pub(crate) epochs: Vec<u32>,
    pub(crate) stats: CallStats,
}

impl MediaCrypto {
    /// Opens a frame that arrived on stream `ssrc`. One under a key we lack
    /// waits (bounded) for a key that may be on its way, unless
    /// `last_try`; one whose key id is not the stream's publisher's, or a
    /// replay, is refused.
    fn open(&mut self, ssrc: u32, ciphertext: Vec<u8>, last_try: bool) {
        let Some(key_id) = frame_key_id(&ciphertext) else {
            self.stats.frames_corrupt += 1;
            return;
        };
        if !self.decryptor.has_key(key_id) {
            if !last_try && self.pending.len() < MAX_PENDING_FRAMES {
                self.pending.push_back((ssrc, ciphertext));
            } else {
                self.stats.frames_without_key += 1;
            }
            return;
        }
        let (epoch, index) = split_key_id(key_id);
        let Ok(epoch) = u32::try_from(epoch) else {
            self.stats.frames_without_key += 1;
            return;
        };
        if check(&self.streams, &self.members, ssrc, epoch, index) != StreamCheck::Matches {
            self.stats.frames_refused += 1;
            return;
        }
        match self.decryptor.decrypt(&ciphertext) {
            Ok((_, index, plaintext)) => match verify_frame(&plaintext) {
                Some(frame) => self.stats.received(index, frame, now_micros()),
                None => self.stats.frames_corrupt += 1,
            },
            Err(OpenError::NoKey) => self.stats.frames_without_key += 1,
            Err(OpenError::Corrupt) => self.stats.frames_corrupt += 1,
            Err(OpenError::Replayed) => self.stats.frames_refused += 1,
        }
    }

    /// Whether the relay's stream mapping should be read again before
    /// `ciphertext` from `ssrc` is opened: the stream is not in it, or it
    /// names someone other than the frame's key id.
    fn streams_stale(&self, ssrc: u32, ciphertext: &[u8]) -> bool {
        let Some(number) = self.streams.source(ssrc) else {
            return true;
        };
        let Some((epoch, index)) = frame_key_id(ciphertext).map(split_key_id) else {
            return false;
        };
        // Slots are fed by new publishers as people come and go: a number
        // that is not the key id's may be an old reading.
        u32::try_from(epoch)
            .is_ok_and(|epoch| self.members.index_of_number(epoch, number) != Some(index))
    }

    /// A new epoch with its participants (index → device and relay
    /// number, as the caller listed them); their keys come with
    /// [`Self::add_sender`].
    pub(crate) fn add_epoch(&mut self, epoch: u32, members: BTreeMap<u8, (Device, u64)>) {
        self.decryptor.add_epoch(epoch);
        self.members.add_epoch(epoch, members, EPOCHS_KEPT);
        self.epochs.push(epoch);
    }

    /// `device`'s own sending key of `epoch`, if it is a participant of it;
    /// returns whether it was taken. Frames waiting for a key are tried.
    pub(crate) fn add_sender(
        &mut self,
        epoch: u32,
        device: &Device,
        secret: &[u8],
    ) -> Result<bool> {
        let Some(index) = self.members.index_of(epoch, device) else {
            return Ok(false);
        };
        if !self.decryptor.add_sender(epoch, index, secret)? {
            return Ok(false);
        }
        let waiting = std::mem::take(&mut self.pending);
        for (ssrc, ciphertext) in waiting {
            self.open(ssrc, ciphertext, false);
        }
        Ok(true)
    }
}

pub(crate) type Shared = Arc<Mutex<MediaCrypto>>;

pub(crate) fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, MediaCrypto> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) async fn publish(
    media: Arc<MediaSession>,
    shared: Shared,
    video: bool,
    mut stop: watch::Receiver<bool>,
) {
    let mut audio_tick = tokio::time::interval(MediaKind::Audio.interval());
    let mut video_tick = tokio::time::interval(MediaKind::Video.interval());
    let mut sequences = [0u32; 2];
    loop {
        let kind = tokio::select! {
            _ = audio_tick.tick() => MediaKind::Audio,
            _ = video_tick.tick(), if video => MediaKind::Video,
            _ = stop.changed() => return,
        };
        let slot = usize::from(kind == MediaKind::Video);
        let plaintext = synthetic_frame(kind, sequences[slot], now_micros());
        let ciphertext = {
            let mut crypto = lock(&shared);
            match crypto.encryptor.as_mut().map(|e| e.encrypt(&plaintext)) {
                Some(Ok(ciphertext)) => ciphertext,
                _ => continue,
            }
        };
        if media.send(kind, ciphertext).await.is_ok() {
            sequences[slot] = sequences[slot].wrapping_add(1);
            lock(&shared).stats.frames_sent += 1;
        }
    }
}

/// Opens what the relay forwards, reading its stream mapping again (at
/// most every [`STREAMS_REFRESH`]) when a stream is new or a frame's key id
/// does not match it. A frame of a stream the relay has not named yet
/// waits for the next read; a mismatch seen again within the interval is
/// refused at once, so a participant sending under others' key ids cannot
/// slow the loop down.
pub(crate) async fn receive(
    mut frames: mpsc::Receiver<ReceivedFrame>,
    shared: Shared,
    media: Arc<MediaSession>,
) {
    let mut last_read: Option<Instant> = None;
    while let Some(frame) = frames.recv().await {
        let stale = lock(&shared).streams_stale(frame.ssrc, &frame.ciphertext);
        if stale {
            let unknown = lock(&shared).streams.source(frame.ssrc).is_none();
            let due = last_read.map(|at| at + STREAMS_REFRESH);
            if let Some(due) = due.filter(|due| unknown && *due > Instant::now()) {
                tokio::time::sleep_until(due.into()).await;
            }
            if last_read.is_none_or(|at| at.elapsed() >= STREAMS_REFRESH) {
                last_read = Some(Instant::now());
                match media.streams().await {
                    Ok(map) => lock(&shared).streams = map,
                    Err(e) => tracing::debug!(error = %e, "reading the relay's streams failed"),
                }
            }
        }
        lock(&shared).open(frame.ssrc, frame.ciphertext, false);
    }
}
