//! Which relay participant publishes each stream we receive, as the relay
//! says; which device is behind each participant number, as that device
//! announced end to end (in its `CallKey` or `CallMediaKey`); and the
//! members of each epoch, as the caller said. Together they tell whether
//! a frame's SFrame key id belongs to the participant whose stream carried
//! it. Pure.
//!
//! A participant holds the keys of the others (it must, to decrypt), so the
//! key alone cannot stop it from sending under someone else's key id; its
//! frames still arrive on its own stream, which the relay numbers as its.
//! A frame whose key id names anyone else is refused. The relay knows no
//! accounts: the number is the only thing it says of a publisher.

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

/// The participants of the epochs we hold keys of (index → device), and
/// the relay participant number each device announced.
#[derive(Debug, Default, Clone)]
pub struct Members {
    epochs: BTreeMap<u32, BTreeMap<u8, Device>>,
    announced: BTreeMap<u64, Device>,
}

impl Members {
    /// Records that `device` announced relay participant number `number`
    /// (0: none). A number keeps the first device that announced it: a
    /// participant claiming another's number is refused (false).
    pub fn announce(&mut self, number: u64, device: &Device) -> bool {
        if number == 0 {
            return true;
        }
        match self.announced.get(&number) {
            Some(owner) => owner == device,
            None if self.announced.len() < MAX_STREAMS => {
                self.announced.insert(number, device.clone());
                true
            }
            None => false,
        }
    }

    /// The device that announced relay participant `number`.
    pub fn announced(&self, number: u64) -> Option<&Device> {
        self.announced.get(&number)
    }

    /// The participants of `epoch`; forgets epochs beyond the last `kept`.
    pub fn add_epoch(&mut self, epoch: u32, members: BTreeMap<u8, Device>, kept: usize) {
        self.epochs.insert(epoch, members);
        while self.epochs.len() > kept {
            self.epochs.pop_first();
        }
    }

    /// The device that is participant `index` of `epoch`.
    pub fn device(&self, epoch: u32, index: u8) -> Option<&Device> {
        self.epochs.get(&epoch)?.get(&index)
    }

    /// The index of `device` in `epoch`.
    pub fn index_of(&self, epoch: u32, device: &Device) -> Option<u8> {
        self.epochs
            .get(&epoch)?
            .iter()
            .find_map(|(index, d)| (d == device).then_some(*index))
    }
}

/// What the stream mapping says of a frame with key id `(epoch, index)`
/// that arrived on stream `ssrc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamCheck {
    /// The stream is the key id's participant's.
    Matches,
    /// The relay has not told us whose the stream is, or its publisher has
    /// not announced its number (yet).
    Unknown,
    /// The stream is someone else's, or the key id names nobody.
    Mismatch,
}

/// Checks a frame's key id against the stream it arrived on.
pub fn check(map: &StreamMap, members: &Members, ssrc: u32, epoch: u32, index: u8) -> StreamCheck {
    let Some(source) = map.source(ssrc).and_then(|n| members.announced(n)) else {
        return StreamCheck::Unknown;
    };
    match members.device(epoch, index) {
        Some(owner) if owner == source => StreamCheck::Matches,
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
        let epoch: BTreeMap<u8, Device> = [(0, device("alice", 1)), (1, device("bob", 1))].into();
        members.add_epoch(3, epoch, 2);
        let map = StreamMap::new([(111, 5), (222, 6), (444, 8)]);
        // Nobody announced a number yet: nothing is known.
        assert_eq!(check(&map, &members, 111, 3, 0), StreamCheck::Unknown);
        assert!(members.announce(5, &device("alice", 1)));
        assert!(members.announce(6, &device("bob", 1)));
        assert!(members.announce(0, &device("bob", 1)));
        assert_eq!(check(&map, &members, 111, 3, 0), StreamCheck::Matches);
        assert_eq!(check(&map, &members, 222, 3, 1), StreamCheck::Matches);
        // Bob's stream carrying a frame under Alice's key id: refused.
        assert_eq!(check(&map, &members, 222, 3, 0), StreamCheck::Mismatch);
        // A key id of nobody, and a stream the relay has not named.
        assert_eq!(check(&map, &members, 222, 3, 9), StreamCheck::Mismatch);
        assert_eq!(check(&map, &members, 333, 3, 0), StreamCheck::Unknown);
        assert_eq!(members.index_of(3, &device("bob", 1)), Some(1));
        assert_eq!(members.index_of(3, &device("bob", 2)), None);
    }

    #[test]
    fn a_participant_cannot_claim_anothers_number() {
        let mut members = Members::default();
        members.add_epoch(
            1,
            [(0, device("alice", 1)), (1, device("bob", 1))].into(),
            2,
        );
        assert!(members.announce(5, &device("alice", 1)));
        // Bob announces alice's number, to pass his frames off as hers:
        // the number stays alice's, and his stream is not taken as hers.
        assert!(!members.announce(5, &device("bob", 1)));
        assert!(members.announce(5, &device("alice", 1)));
        let map = StreamMap::new([(111, 5)]);
        assert_eq!(check(&map, &members, 111, 1, 0), StreamCheck::Matches);
        assert_eq!(check(&map, &members, 111, 1, 1), StreamCheck::Mismatch);
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
