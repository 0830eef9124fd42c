//! Prekey upkeep against an in-memory store and server, with a fixed
//! clock: no runtime, no sockets.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use starling_crypto::{IdentityKey, PreKeyBundle};

use super::*;
use crate::clock::FixedClock;
use crate::storage::ContactRecord;
use crate::transport::{AccountEnvelopes, SendOutcome};

/// Runs a future whose I/O is all in memory (it never waits).
fn run<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("an in-memory fake never waits"),
    }
}

#[derive(Debug, Error)]
#[error("fake failure")]
struct Fake;

#[derive(Default)]
struct Memory {
    saved: RefCell<Option<Vec<u8>>>,
    counts: Cell<(u32, u32)>,
    uploads: RefCell<Vec<KeyUpload>>,
    /// Fails the upload, as an unreachable server would.
    offline: Cell<bool>,
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
    async fn identity_keys(&self, _: &str) -> Result<Vec<(u32, IdentityKey)>, Fake> {
        Ok(Vec::new())
    }
    async fn contact(&self, _: &str) -> Result<ContactRecord, Fake> {
        Ok(ContactRecord::default())
    }
    async fn set_verified(&self, _: &str) -> Result<(), Fake> {
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

const DAY_MILLIS: i64 = 86_400_000;

#[test]
fn the_decision_follows_stock_and_age() {
    let full = PrekeyCounts {
        one_time: PREKEY_LOW_WATER,
        kem: PREKEY_LOW_WATER,
    };
    assert!(Upkeep::due(&full, Some(1_000), 1_000).is_nothing());
    let low = PrekeyCounts {
        one_time: PREKEY_LOW_WATER - 1,
        kem: PREKEY_LOW_WATER,
    };
    let due = Upkeep::due(&low, Some(1_000), 1_000);
    assert!(due.x25519 && !due.kem && !due.rotate_signed);
    let old = 1_000 + SIGNED_PREKEY_MAX_AGE_SECS + 1;
    assert!(Upkeep::due(&full, Some(1_000), old).rotate_signed);
    assert!(!Upkeep::due(&full, Some(1_000), old - 1).rotate_signed);
    assert!(Upkeep::due(&full, None, 0).rotate_signed);
}

#[test]
fn initial_upload_stores_then_uploads_everything() {
    let rng = &mut rand::rngs::OsRng;
    let identity = IdentityKeyPair::generate(rng);
    let mut prekeys = PreKeyStore::new();
    let memory = Memory::default();
    let clock = FixedClock(DAY_MILLIS);
    run(upload_initial(
        &identity,
        &mut prekeys,
        &memory,
        &memory,
        &clock,
        rng,
    ))
    .unwrap();
    let uploads = memory.uploads.borrow();
    let [upload] = uploads.as_slice() else {
        panic!("one upload expected, got {}", uploads.len());
    };
    assert!(upload.signed_prekey.is_some() && upload.last_resort_kem_prekey.is_some());
    assert_eq!(upload.one_time_prekeys.len(), PREKEY_BATCH);
    assert_eq!(upload.kem_prekeys.len(), PREKEY_BATCH);
    let stored = run(memory.load_prekeys()).unwrap();
    assert_eq!(stored.to_bytes()[..], prekeys.to_bytes()[..]);
    assert_eq!(stored.signed_prekey_created_at(), Some(86_400));
}

#[test]
fn maintenance_tops_up_only_what_is_low_and_rotates_when_old() {
    let rng = &mut rand::rngs::OsRng;
    let identity = IdentityKeyPair::generate(rng);
    let mut prekeys = PreKeyStore::new();
    let memory = Memory::default();
    let start = FixedClock(DAY_MILLIS);
    run(upload_initial(
        &identity,
        &mut prekeys,
        &memory,
        &memory,
        &start,
        rng,
    ))
    .unwrap();

    memory.counts.set((100, 100));
    let done = run(maintain(
        &identity,
        &mut prekeys,
        &memory,
        &memory,
        &start,
        rng,
    ))
    .unwrap();
    assert!(done.is_nothing());
    assert_eq!(memory.uploads.borrow().len(), 1);

    memory.counts.set((100, 3));
    let later = FixedClock(DAY_MILLIS * 9);
    let done = run(maintain(
        &identity,
        &mut prekeys,
        &memory,
        &memory,
        &later,
        rng,
    ))
    .unwrap();
    assert_eq!(
        done,
        Upkeep {
            x25519: false,
            kem: true,
            rotate_signed: true
        }
    );
    let uploads = memory.uploads.borrow();
    let upload = &uploads[1];
    assert!(upload.one_time_prekeys.is_empty());
    assert_eq!(upload.kem_prekeys.len(), PREKEY_BATCH);
    assert!(upload.signed_prekey.is_some() && upload.last_resort_kem_prekey.is_none());
}

#[test]
fn secrets_are_stored_even_when_the_upload_fails() {
    let rng = &mut rand::rngs::OsRng;
    let identity = IdentityKeyPair::generate(rng);
    let mut prekeys = PreKeyStore::new();
    let memory = Memory::default();
    memory.offline.set(true);
    let result = run(upload_initial(
        &identity,
        &mut prekeys,
        &memory,
        &memory,
        &FixedClock(0),
        rng,
    ));
    assert!(matches!(result, Err(PrekeyError::Transport(Fake))));
    assert!(memory.saved.borrow().is_some());
}
