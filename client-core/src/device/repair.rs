//! Session repair, on purpose only. A device starts a fresh session with a
//! peer device in three cases, never because an envelope failed to decrypt
//! (anyone who can inject or replay envelopes could otherwise pick the
//! moment sessions restart, and choose the keys they restart with):
//!
//! - its person asks for it ([`Device::reset_session`]): fresh sessions
//!   with every device of the contact, announced with a `SessionReset`;
//! - its person asks the contact to do it ([`Device::request_repair`]): a
//!   `RepairRequest` inside the working session;
//! - a peer's `RepairRequest` arrives, decrypted and so authenticated
//!   ([`Device::honour_repair_request`]): honoured at most once per
//!   [`REPAIR_INTERVAL_MILLIS`] per peer device, remembered across restarts.
//!
//! Every fresh session is PQXDH: a bundle without a signed ML-KEM prekey
//! is refused by session setup.

use rand_core::CryptoRngCore;

use super::{Device, Result};
use crate::clock::Clock;
use crate::content::{self, Body};
use crate::error::DeviceError;
use crate::events::Event;
use crate::storage::Storage;
use crate::transport::Transport;

/// Shortest time between two repairs a peer device's requests start, in
/// [`Clock`] milliseconds (one hour). The wall clock may step: a recorded
/// repair less than an hour away from now in either direction blocks the
/// next, so stepping the clock back does not open the gate early.
pub const REPAIR_INTERVAL_MILLIS: i64 = 3_600_000;

impl<S, T, C, R> Device<S, T, C, R>
where
    S: Storage,
    T: Transport,
    C: Clock,
    R: CryptoRngCore,
{
    /// Starts fresh sessions with every device of `username` we know (or
    /// the server lists, when we know none) and announces them. A person's
    /// command: for when their messages stay unreadable.
    pub async fn reset_session(&mut self, username: &str) -> Result<(), S, T> {
        let devices = self.ensure_sessions(username).await?;
        for device in devices {
            self.fresh_session(username, device).await?;
        }
        let reset = self.new_content(Body::SessionReset(content::SessionReset {}));
        self.send_pairwise(&[username.to_owned()], &reset).await
    }

    /// Asks every device of `username`, inside the working sessions, to
    /// start a fresh session with this device.
    pub async fn request_repair(&mut self, username: &str) -> Result<(), S, T> {
        let request = self.new_content(Body::RepairRequest(content::RepairRequest {}));
        self.send_pairwise(&[username.to_owned()], &request).await
    }

    /// A peer device's authenticated request for a fresh session: started
    /// and announced, unless one was started for it within the interval.
    pub(super) async fn honour_repair_request(
        &mut self,
        sender: &str,
        device: u32,
    ) -> Result<Vec<Event>, S, T> {
        let now = self.clock.now_millis();
        let last = self.storage.last_repair(sender, device).await;
        if let Some(last) = last.map_err(DeviceError::Storage)?
            && now.abs_diff(last) < REPAIR_INTERVAL_MILLIS.unsigned_abs()
        {
            tracing::info!("a repair request within the interval is ignored");
            return Ok(Vec::new());
        }
        let started = self.fresh_session(sender, device).await;
        // Our side failed: the request may be honoured when it comes again.
        if let Err(error @ (DeviceError::Storage(_) | DeviceError::Transport(_))) = started {
            return Err(error);
        }
        // Started, or refused by a rule (a verified contact's changed keys,
        // a bundle without a post-quantum prekey): either way it counts.
        let recorded = self.storage.record_repair(sender, device, now).await;
        recorded.map_err(DeviceError::Storage)?;
        if let Err(error) = started {
            return Ok(vec![Event::RepairRefused {
                sender: sender.to_owned(),
                device,
                reason: error.to_string(),
            }]);
        }
        let reset = self.new_content(Body::SessionReset(content::SessionReset {}));
        self.send_pairwise(&[sender.to_owned()], &reset).await?;
        Ok(Vec::new())
    }

    /// A fresh session with one device from its bundle on the server. A
    /// device the server no longer has needs none.
    async fn fresh_session(&mut self, username: &str, device: u32) -> Result<(), S, T> {
        match self.establish_from_server(username, device).await {
            Err(DeviceError::Transport(e)) if T::is_not_found(&e) => Ok(()),
            other => other,
        }
    }
}
