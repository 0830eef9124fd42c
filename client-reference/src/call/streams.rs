//! Which relay participant publishes each stream we receive, as the relay
//! says, and the members of each epoch, as the caller listed them: each
//! with its SFrame index and its participant number on the relay (from
//! its answer to the caller). Together they tell whether a frame's SFrame
//! key id belongs to the participant whose stream carried it. Pure.
//!
//! A participant holds the keys of the others (it must, to decrypt), so the
//! key alone cannot stop it from sending under someone else's key id; its
//! frames still arrive on its own stream, which the relay numbers as its.
//! A frame whose key id names anyone else is refused. The relay knows no
//! accounts, and the numbers come only from the caller's list, the
//! authority that already decides who is in the call.

use std::collections::{BTreeMap, HashMap};

/// Most streams taken from the relay's mapping.
const MAX_STREAMS: usize = 1_024;
/// Largest answer read from the relay's `GET …/streams`.
pub const MAX_STREAMS_BODY: u64 = 256 * 1024;

/// The relay's `GET …/streams` answer.
#[derive(serde::Deserialize)]
struct StreamsBody {
    streams: Vec<StreamSource>,
}

#[derive(serde::Deserialize)]
struct StreamSource {
    ssrc: u32,
    participant: u64,
}

/// A participant: account and device.
pub type Device = (String, u32);

/// The relay's stream mapping: SSRC of a stream we receive → the
/// publisher's participant number on the relay.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StreamMap {
    sources: HashMap<u32, u64>,
}

impl StreamMap {
    /// A mapping from the relay's answer.
    pub fn new(sources: impl IntoIterator<Item = (u32, u64)>) -> Self {
        Self {
            sources: sources.into_iter().collect(),
        }
    }

    /// The relay's answer to `GET …/streams`; `None` if it does not parse.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let body: StreamsBody = serde_json::from_slice(body).ok()?;
        Some(Self::new(
            body.streams
                .into_iter()
                .take(MAX_STREAMS)
                .map(|s| (s.ssrc, s.participant)),
        ))
    }

    /// The participant number publishing stream `ssrc`, if the relay said.
    pub fn source(&self, ssrc: u32) -> Option<u64> {
        self.sources.get(&ssrc).copied()
    }
}

/// One epoch's participants: SFrame index → device, and relay
/// participant number → SFrame index.
#[derive(Debug, Default, Clone)]
struct Epoch {
    devices: BTreeMap<u8, Device>,
    numbers: BTreeMap<u64, u8>,
}

/// The participants of the epochs we hold keys of.
#[derive(Debug, Default, Clone)]
pub struct Members {
    epochs: BTreeMap<u32, Epoch>,
}

impl Members {
    /// The participants of `epoch` (index → device and relay number; a
    /// number of 0, or one listed twice, maps to nobody); forgets epochs
    /// beyond the last `kept`.
    pub fn add_epoch(&mut self, epoch: u32, members: BTreeMap<u8, (Device, u64)>, kept: usize) {
        let mut entry = Epoch::default();
        let mut twice = Vec::new();
        for (index, (device, number)) in members {
            if number != 0 && entry.numbers.insert(number, index).is_some() {
                twice.push(number);
            }
            entry.devices.insert(index, device);
        }
        for number in twice {
            entry.numbers.remove(&number);
        }
        self.epochs.insert(epoch, entry);
        while self.epochs.len() > kept {
            self.epochs.pop_first();
        }
    }

    /// The device that is participant `index` of `epoch`.
    pub fn device(&self, epoch: u32, index: u8) -> Option<&Device> {
        self.epochs.get(&epoch)?.devices.get(&index)
    }

    /// The index of `device` in `epoch`.
    pub fn index_of(&self, epoch: u32, device: &Device) -> Option<u8> {
        self.epochs
            .get(&epoch)?
            .devices
            .iter()
            .find_map(|(index, d)| (d == device).then_some(*index))
    }

    /// The index of the participant with relay number `number` in `epoch`.
    pub fn index_of_number(&self, epoch: u32, number: u64) -> Option<u8> {
        self.epochs.get(&epoch)?.numbers.get(&number).copied()
    }
}

/// What the stream mapping says of a frame with key id `(epoch, index)`
/// that arrived on stream `ssrc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamCheck {
    /// The stream is the key id's participant's.
    Matches,
    /// The relay has not told us whose the stream is (yet).
    Unknown,
    /// The stream is someone else's, or the key id names nobody.
    Mismatch,
}

/// Checks a frame's key id against the stream it arrived on.
pub fn check(map: &StreamMap, members: &Members, ssrc: u32, epoch: u32, index: u8) -> StreamCheck {
    let Some(number) = map.source(ssrc) else {
        return StreamCheck::Unknown;
    };
    match members.index_of_number(epoch, number) {
        Some(publisher) if publisher == index => StreamCheck::Matches,
        _ => StreamCheck::Mismatch,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn device(name: &str, id: u32) -> Device {
        (name.to_owned(), id)
    }

    #[test]
    fn a_key_id_must_belong_to_the_streams_publisher() {
        let mut members = Members::default();
        let epoch = [(0, (device("alice", 1), 5)), (1, (device("bob", 1), 6))].into();
        members.add_epoch(3, epoch, 2);
        let map = StreamMap::new([(111, 5), (222, 6), (444, 8)]);
        assert_eq!(check(&map, &members, 111, 3, 0), StreamCheck::Matches);
        assert_eq!(check(&map, &members, 222, 3, 1), StreamCheck::Matches);
        // Bob's stream carrying a frame under Alice's key id: refused.
        assert_eq!(check(&map, &members, 222, 3, 0), StreamCheck::Mismatch);
        // A key id of nobody, a number the caller did not list, and a
        // stream the relay has not named.
        assert_eq!(check(&map, &members, 222, 3, 9), StreamCheck::Mismatch);
        assert_eq!(check(&map, &members, 444, 3, 0), StreamCheck::Mismatch);
        assert_eq!(check(&map, &members, 333, 3, 0), StreamCheck::Unknown);
        assert_eq!(members.index_of(3, &device("bob", 1)), Some(1));
        assert_eq!(members.index_of(3, &device("bob", 2)), None);
    }

    /// Numbers come only from the caller's list: a participant cannot
    /// claim another's, and a number listed twice maps to nobody.
    #[test]
    fn a_number_listed_twice_names_nobody() {
        let mut members = Members::default();
        let epoch = [
            (0, (device("alice", 1), 5)),
            (1, (device("bob", 1), 5)),
            (2, (device("carol", 1), 0)),
        ]
        .into();
        members.add_epoch(1, epoch, 2);
        let map = StreamMap::new([(111, 5), (0, 0)]);
        assert_eq!(check(&map, &members, 111, 1, 0), StreamCheck::Mismatch);
        assert_eq!(check(&map, &members, 111, 1, 1), StreamCheck::Mismatch);
        assert_eq!(check(&map, &members, 0, 1, 2), StreamCheck::Mismatch);
    }

    #[test]
    fn the_relays_answer_parses_and_garbage_does_not() {
        let body = br#"{"streams":[{"ssrc":7,"participant":12}]}"#;
        let map = StreamMap::parse(body).unwrap();
        assert_eq!(map.source(7), Some(12));
        assert!(StreamMap::parse(b"{").is_none());
        assert!(StreamMap::parse(br#"{"streams":[{"ssrc":-1}]}"#).is_none());
        // The old answer, naming accounts, is not read.
        assert!(
            StreamMap::parse(br#"{"streams":[{"ssrc":7,"username":"a","device_id":1}]}"#).is_none()
        );
    }
}
