//! Outgoing messages, pairwise: sessions with every device of the
//! recipients (bundles fetched as needed), encryption for each device, the
//! copy to our own other devices, and the stale-device answer (fix the
//! lists, resend) that a person never notices.
//!
//! [`Outgoing`] borrows what a send needs from the shell (its store, its
//! server, its clock, the account's identity and the own-devices cache);
//! randomness comes in as a parameter of the calls that start sessions.
//! Every session advanced by an encryption is saved before the ciphertext
//! leaves, so no message key is ever used twice.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message as _;
use rand_core::CryptoRngCore;
use starling_crypto::ratchet::{EncryptError, SessionSetupError};
use starling_crypto::{IdentityKeyPair, PreKeyBundle};
use starling_protocol::api::StaleLists;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::clock::Clock;
use crate::content::{self, Content, transport};
use crate::sealed::{self, Me, SealedError, Sealing};
use crate::storage::Storage;
use crate::transparency::{self, LogError, Proved};
use crate::transport::{AccountEnvelopes, SendOutcome, Transport};
use crate::trust::{self, TrustError};

/// How long our own device list is trusted before it is listed again, in
/// milliseconds (a device linked meanwhile is also learned from its first
/// message).
pub const OWN_DEVICES_MAX_AGE_MILLIS: i64 = 60_000;

/// Times a send is retried after the server reports stale device lists.
pub const STALE_RETRIES: usize = 4;

/// Our account's devices and when the server listed them ([`Clock`]
/// milliseconds), kept between sends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnDevices {
    listed: Option<(i64, Vec<u32>)>,
}

impl OwnDevices {
    /// Forgets the list, so the next send asks the server again.
    pub fn forget(&mut self) {
        self.listed = None;
    }

    /// The list, when it was made less than
    /// [`OWN_DEVICES_MAX_AGE_MILLIS`] before `now` (and not in its future).
    fn fresh(&self, now: i64) -> Option<&[u32]> {
        match &self.listed {
            Some((listed, devices))
                if (0..OWN_DEVICES_MAX_AGE_MILLIS).contains(&now.saturating_sub(*listed)) =>
            {
                Some(devices)
            }
            _ => None,
        }
    }
}

/// Why a send failed. Exhaustive on purpose: a shell maps each arm to its
/// own error type.
#[derive(Debug, Error)]
pub enum OutgoingError<S, T> {
    /// The local store failed.
    #[error(transparent)]
    Storage(S),
    /// The server call failed.
    #[error(transparent)]
    Transport(T),
    /// A session could not be started from a bundle.
    #[error(transparent)]
    Session(SessionSetupError),
    /// Encryption failed.
    #[error(transparent)]
    Encrypt(EncryptError),
    /// A recipient cannot be sent to (a verified contact whose keys
    /// changed).
    #[error(transparent)]
    Trust(TrustError<S>),
    /// The server knows no device of the account.
    #[error("unknown user `{0}`")]
    UnknownUser(String),
    /// The recipients' device lists changed on every attempt.
    #[error("the recipients' device lists kept changing; try again")]
    DeviceListsKeptChanging,
    /// The envelopes could not be sealed (no certificate we accept, or no
    /// key for a device). Never a store or server failure: those come
    /// back as [`Self::Storage`] and [`Self::Transport`].
    #[error(transparent)]
    Sealed(SealedError<S, T>),
    /// The keys the server sent are not the ones in the transparency log,
    /// or the log is not one this device can follow. Never a store or
    /// server failure: those come back as [`Self::Storage`] and
    /// [`Self::Transport`].
    #[error(transparent)]
    Transparency(LogError<S, T>),
}

impl<S, T> From<LogError<S, T>> for OutgoingError<S, T> {
    fn from(error: LogError<S, T>) -> Self {
        match error {
            LogError::Storage(e) => Self::Storage(e),
            LogError::Transport(e) => Self::Transport(e),
            other => Self::Transparency(other),
        }
    }
}

impl<S, T> From<SealedError<S, T>> for OutgoingError<S, T> {
    fn from(error: SealedError<S, T>) -> Self {
        match error {
            SealedError::Storage(e) => Self::Storage(e),
            SealedError::Transport(e) => Self::Transport(e),
            other => Self::Sealed(other),
        }
    }
}

