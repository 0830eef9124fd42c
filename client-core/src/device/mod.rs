//! [`Device`]: one device of an account, as the protocol sees it. It owns
//! the account's keys and the protocol state kept between operations (the
//! own-devices list, session repairs, the call inbox) and reaches the world
//! only through the [`Storage`], [`Transport`], [`Clock`] and random source
//! it is given. Submodules hold one concern each:
//!
//! - `incoming`: what an envelope means, staged and
//!   applied;
//! - `messages`: what a send carries and how it is
//!   recorded;
//! - `updates`: edits, deletions, reactions, receipts;
//! - `groups`: membership and Sender Keys;
//! - `held`: group messages waiting for their sender keys, and key
//!   requests;
//! - `calls`: call signalling (the media stay in the shell);
//! - `log_roots`: transparency log roots compared with contacts'.

mod call_keys;
mod calls;
mod groups;
mod held;
mod incoming;
mod log_roots;
mod messages;
mod repair;
#[cfg(test)]
mod tests;
mod updates;

use rand_core::CryptoRngCore;
use starling_crypto::{IdentityKeyPair, PreKeyStore};

pub use call_keys::{
    CALL_KEY_VERSION, CALL_SECRET_LEN, EARLY_EPOCHS_AHEAD, KEY_EPOCHS_KEPT, KeyRefusal,
    MAX_EARLY_KEYS,
};
pub use calls::{CallInbox, MAX_ANSWERED, MAX_QUEUED_SIGNALS, QueuedSignal, call_signal};
pub use held::{
    HELD_FOR_MILLIS, KEY_REQUEST_INTERVAL_MILLIS, KeyRequests, MAX_HELD, MAX_HELD_PER_DEVICE,
};
pub use messages::reply_prefix;
pub use repair::REPAIR_INTERVAL_MILLIS;

use crate::clock::Clock;
use crate::content::{self, Content};
use crate::error::DeviceError;
use crate::outgoing::{Outgoing, OwnDevices};
use crate::prekeys::{self, Upkeep};
use crate::sealed::Sealing;
use crate::storage::Storage;
use crate::transport::{AccountEnvelopes, Transport};
use crate::trust::{self, OwnDevice, SafetyNumberView};

/// What a device operation fails with, for a store `S` and a server `T`.
pub type Result<V, S, T> =
    std::result::Result<V, DeviceError<<S as Storage>::Error, <T as Transport>::Error>>;

