//! The client core's [`Storage`], [`Transport`] and [`Clock`], implemented
//! by the shell: the SQLCipher [`Store`], the HTTP [`Api`] and the system
//! clock. Each call delegates to the method of the same name.

use starling_client_core::outgoing::OutgoingError;
use starling_client_core::prekeys::PrekeyError;
use starling_client_core::sealed::{SealedError, SealedRecord};
use starling_client_core::storage::ContactRecord;
use starling_client_core::tofu::TrustChange;
use starling_client_core::transparency::{
    AppendOnlyClaim, AuditStep, LogError, LogPins, LogRecord, OwnLogState, Proved, ServedHistory,
    TransparencyError,
};
use starling_client_core::transport::{AccountEnvelopes, SendOutcome};
use starling_client_core::trust::TrustError;
use starling_client_core::{Clock, Storage, Transport};
use std::collections::BTreeSet;

use starling_client_core::DeviceError;
use starling_client_core::records::{GroupRecord, HeldGroupMessage, InboxItem, NewMessage};
use starling_crypto::group::{InboundGroupSession, OutboundGroupSession};
use starling_crypto::ratchet::PeerSessions;
use starling_crypto::{IdentityKey, PreKeyBundle, PreKeyStore};
use starling_protocol::api::{KeyUpload, PrekeyCounts};

