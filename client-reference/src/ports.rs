//! The client core's [`Storage`], [`Transport`] and [`Clock`], implemented
//! by the shell: the SQLCipher [`Store`], the HTTP [`Api`] and the system
//! clock. Each call delegates to the method of the same name.

use starling_client_core::outgoing::OutgoingError;
use starling_client_core::prekeys::PrekeyError;
use starling_client_core::storage::ContactRecord;
use starling_client_core::tofu::TrustChange;
use starling_client_core::transport::{AccountEnvelopes, SendOutcome};
use starling_client_core::trust::TrustError;
use starling_client_core::{Clock, Storage, Transport};
use starling_crypto::ratchet::PeerSessions;
use starling_crypto::{IdentityKey, PreKeyBundle, PreKeyStore};
use starling_protocol::api::{KeyUpload, PrekeyCounts};

use crate::api::Api;
use crate::error::{ClientError, Result};
use crate::store::Store;

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        crate::store::now_millis()
    }
}

impl Storage for Store {
    type Error = ClientError;

    async fn load_prekeys(&self) -> Result<PreKeyStore> {
        Store::load_prekeys(self).await
    }

    async fn save_prekeys(&self, prekeys: &PreKeyStore) -> Result<()> {
        Store::save_prekeys(self, prekeys).await
    }

    async fn identity_keys(&self, username: &str) -> Result<Vec<(u32, IdentityKey)>> {
        Store::identity_keys(self, username).await
    }

    async fn contact(&self, username: &str) -> Result<ContactRecord> {
        Store::contact(self, username).await
    }

    async fn set_verified(&self, username: &str) -> Result<()> {
        Store::set_verified(self, username).await
    }

    async fn observe_identity(
        &self,
        username: &str,
        device_id: u32,
        key: &IdentityKey,
        own_device: Option<u32>,
    ) -> Result<TrustChange> {
        Store::observe_identity(self, username, device_id, key, own_device).await
    }

    async fn forget_device(&self, username: &str, device_id: u32) -> Result<()> {
        Store::forget_device(self, username, device_id).await
    }

    async fn sessions(&self, username: &str, device_id: u32) -> Result<PeerSessions> {
        Store::sessions(self, username, device_id).await
    }

    async fn save_sessions(
        &self,
        username: &str,
        device_id: u32,
        sessions: &PeerSessions,
    ) -> Result<()> {
        Store::save_sessions(self, username, device_id, sessions, None).await
    }
}

impl Transport for Api {
    type Error = ClientError;

    async fn upload_keys(&self, upload: &KeyUpload) -> Result<PrekeyCounts> {
        Api::upload_keys(self, upload).await
    }

    async fn key_count(&self) -> Result<PrekeyCounts> {
        Api::key_count(self).await
    }

    async fn devices(&self, username: &str) -> Result<Vec<u32>> {
        Api::devices(self, username).await
    }

    async fn bundles(
        &self,
        username: &str,
        device: Option<u32>,
    ) -> Result<Vec<(u32, PreKeyBundle)>> {
        Api::bundles(self, username, device).await
    }

    async fn send(&self, destination: &str, envelopes: &[(u32, Vec<u8>)]) -> Result<SendOutcome> {
        Api::send(self, destination, envelopes).await
    }

    async fn send_many(&self, sends: &[AccountEnvelopes]) -> Result<SendOutcome> {
        Api::send_many(self, sends).await
    }
}

/// The shell's store and server both fail with [`ClientError`]; prekey
/// generation failures keep their own variant.
impl From<PrekeyError<ClientError, ClientError>> for ClientError {
    fn from(error: PrekeyError<ClientError, ClientError>) -> Self {
        match error {
            PrekeyError::Storage(e) | PrekeyError::Transport(e) => e,
            PrekeyError::PreKeys(e) => Self::PreKeys(e),
        }
    }
}

/// Store failures come back whole; the trust outcomes keep the variants
/// (and so the messages) they always had.
impl From<TrustError<ClientError>> for ClientError {
    fn from(error: TrustError<ClientError>) -> Self {
        match error {
            TrustError::Storage(e) => e,
            TrustError::UnknownUser(user) => Self::UnknownUser(user),
            TrustError::SafetyNumberMismatch(user) => Self::SafetyNumberMismatch(user),
            TrustError::UntrustedIdentity(user) => Self::UntrustedIdentity(user),
        }
    }
}

/// Store and server failures come back whole; the other outcomes keep the
/// variants (and so the messages) they always had.
impl From<OutgoingError<ClientError, ClientError>> for ClientError {
    fn from(error: OutgoingError<ClientError, ClientError>) -> Self {
        match error {
            OutgoingError::Storage(e) | OutgoingError::Transport(e) => e,
            OutgoingError::Session(e) => Self::Session(e),
            OutgoingError::Encrypt(e) => Self::Encrypt(e),
            OutgoingError::Trust(e) => e.into(),
            OutgoingError::UnknownUser(user) => Self::UnknownUser(user),
            OutgoingError::DeviceListsKeptChanging => {
                Self::Protocol("the recipients' device lists kept changing; try again".into())
            }
        }
    }
}