/// The account a device belongs to and its keys.
pub struct Account {
    /// Our username.
    pub username: String,
    /// This device's id.
    pub device_id: u32,
    /// This device's identity key pair.
    pub identity: IdentityKeyPair,
    /// The prekey secrets, as last stored.
    pub prekeys: PreKeyStore,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("username", &self.username)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

/// One device of an account: the protocol logic over a store `S`, a
/// server `T`, a clock `C` and a random source `R`.
pub struct Device<S, T, C, R> {
    storage: S,
    transport: T,
    clock: C,
    rng: R,
    account: Account,
    /// Our account's devices and when the server listed them.
    own_devices: OwnDevices,
    /// Signals of the call this device is in, waiting for the call loop.
    calls: CallInbox,
    /// The trusted server keys and our sender certificate.
    sealing: Sealing,
    /// When sender keys were last asked for and given.
    key_requests: KeyRequests,
}

impl<S, T, C, R> std::fmt::Debug for Device<S, T, C, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl<S, T, C, R> Device<S, T, C, R>
where
    S: Storage,
    T: Transport,
    C: Clock,
    R: CryptoRngCore,
{
    /// A device of `account` over the given store, server, clock and
    /// random source.
    pub fn new(storage: S, transport: T, clock: C, rng: R, account: Account) -> Self {
        Self {
            storage,
            transport,
            clock,
            rng,
            account,
            own_devices: OwnDevices::default(),
            calls: CallInbox::default(),
            sealing: Sealing::default(),
            key_requests: KeyRequests::default(),
        }
    }

    /// Our username.
    pub fn username(&self) -> &str {
        &self.account.username
    }

    /// This device's id.
    pub fn device_id(&self) -> u32 {
        self.account.device_id
    }

    /// This device's grant of a link code's link key (`crypto/SPEC.md`
    /// §2.5): the device linked with the code is then vouched for by this
    /// one.
    pub fn link_grant(
        &self,
        secret: &starling_crypto::link::LinkSecret,
    ) -> starling_crypto::link::LinkGrant {
        starling_crypto::link::LinkGrant::sign(
            &self.account.identity,
            &self.account.username,
            secret,
        )
    }

    /// The local store.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The server, authenticated as this device.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The random source (for the shell's own draws, such as media keys).
    pub fn rng(&mut self) -> &mut R {
        &mut self.rng
    }

    /// The call inbox: the call loop reads signals from it.
    pub fn calls(&mut self) -> &mut CallInbox {
        &mut self.calls
    }

    /// Forgets our own device list, so the next send asks the server
    /// (after connecting, or after a device was removed).
    pub fn forget_own_devices(&mut self) {
        self.own_devices.forget();
    }

    /// Content with a fresh id and the clock's time.
    pub fn new_content(&mut self, body: content::Body) -> Content {
        content::content_at(body, self.clock.now_millis(), &mut self.rng)
    }

    /// The pairwise send path over this device's state, and the random
    /// source its session setups draw from.
    fn outgoing(&mut self) -> (Outgoing<'_, S, T, C>, &mut R) {
        (
            Outgoing {
                storage: &self.storage,
                transport: &self.transport,
                clock: &self.clock,
                username: &self.account.username,
                device_id: self.account.device_id,
                identity: &self.account.identity,
                own_devices: &mut self.own_devices,
                sealing: &mut self.sealing,
            },
            &mut self.rng,
        )
    }

    /// The devices of `username` we send to, learning them from the server
    /// when we know none yet.
    pub(crate) async fn ensure_sessions(&mut self, username: &str) -> Result<Vec<u32>, S, T> {
        let (mut outgoing, rng) = self.outgoing();
        Ok(outgoing.ensure_sessions(username, rng).await?)
    }

    /// Fetches a device's bundle and starts a fresh session with it.
    pub(crate) async fn establish_from_server(
        &mut self,
        username: &str,
        device: u32,
    ) -> Result<(), S, T> {
        let (outgoing, rng) = self.outgoing();
        Ok(outgoing
            .establish_from_server(username, device, rng)
            .await?)
    }

    /// One attempt of a send: true when stored (or nothing to send); false
    /// when the server refused stale device lists, which are now fixed.
    pub(crate) async fn send_or_fix(&mut self, sends: &[AccountEnvelopes]) -> Result<bool, S, T> {
        let (mut outgoing, rng) = self.outgoing();
        let mut stored = std::collections::BTreeSet::new();
        Ok(outgoing.send_or_fix(sends, &mut stored, rng).await?)
    }

    /// Our account's profile key (made on first use), for the contents we
    /// send.
    pub(crate) async fn profile_key(&mut self) -> Result<Option<[u8; 32]>, S, T> {
        let key = self
            .sealing
            .profile_key(&self.storage, &self.transport, &mut self.rng)
            .await;
        Ok(key?)
    }

    /// Checks the transparency log's history of our own account for a
    /// device or key we did not see published (`crypto/SPEC.md` §16.6):
    /// each one is stored as a warning, and returned.
    pub async fn check_own_log(
        &self,
    ) -> std::result::Result<
        Vec<crate::transparency::OwnLogChange>,
        crate::transparency::LogError<S::Error, T::Error>,
    > {
        crate::transparency::check_own_history(
            &self.storage,
            &self.transport,
            &self.account.username,
            self.account.device_id,
            self.account.identity.public(),
        )
        .await
    }

    /// Sets whether strangers (senders who have not received our profile
    /// key) may send our account sealed envelopes without a credential.
    /// The server keeps the choice for the whole account.
    pub async fn set_sealed_from_strangers(&mut self, allow: bool) -> Result<(), S, T> {
        let set = self
            .sealing
            .set_sealed_from_strangers(&self.storage, &self.transport, allow, &mut self.rng)
            .await;
        Ok(set.map_err(crate::outgoing::OutgoingError::from)?)
    }

    /// Sends `content`, pairwise-encrypted, to every device of each
    /// recipient (our own account means our other devices).
    pub async fn send_pairwise(
        &mut self,
        recipients: &[String],
        content: &Content,
    ) -> Result<(), S, T> {
        let (mut outgoing, rng) = self.outgoing();
        Ok(outgoing.send_pairwise(recipients, content, rng).await?)
    }

    /// Sends `content` pairwise to the devices `targets` (username,
    /// device) only; the other devices of their accounts get `elsewhere`
    /// (the server wants an envelope for every device of an account).
    pub async fn send_pairwise_to(
        &mut self,
        targets: &[(String, u32)],
        content: &Content,
        elsewhere: &Content,
    ) -> Result<(), S, T> {
        let (mut outgoing, rng) = self.outgoing();
        Ok(outgoing
            .send_pairwise_to(targets, content, elsewhere, rng)
            .await?)
    }

    /// Uploads the signed prekey, one batch of one-time prekeys of each
    /// kind and the last-resort ML-KEM prekey: once, when the device is
    /// set up (later, [`Self::maintain_prekeys`] keeps the stock).
    pub async fn upload_initial_prekeys(&mut self) -> Result<(), S, T> {
        let account = &mut self.account;
        prekeys::upload_initial(
            &account.identity,
            &mut account.prekeys,
            &self.storage,
            &self.transport,
            &self.clock,
            &mut self.rng,
        )
        .await?;
        Ok(())
    }

    /// Whether the signed and last-resort prekeys are due to rotate (from
    /// the clock and the replay list alone): a long-lived connection
    /// checks this as envelopes arrive.
    pub fn prekey_rotation_due(&self) -> bool {
        Upkeep::rotation_due(&self.account.prekeys, self.clock.now_secs())
    }

    /// Tops up the server's stock of one-time prekeys when it is low, and
    /// rotates the signed prekey when it is due.
    pub async fn maintain_prekeys(&mut self) -> Result<Upkeep, S, T> {
        let account = &mut self.account;
        Ok(prekeys::maintain(
            &account.identity,
            &mut account.prekeys,
            &self.storage,
            &self.transport,
            &self.clock,
            &mut self.rng,
        )
        .await?)
    }

    /// Forgets the sealed-sender state read from the store, after the
    /// shell changed it (a new pin).
    pub fn forget_sealed_state(&mut self) {
        self.sealing.forget();
    }

    /// This device, as the safety number sees it.
    fn own_device(&self) -> OwnDevice<'_> {
        OwnDevice {
            username: &self.account.username,
            device_id: self.account.device_id,
            identity: self.account.identity.public(),
        }
    }

