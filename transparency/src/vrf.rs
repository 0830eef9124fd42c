//! The log's VRF secret, as akd takes it (`VRFKeyStorage`): 32 bytes the
//! server keeps in its data folder and never rotates (labels and akd's
//! commitment key derive from it). Wiped when dropped, never printed.

use std::sync::Arc;

use akd_core::ecvrf::{VRFKeyStorage, VrfError};
use zeroize::Zeroizing;

/// The VRF secret of a log.
#[derive(Clone)]
pub struct VrfSecret(Arc<Zeroizing<[u8; 32]>>);

impl VrfSecret {
    /// The secret from its 32 bytes.
    pub fn from_bytes(secret: [u8; 32]) -> Self {
        Self(Arc::new(Zeroizing::new(secret)))
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
