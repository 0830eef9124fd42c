//! Call signalling: offers, answers, leaves, hang-ups, busy, the caller's
//! epochs and the participants' media keys are content like any other.
//! Applying one queues it for a running call loop (the shell's, with the
//! media), once the key gate ([`super::call_keys`]) let it through, and
//! records offers and missed calls in the history.

use std::collections::VecDeque;

use rand_core::CryptoRngCore;

use super::call_keys::{KeyGate, Verdict};
use super::{Device, Result};
use crate::clock::Clock;
use crate::content::{self, CallSignal, call_signal::Kind};
use crate::conversation::Conversation;
use crate::events::{CallSignalKind, Event};
use crate::storage::Storage;
use crate::transport::Transport;

/// Signals waiting for the call loop; beyond this, the oldest are dropped,
/// key messages last (the gate took their epoch: a lost one is lost for
/// good).
pub const MAX_QUEUED_SIGNALS: usize = 1_024;
/// Calls remembered as answered, for "missed call" entries.
pub const MAX_ANSWERED: usize = 256;

/// A signal for the call loop: the sender, its device, the signal.
pub type QueuedSignal = (String, u32, CallSignal);

#[derive(Debug, Default, Clone, PartialEq, Eq)]
enum CallMode {
    #[default]
    Idle,
    /// Waiting for an offer.
    Ringing,
    /// In the call with this id.
    Active(Vec<u8>),
}

/// Call signals for the running call loop, filled as envelopes are
/// applied.
#[derive(Debug, Default)]
pub struct CallInbox {
    mode: CallMode,
    signals: VecDeque<QueuedSignal>,
    answered: VecDeque<Vec<u8>>,
    gate: KeyGate,
}

impl CallInbox {
    /// Out of any call: drops queued signals, keeps the answered calls.
    pub fn idle(&mut self) {
        self.mode = CallMode::Idle;
        self.signals.clear();
        self.gate = KeyGate::default();
    }

    /// Waiting for an offer: offers are queued.
    pub fn ring(&mut self) {
        self.mode = CallMode::Ringing;
    }

    /// In the call `call_id` (placed by us): its signals, and offers, are
    /// queued; we make its epochs ([`Self::own_epoch`]).
    pub fn join(&mut self, call_id: &[u8]) {
        self.mode = CallMode::Active(call_id.to_vec());
        self.gate = KeyGate::caller();
    }

    /// A new epoch of the call we placed, with its participants (username,
    /// device): their media keys of it are taken from then on.
    pub fn own_epoch(&mut self, epoch: u32, participants: &[(String, u32)]) {
        self.gate.own_epoch(epoch, participants);
    }

    /// In the call `call_id`, answered, which `caller`'s `device` offered:
    /// its epochs are taken from that device only, and a later hang-up of
    /// it is no missed call.
    pub fn answer(&mut self, call_id: &[u8], caller: &str, device: u32) {
        self.mode = CallMode::Active(call_id.to_vec());
        self.gate = KeyGate::callee(caller, device);
        if self.answered.len() >= MAX_ANSWERED {
            self.answered.pop_front();
        }
        self.answered.push_back(call_id.to_vec());
    }

    /// The oldest queued signal.
    pub fn next_signal(&mut self) -> Option<QueuedSignal> {
        self.signals.pop_front()
    }

    /// Every queued signal, oldest first.
    pub fn take_signals(&mut self) -> Vec<QueuedSignal> {
        self.signals.drain(..).collect()
    }

    /// Whether a signal is for the call loop (given the mode).
    fn wants(&self, call: &CallSignal) -> bool {
        match &self.mode {
            CallMode::Idle => false,
            CallMode::Ringing => matches!(call.kind, Some(Kind::Offer(_))),
            CallMode::Active(id) => {
                *id == call.call_id || matches!(call.kind, Some(Kind::Offer(_)))
            }
        }
    }

    fn queue(&mut self, signal: QueuedSignal) {
        if self.signals.len() >= MAX_QUEUED_SIGNALS {
            let is_key =
                |s: &QueuedSignal| matches!(s.2.kind, Some(Kind::Key(_) | Kind::MediaKey(_)));
            let oldest = self.signals.iter().position(|s| !is_key(s)).unwrap_or(0);
            self.signals.remove(oldest);
        }
        self.signals.push_back(signal);
    }

    /// Whether we answered (or are in) the call.
    fn was_answered(&self, call_id: &[u8]) -> bool {
        self.answered.iter().any(|id| id == call_id)
            || matches!(&self.mode, CallMode::Active(id) if id == call_id)
    }
}

/// How a signal is named in events.
fn signal_kind(kind: Option<&Kind>) -> CallSignalKind {
    match kind {
        Some(Kind::Offer(_)) => CallSignalKind::Offer,
        Some(Kind::Answer(_)) => CallSignalKind::Answer,
        Some(Kind::Leave(_)) => CallSignalKind::Leave,
        Some(Kind::Hangup(_)) => CallSignalKind::Hangup,
        Some(Kind::Busy(_)) => CallSignalKind::Busy,
        Some(Kind::Key(_)) => CallSignalKind::Key,
        Some(Kind::MediaKey(_)) => CallSignalKind::MediaKey,
        None => CallSignalKind::Unknown,
    }
}

