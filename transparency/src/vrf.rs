//! The log's VRF secret, as akd takes it (`VRFKeyStorage`): 32 bytes the
//! server keeps in its data folder and never rotates (labels and akd's
//! commitment key derive from it). Wiped when dropped, never printed.

use std::sync::Arc;

use akd_core::ecvrf::{VRFKeyStorage, VRFPrivateKey, VRFPublicKey, VrfError};
use zeroize::Zeroizing;

/// The VRF secret of a log.
#[derive(Clone)]
pub struct VrfSecret(Arc<Zeroizing<[u8; 32]>>);

impl VrfSecret {
    /// The secret from its 32 bytes.
    pub fn from_bytes(secret: [u8; 32]) -> Self {
        Self(Arc::new(Zeroizing::new(secret)))
    }

    /// The public key clients pin, as the signed root names it.
    pub fn public_key(&self) -> [u8; 32] {
        match VRFPrivateKey::try_from(&self.0[..]) {
            Ok(private) => VRFPublicKey::from(&private).to_bytes(),
            // Thirty-two bytes always make a key.
            Err(_) => [0; 32],
        }
    }
}

impl std::fmt::Debug for VrfSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VrfSecret").finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl VRFKeyStorage for VrfSecret {
    async fn retrieve(&self) -> Result<Vec<u8>, VrfError> {
        Ok(self.0.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_public_key_is_akds() {
        let secret = VrfSecret::from_bytes([0x5a; 32]);
        let akds = secret.get_vrf_public_key().await.unwrap();
        assert_eq!(secret.public_key(), akds.to_bytes());
    }
}