    /// Learns a contact's keys if none are known: starting sessions claims
    /// nothing lasting (they are kept for the first message).
    async fn learn_keys_if_unknown(&mut self, username: &str) -> Result<(), S, T> {
        let known = self
            .storage
            .identity_keys(username)
            .await
            .map_err(DeviceError::Storage)?;
        if known.is_empty() {
            self.ensure_sessions(username).await?;
        }
        Ok(())
    }

    /// The safety number with a contact.
    pub async fn safety_number(&mut self, username: &str) -> Result<SafetyNumberView, S, T> {
        self.learn_keys_if_unknown(username).await?;
        Ok(trust::safety_number_view(&self.storage, self.own_device(), username).await?)
    }

    /// Marks a contact verified. With `digits`, they must match the safety
    /// number (compared in constant time).
    pub async fn verify(&mut self, username: &str, digits: Option<&str>) -> Result<(), S, T> {
        self.learn_keys_if_unknown(username).await?;
        Ok(trust::verify(&self.storage, self.own_device(), username, digits).await?)
    }

    /// Refuses to send to a verified contact whose keys changed.
    pub async fn check_sendable(&self, username: &str) -> Result<(), S, T> {
        Ok(trust::check_sendable(&self.storage, username).await?)
    }

    /// Forgets one of our devices after the server removed it (never this
    /// device: [`DeviceError::ThisDevice`]).
    pub async fn forget_own_device(&mut self, device_id: u32) -> Result<(), S, T> {
        if device_id == self.account.device_id {
            return Err(DeviceError::ThisDevice);
        }
        self.storage
            .forget_device(&self.account.username, device_id)
            .await
            .map_err(DeviceError::Storage)?;
        self.own_devices.forget();
        Ok(())
    }
}
