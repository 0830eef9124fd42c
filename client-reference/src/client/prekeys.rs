//! Prekeys: the first upload at registration, replenishing when the
//! server reports a low stock, and rotating the signed prekey on schedule.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::Client;
use crate::api::KeyUpload;
use crate::error::Result;

/// One-time prekeys of each kind uploaded at a time.
pub const PREKEY_BATCH: usize = 100;
/// Below this many on the server, upload another batch.
pub const PREKEY_LOW_WATER: u32 = 20;
/// A signed prekey older than this is replaced.
pub const SIGNED_PREKEY_MAX_AGE_SECS: u64 = 7 * 24 * 3600;

fn now_secs() -> u64 {
    u64::try_from(crate::store::now_millis() / 1000).unwrap_or(0)
}

impl Client {
    /// Uploads the signed prekey, one batch of one-time prekeys of each
    /// kind and the last-resort ML-KEM prekey.
    pub(super) async fn upload_initial_prekeys(&mut self) -> Result<()> {
        let rng = &mut rand::rngs::OsRng;
        let signed = self
            .prekeys
            .generate_signed_prekey(&self.identity, now_secs(), rng);
        let last_resort = self
            .prekeys
            .generate_last_resort_kem_prekey(&self.identity, rng);
        let mut upload = self.one_time_batch(true, true)?;
        upload.signed_prekey = Some(B64.encode(signed.to_bytes()));
        upload.last_resort_kem_prekey = Some(B64.encode(last_resort.to_bytes()));
        // Store the secrets before the server can hand out the public halves.
        self.store.save_prekeys(&self.prekeys).await?;
        self.api.upload_keys(&upload).await?;
        Ok(())
    }

    fn one_time_batch(&mut self, x25519: bool, kem: bool) -> Result<KeyUpload> {
        let rng = &mut rand::rngs::OsRng;
        let mut upload = KeyUpload::default();
        // Keys handed out and never used stay here; the oldest make way.
        self.prekeys.make_room_for_one_time_prekeys(PREKEY_BATCH);
        if x25519 {
            upload.one_time_prekeys = self
                .prekeys
                .generate_one_time_prekeys(PREKEY_BATCH, rng)?
                .iter()
                .map(|k| B64.encode(k.to_bytes()))
                .collect();
        }
        if kem {
            upload.kem_prekeys = self
                .prekeys
                .generate_kem_prekeys(&self.identity, PREKEY_BATCH, rng)?
                .iter()
                .map(|k| B64.encode(k.to_bytes()))
                .collect();
        }
        Ok(upload)
    }

    /// Tops up the server's stock of one-time prekeys when it is low, and
    /// rotates the signed prekey when it is due. Called when the server
    /// says the stock is low and whenever the client connects.
    pub async fn maintain_prekeys(&mut self) -> Result<()> {
        let counts = self.api.key_count().await?;
        let x25519 = counts.one_time < PREKEY_LOW_WATER;
        let kem = counts.kem < PREKEY_LOW_WATER;
        let rotate = self
            .prekeys
            .signed_prekey_created_at()
            .is_none_or(|created| now_secs().saturating_sub(created) > SIGNED_PREKEY_MAX_AGE_SECS);
        if !x25519 && !kem && !rotate {
            return Ok(());
        }
        let mut upload = self.one_time_batch(x25519, kem)?;
        if rotate {
            let signed = self.prekeys.generate_signed_prekey(
                &self.identity,
                now_secs(),
                &mut rand::rngs::OsRng,
            );
            upload.signed_prekey = Some(B64.encode(signed.to_bytes()));
        }
        self.store.save_prekeys(&self.prekeys).await?;
        self.api.upload_keys(&upload).await?;
        Ok(())
    }

    /// [`Self::maintain_prekeys`] where a failure must not keep messages
    /// from arriving: it is logged, and the server's next low-stock signal
    /// or the next connect retries.
    pub(super) async fn maintain_prekeys_or_log(&mut self) {
        if let Err(error) = self.maintain_prekeys().await {
            tracing::warn!(%error, "prekey maintenance failed; will retry");
        }
    }
}
