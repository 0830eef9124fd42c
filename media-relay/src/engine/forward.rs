//! Selective forwarding: a publisher's RTP packet goes to a slot of the
//! same kind at every other participant of its call, renumbered per slot,
//! with its payload untouched. Keyframe requests go the other way, to the
//! publisher, at most one per stream per interval.

use std::time::Instant;

use str0m::format::PayloadParams;
use str0m::media::{KeyframeRequest, KeyframeRequestKind, MediaKind, Mid, Pt};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite};

use super::participant::{Feed, Participant, Slot, Source};
use super::{Engine, ParticipantId, Work};
use crate::metrics::{DropReason, KeyframeOutcome, LeaveReason};

/// What the relay knows about a packet's stream at its publisher.
struct Origin {
    source: Source,
    kind: MediaKind,
    params: PayloadParams,
}

/// How a write went.
enum Written {
    /// On a slot that already carried the stream.
    Continued,
    /// On a slot newly given to the stream.
    NewFeed,
}

impl Engine {
    pub(super) fn forward(&mut self, from: ParticipantId, packet: &RtpPacket, now: Instant) {
        let Some(publisher) = self.participants.get_mut(&from) else {
            return;
        };
        let origin = match super::guarded(|| origin(from, publisher, packet)) {
            Some(Ok(origin)) => origin,
            Some(Err(reason)) => {
                self.metrics.drop_packet(reason);
                return;
            }
            None => {
                self.work.push_back(Work::Remove(from, LeaveReason::Fault));
                return;
            }
        };
        let call = publisher.call();
        let receivers: Vec<ParticipantId> = self
            .members
            .get(&call)
            .map(|m| m.iter().copied().filter(|id| *id != from).collect())
            .unwrap_or_default();
        for to in receivers {
            let Some(receiver) = self.participants.get_mut(&to) else {
                continue;
            };
            let Some(result) = super::guarded(|| receiver.write_forwarded(&origin, packet)) else {
                self.work.push_back(Work::Remove(to, LeaveReason::Fault));
                continue;
            };
            match result {
                Ok(written) => {
                    self.metrics.forwarded_packets.inc();
                    self.metrics
                        .forwarded_bytes
                        .inc_by(packet.payload.len() as u64);
                    self.drain(to, now);
                    if matches!(written, Written::NewFeed) && origin.kind.is_video() {
                        // A new viewer needs a picture it can decode.
                        self.request_keyframe(origin.source, KeyframeRequestKind::Pli, now);
                    }
                }
                Err(reason) => self.metrics.drop_packet(reason),
            }
        }
    }

    /// A receiver's PLI or FIR on a slot goes to the slot's publisher.
    pub(super) fn relay_keyframe(
        &mut self,
        from: ParticipantId,
        request: &KeyframeRequest,
        now: Instant,
    ) {
        let source = self.participants.get(&from).and_then(|p| {
            p.slots
                .iter()
                .find(|s| s.mid == request.mid)
                .and_then(|s| s.feed.as_ref().map(|f| f.source))
        });
        if let Some(source) = source {
            self.request_keyframe(source, request.kind, now);
        }
    }

    fn request_keyframe(&mut self, source: Source, kind: KeyframeRequestKind, now: Instant) {
        let interval = self.config.timeouts.keyframe_interval;
        let Some(publisher) = self.participants.get_mut(&source.publisher) else {
            return;
        };
        let Some(publication) = publisher
            .publications
            .iter_mut()
            .find(|p| p.mid == source.mid)
        else {
            return;
        };
        if publication
            .last_keyframe_request
            .is_some_and(|last| now.saturating_duration_since(last) < interval)
        {
            self.metrics.keyframe(KeyframeOutcome::Throttled);
            return;
        }
        let requested = super::guarded(|| {
            let mut direct = publisher.rtc.direct_api();
            direct
                .stream_rx_by_mid(source.mid, None)
                .map(|stream| stream.request_keyframe(kind))
                .is_some()
        });
        match requested {
            Some(true) => {}
            Some(false) => return,
            None => {
                self.work
                    .push_back(Work::Remove(source.publisher, LeaveReason::Fault));
                return;
            }
        }
        publication.last_keyframe_request = Some(now);
        self.metrics.keyframe(KeyframeOutcome::Relayed);
        // Whatever the drain queues runs in the caller's work loop.
        self.drain(source.publisher, now);
    }
}

