//! Synthetic media for headless calls, and turning RTP payloads back into
//! frames. Pure: callers pass the time.
//!
//! A frame's plaintext (before SFrame) is `kind (1) || sequence (4, BE) ||
//! sent_at (8, BE, µs since the Unix epoch) || filler`, where the filler is
//! a function of kind, sequence and length, so a receiver checks every byte
//! it got. Nothing here trusts the network: malformed payloads are errors.

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// 50 frames per second, one packet each.
    Audio,
    /// 30 frames per second, several packets each.
    Video,
}

impl MediaKind {
    fn tag(self) -> u8 {
        match self {
            Self::Audio => 0,
            Self::Video => 1,
        }
    }

    /// Plaintext size of one synthetic frame (about Opus at 64 kbit/s, and
    /// a small VP8 frame that spans three packets).
    pub fn frame_len(self) -> usize {
        match self {
            Self::Audio => 160,
            Self::Video => 3_000,
        }
    }

    /// Time between frames.
    pub fn interval(self) -> std::time::Duration {
        match self {
            Self::Audio => std::time::Duration::from_millis(20),
            Self::Video => std::time::Duration::from_micros(33_333),
        }
    }
}

const HEADER_LEN: usize = 1 + 4 + 8;

fn filler(kind: MediaKind, sequence: u32, at: usize) -> u8 {
    let mixed = sequence
        .wrapping_mul(2_654_435_761)
        .wrapping_add(u32::try_from(at).unwrap_or(u32::MAX).wrapping_mul(40_503))
        .wrapping_add(u32::from(kind.tag()));
    mixed.to_be_bytes()[0] ^ mixed.to_be_bytes()[3]
}

/// The plaintext of synthetic frame `sequence`, stamped `sent_at_micros`.
pub fn synthetic_frame(kind: MediaKind, sequence: u32, sent_at_micros: u64) -> Vec<u8> {
    let len = kind.frame_len();
    let mut frame = Vec::with_capacity(len);
    frame.push(kind.tag());
    frame.extend_from_slice(&sequence.to_be_bytes());
    frame.extend_from_slice(&sent_at_micros.to_be_bytes());
    frame.extend((HEADER_LEN..len).map(|at| filler(kind, sequence, at)));
    frame
}

/// A received frame that checked out byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedFrame {
    /// Audio or video.
    pub kind: MediaKind,
    /// The sender's frame number.
    pub sequence: u32,
    /// When the sender made it, µs since the Unix epoch.
    pub sent_at_micros: u64,
}

/// Checks a decrypted frame; `None` if any byte is not what was sent.
pub fn verify_frame(frame: &[u8]) -> Option<VerifiedFrame> {
    let kind = match frame.first()? {
        0 => MediaKind::Audio,
        1 => MediaKind::Video,
        _ => return None,
    };
    if frame.len() != kind.frame_len() {
        return None;
    }
    let sequence = u32::from_be_bytes(frame.get(1..5)?.try_into().ok()?);
    let sent_at_micros = u64::from_be_bytes(frame.get(5..HEADER_LEN)?.try_into().ok()?);
    let intact = frame
        .iter()
        .enumerate()
        .skip(HEADER_LEN)
        .all(|(at, byte)| *byte == filler(kind, sequence, at));
    intact.then_some(VerifiedFrame {
        kind,
        sequence,
        sent_at_micros,
    })
}

/// The VP8 payload descriptor (RFC 7741 §4.2): its length and whether the
/// packet starts a frame. `None` when malformed.
fn vp8_descriptor(payload: &[u8]) -> Option<(usize, bool)> {
    let first = *payload.first()?;
    let start = first & 0x10 != 0 && first & 0x07 == 0;
    let mut len = 1;
    if first & 0x80 != 0 {
        let extension = *payload.get(1)?;
        len += 1;
        if extension & 0x80 != 0 {
            let picture_id = *payload.get(len)?;
            len += if picture_id & 0x80 != 0 { 2 } else { 1 };
        }
        if extension & 0x40 != 0 {
            len += 1;
        }
        if extension & 0x30 != 0 {
            len += 1;
        }
    }
    (len <= payload.len()).then_some((len, start))
}