/// A send's view of the device: its store, server, clock, the account's
/// identity and the own-devices cache.
pub struct Outgoing<'a, S, T, C> {
    /// The device's local state.
    pub storage: &'a S,
    /// The server, authenticated as this device.
    pub transport: &'a T,
    /// Where "now" comes from.
    pub clock: &'a C,
    /// Our username.
    pub username: &'a str,
    /// This device's id.
    pub device_id: u32,
    /// This device's identity key pair.
    pub identity: &'a IdentityKeyPair,
    /// Our account's devices, as last listed.
    pub own_devices: &'a mut OwnDevices,
    /// The trusted server keys and our sender certificate.
    pub sealing: &'a mut Sealing,
}

impl<S, T, C> std::fmt::Debug for Outgoing<'_, S, T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("username", &self.username)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

/// What a send fails with, for a store `S` and a server `T`.
pub type Result<V, S, T> =
    std::result::Result<V, OutgoingError<<S as Storage>::Error, <T as Transport>::Error>>;

impl<S: Storage, T: Transport, C: Clock> Outgoing<'_, S, T, C> {
    /// Our account's devices other than this one.
    pub async fn own_other_devices(&mut self) -> Result<Vec<u32>, S, T> {
        let now = self.clock.now_millis();
        let devices = match self.own_devices.fresh(now) {
            Some(devices) => devices.to_vec(),
            None => {
                let mut retried = false;
                let (served, logged) = loop {
                    let served = self
                        .transport
                        .devices(self.username)
                        .await
                        .map_err(OutgoingError::Transport)?;
                    match transparency::verify_account(
                        self.storage,
                        self.transport,
                        self.username,
                        served.proof.as_ref(),
                    )
                    .await
                    {
                        Ok(logged) => break (served, logged),
                        Err(LogError::Changed { .. }) if !retried => retried = true,
                        Err(e) => return Err(e.into()),
                    }
                };
                transparency::check_device_ids(self.username, &logged, &served.value)?;
                self.own_devices.listed = Some((now, served.value.clone()));
                served.value
            }
        };
        Ok(devices
            .into_iter()
            .filter(|d| *d != self.device_id)
            .collect())
    }

    /// The devices of `username` we send to, learning them (and starting
    /// sessions from their bundles) when we know none yet.
    pub async fn ensure_sessions(
        &mut self,
        username: &str,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<u32>, S, T> {
        if username == self.username {
            return self.own_other_devices().await;
        }
        let known: Vec<u32> = self
            .storage
            .identity_keys(username)
            .await
            .map_err(OutgoingError::Storage)?
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        if !known.is_empty() {
            return Ok(known);
        }
        let served = self.proved_bundles(username, None).await?;
        if served.value.is_empty() {
            return Err(OutgoingError::UnknownUser(username.to_owned()));
        }
        let mut devices = Vec::new();
        for (device, bundle) in &served.value {
            let certificate = served.certificate(*device);
            self.establish(username, *device, bundle, certificate, rng)
                .await?;
            devices.push(*device);
        }
        Ok(devices)
    }

    /// Fetches bundles and checks that the transparency log holds each
    /// one's identity key for its device, before any is used.
    async fn proved_bundles(
        &self,
        username: &str,
        device: Option<u32>,
    ) -> Result<Proved<Vec<(u32, PreKeyBundle)>>, S, T> {
        let mut retried = false;
        loop {
            let served = self
                .transport
                .bundles(username, device)
                .await
                .map_err(OutgoingError::Transport)?;
            if served.value.is_empty() {
                return Ok(served);
            }
            match transparency::verify_account(
                self.storage,
                self.transport,
                username,
                served.proof.as_ref(),
            )
            .await
            {
                Ok(logged) => {
                    transparency::check_bundles(username, &logged, &served.value)?;
                    return Ok(served);
                }
                // An epoch came between the two proofs: fetch again, once.
                Err(LogError::Changed { .. }) if !retried => retried = true,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Starts a fresh session with a device from its bundle, recording its
    /// identity key first (vouched for by `certificate`, when a device of
    /// the account whose key we hold linked it).
    pub async fn establish(
        &self,
        username: &str,
        device: u32,
        bundle: &PreKeyBundle,
        certificate: Option<&[u8]>,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(), S, T> {
        let own = (username == self.username).then_some(self.device_id);
        let this_device = own.map(|id| (id, self.identity.public()));
        let vouched_by = crate::trust::vouched_by(
            self.storage,
            username,
            this_device,
            bundle.identity(),
            certificate,
        )
        .await
        .map_err(OutgoingError::Storage)?;
        self.storage
            .observe_identity(username, device, bundle.identity(), (own, vouched_by))
            .await
            .map_err(OutgoingError::Storage)?;
        // A verified contact whose keys the server now serves differently
        // gets no session with them: the warning stands, nothing is saved.
        crate::trust::check_sendable(self.storage, username)
            .await
            .map_err(OutgoingError::Trust)?;
        let mut sessions = self
            .storage
            .sessions(username, device)
            .await
            .map_err(OutgoingError::Storage)?;
        sessions
            .initiate(self.identity, bundle, rng)
            .map_err(OutgoingError::Session)?;
        self.storage
            .save_sessions(username, device, &sessions)
            .await
            .map_err(OutgoingError::Storage)
    }

    /// Fetches a device's bundle and starts a fresh session with it.
    pub async fn establish_from_server(
        &self,
        username: &str,
        device: u32,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(), S, T> {
        let served = self.proved_bundles(username, Some(device)).await?;
        // Only the device asked for: a server that answers with others
        // must not get their keys recorded on the way.
        for (id, bundle) in served.value.iter().filter(|(id, _)| *id == device) {
            self.establish(username, *id, bundle, served.certificate(*id), rng)
                .await?;
        }
        Ok(())
    }

    /// Encrypts for one device (starting a session if there is none, or
    /// if the active one is classical: a session from before PQXDH was
    /// required is replaced on the next send) and wraps it for the
    /// server. The advanced session is saved first, so no message key is
    /// ever used twice.
    pub async fn encrypt_for(
        &self,
        username: &str,
        device: u32,
        plaintext: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<u8>, S, T> {
        let mut sessions = self
            .storage
            .sessions(username, device)
            .await
            .map_err(OutgoingError::Storage)?;
        if !sessions.active().is_some_and(|s| s.is_post_quantum()) {
            self.establish_from_server(username, device, rng).await?;
            sessions = self
                .storage
                .sessions(username, device)
                .await
                .map_err(OutgoingError::Storage)?;
        }
        let message = sessions
            .encrypt(plaintext)
            .map_err(OutgoingError::Encrypt)?;
        self.storage
            .save_sessions(username, device, &sessions)
            .await
            .map_err(OutgoingError::Storage)?;
        Ok(content::Transport {
            body: Some(transport::Body::Pairwise(message.to_bytes())),
        }
        .encode_to_vec())
    }

    /// Applies the server's corrections to our device lists: forgets
    /// devices that are gone, starts sessions with new ones (never
    /// replacing one we hold). Only the
    /// accounts of `sends` are corrected, and never this device itself: a
    /// server naming other accounts or this device is ignored there.
    pub async fn fix_device_lists(
        &mut self,
        stale: BTreeMap<String, StaleLists>,
        sends: &[AccountEnvelopes],
        rng: &mut impl CryptoRngCore,
    ) -> Result<(), S, T> {
        for (username, mut lists) in stale {
            if !sends.iter().any(|s| s.destination == username) {
                continue;
            }
            if username == self.username {
                self.own_devices.forget();
                lists.extra.retain(|d| *d != self.device_id);
                lists.missing.retain(|d| *d != self.device_id);
            }
            // A device called both gone and missing is a contradiction
            // (a server trying to make us drop a session and start another
            // from keys of its choosing): neither is acted on.
            let both: Vec<u32> = lists
                .extra
                .iter()
                .filter(|d| lists.missing.contains(d))
                .copied()
                .collect();
            lists.extra.retain(|d| !both.contains(d));
            lists.missing.retain(|d| !both.contains(d));
            for device in lists.extra {
                self.storage
                    .forget_device(&username, device)
                    .await
                    .map_err(OutgoingError::Storage)?;
            }
            for device in lists.missing {
                // A session we hold stays: the server cannot make us
                // restart one by calling its device missing.
                let sessions = self.storage.sessions(&username, device).await;
                if sessions.map_err(OutgoingError::Storage)?.is_empty() {
                    self.establish_from_server(&username, device, rng).await?;
                }
            }
        }
        Ok(())
    }

    /// Seals every envelope of `sends` with our sender certificate
    /// (renewed first when due), so that the server stores none of them
    /// with our name.
    pub async fn seal(
        &mut self,
        sends: &[AccountEnvelopes],
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<AccountEnvelopes>, S, T> {
        if sends.is_empty() {
            return Ok(Vec::new());
        }
        let me = Me {
            username: self.username,
            device_id: self.device_id,
            identity: self.identity,
        };
        let certificate = self
            .sealing
            .certificate(self.storage, self.transport, me, self.clock)
            .await?;
        Ok(sealed::seal_sends::<S, T>(self.storage, me, &certificate, sends, rng).await?)
    }

    /// One attempt of a send: true when stored (or nothing to send); false
    /// when the server refused stale device lists (now fixed) or an
    /// access key (now forgotten). Each attempt seals afresh: the inner
    /// ciphertexts are the same, so no message key is used twice.
    /// Destinations in `stored` are skipped, and those stored are added:
    /// an attempt may store one request of its two.
    ///
    /// Contacts whose profile key we hold are sent to without our
    /// credential (unidentified); our own account and first contacts with
    /// it (the server leaves our device out of our own list, and a first
    /// contact has no key of theirs yet). Either way the envelopes are
    /// sealed and stored without a sender.
    pub async fn send_or_fix(
        &mut self,
        sends: &[AccountEnvelopes],
        stored: &mut BTreeSet<String>,
        rng: &mut impl CryptoRngCore,
    ) -> Result<bool, S, T> {
        let pending: Vec<AccountEnvelopes> = sends
            .iter()
            .filter(|s| !stored.contains(&s.destination))
            .cloned()
            .collect();
        if pending.is_empty() {
            return Ok(true);
        }
        let mut keys = Vec::new();
        let mut unkeyed = Vec::new();
        for send in pending {
            let key = if send.destination == self.username {
                None
            } else {
                let key = self.storage.contact_profile_key(&send.destination).await;
                key.map_err(OutgoingError::Storage)?
            };
            match key {
                Some(key) => keys.push((send, starling_crypto::sealed::access_key(&key))),
                None => unkeyed.push(send),
            }
        }
        // Each request is sealed on its own: bytes shared by a
        // multi-recipient seal must not appear in both, or the server
        // could link the unidentified one to the authenticated sender.
        let (keyed, access): (Vec<_>, Vec<_>) = keys.into_iter().unzip();
        let unidentified: Vec<_> = self
            .seal(&keyed, rng)
            .await?
            .into_iter()
            .zip(access)
            .collect();
        let authenticated = self.seal(&unkeyed, rng).await?;
        if !unidentified.is_empty() {
            let outcome = self.transport.send_unidentified(&unidentified).await;
            match outcome.map_err(OutgoingError::Transport)? {
                SendOutcome::Stored => {
                    stored.extend(unidentified.iter().map(|(s, _)| s.destination.clone()));
                }
                SendOutcome::Stale(stale) => {
                    self.fix_device_lists(stale, sends, rng).await?;
                    return Ok(false);
                }
                SendOutcome::Unauthorized(refused) => {
                    self.forget_refused_keys(&refused, &unidentified).await?;
                    return Ok(false);
                }
            }
        }
        if authenticated.is_empty() {
            return Ok(true);
        }
        match self
            .transport
            .send_many(&authenticated)
            .await
            .map_err(OutgoingError::Transport)?
        {
            SendOutcome::Stored => {
                stored.extend(authenticated.into_iter().map(|s| s.destination));
                Ok(true)
            }
            SendOutcome::Stale(stale) => {
                self.fix_device_lists(stale, sends, rng).await?;
                Ok(false)
            }
            // Not an answer to an authenticated send: try again.
            SendOutcome::Unauthorized(_) => Ok(false),
        }
    }

    /// Forgets the profile keys the server refused the access keys of
    /// (only of destinations sent to unidentified): they are sent to with
    /// our credential until they share a new one.
    async fn forget_refused_keys(
        &self,
        refused: &[String],
        unidentified: &[(AccountEnvelopes, [u8; 16])],
    ) -> Result<(), S, T> {
        for (send, _) in unidentified {
            if refused.contains(&send.destination) {
                tracing::info!("an access key was refused; sending with our credential");
                self.storage
                    .set_contact_profile_key(&send.destination, None)
                    .await
                    .map_err(OutgoingError::Storage)?;
            }
        }
        Ok(())
    }

    /// `content` with our profile key, when we have one, and our newest
    /// verified root of the transparency log (unless it carries one: an
    /// answer to a split view carries the root of the epoch in question).
    async fn with_profile_key(
        &mut self,
        content: &Content,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Content, S, T> {
        let mut content = content.clone();
        let key = self
            .sealing
            .profile_key(self.storage, self.transport, rng)
            .await?;
        if let Some(key) = key {
            content.profile_key = key.to_vec();
        }
        if content.log_root.is_empty() {
            let record = self.storage.log_record().await;
            let newest = record
                .map_err(OutgoingError::Storage)?
                .and_then(|r| r.newest);
            if let Some(root) = newest {
                content.log_root = root.to_bytes();
            }
        }
        Ok(content)
    }

    /// Sends `content`, pairwise-encrypted, to every device of each
    /// recipient (our own account means our other devices). A device is
    /// encrypted for once; a resend after fixing the lists reuses its
    /// ciphertext.
    pub async fn send_pairwise(
        &mut self,
        recipients: &[String],
        content: &Content,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(), S, T> {
        let content = self.with_profile_key(content, rng).await?;
        let plaintext = Zeroizing::new(content.encode_to_vec());
        self.send_pairwise_with(recipients, |_, _| plaintext.as_slice(), rng)
            .await
    }

    /// Sends `content` to the devices `targets` (username, device) only;
    /// the other devices of their accounts, which the server requires an
    /// envelope for, get `elsewhere` (a copy without what only the targets
    /// may read, such as a call's media keys).
    pub async fn send_pairwise_to(
        &mut self,
        targets: &[(String, u32)],
        content: &Content,
        elsewhere: &Content,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(), S, T> {
        let content = self.with_profile_key(content, rng).await?;
        let elsewhere = self.with_profile_key(elsewhere, rng).await?;
        let plaintext = Zeroizing::new(content.encode_to_vec());
        let other = Zeroizing::new(elsewhere.encode_to_vec());
        let mut recipients: Vec<String> = targets.iter().map(|(u, _)| u.clone()).collect();
        recipients.sort();
        recipients.dedup();
        self.send_pairwise_with(
            &recipients,
            |username, device| {
                if targets.iter().any(|(u, d)| u == username && *d == device) {
                    plaintext.as_slice()
                } else {
                    other.as_slice()
                }
            },
            rng,
        )
        .await
    }

    /// Sends to every device of each recipient the plaintext `pick` names
    /// for it.
    async fn send_pairwise_with<'p>(
        &mut self,
        recipients: &[String],
        pick: impl Fn(&str, u32) -> &'p [u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<(), S, T> {
        let mut encrypted: BTreeMap<(String, u32), Vec<u8>> = BTreeMap::new();
        let mut stored = BTreeSet::new();
        for _ in 0..STALE_RETRIES {
            self.check_recipients(recipients).await?;
            let mut sends = Vec::new();
            for username in recipients {
                let mut envelopes = Vec::new();
                for device in self.ensure_sessions(username, rng).await? {
                    let key = (username.clone(), device);
                    let ciphertext = match encrypted.get(&key) {
                        Some(c) => c.clone(),
                        None => {
                            let plaintext = pick(username, device);
                            let c = self.encrypt_for(username, device, plaintext, rng).await?;
                            encrypted.insert(key, c.clone());
                            c
                        }
                    };
                    envelopes.push((device, ciphertext));
                }
                if !envelopes.is_empty() {
                    sends.push(AccountEnvelopes {
                        destination: username.clone(),
                        envelopes,
                    });
                }
            }
            // Setting up sessions may have met a new key of a verified
            // contact (a device the server just said was gone, served
            // again with another key): nothing leaves before the check.
            self.check_recipients(recipients).await?;
            if self.send_or_fix(&sends, &mut stored, rng).await? {
                return Ok(());
            }
        }
        Err(OutgoingError::DeviceListsKeptChanging)
    }

    /// Refuses the send when a recipient other than ourselves is verified
    /// and has changed keys since.
    async fn check_recipients(&self, recipients: &[String]) -> Result<(), S, T> {
        for username in recipients.iter().filter(|u| **u != self.username) {
            trust::check_sendable(self.storage, username)
                .await
                .map_err(|e| match e {
                    TrustError::Storage(e) => OutgoingError::Storage(e),
                    other => OutgoingError::Trust(other),
                })?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "outgoing/tests.rs"]
mod tests;
