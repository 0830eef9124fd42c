//! Test doubles: an in-memory [`Storage`] and [`Transport`] in one value,
//! and a way to run the core's futures without a runtime (with everything
//! in memory, they never wait).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use starling_crypto::ratchet::PeerSessions;
use starling_crypto::{IdentityKey, PreKeyBundle, PreKeyStore};
use starling_protocol::api::{KeyUpload, PrekeyCounts, StaleLists};
use thiserror::Error;

use crate::storage::{ContactRecord, Storage};
use crate::tofu::TrustChange;
use crate::transport::{AccountEnvelopes, SendOutcome, Transport};

/// Runs a future whose I/O is all in memory.
pub(crate) fn run<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("an in-memory fake never waits"),
    }
}

/// The fakes' one failure.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("fake failure")]
pub(crate) struct Fake;

/// A device's store and its server, in memory.
#[derive(Default)]
pub(crate) struct Memory {
    pub(crate) saved: RefCell<Option<Vec<u8>>>,
    pub(crate) identities: RefCell<BTreeMap<String, Vec<(u32, IdentityKey)>>>,
    pub(crate) contacts: RefCell<BTreeMap<String, ContactRecord>>,
    /// Accounts whose keys were ever observed.
    pub(crate) known: RefCell<std::collections::BTreeSet<String>>,
    pub(crate) counts: Cell<(u32, u32)>,
    pub(crate) uploads: RefCell<Vec<KeyUpload>>,
    /// Fails the upload, as an unreachable server would.
    pub(crate) offline: Cell<bool>,
    /// Stored sessions, serialised, by (username, device).
    pub(crate) sessions: RefCell<BTreeMap<(String, u32), Vec<u8>>>,
    /// Device lists the server gives, by account (`[1]` when absent).
    pub(crate) devices: RefCell<BTreeMap<String, Vec<u32>>>,
    /// Bundles the server serves, by account.
    pub(crate) bundles: RefCell<BTreeMap<String, Vec<(u32, PreKeyBundle)>>>,
    /// Refusals the server answers the next sends with, in order.
    pub(crate) refusals: RefCell<Vec<BTreeMap<String, StaleLists>>>,
    /// Every send the server was asked for, refused or stored.
    pub(crate) sent: RefCell<Vec<Vec<AccountEnvelopes>>>,
}

impl Storage for Memory {
    type Error = Fake;
    async fn load_prekeys(&self) -> Result<PreKeyStore, Fake> {
        let bytes = self.saved.borrow().clone().ok_or(Fake)?;
        PreKeyStore::from_bytes(&bytes).map_err(|_| Fake)
    }
    async fn save_prekeys(&self, prekeys: &PreKeyStore) -> Result<(), Fake> {
        *self.saved.borrow_mut() = Some(prekeys.to_bytes().to_vec());
        Ok(())
    }
    async fn identity_keys(&self, username: &str) -> Result<Vec<(u32, IdentityKey)>, Fake> {
        Ok(self
            .identities
            .borrow()
            .get(username)
            .cloned()
            .unwrap_or_default())
    }
    async fn contact(&self, username: &str) -> Result<ContactRecord, Fake> {
        Ok(self
            .contacts
            .borrow()
            .get(username)
            .cloned()
            .unwrap_or_default())
    }
    async fn set_verified(&self, username: &str) -> Result<(), Fake> {
        let mut contacts = self.contacts.borrow_mut();
        let contact = contacts.entry(username.to_owned()).or_default();
        contact.verified = true;
        contact.identity_changed = false;
        Ok(())
    }
    async fn observe_identity(
        &self,
        username: &str,
        device_id: u32,
        key: &IdentityKey,
        own_device: Option<u32>,
    ) -> Result<TrustChange, Fake> {
        let mut identities = self.identities.borrow_mut();
        let devices = identities.entry(username.to_owned()).or_default();
        // An account stays known once seen, as in the real store, even
        // when all its devices were forgotten.
        let first = self.known.borrow_mut().insert(username.to_owned());
        match devices.iter_mut().find(|(d, _)| *d == device_id) {
            Some((_, old)) if old == key => return Ok(TrustChange::Known),
            Some((_, old)) => *old = key.clone(),
            None => {
                devices.push((device_id, key.clone()));
                devices.sort_by_key(|(d, _)| *d);
            }
        }
        if first {
            return Ok(TrustChange::FirstContact);
        }
        if own_device.is_none() {
            self.contacts
                .borrow_mut()
                .entry(username.to_owned())
                .or_default()
                .identity_changed = true;
        }
        Ok(TrustChange::Changed)
    }
    async fn forget_device(&self, username: &str, device_id: u32) -> Result<(), Fake> {
        if let Some(devices) = self.identities.borrow_mut().get_mut(username) {
            devices.retain(|(d, _)| *d != device_id);
        }
        self.sessions
            .borrow_mut()
            .remove(&(username.to_owned(), device_id));
        Ok(())
    }
    async fn sessions(&self, username: &str, device_id: u32) -> Result<PeerSessions, Fake> {
        match self
            .sessions
            .borrow()
            .get(&(username.to_owned(), device_id))
        {
            Some(bytes) => PeerSessions::from_bytes(bytes).map_err(|_| Fake),
            None => Ok(PeerSessions::new()),
        }
    }
    async fn save_sessions(
        &self,
        username: &str,
        device_id: u32,
        sessions: &PeerSessions,
    ) -> Result<(), Fake> {
        self.sessions.borrow_mut().insert(
            (username.to_owned(), device_id),
            sessions.to_bytes().to_vec(),
        );
        Ok(())
    }
}

impl Transport for Memory {
    type Error = Fake;
    async fn upload_keys(&self, upload: &KeyUpload) -> Result<PrekeyCounts, Fake> {
        if self.offline.get() {
            return Err(Fake);
        }
        self.uploads.borrow_mut().push(upload.clone());
        Ok(PrekeyCounts {
            one_time: 100,
            kem: 100,
        })
    }
    async fn key_count(&self) -> Result<PrekeyCounts, Fake> {
        let (one_time, kem) = self.counts.get();
        Ok(PrekeyCounts { one_time, kem })
    }
    async fn devices(&self, username: &str) -> Result<Vec<u32>, Fake> {
        Ok(self
            .devices
            .borrow()
            .get(username)
            .cloned()
            .unwrap_or_else(|| vec![1]))
    }
    async fn bundles(
        &self,
        username: &str,
        device: Option<u32>,
    ) -> Result<Vec<(u32, PreKeyBundle)>, Fake> {
        Ok(self
            .bundles
            .borrow()
            .get(username)
            .into_iter()
            .flatten()
            .filter(|(d, _)| device.is_none_or(|wanted| wanted == *d))
            .cloned()
            .collect())
    }
    async fn send(
        &self,
        destination: &str,
        envelopes: &[(u32, Vec<u8>)],
    ) -> Result<SendOutcome, Fake> {
        self.send_many(&[AccountEnvelopes {
            destination: destination.to_owned(),
            envelopes: envelopes.to_vec(),
        }])
        .await
    }
    async fn send_many(&self, sends: &[AccountEnvelopes]) -> Result<SendOutcome, Fake> {
        self.sent.borrow_mut().push(sends.to_vec());
        let mut refusals = self.refusals.borrow_mut();
        if refusals.is_empty() {
            Ok(SendOutcome::Stored)
        } else {
            Ok(SendOutcome::Stale(refusals.remove(0)))
        }
    }
}
