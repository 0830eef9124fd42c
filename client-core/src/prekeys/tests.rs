//! Prekey upkeep against an in-memory store and server, with a fixed
//! clock: no runtime, no sockets.

use starling_crypto::PreKeyBundle;
use starling_crypto::prekeys::{KemPreKey, SignedPreKey};

use super::*;
use crate::clock::FixedClock;
use crate::testing::{Fake, Memory, run};

const DAY_MILLIS: i64 = 86_400_000;

#[test]
fn the_decision_follows_stock_and_age() {
    let full = PrekeyCounts {
        one_time: PREKEY_LOW_WATER,
        kem: PREKEY_LOW_WATER,
    };
    assert!(Upkeep::due(&full, Some(1_000), false, 1_000).is_nothing());
    let low = PrekeyCounts {
        one_time: PREKEY_LOW_WATER - 1,
        kem: PREKEY_LOW_WATER,
    };
    let due = Upkeep::due(&low, Some(1_000), false, 1_000);
    assert!(due.x25519 && !due.kem && !due.rotate_signed);
    let old = 1_000 + SIGNED_PREKEY_MAX_AGE_SECS + 1;
    assert!(Upkeep::due(&full, Some(1_000), false, old).rotate_signed);
    assert!(!Upkeep::due(&full, Some(1_000), false, old - 1).rotate_signed);
    assert!(Upkeep::due(&full, None, false, 0).rotate_signed);
    // A filling replay list rotates early.
    assert!(Upkeep::due(&full, Some(1_000), true, 1_000).rotate_signed);
    // A key made more than a day "in the future" (the clock was set
    // ahead once) does not postpone rotation.
    assert!(Upkeep::due(&full, Some(1_000 + 86_401), false, 1_000).rotate_signed);
    assert!(!Upkeep::due(&full, Some(1_000 + 3_600), false, 1_000).rotate_signed);
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
    // The last-resort ML-KEM prekey rotates with the signed prekey.
    assert!(upload.signed_prekey.is_some() && upload.last_resort_kem_prekey.is_some());
    assert_ne!(
        upload.last_resort_kem_prekey,
        uploads[0].last_resort_kem_prekey
    );
}

#[test]
fn superseded_keys_are_deleted_after_the_grace_period() {
    let rng = &mut rand::rngs::OsRng;
    let identity = IdentityKeyPair::generate(rng);
    let mut prekeys = PreKeyStore::new();
    let memory = Memory::default();
    run(upload_initial(
        &identity,
        &mut prekeys,
        &memory,
        &memory,
        &FixedClock(DAY_MILLIS),
        rng,
    ))
    .unwrap();
    // The medium-term keys alone: a bundle served once the one-time keys
    // ran out.
    let first = {
        let uploads = memory.uploads.borrow();
        let decode = |b64: &Option<String>| B64.decode(b64.as_ref().unwrap()).unwrap();
        let signed = SignedPreKey::from_bytes(&decode(&uploads[0].signed_prekey)).unwrap();
        let kem = KemPreKey::from_bytes(&decode(&uploads[0].last_resort_kem_prekey)).unwrap();
        PreKeyBundle::new(identity.public().clone(), signed, None, Some(kem)).unwrap()
    };
    memory.counts.set((100, 100));
    let maintain_at = |prekeys: &mut PreKeyStore, day: i64, rng: &mut rand::rngs::OsRng| {
        run(maintain(
            &identity,
            prekeys,
            &memory,
            &memory,
            &FixedClock(DAY_MILLIS * day),
            rng,
        ))
        .unwrap()
    };
    assert!(maintain_at(&mut prekeys, 9, rng).rotate_signed);
    // Within the grace period an initiation from the first bundle works.
    assert!(accepts(&identity, &mut prekeys.clone_via_bytes(), &first));
    // 30 days after its successor was made, the first generation is gone,
    // and the stored copy says so too.
    assert!(maintain_at(&mut prekeys, 20, rng).rotate_signed);
    assert!(maintain_at(&mut prekeys, 40, rng).rotate_signed);
    assert!(!accepts(&identity, &mut prekeys.clone_via_bytes(), &first));
    let stored = run(memory.load_prekeys()).unwrap();
    assert!(!accepts(&identity, &mut stored.clone_via_bytes(), &first));
}

/// Whether a PQXDH initiation made from `bundle` is accepted by `prekeys`.
fn accepts(identity: &IdentityKeyPair, prekeys: &mut PreKeyStore, bundle: &PreKeyBundle) -> bool {
    use starling_crypto::ratchet::{CiphertextMessage, PeerSessions};
    let rng = &mut rand::rngs::OsRng;
    let carol = IdentityKeyPair::generate(rng);
    let mut sessions = PeerSessions::new();
    sessions.initiate(&carol, bundle, rng).unwrap();
    let message =
        CiphertextMessage::from_bytes(&sessions.encrypt(b"hi").unwrap().to_bytes()).unwrap();
    PeerSessions::new()
        .decrypt(identity, prekeys, &message, rng)
        .is_ok()
}

trait CloneViaBytes {
    fn clone_via_bytes(&self) -> PreKeyStore;
}

impl CloneViaBytes for PreKeyStore {
    fn clone_via_bytes(&self) -> PreKeyStore {
        PreKeyStore::from_bytes(&self.to_bytes()).unwrap()
    }
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
