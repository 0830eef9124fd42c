//! The gate for a call's key messages, before the call loop sees them.
//!
//! A `CallKey` (a new epoch) is taken only from the caller's device that
//! sent the offer, only of the current version, and only for an epoch
//! newer than every one before; a `CallMediaKey` (a participant's own
//! sending key) only from a device in that epoch's participant list, once
//! per participant and epoch, and only with a 32-byte secret. A media key
//! may arrive before its epoch (it overtook the caller's `CallKey`): it is
//! held if its epoch is at most two ahead, once per device and epoch.
//! Anything else is refused with a reason, which the device reports as an
//! event: a key is never taken silently. (A copy with an empty secret, as
//! the sender's devices outside the call get, carries no key: it is
//! dropped here, never reaching the call loop.) Pure.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::content::{CallParticipant, CallSignal, call_signal::Kind};

/// The version of `CallKey` and `CallMediaKey` this client speaks. Version
/// 1 (one shared epoch secret for every participant) and version 2 (no
/// relay participant numbers in the participant list, so streams could
/// not be told apart) are refused.
pub const CALL_KEY_VERSION: u32 = 3;
/// Epochs whose participant lists are kept (as the media keys of the
/// current epoch and the one before are).
pub const KEY_EPOCHS_KEPT: usize = 2;
/// Media keys held while the epoch they name has not arrived yet.
pub const MAX_EARLY_KEYS: usize = 256;
/// How far ahead of the newest epoch a media key may be held.
pub const EARLY_EPOCHS_AHEAD: u32 = 2;
/// The length of every call secret.
pub const CALL_SECRET_LEN: usize = 32;

/// Why a call key message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyRefusal {
    /// Not of the current version.
    Version,
    /// A new epoch from a device other than the caller's that sent the
    /// offer (or to the caller, who makes the epochs itself).
    NotKeyAuthority,
    /// An epoch not newer than the current one: replayed or out of order.
    StaleEpoch,
    /// A media key from a device not in that epoch's participant list.
    NotParticipant,
    /// A media key for an epoch older than those kept, or too far ahead
    /// of the newest one.
    UnknownEpoch,
    /// A second media key from the same participant for the same epoch.
    Duplicate,
    /// Too many media keys already waiting for their epoch.
    TooManyEarly,
    /// A secret that is not 32 bytes long.
    BadSecret,
}

impl KeyRefusal {
    /// The word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Version => "version",
            Self::NotKeyAuthority => "not_key_authority",
            Self::StaleEpoch => "stale_epoch",
            Self::NotParticipant => "not_participant",
            Self::UnknownEpoch => "unknown_epoch",
            Self::Duplicate => "duplicate",
            Self::TooManyEarly => "too_many_early",
            Self::BadSecret => "bad_secret",
        }
    }
}

impl std::fmt::Display for KeyRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A signal from `sender`'s `device`.
pub(super) type FromDevice = (String, u32, CallSignal);

/// What to do with a signal.
#[derive(Debug, PartialEq)]
pub(super) enum Verdict {
    /// Queue these, in order (the signal, and any media keys that were
    /// waiting for the epoch it makes).
    Pass(Vec<FromDevice>),
    /// A media key for an epoch still to come: held.
    Held,
    /// Refused: the epoch it named, and why.
    Refuse(u32, KeyRefusal),
}

/// The key messages of the call we are in.
#[derive(Debug, Default)]
pub(super) struct KeyGate {
    /// The caller's offering device; `None` when we placed the call.
    authority: Option<(String, u32)>,
    /// The participants of the newest epochs.
    epochs: BTreeMap<u32, BTreeSet<(String, u32)>>,
    /// Media keys taken, per epoch.
    taken: BTreeSet<(u32, String, u32)>,
    early: VecDeque<FromDevice>,
    /// Refusals of held keys, reported with the next verdict.
    dropped: Vec<(FromDevice, u32, KeyRefusal)>,
}

impl KeyGate {
    /// The gate of a call `caller`'s `device` offered us.
    pub(super) fn callee(caller: &str, device: u32) -> Self {
        Self {
            authority: Some((caller.to_owned(), device)),
            ..Self::default()
        }
    }

    /// The gate of a call we placed: we make every epoch.
    pub(super) fn caller() -> Self {
        Self::default()
    }

    /// Our own new epoch (as the caller), with its participants.
    pub(super) fn own_epoch(&mut self, epoch: u32, participants: &[(String, u32)]) {
        self.remember(epoch, participants.iter().cloned().collect());
    }

    fn latest(&self) -> Option<u32> {
        self.epochs.keys().next_back().copied()
    }