/// Reassembles the frames of one received stream from its RTP packets. A
/// frame with a missing, reordered or malformed packet is dropped whole.
#[derive(Debug, Default)]
pub struct Reassembler {
    timestamp: Option<u32>,
    next_sequence: u16,
    frame: Vec<u8>,
    broken: bool,
}

/// The most a reassembled frame may grow to.
pub const MAX_FRAME_LEN: usize = 256 * 1024;

impl Reassembler {
    /// One packet of the stream; returns a finished frame when this packet
    /// completes one.
    pub fn push(
        &mut self,
        kind: MediaKind,
        sequence: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> Option<Vec<u8>> {
        if kind == MediaKind::Audio {
            return Some(payload.to_vec());
        }
        let Some((skip, start)) = vp8_descriptor(payload) else {
            self.broken = true;
            return None;
        };
        if start {
            self.timestamp = Some(timestamp);
            self.frame.clear();
            self.broken = false;
        } else if self.timestamp != Some(timestamp) || sequence != self.next_sequence {
            self.broken = true;
        }
        self.next_sequence = sequence.wrapping_add(1);
        let body = payload.get(skip..).unwrap_or_default();
        if self.frame.len() + body.len() > MAX_FRAME_LEN {
            self.broken = true;
        }
        if !self.broken {
            self.frame.extend_from_slice(body);
        }
        if marker && !self.broken && self.timestamp == Some(timestamp) {
            self.timestamp = None;
            return Some(std::mem::take(&mut self.frame));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_frame_verifies_and_any_changed_byte_is_caught() {
        let frame = synthetic_frame(MediaKind::Video, 42, 1_234);
        let verified = verify_frame(&frame).unwrap();
        assert_eq!((verified.sequence, verified.sent_at_micros), (42, 1_234));
        for at in [0, 3, 20, frame.len() - 1] {
            let mut changed = frame.clone();
            changed[at] ^= 0x40;
            assert!(verify_frame(&changed).is_none(), "byte {at}");
        }
        assert!(verify_frame(&frame[..100]).is_none());
        assert!(verify_frame(&[]).is_none());
    }

    #[test]
    fn video_packets_reassemble_and_a_lost_packet_drops_the_frame() {
        let frame = vec![7u8; 2_500];
        let parts: Vec<Vec<u8>> = frame
            .chunks(1_000)
            .enumerate()
            .map(|(i, chunk)| {
                let mut p = vec![if i == 0 { 0x10 } else { 0x00 }];
                p.extend_from_slice(chunk);
                p
            })
            .collect();
        let mut r = Reassembler::default();
        assert!(
            r.push(MediaKind::Video, 10, 900, false, &parts[0])
                .is_none()
        );
        assert!(
            r.push(MediaKind::Video, 11, 900, false, &parts[1])
                .is_none()
        );
        assert_eq!(
            r.push(MediaKind::Video, 12, 900, true, &parts[2]).unwrap(),
            frame
        );
        // The middle packet of the next frame is lost.
        assert!(
            r.push(MediaKind::Video, 13, 1800, false, &parts[0])
                .is_none()
        );
        assert!(
            r.push(MediaKind::Video, 15, 1800, true, &parts[2])
                .is_none()
        );
        // Malformed descriptors are refused, not trusted.
        assert!(r.push(MediaKind::Video, 16, 2700, true, &[0x80]).is_none());
        assert!(
            r.push(MediaKind::Video, 17, 2700, true, &[0x90, 0x80])
                .is_none()
        );
        assert!(r.push(MediaKind::Video, 18, 2700, true, &[]).is_none());
    }
}
