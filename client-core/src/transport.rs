//! [`Transport`]: the server calls the protocol logic makes. The shell
//! implements it over HTTP; the core says what to upload, fetch and send.

use std::collections::BTreeMap;

use starling_crypto::PreKeyBundle;
use starling_protocol::api::{KeyUpload, PrekeyCounts, StaleLists};

use crate::transparency::{
    AppendOnlyClaim, AuditStep, LogPins, Proved, ServedHistory, TransparencyError,
};

/// The outcome of a send.
#[derive(Debug)]
pub enum SendOutcome {
    /// Stored durably by the server.
    Stored,
    /// Refused: these accounts' device lists were stale.
    Stale(BTreeMap<String, StaleLists>),
    /// Refused (an unidentified send): the access key was wrong for these
    /// accounts. Nothing was stored.
    Unauthorized(Vec<String>),
}

/// One account's envelopes in a send.
#[derive(Debug, Clone)]
pub struct AccountEnvelopes {
    /// Destination username.
    pub destination: String,
    /// (device id, ciphertext) for every device.
    pub envelopes: Vec<(u32, Vec<u8>)>,
}

/// The server, as the protocol logic calls it, authenticated as this
/// device. Only ciphertext, public keys and routing data pass through.
/// Errors are the shell's own ([`Transport::Error`]); the core hands them
/// back unchanged.
#[allow(async_fn_in_trait)]
pub trait Transport {
    /// What a server call fails with.
    type Error: std::error::Error + 'static;

    /// Uploads prekeys; returns the stock left on the server.
    async fn upload_keys(&self, upload: &KeyUpload) -> Result<PrekeyCounts, Self::Error>;

    /// The stock of one-time prekeys on the server.
    async fn key_count(&self) -> Result<PrekeyCounts, Self::Error>;

    /// An account's device ids, with the transparency log's proof of its
    /// device list (checked by the caller).
    async fn devices(&self, username: &str) -> Result<Proved<Vec<u32>>, Self::Error>;

    /// Fetches (and claims one-time prekeys of) the bundles of an account's
    /// devices: all of them when `device` is `None`. Each bundle's
    /// signatures are verified by the time it is returned; the
    /// transparency proof that comes with them is checked by the caller.
    async fn bundles(
        &self,
        username: &str,
        device: Option<u32>,
    ) -> Result<Proved<Vec<(u32, PreKeyBundle)>>, Self::Error>;

    /// The transparency log's keys as the server names them (`None` when
    /// it names none), for a device set up before it had a log.
    async fn log_pins(&self) -> Result<Option<LogPins>, Self::Error>;

    /// Every device list the log has held for this device's own account,
    /// with the history proof (`None` while the log does not hold it).
    async fn own_history(&self) -> Result<Option<ServedHistory>, Self::Error>;

    /// `username`'s newest version in the log with akd's proof of the most
    /// recent version (`None` while the log does not hold the account).
    async fn latest_version(&self, username: &str) -> Result<Option<ServedHistory>, Self::Error>;

    /// The log's epochs after `from`, oldest first, each with its
    /// append-only proof (possibly fewer than there are: ask again).
    async fn audit_steps(&self, from: u64) -> Result<Vec<AuditStep>, Self::Error>;

    /// Checks one audit step's append-only proof against `claim` with
    /// akd's auditor (`starling_transparency::audit::verify_append_only`),
    /// on a runtime of the shell's choosing. Local work, no server call.
    async fn check_append_only(
        &self,
        proof: &[u8],
        claim: &AppendOnlyClaim,
    ) -> Result<(), TransparencyError>;

    /// Sends one envelope per device of an account.
    async fn send(
        &self,
        destination: &str,
        envelopes: &[(u32, Vec<u8>)],
    ) -> Result<SendOutcome, Self::Error>;

    /// Sends to many accounts in one request (groups).
    async fn send_many(&self, sends: &[AccountEnvelopes]) -> Result<SendOutcome, Self::Error>;

    /// Sends sealed envelopes to many accounts without this device's
    /// credential, each destination with its access key.
    async fn send_unidentified(
        &self,
        sends: &[(AccountEnvelopes, [u8; 16])],
    ) -> Result<SendOutcome, Self::Error>;

    /// Sets the account's access key and whether strangers (senders
    /// without it) may send the account sealed envelopes (`if_absent`:
    /// only when it has no key yet); false when it already had one.
    async fn set_access(
        &self,
        access_key: &[u8; 16],
        sealed_from_strangers: bool,
        if_absent: bool,
    ) -> Result<bool, Self::Error>;

    /// A sender certificate for this device (the encoded
    /// `SenderCertificate`), checked by the caller.
    async fn sender_certificate(&self) -> Result<Vec<u8>, Self::Error>;

    /// The server's certificate key chain (the encoded `ServerKeyChain`),
    /// checked by the caller against the keys it trusts.
    async fn server_key_chain(&self) -> Result<Vec<u8>, Self::Error>;

    /// Whether a failed call means the account or device asked about no
    /// longer exists (the server answered "not found").
    fn is_not_found(error: &Self::Error) -> bool;
}
