//! The media side of a running call: the state the send task, the receive
//! task and the call loop share (keys, frames waiting for their epoch key,
//! statistics), and the two tasks. No signalling here.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};

use super::frames::{MediaKind, synthetic_frame, verify_frame};
use super::keys::{FrameDecryptor, FrameEncryptor, OpenError};
use super::media::{MediaSession, ReceivedFrame};
use super::stats::CallStats;
use crate::error::Result;

/// Frames kept while their epoch key is on its way.
const MAX_PENDING_FRAMES: usize = 1_024;

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
    decryptor: FrameDecryptor,
    pub(crate) pending: VecDeque<Vec<u8>>,
    pub(crate) epochs: Vec<u32>,
    pub(crate) stats: CallStats,
}

impl MediaCrypto {
    /// Opens a frame; one under a key we lack waits (bounded) for an epoch
    /// key that may be on its way, unless `last_try`.
    fn open(&mut self, ciphertext: Vec<u8>, last_try: bool) {
        match self.decryptor.decrypt(&ciphertext) {
            Ok((index, plaintext)) => match verify_frame(&plaintext) {
                Some(frame) => self.stats.received(index, frame, now_micros()),
                None => self.stats.frames_corrupt += 1,
            },
            Err(OpenError::NoKey) if !last_try && self.pending.len() < MAX_PENDING_FRAMES => {
                self.pending.push_back(ciphertext);
            }
            Err(OpenError::NoKey) => self.stats.frames_without_key += 1,
            Err(OpenError::Corrupt) => self.stats.frames_corrupt += 1,
        }
    }

    pub(crate) fn add_epoch(&mut self, epoch: u32, secret: &[u8], indices: &[u8]) -> Result<()> {
        self.decryptor.add_epoch(epoch, secret, indices)?;
        self.epochs.push(epoch);
        let waiting = std::mem::take(&mut self.pending);
        for ciphertext in waiting {
            self.open(ciphertext, true);
        }
        Ok(())
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

pub(crate) async fn receive(mut frames: mpsc::Receiver<ReceivedFrame>, shared: Shared) {
    while let Some(frame) = frames.recv().await {
        lock(&shared).open(frame.ciphertext, false);
    }
}
