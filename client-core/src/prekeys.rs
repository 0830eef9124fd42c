//! Prekey upkeep: the first upload at registration, replenishing when the
//! server's stock runs low, and rotating the medium-term keys (the signed
//! prekey and the last-resort ML-KEM prekey, together) every
//! [`SIGNED_PREKEY_MAX_AGE_SECS`], or sooner when the signed prekey's
//! replay list fills. Superseded keys are deleted after
//! [`starling_crypto::PREKEY_GRACE_SECS`].
//!
//! [`Upkeep::due`] is the decision alone (pure); [`upload_initial`] and
//! [`maintain`] carry it out against a [`Storage`] and a [`Transport`].
//! Secrets are always stored before the server can hand out their public
//! halves.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand_core::CryptoRngCore;
use starling_crypto::{IdentityKeyPair, PreKeyStore, PreKeyStoreError, Rotation};
use starling_protocol::api::{KeyUpload, PrekeyCounts};
use thiserror::Error;

use crate::clock::Clock;
use crate::storage::Storage;
use crate::transport::Transport;

/// One-time prekeys of each kind uploaded at a time.
pub const PREKEY_BATCH: usize = 100;
/// Below this many on the server, upload another batch.
pub const PREKEY_LOW_WATER: u32 = 20;
/// Signed and last-resort prekeys older than this are replaced (a week).
pub const SIGNED_PREKEY_MAX_AGE_SECS: u64 = 7 * 24 * 3600;

/// Why prekey upkeep failed. Exhaustive on purpose: a shell maps each arm
/// back to its own error type.
#[derive(Debug, Error)]
pub enum PrekeyError<S, T> {
    /// The local store failed.
    #[error(transparent)]
    Storage(S),
    /// The server call failed.
    #[error(transparent)]
    Transport(T),
    /// Prekeys could not be generated.
    #[error(transparent)]
    PreKeys(#[from] PreKeyStoreError),
}

/// What the device's own keys need: for the decision, no I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Upkeep {
    /// Upload a batch of one-time X25519 prekeys.
    pub x25519: bool,
    /// Upload a batch of one-time ML-KEM prekeys.
    pub kem: bool,
    /// Replace the signed prekey and the last-resort ML-KEM prekey.
    pub rotate_signed: bool,
}

impl Upkeep {
    /// What is due, given the server's stock, when the current signed
    /// prekey was made (`None`: there is none), whether its replay list is
    /// filling, and the time now, in seconds since the Unix epoch.
    pub fn due(
        counts: &PrekeyCounts,
        signed_created_at: Option<u64>,
        replay_list_filling: bool,
        now_secs: u64,
    ) -> Self {
        Self {
            x25519: counts.one_time < PREKEY_LOW_WATER,
            kem: counts.kem < PREKEY_LOW_WATER,
            rotate_signed: replay_list_filling || age_due(signed_created_at, now_secs),
        }
    }

    /// Whether the medium-term keys are due to rotate, from local state
    /// alone (the clock and the replay list), so that a server that stops
    /// answering cannot postpone it.
    pub fn rotation_due(prekeys: &PreKeyStore, now_secs: u64) -> bool {
        prekeys.replay_list_filling() || age_due(prekeys.signed_prekey_created_at(), now_secs)
    }

    /// Nothing to do.
    pub fn is_nothing(&self) -> bool {
        !self.x25519 && !self.kem && !self.rotate_signed
    }
}

/// Whether a signed prekey made at `created` (`None`: there is none) is
/// due to rotate at `now`: older than [`SIGNED_PREKEY_MAX_AGE_SECS`], or
/// made more than a day in the future (a clock that was once set ahead
/// must not postpone rotation until it catches up).
fn age_due(created: Option<u64>, now: u64) -> bool {
    created.is_none_or(|created| {
        now.saturating_sub(created) > SIGNED_PREKEY_MAX_AGE_SECS
            || created.saturating_sub(now) > 24 * 3600
    })
}