/// The stream a packet belongs to at its publisher.
fn origin(
    from: ParticipantId,
    publisher: &mut Participant,
    packet: &RtpPacket,
) -> Result<Origin, DropReason> {
    let (mid, rid) = publisher
        .rtc
        .direct_api()
        .stream_rx(&packet.header.ssrc)
        .map(|s| (s.mid(), s.rid()))
        .ok_or(DropReason::NoSlot)?;
    if rid.is_some() {
        return Err(DropReason::Simulcast);
    }
    let kind = publisher
        .publications
        .iter()
        .find(|p| p.mid == mid)
        .map(|p| p.kind)
        .ok_or(DropReason::NoSlot)?;
    let params = publisher
        .rtc
        .codec_config()
        .find(|p| p.pt() == packet.header.payload_type)
        .copied()
        .ok_or(DropReason::NoCodec)?;
    Ok(Origin {
        source: Source {
            publisher: from,
            mid,
        },
        kind,
        params,
    })
}

impl Participant {
    /// Writes a forwarded packet on the slot carrying its stream, giving
    /// the stream a free slot first if it has none.
    fn write_forwarded(
        &mut self,
        origin: &Origin,
        packet: &RtpPacket,
    ) -> Result<Written, DropReason> {
        if !self.connected {
            return Err(DropReason::NotConnected);
        }
        let (index, written) = self.slot_for(origin, *packet.seq_no)?;
        let Some(slot) = self.slots.get_mut(index) else {
            return Err(DropReason::NoSlot);
        };
        let mid = slot.mid;
        let pt = out_pt(&self.rtc, slot, mid, origin.params).ok_or(DropReason::NoCodec)?;
        let seq = renumber(slot, *packet.seq_no).ok_or(DropReason::TooOld)?;
        let mut direct = self.rtc.direct_api();
        let stream = direct
            .stream_tx_by_mid(mid, None)
            .ok_or(DropReason::NoSlot)?;
        let write = RtpWrite::new(
            pt,
            seq.into(),
            packet.header.timestamp,
            packet.timestamp,
            packet.payload.clone(),
        )
        .marker(packet.header.marker)
        .ext_vals(forwarded_extensions(&packet.header.ext_vals))
        .nackable(origin.kind.is_video());
        stream.write_rtp(write);
        Ok(written)
    }

    fn slot_for(&mut self, origin: &Origin, seq: u64) -> Result<(usize, Written), DropReason> {
        if let Some(index) = self
            .slots
            .iter()
            .position(|s| s.feed.as_ref().is_some_and(|f| f.source == origin.source))
        {
            return Ok((index, Written::Continued));
        }
        let index = self
            .slots
            .iter()
            .position(|s| s.feed.is_none() && s.kind == origin.kind)
            .ok_or(DropReason::NoSlot)?;
        let slot = self.slots.get_mut(index).ok_or(DropReason::NoSlot)?;
        slot.feed = Some(Feed {
            source: origin.source,
            first_in: seq,
            base_out: slot.next_seq,
            pts: Vec::new(),
        });
        Ok((index, Written::NewFeed))
    }
}

/// The receiver's payload type for the publisher's codec, cached per feed.
fn out_pt(rtc: &str0m::Rtc, slot: &mut Slot, mid: Mid, params: PayloadParams) -> Option<Pt> {
    let feed = slot.feed.as_mut()?;
    if let Some((_, out)) = feed.pts.iter().find(|(pt, _)| *pt == params.pt()) {
        return *out;
    }
    let offered = rtc.media(mid).map(|m| m.remote_pts().to_vec())?;
    let out = rtc
        .codec_config()
        .match_params(params)
        .map(|p| p.pt())
        .filter(|pt| offered.contains(pt));
    // A handful of codecs at most; the list cannot grow past the config.
    if feed.pts.len() < 16 {
        feed.pts.push((params.pt(), out));
    }
    out
}

/// The slot's sequence number for an incoming one: consecutive from the
/// slot's previous feed, so a receiver never sees a jump when the source
/// of a slot changes. `None` for a packet older than the feed's first.
fn renumber(slot: &mut Slot, seq_in: u64) -> Option<u64> {
    let feed = slot.feed.as_ref()?;
    let out = feed
        .base_out
        .checked_add(seq_in.checked_sub(feed.first_in)?)?;
    slot.next_seq = slot.next_seq.max(out.saturating_add(1));
    Some(out)
}

/// Header extensions worth carrying to the receiver. Transport-wide ones
/// (transport-cc, abs-send-time, mid) are per hop and set by str0m.
fn forwarded_extensions(incoming: &ExtensionValues) -> ExtensionValues {
    ExtensionValues {
        audio_level: incoming.audio_level,
        voice_activity: incoming.voice_activity,
        video_orientation: incoming.video_orientation,
        ..ExtensionValues::default()
    }
}