fn refused(
    sender: &str,
    device: u32,
    call: &CallSignal,
    epoch: u32,
    reason: super::KeyRefusal,
) -> Event {
    Event::CallKeyRefused {
        sender: sender.to_owned(),
        device,
        call_id: hex::encode(&call.call_id),
        epoch,
        reason,
    }
}

/// The body of a call signal.
pub fn call_signal(call_id: &[u8], kind: Kind) -> content::Body {
    content::Body::Call(CallSignal {
        call_id: call_id.to_vec(),
        kind: Some(kind),
    })
}

impl<S, T, C, R> Device<S, T, C, R>
where
    S: Storage,
    T: Transport,
    C: Clock,
    R: CryptoRngCore,
{
    /// Applies a call signal from `sender`'s `device`: queues it for a
    /// running call (a key message only if the key gate takes it; a
    /// refused one is an [`Event::CallKeyRefused`] instead), records offers
    /// and missed calls in the history.
    pub(super) async fn apply_call_signal(
        &mut self,
        sender: &str,
        device: u32,
        conversation: &Conversation,
        content: &content::Content,
        call: &CallSignal,
    ) -> Result<Vec<Event>, S, T> {
        let own = sender == self.account.username;
        let ours = own && device == self.account.device_id;
        let mut events = Vec::new();
        if self.calls.wants(call) && !ours {
            let in_call = matches!(&self.calls.mode, CallMode::Active(id) if *id == call.call_id);
            let signal = (sender.to_owned(), device, call.clone());
            let verdict = if in_call {
                self.calls.gate.check(signal)
            } else {
                Verdict::Pass(vec![signal])
            };
            let refused_now = matches!(verdict, Verdict::Refuse(..));
            match verdict {
                Verdict::Pass(signals) => {
                    for signal in signals {
                        self.calls.queue(signal);
                    }
                }
                Verdict::Held => {}
                Verdict::Refuse(epoch, reason) => {
                    events.push(refused(sender, device, call, epoch, reason));
                }
            }
            for (held, epoch, reason) in self.calls.gate.take_dropped() {
                events.push(refused(&held.0, held.1, &held.2, epoch, reason));
            }
            if refused_now {
                return Ok(events);
            }
        }
        let answered = self.calls.was_answered(&call.call_id);
        let record = match call.kind {
            Some(Kind::Offer(_)) => !own,
            Some(Kind::Hangup(_)) => !own && !answered,
            _ => false,
        };
        if record {
            self.record(conversation, sender, device, false, content, None)
                .await?;
        }
        events.push(Event::Call {
            sender: sender.to_owned(),
            device,
            call_id: hex::encode(&call.call_id),
            signal: signal_kind(call.kind.as_ref()),
        });
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(id: &[u8]) -> CallSignal {
        CallSignal {
            call_id: id.to_vec(),
            kind: Some(Kind::Offer(Default::default())),
        }
    }

    fn hangup(id: &[u8]) -> CallSignal {
        CallSignal {
            call_id: id.to_vec(),
            kind: Some(Kind::Hangup(Default::default())),
        }
    }

    #[test]
    fn an_idle_device_queues_nothing_a_ringing_one_only_offers() {
        let mut inbox = CallInbox::default();
        assert!(!inbox.wants(&offer(b"a")));
        inbox.ring();
        assert!(inbox.wants(&offer(b"a")));
        assert!(!inbox.wants(&hangup(b"a")));
    }

    #[test]
    fn in_a_call_its_signals_and_new_offers_are_queued() {
        let mut inbox = CallInbox::default();
        inbox.join(b"a");
        assert!(inbox.wants(&hangup(b"a")));
        assert!(!inbox.wants(&hangup(b"b")));
        assert!(inbox.wants(&offer(b"b")));
    }

    #[test]
    fn the_queue_keeps_the_newest_signals() {
        let mut inbox = CallInbox::default();
        for i in 0..=MAX_QUEUED_SIGNALS {
            inbox.queue((format!("u{i}"), 1, offer(b"a")));
        }
        assert_eq!(inbox.take_signals().len(), MAX_QUEUED_SIGNALS);
        assert!(inbox.next_signal().is_none());
    }

    #[test]
    fn a_flood_of_offers_pushes_out_no_key_message() {
        let mut inbox = CallInbox::default();
        inbox.join(b"a");
        let key = CallSignal {
            call_id: b"a".to_vec(),
            kind: Some(Kind::Key(crate::content::CallKey::default())),
        };
        inbox.queue(("alice".to_owned(), 1, key));
        for i in 0..2 * MAX_QUEUED_SIGNALS {
            inbox.queue((format!("u{i}"), 1, offer(b"b")));
        }
        let queued = inbox.take_signals();
        assert_eq!(queued.len(), MAX_QUEUED_SIGNALS);
        assert!(matches!(queued[0].2.kind, Some(Kind::Key(_))));
        assert_eq!(
            queued[MAX_QUEUED_SIGNALS - 1].0,
            format!("u{}", 2 * MAX_QUEUED_SIGNALS - 1)
        );
    }

    #[test]
    fn an_answered_call_stays_answered_after_it_ends() {
        let mut inbox = CallInbox::default();
        inbox.answer(b"a", "alice", 1);
        inbox.idle();
        assert!(inbox.was_answered(b"a"));
        assert!(!inbox.was_answered(b"b"));
    }
}