    fn remember(&mut self, epoch: u32, members: BTreeSet<(String, u32)>) {
        self.epochs.insert(epoch, members);
        while self.epochs.len() > KEY_EPOCHS_KEPT {
            self.epochs.pop_first();
        }
        if let Some(oldest) = self.epochs.keys().next().copied() {
            self.taken.retain(|(e, _, _)| *e >= oldest);
        }
    }

    /// Held keys refused since the last call (their epoch was passed by).
    pub(super) fn take_dropped(&mut self) -> Vec<(FromDevice, u32, KeyRefusal)> {
        std::mem::take(&mut self.dropped)
    }

    /// Judges one signal of our call from `sender`'s `device`.
    pub(super) fn check(&mut self, signal: FromDevice) -> Verdict {
        if let Some((epoch, len)) = secret_of(&signal.2)
            && len != CALL_SECRET_LEN
        {
            return match len {
                0 => Verdict::Pass(Vec::new()),
                _ => Verdict::Refuse(epoch, KeyRefusal::BadSecret),
            };
        }
        match &signal.2.kind {
            Some(Kind::Key(key)) => {
                let (version, epoch) = (key.version, key.epoch);
                let members = members(&key.participants);
                self.new_epoch(signal, version, epoch, members)
            }
            Some(Kind::MediaKey(key)) => {
                let (version, epoch) = (key.version, key.epoch);
                self.media_key(signal, version, epoch)
            }
            _ => Verdict::Pass(vec![signal]),
        }
    }

    fn new_epoch(
        &mut self,
        signal: FromDevice,
        version: u32,
        epoch: u32,
        members: BTreeSet<(String, u32)>,
    ) -> Verdict {
        if version != CALL_KEY_VERSION {
            return Verdict::Refuse(epoch, KeyRefusal::Version);
        }
        let from = (signal.0.clone(), signal.1);
        if self.authority.as_ref() != Some(&from) {
            return Verdict::Refuse(epoch, KeyRefusal::NotKeyAuthority);
        }
        if self.latest().is_some_and(|latest| epoch <= latest) {
            return Verdict::Refuse(epoch, KeyRefusal::StaleEpoch);
        }
        self.remember(epoch, members);
        let mut pass = vec![signal];
        for held in std::mem::take(&mut self.early) {
            let held_epoch = media_key_epoch(&held.2);
            if held_epoch > epoch.saturating_add(EARLY_EPOCHS_AHEAD) {
                self.dropped
                    .push((held, held_epoch, KeyRefusal::UnknownEpoch));
                continue;
            }
            if held_epoch > epoch {
                self.early.push_back(held);
                continue;
            }
            match self.media_key(held.clone(), CALL_KEY_VERSION, held_epoch) {
                Verdict::Pass(signals) => pass.extend(signals),
                Verdict::Refuse(e, reason) => self.dropped.push((held, e, reason)),
                Verdict::Held => {}
            }
        }
        Verdict::Pass(pass)
    }

    fn media_key(&mut self, signal: FromDevice, version: u32, epoch: u32) -> Verdict {
        if version != CALL_KEY_VERSION {
            return Verdict::Refuse(epoch, KeyRefusal::Version);
        }
        let Some(members) = self.epochs.get(&epoch) else {
            return self.hold_early(signal, epoch);
        };
        let from = (signal.0.clone(), signal.1);
        if !members.contains(&from) {
            return Verdict::Refuse(epoch, KeyRefusal::NotParticipant);
        }
        if !self.taken.insert((epoch, from.0, from.1)) {
            return Verdict::Refuse(epoch, KeyRefusal::Duplicate);
        }
        Verdict::Pass(vec![signal])
    }
}

impl KeyGate {
    /// A media key for an epoch not (yet) known: held if it may still
    /// come, once per device and epoch.
    fn hold_early(&mut self, signal: FromDevice, epoch: u32) -> Verdict {
        let ahead = match self.latest() {
            None => true,
            Some(latest) => epoch > latest && epoch - latest <= EARLY_EPOCHS_AHEAD,
        };
        if !ahead {
            return Verdict::Refuse(epoch, KeyRefusal::UnknownEpoch);
        }
        let again = self.early.iter().any(|held| {
            held.0 == signal.0 && held.1 == signal.1 && media_key_epoch(&held.2) == epoch
        });
        if again {
            return Verdict::Refuse(epoch, KeyRefusal::Duplicate);
        }
        if self.early.len() >= MAX_EARLY_KEYS {
            return Verdict::Refuse(epoch, KeyRefusal::TooManyEarly);
        }
        self.early.push_back(signal);
        Verdict::Held
    }
}