/// Uploads the signed prekey, one batch of one-time prekeys of each kind
/// and the last-resort ML-KEM prekey: what a new device does once.
pub async fn upload_initial<S, T, R>(
    identity: &IdentityKeyPair,
    prekeys: &mut PreKeyStore,
    storage: &S,
    transport: &T,
    clock: &impl Clock,
    rng: &mut R,
) -> Result<(), PrekeyError<S::Error, T::Error>>
where
    S: Storage,
    T: Transport,
    R: CryptoRngCore,
{
    let rotation = prekeys.rotate(identity, clock.now_secs(), rng);
    let mut upload = one_time_batch(identity, prekeys, true, true, rng)?;
    add_rotation(&mut upload, &rotation);
    store_then_upload(prekeys, &upload, storage, transport).await
}

/// Tops up the server's stock of one-time prekeys when it is low, rotates
/// the signed and last-resort prekeys when due, and deletes superseded
/// ones past their grace. Returns what was done.
pub async fn maintain<S, T, R>(
    identity: &IdentityKeyPair,
    prekeys: &mut PreKeyStore,
    storage: &S,
    transport: &T,
    clock: &impl Clock,
    rng: &mut R,
) -> Result<Upkeep, PrekeyError<S::Error, T::Error>>
where
    S: Storage,
    T: Transport,
    R: CryptoRngCore,
{
    let now = clock.now_secs();
    let counts = match transport.key_count().await {
        Ok(counts) => counts,
        // The stock is unknown, but a due rotation does not wait for it.
        Err(_) if Upkeep::rotation_due(prekeys, now) => PrekeyCounts {
            one_time: PREKEY_LOW_WATER,
            kem: PREKEY_LOW_WATER,
        },
        Err(error) => return Err(PrekeyError::Transport(error)),
    };
    let due = Upkeep::due(
        &counts,
        prekeys.signed_prekey_created_at(),
        prekeys.replay_list_filling(),
        now,
    );
    if due.is_nothing() {
        if prekeys.prune(now) > 0 {
            storage
                .save_prekeys(prekeys)
                .await
                .map_err(PrekeyError::Storage)?;
        }
        return Ok(due);
    }
    let mut upload = one_time_batch(identity, prekeys, due.x25519, due.kem, rng)?;
    if due.rotate_signed {
        let rotation = prekeys.rotate(identity, now, rng);
        add_rotation(&mut upload, &rotation);
    }
    prekeys.prune(now);
    store_then_upload(prekeys, &upload, storage, transport).await?;
    Ok(due)
}

/// Puts a rotation's new keys into an upload.
fn add_rotation(upload: &mut KeyUpload, rotation: &Rotation) {
    upload.signed_prekey = Some(B64.encode(rotation.signed_prekey.to_bytes()));
    upload.last_resort_kem_prekey = Some(B64.encode(rotation.last_resort_kem_prekey.to_bytes()));
}

/// Stores the secrets before the server can hand out the public halves.
async fn store_then_upload<S: Storage, T: Transport>(
    prekeys: &PreKeyStore,
    upload: &KeyUpload,
    storage: &S,
    transport: &T,
) -> Result<(), PrekeyError<S::Error, T::Error>> {
    storage
        .save_prekeys(prekeys)
        .await
        .map_err(PrekeyError::Storage)?;
    transport
        .upload_keys(upload)
        .await
        .map_err(PrekeyError::Transport)?;
    Ok(())
}

/// A batch of one-time prekeys of the kinds asked for.
fn one_time_batch(
    identity: &IdentityKeyPair,
    prekeys: &mut PreKeyStore,
    x25519: bool,
    kem: bool,
    rng: &mut impl CryptoRngCore,
) -> Result<KeyUpload, PreKeyStoreError> {
    let mut upload = KeyUpload::default();
    // Keys handed out and never used stay here; the oldest make way.
    prekeys.make_room_for_one_time_prekeys(PREKEY_BATCH);
    if x25519 {
        upload.one_time_prekeys = prekeys
            .generate_one_time_prekeys(PREKEY_BATCH, rng)?
            .iter()
            .map(|k| B64.encode(k.to_bytes()))
            .collect();
    }
    if kem {
        upload.kem_prekeys = prekeys
            .generate_kem_prekeys(identity, PREKEY_BATCH, rng)?
            .iter()
            .map(|k| B64.encode(k.to_bytes()))
            .collect();
    }
    Ok(upload)
}

#[cfg(test)]
#[path = "prekeys/tests.rs"]
mod tests;
