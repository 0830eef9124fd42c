//! Test doubles: an in-memory [`Storage`] and [`Transport`] in one value,
//! and a way to run the core's futures without a runtime (with everything
//! in memory, they never wait).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use starling_crypto::{IdentityKey, PreKeyBundle, PreKeyStore};
use starling_protocol::api::{KeyUpload, PrekeyCounts};
use thiserror::Error;

use crate::storage::{ContactRecord, Storage};
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
    pub(crate) counts: Cell<(u32, u32)>,
    pub(crate) uploads: RefCell<Vec<KeyUpload>>,
    /// Fails the upload, as an unreachable server would.
    pub(crate) offline: Cell<bool>,
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
    async fn devices(&self, _: &str) -> Result<Vec<u32>, Fake> {
        Ok(vec![1])
    }
    async fn bundles(&self, _: &str, _: Option<u32>) -> Result<Vec<(u32, PreKeyBundle)>, Fake> {
        Ok(Vec::new())
    }
    async fn send(&self, _: &str, _: &[(u32, Vec<u8>)]) -> Result<SendOutcome, Fake> {
        Ok(SendOutcome::Stored)
    }
    async fn send_many(&self, _: &[AccountEnvelopes]) -> Result<SendOutcome, Fake> {
        Ok(SendOutcome::Stored)
    }
}
