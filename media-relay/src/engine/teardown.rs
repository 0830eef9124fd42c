//! Removing a participant: everything it held is freed at once (its `Rtc`,
//! its routes, its place in the call, the slots it fed at the others), and
//! a call without participants is forgotten.

use super::{Engine, Event, Output, ParticipantId};
use crate::metrics::LeaveReason;

impl Engine {
    /// Frees a participant. Does nothing if it is already gone.
    pub(super) fn remove(&mut self, id: ParticipantId, reason: LeaveReason) {
        let Some(participant) = self.participants.remove(&id) else {
            return;
        };
        for key in participant.routes() {
            if self.routes.get(key) == Some(&id) {
                self.routes.remove(key);
            }
        }
        let call = participant.call();
        let empty = match self.members.get_mut(&call) {
            Some(members) => {
                members.retain(|m| *m != id);
                for other in members.iter() {
                    if let Some(p) = self.participants.get_mut(other) {
                        p.release_slots_of(id);
                    }
                }
                members.is_empty()
            }
            None => false,
        };
        if empty {
            self.members.remove(&call);
            self.call_numbers.retain(|_, c| *c != call);
        }
        drop(participant);
        self.metrics.leave(reason);
        self.update_gauges();
        tracing::info!(participant = %id, reason = ?reason, "left");
        self.out.push_back(Output::Event(Event::Left(id, reason)));
    }
}