/// The epoch and secret length of a key message; `None` for other signals.
fn secret_of(signal: &CallSignal) -> Option<(u32, usize)> {
    match &signal.kind {
        Some(Kind::Key(key)) => Some((key.epoch, key.secret.len())),
        Some(Kind::MediaKey(key)) => Some((key.epoch, key.secret.len())),
        _ => None,
    }
}

fn members(participants: &[CallParticipant]) -> BTreeSet<(String, u32)> {
    participants
        .iter()
        .map(|p| (p.username.clone(), p.device_id))
        .collect()
}

fn media_key_epoch(signal: &CallSignal) -> u32 {
    match &signal.kind {
        Some(Kind::MediaKey(key)) => key.epoch,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::{CallKey, CallMediaKey};

    fn key(epoch: u32, version: u32, participants: &[(&str, u32)]) -> CallSignal {
        CallSignal {
            call_id: vec![1; 16],
            kind: Some(Kind::Key(CallKey {
                version,
                epoch,
                secret: vec![7; 32],
                participants: participants
                    .iter()
                    .enumerate()
                    .map(|(i, (u, d))| CallParticipant {
                        username: (*u).to_owned(),
                        device_id: *d,
                        index: u32::try_from(i).unwrap_or(0),
                        relay_participant: 0,
                    })
                    .collect(),
            })),
        }
    }

    fn media(epoch: u32) -> CallSignal {
        CallSignal {
            call_id: vec![1; 16],
            kind: Some(Kind::MediaKey(CallMediaKey {
                version: CALL_KEY_VERSION,
                epoch,
                secret: vec![8; 32],
            })),
        }
    }

    fn from(user: &str, device: u32, signal: CallSignal) -> FromDevice {
        (user.to_owned(), device, signal)
    }

    const CALL: [(&str, u32); 3] = [("alice", 1), ("bob", 1), ("carol", 2)];

    #[test]
    fn an_epoch_is_taken_only_once_and_only_newer() {
        let mut gate = KeyGate::callee("alice", 1);
        let first = gate.check(from("alice", 1, key(3, CALL_KEY_VERSION, &CALL)));
        assert!(matches!(first, Verdict::Pass(ref s) if s.len() == 1));
        // The same epoch again (a replay), and an older one, are refused.
        for epoch in [3, 2, 0] {
            assert_eq!(
                gate.check(from("alice", 1, key(epoch, CALL_KEY_VERSION, &CALL))),
                Verdict::Refuse(epoch, KeyRefusal::StaleEpoch)
            );
        }
        assert!(matches!(
            gate.check(from("alice", 1, key(4, CALL_KEY_VERSION, &CALL))),
            Verdict::Pass(_)
        ));
    }

    #[test]
    fn an_epoch_from_another_device_or_version_is_refused() {
        let mut gate = KeyGate::callee("alice", 1);
        // Alice's other device is not the one that offered the call.
        assert_eq!(
            gate.check(from("alice", 2, key(1, CALL_KEY_VERSION, &CALL))),
            Verdict::Refuse(1, KeyRefusal::NotKeyAuthority)
        );
        assert_eq!(
            gate.check(from("bob", 1, key(1, CALL_KEY_VERSION, &CALL))),
            Verdict::Refuse(1, KeyRefusal::NotKeyAuthority)
        );
        // Version 1 derived every key from one secret, version 2 listed no
        // relay numbers: both refused.
        for old in [1, 2] {
            assert_eq!(
                gate.check(from("alice", 1, key(1, old, &CALL))),
                Verdict::Refuse(1, KeyRefusal::Version)
            );
        }
        // The caller takes no epoch from anyone.
        let mut caller = KeyGate::caller();
        assert_eq!(
            caller.check(from("alice", 1, key(1, CALL_KEY_VERSION, &CALL))),
            Verdict::Refuse(1, KeyRefusal::NotKeyAuthority)
        );
    }

    #[test]
    fn media_keys_come_from_participants_once_and_may_come_early() {
        let mut gate = KeyGate::callee("alice", 1);
        // Carol's key of epoch 1 arrives before Alice's epoch 1: held.
        assert_eq!(gate.check(from("carol", 2, media(1))), Verdict::Held);
        assert_eq!(gate.check(from("mallory", 1, media(1))), Verdict::Held);
        let Verdict::Pass(released) = gate.check(from("alice", 1, key(1, CALL_KEY_VERSION, &CALL)))
        else {
            panic!("epoch refused");
        };
        let senders: Vec<_> = released.iter().map(|s| (s.0.as_str(), s.1)).collect();
        assert_eq!(senders, [("alice", 1), ("carol", 2)]);
        assert_eq!(
            gate.take_dropped()
                .into_iter()
                .map(|(s, e, r)| (s.0, e, r))
                .collect::<Vec<_>>(),
            [("mallory".to_owned(), 1, KeyRefusal::NotParticipant)]
        );
        // Carol's other device is not in the call; Carol twice is refused.
        assert_eq!(
            gate.check(from("carol", 1, media(1))),
            Verdict::Refuse(1, KeyRefusal::NotParticipant)
        );
        assert_eq!(
            gate.check(from("carol", 2, media(1))),
            Verdict::Refuse(1, KeyRefusal::Duplicate)
        );
        assert!(matches!(
            gate.check(from("bob", 1, media(1))),
            Verdict::Pass(_)
        ));
        // Epochs 2 and 3 push epoch 1 out: its keys are no longer taken.
        for epoch in [2, 3] {
            assert!(matches!(
                gate.check(from("alice", 1, key(epoch, CALL_KEY_VERSION, &CALL))),
                Verdict::Pass(_)
            ));
        }
        assert_eq!(
            gate.check(from("bob", 1, media(1))),
            Verdict::Refuse(1, KeyRefusal::UnknownEpoch)
        );
    }

    #[test]
    fn the_caller_takes_media_keys_of_its_own_epochs() {
        let mut gate = KeyGate::caller();
        gate.own_epoch(1, &[("alice".into(), 1), ("bob".into(), 1)]);
        assert!(matches!(
            gate.check(from("bob", 1, media(1))),
            Verdict::Pass(_)
        ));
        assert_eq!(
            gate.check(from("bob", 2, media(1))),
            Verdict::Refuse(1, KeyRefusal::NotParticipant)
        );
    }

    fn with_secret(mut signal: CallSignal, len: usize) -> CallSignal {
        match &mut signal.kind {
            Some(Kind::Key(key)) => key.secret = vec![7; len],
            Some(Kind::MediaKey(key)) => key.secret = vec![8; len],
            _ => {}
        }
        signal
    }

    #[test]
    fn a_secret_of_the_wrong_length_is_refused_and_an_empty_copy_dropped() {
        let mut gate = KeyGate::callee("alice", 1);
        for len in [1, 31, 33] {
            assert_eq!(
                gate.check(from(
                    "alice",
                    1,
                    with_secret(key(1, CALL_KEY_VERSION, &CALL), len)
                )),
                Verdict::Refuse(1, KeyRefusal::BadSecret)
            );
        }
        // The copy for devices outside the call carries no key: nothing
        // reaches the call loop, and the epoch is still free to take.
        assert_eq!(
            gate.check(from(
                "alice",
                1,
                with_secret(key(1, CALL_KEY_VERSION, &CALL), 0)
            )),
            Verdict::Pass(Vec::new())
        );
        assert!(matches!(
            gate.check(from("alice", 1, key(1, CALL_KEY_VERSION, &CALL))),
            Verdict::Pass(ref s) if s.len() == 1
        ));
        assert_eq!(
            gate.check(from("bob", 1, with_secret(media(1), 16))),
            Verdict::Refuse(1, KeyRefusal::BadSecret)
        );
        assert_eq!(
            gate.check(from("bob", 1, with_secret(media(1), 0))),
            Verdict::Pass(Vec::new())
        );
    }

    #[test]
    fn early_keys_are_held_only_near_the_newest_epoch_and_once() {
        let mut gate = KeyGate::callee("alice", 1);
        assert!(matches!(
            gate.check(from("alice", 1, key(5, CALL_KEY_VERSION, &CALL))),
            Verdict::Pass(_)
        ));
        // Two epochs ahead may come; further cannot fill the buffer.
        assert_eq!(gate.check(from("carol", 2, media(7))), Verdict::Held);
        assert_eq!(
            gate.check(from("carol", 2, media(7))),
            Verdict::Refuse(7, KeyRefusal::Duplicate)
        );
        for epoch in [8, u32::MAX] {
            assert_eq!(
                gate.check(from("carol", 2, media(epoch))),
                Verdict::Refuse(epoch, KeyRefusal::UnknownEpoch)
            );
        }
        // Held before any epoch, far ahead of the first one: dropped when
        // that epoch arrives, and said so.
        let mut gate = KeyGate::callee("alice", 1);
        assert_eq!(gate.check(from("carol", 2, media(90))), Verdict::Held);
        assert!(matches!(
            gate.check(from("alice", 1, key(1, CALL_KEY_VERSION, &CALL))),
            Verdict::Pass(ref s) if s.len() == 1
        ));
        let dropped: Vec<_> = gate
            .take_dropped()
            .into_iter()
            .map(|(s, e, r)| (s.0, e, r))
            .collect();
        assert_eq!(
            dropped,
            [("carol".to_owned(), 90, KeyRefusal::UnknownEpoch)]
        );
    }
}