use crate::api::Api;
use crate::conversation::Conversation;
use crate::error::{ClientError, Result};
use crate::store::Store;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

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
        seen: (Option<u32>, Option<u32>),
    ) -> Result<TrustChange> {
        Store::observe_identity(self, username, device_id, key, seen).await
    }

    async fn vouching_key(&self, username: &str, device_id: u32) -> Result<Option<IdentityKey>> {
        Store::vouching_key(self, username, device_id).await
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

    async fn envelope_seen(&self, envelope_id: &[u8]) -> Result<bool> {
        Store::envelope_seen(self, envelope_id).await
    }

    async fn inbox_item(&self, envelope_id: &[u8]) -> Result<Option<InboxItem>> {
        Store::inbox_item(self, envelope_id).await
    }

    async fn pending_inbox(&self) -> Result<Vec<InboxItem>> {
        Store::pending_inbox(self).await
    }

    async fn finish_envelope(&self, envelope_id: &[u8]) -> Result<()> {
        Store::finish_envelope(self, envelope_id).await
    }

    async fn stage_pairwise(
        &self,
        username: &str,
        device_id: u32,
        sessions: &PeerSessions,
        consumed: Option<&PreKeyStore>,
        item: &InboxItem,
    ) -> Result<()> {
        Store::save_sessions_with_inbox(self, username, device_id, sessions, consumed, Some(item))
            .await
    }

    async fn group(&self, group_id: &[u8]) -> Result<Option<GroupRecord>> {
        Store::group(self, group_id).await
    }

    async fn groups(&self) -> Result<Vec<GroupRecord>> {
        Store::groups(self).await
    }

    async fn save_group(&self, group: &GroupRecord) -> Result<()> {
        Store::save_group(self, group).await
    }

    async fn outbound_group_session(
        &self,
        group_id: &[u8],
    ) -> Result<Option<(OutboundGroupSession, BTreeSet<String>)>> {
        Store::outbound_group_session(self, group_id).await
    }

    async fn save_outbound_group_session(
        &self,
        group_id: &[u8],
        session: &OutboundGroupSession,
        holders: &BTreeSet<String>,
    ) -> Result<()> {
        Store::save_outbound_group_session(self, group_id, session, holders).await
    }

    async fn reset_outbound_group_session(&self, group_id: &[u8]) -> Result<()> {
        Store::reset_outbound_group_session(self, group_id).await
    }

    async fn inbound_group_session(
        &self,
        group_id: &[u8],
        sender: &str,
        device_id: u32,
    ) -> Result<Option<InboundGroupSession>> {
        Store::inbound_group_session(self, group_id, sender, device_id).await
    }

    async fn save_inbound_group_session(
        &self,
        group_id: &[u8],
        sender: &str,
        device_id: u32,
        session: &InboundGroupSession,
        item: Option<&InboxItem>,
    ) -> Result<()> {
        Store::save_inbound_group_session_with_inbox(
            self, group_id, sender, device_id, session, item,
        )
        .await
    }

    async fn group_signing_key_holders(
        &self,
        group_id: &[u8],
        signing_key: &[u8; 32],
    ) -> Result<Vec<(String, u32)>> {
        Store::group_signing_key_holders(self, group_id, signing_key).await
    }

    async fn drop_inbound_group_sessions(
        &self,
        group_id: &[u8],
        member: Option<&str>,
    ) -> Result<()> {
        Store::drop_inbound_group_sessions(self, group_id, member).await
    }

    async fn record_given_key(
        &self,
        group_id: &[u8],
        holders: &[String],
        distribution: &[u8],
        at_millis: i64,
    ) -> Result<()> {
        Store::record_given_key(self, group_id, holders, distribution, at_millis).await
    }

    async fn given_key(
        &self,
        group_id: &[u8],
        holder: &str,
    ) -> Result<Option<(zeroize::Zeroizing<Vec<u8>>, i64)>> {
        Store::given_key(self, group_id, holder).await
    }

    async fn forget_given_keys(&self, group_id: &[u8]) -> Result<()> {
        Store::forget_given_keys(self, group_id).await
    }

    async fn hold_group_message(&self, held: &HeldGroupMessage) -> Result<()> {
        Store::hold_group_message(self, held).await
    }

    async fn held_group_messages(
        &self,
        group_id: &[u8],
        sender: &str,
        device_id: u32,
    ) -> Result<Vec<HeldGroupMessage>> {
        Store::held_group_messages(self, group_id, sender, device_id).await
    }

    async fn held_group_messages_before(
        &self,
        before_millis: i64,
    ) -> Result<Vec<HeldGroupMessage>> {
        Store::held_group_messages_before(self, before_millis).await
    }

    async fn held_count(&self) -> Result<usize> {
        Store::held_count(self).await
    }

    async fn drop_held_group_message(&self, envelope_id: &[u8]) -> Result<()> {
        Store::drop_held_group_message(self, envelope_id).await
    }

    async fn forget_distribution(&self, username: &str, device_id: u32) -> Result<()> {
        Store::forget_distribution(self, username, device_id).await
    }

    async fn last_repair(&self, username: &str, device_id: u32) -> Result<Option<i64>> {
        Store::last_repair(self, username, device_id).await
    }

    async fn record_repair(&self, username: &str, device_id: u32, at_millis: i64) -> Result<()> {
        Store::record_repair(self, username, device_id, at_millis).await
    }

    async fn insert_message(&self, message: &NewMessage) -> Result<bool> {
        Store::insert_message(self, message).await
    }

    async fn quoted_message(
        &self,
        message_id: &[u8],
        conversation: &Conversation,
    ) -> Result<Option<(String, String)>> {
        Store::quoted_message(self, message_id, conversation).await
    }

    async fn edit_message(
        &self,
        message_id: &[u8],
        conversation: &Conversation,
        sender: &str,
        body: &str,
    ) -> Result<bool> {
        Store::edit_message(self, message_id, conversation, sender, body).await
    }

    /// Deletes the row, then its attachment file (a file left behind by a
    /// crash in between is only ciphertext, removed with the home).
    async fn delete_message(
        &self,
        message_id: &[u8],
        conversation: &Conversation,
        sender: &str,
    ) -> Result<bool> {
        match Store::delete_message(self, message_id, conversation, sender).await? {
            Some(file) => {
                if let Some(file) = file {
                    self.remove_attachment_file(&file).await;
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn react(
        &self,
        message_id: &[u8],
        conversation: &Conversation,
        username: &str,
        emoji: Option<&str>,
    ) -> Result<bool> {
        Store::react(self, message_id, conversation, username, emoji).await
    }

    async fn mark_read(
        &self,
        conversation: &Conversation,
        message_ids: &[Vec<u8>],
    ) -> Result<Vec<Vec<u8>>> {
        Store::mark_read(self, conversation, message_ids).await
    }

    async fn set_contact_timer(&self, username: &str, seconds: u32) -> Result<()> {
        Store::set_contact_timer(self, username, seconds).await
    }

    async fn sealed_record(&self) -> Result<SealedRecord> {
        Store::sealed_record(self).await
    }

    async fn save_sealed_record(&self, record: &SealedRecord) -> Result<()> {
        Store::save_sealed_record(self, record).await
    }

    async fn contact_profile_key(&self, username: &str) -> Result<Option<[u8; 32]>> {
        Store::contact_profile_key(self, username).await
    }

    async fn log_record(&self) -> Result<Option<LogRecord>> {
        Store::log_record(self).await
    }

    async fn save_log_record(&self, record: &LogRecord) -> Result<()> {
        Store::save_log_record(self, record).await
    }

    async fn set_contact_profile_key(&self, username: &str, key: Option<&[u8; 32]>) -> Result<()> {
        Store::set_contact_profile_key(self, username, key).await
    }

    async fn log_version(&self, username: &str) -> Result<Option<u64>> {
        Store::log_version(self, username).await
    }

    async fn save_log_version(&self, username: &str, version: u64) -> Result<()> {
        Store::save_log_version(self, username, version).await
    }

    async fn own_log_state(&self) -> Result<Option<OwnLogState>> {
        Store::own_log_state(self).await
    }

    async fn save_own_log_state(&self, state: &OwnLogState) -> Result<()> {
        Store::save_own_log_state(self, state).await
    }

    async fn add_warning(&self, username: &str, text: &str) -> Result<bool> {
        Store::add_warning(self, username, text).await
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

    async fn devices(&self, username: &str) -> Result<Proved<Vec<u32>>> {
        let list = Api::device_list(self, username).await?;
        let certificates = list
            .certificates
            .iter()
            .filter_map(|entry| Some((entry.device_id, B64.decode(&entry.certificate).ok()?)))
            .collect();
        Ok(Proved {
            value: list.devices,
            proof: crate::api::transparency::proof(list.transparency)?,
            certificates,
        })
    }

    async fn bundles(
        &self,
        username: &str,
        device: Option<u32>,
    ) -> Result<Proved<Vec<(u32, PreKeyBundle)>>> {
        Api::bundles(self, username, device).await
    }

    async fn log_pins(&self) -> Result<Option<LogPins>> {
        let root = Api::transparency_root(self).await?;
        crate::api::transparency::pins(&root.log).map(Some)
    }

    async fn own_history(&self) -> Result<Option<ServedHistory>> {
        Api::own_history(self).await
    }

    async fn latest_version(&self, username: &str) -> Result<Option<ServedHistory>> {
        Api::latest_version(self, username).await
    }

    async fn audit_steps(&self, from: u64) -> Result<Vec<AuditStep>> {
        Api::audit_steps(self, from).await
    }

    /// On the caller's Tokio runtime: akd's auditor spawns its tasks there.
    async fn check_append_only(
        &self,
        proof: &[u8],
        claim: &AppendOnlyClaim,
    ) -> std::result::Result<(), TransparencyError> {
        starling_transparency::audit::verify_append_only(proof, claim).await
    }

    async fn send(&self, destination: &str, envelopes: &[(u32, Vec<u8>)]) -> Result<SendOutcome> {
        Api::send(self, destination, envelopes).await
    }

    async fn send_many(&self, sends: &[AccountEnvelopes]) -> Result<SendOutcome> {
        Api::send_many(self, sends).await
    }

    async fn send_unidentified(
        &self,
        sends: &[(AccountEnvelopes, [u8; 16])],
    ) -> Result<SendOutcome> {
        Api::send_unidentified(self, sends).await
    }

    async fn set_access(
        &self,
        access_key: &[u8; 16],
        sealed_from_strangers: bool,
        if_absent: bool,
    ) -> Result<bool> {
        Api::set_access(self, access_key, sealed_from_strangers, if_absent).await
    }

    async fn sender_certificate(&self) -> Result<Vec<u8>> {
        Api::sender_certificate(self).await
    }

    async fn server_key_chain(&self) -> Result<Vec<u8>> {
        Api::server_key_chain(self).await
    }

    fn is_not_found(error: &ClientError) -> bool {
        matches!(
            error,
            ClientError::UnknownUser(_) | ClientError::Server { status: 404, .. }
        )
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
            OutgoingError::Sealed(e) => e.into(),
            OutgoingError::Transparency(e) => e.into(),
        }
    }
}

/// Store and server failures come back whole; a refusal of the log's
/// proofs is told as the core words it.
impl From<LogError<ClientError, ClientError>> for ClientError {
    fn from(error: LogError<ClientError, ClientError>) -> Self {
        match error {
            LogError::Storage(e) | LogError::Transport(e) => e,
            other => Self::Transparency(other.to_string()),
        }
    }
}

/// Store and server failures come back whole; a refused certificate or key
/// chain is a protocol failure the person is told about.
impl From<SealedError<ClientError, ClientError>> for ClientError {
    fn from(error: SealedError<ClientError, ClientError>) -> Self {
        match error {
            SealedError::Storage(e) | SealedError::Transport(e) => e,
            other => Self::Protocol(other.to_string()),
        }
    }
}

/// Store and server failures come back whole; the protocol's refusals keep
/// the variants (and so the messages) they always had.
impl From<DeviceError<ClientError, ClientError>> for ClientError {
    fn from(error: DeviceError<ClientError, ClientError>) -> Self {
        match error {
            DeviceError::Storage(e) | DeviceError::Transport(e) => e,
            DeviceError::Outgoing(e) => e.into(),
            DeviceError::Trust(e) => e.into(),
            DeviceError::Prekeys(e) => e.into(),
            DeviceError::GroupEncrypt(e) => Self::GroupEncrypt(e),
            DeviceError::UnknownGroup(group) => Self::UnknownGroup(group),
            DeviceError::NotAMember(group) => Self::NotAMember(group),
            DeviceError::DamagedInbox(e) => e.into(),
            DeviceError::ThisDevice => Self::RemovingThisDevice,
            DeviceError::RevisionsExhausted(group) => Self::Protocol(format!(
                "group `{group}` can take no further change (its revision is at the maximum); create a new group"
            )),
            DeviceError::MembersKeptChanging => {
                Self::Protocol("the members' device lists kept changing; try again".into())
            }
            DeviceError::DamagedSealedState(e) => Self::Protocol(format!(
                "the local store's sealed-sender state is damaged: {e}"
            )),
        }
    }
}
