//! What a call measured: frames sent and received, loss, and latency from
//! the sender's stamp to the verified frame. Pure.

use std::collections::BTreeMap;

use super::frames::{MediaKind, VerifiedFrame};

/// Counts of one call, as the command prints them.
#[derive(Debug, Default)]
pub struct CallStats {
    /// Frames we encrypted and sent.
    pub frames_sent: u64,
    /// Frames decrypted and verified byte for byte.
    pub frames_received: u64,
    /// Frames under a key we were never given (sent before we joined or
    /// after we left): the end-to-end encryption at work.
    pub frames_without_key: u64,
    /// Frames that failed authentication or byte-for-byte verification.
    pub frames_corrupt: u64,
    /// Frames refused unplayed: a replay (a counter taken before, or too
    /// old), or a key id not of the participant whose stream carried it.
    pub frames_refused: u64,
    /// Call key messages refused (wrong device, stale epoch, old version,
    /// not a participant).
    pub keys_refused: u64,
    streams: BTreeMap<(u8, MediaKind), (u32, u32)>,
    last_heard: BTreeMap<u8, u64>,
    latencies_micros: Vec<u64>,
}

/// The most latency samples kept (a call of hours keeps a uniform prefix).
const MAX_SAMPLES: usize = 1_000_000;

impl CallStats {
    /// A verified frame from participant `index`, received at `now_micros`.
    pub fn received(&mut self, index: u8, frame: VerifiedFrame, now_micros: u64) {
        self.frames_received += 1;
        self.last_heard.insert(index, now_micros);
        let range = self
            .streams
            .entry((index, frame.kind))
            .or_insert((frame.sequence, frame.sequence));
        range.0 = range.0.min(frame.sequence);
        range.1 = range.1.max(frame.sequence);
        if self.latencies_micros.len() < MAX_SAMPLES {
            self.latencies_micros
                .push(now_micros.saturating_sub(frame.sent_at_micros));
        }
    }

    /// When a frame of participant `index` last arrived (µs since the Unix
    /// epoch).
    pub fn last_heard(&self, index: u8) -> Option<u64> {
        self.last_heard.get(&index).copied()
    }

    /// Frames the senders sent between the first and the last we got from
    /// each of their streams.
    pub fn expected(&self) -> u64 {
        self.streams
            .values()
            .map(|(first, last)| u64::from(last - first) + 1)
            .sum()
    }

    /// Share of expected frames that did not arrive intact (0 to 1).
    pub fn loss(&self) -> f64 {
        let expected = self.expected();
        if expected == 0 {
            return 0.0;
        }
        let missing = expected.saturating_sub(self.frames_received);
        missing as f64 / expected as f64
    }

    /// The latency at `per_mille` (0 to 1000: 500 is the median) in
    /// milliseconds.
    pub fn latency_ms(&self, per_mille: usize) -> f64 {
        let mut sorted = self.latencies_micros.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return 0.0;
        }
        let rank = (sorted.len() - 1) * per_mille.min(1000) / 1000;
        sorted.get(rank).copied().unwrap_or_default() as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(sequence: u32, sent_at_micros: u64) -> VerifiedFrame {
        VerifiedFrame {
            kind: MediaKind::Audio,
            sequence,
            sent_at_micros,
        }
    }

    #[test]
    fn loss_counts_the_gaps_and_latency_the_stamps() {
        let mut stats = CallStats::default();
        for sequence in [10, 11, 13] {
            stats.received(1, frame(sequence, 1_000), 3_000);
        }
        assert_eq!(stats.expected(), 4);
        assert!((stats.loss() - 0.25).abs() < 1e-9);
        assert!((stats.latency_ms(500) - 2.0).abs() < 1e-9);
        assert_eq!(CallStats::default().loss(), 0.0);
    }
}
