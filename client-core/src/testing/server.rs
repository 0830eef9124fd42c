//! A shared in-memory server for tests with several devices: accounts and
//! their devices, the prekeys each device uploaded (claimed one at a time,
//! as the real server hands them out), a mailbox per device, and the
//! stale-device check of a send. Each device reaches it through its own
//! [`Link`], authenticated as that device.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use starling_crypto::prekeys::{KemPreKey, OneTimePreKey, SignedPreKey};
use starling_crypto::{IdentityKey, PreKeyBundle};
use starling_protocol::api::{KeyUpload, PrekeyCounts, StaleLists};
use starling_protocol::frames::Envelope;
use thiserror::Error;

use super::{Authority, CERTIFICATE_TTL, SERVER_NOW};
use crate::transparency::{
    AppendOnlyClaim, AuditStep, LogPins, LogProof, Proved, ServedHistory, TransparencyError,
};
use crate::transport::{AccountEnvelopes, SendOutcome, Transport};

/// Why the shared server refused a call.
#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum Refused {
    /// No such account or device (the real server's 404).
    #[error("not found")]
    NotFound,
    /// The server cannot be reached.
    #[error("offline")]
    Offline,
    /// An upload the real server would refuse as malformed.
    #[error("bad request")]
    BadRequest,
}

/// What the server holds for one device.
struct Keys {
    identity: IdentityKey,
    signed: Option<SignedPreKey>,
    one_time: VecDeque<OneTimePreKey>,
    kem: VecDeque<KemPreKey>,
    last_resort: Option<KemPreKey>,
    /// The device's certificate, when another device of its account
    /// linked it (`crypto/SPEC.md` §2.5).
    certificate: Option<Vec<u8>>,
}

/// The certificates of `devices`, as a server serves them.
fn certificates<'a>(devices: impl Iterator<Item = (&'a u32, &'a Keys)>) -> Vec<(u32, Vec<u8>)> {
    devices
        .filter_map(|(id, keys)| Some((*id, keys.certificate.clone()?)))
        .collect()
}

#[derive(Default)]
struct State {
    /// Devices by account.
    accounts: BTreeMap<String, BTreeMap<u32, Keys>>,
    /// Envelopes waiting for each device.
    mailboxes: BTreeMap<(String, u32), Vec<Envelope>>,
    /// Envelopes stored so far (the next id).
    stored: u64,
    offline: bool,
    /// The next access key set is taken, and its answer lost.
    lose_access_answer: bool,
    /// Serve bundles without their ML-KEM prekeys (a downgrade attempt).
    withhold_kem: bool,
    /// Answer the next send with this made-up stale list for an account,
    /// whatever was sent (a lying server).
    claim_stale: Option<(String, StaleLists)>,
    /// Each account's access key, once set.
    access: BTreeMap<String, [u8; 16]>,
    /// Accounts that take sealed envelopes from strangers (any key).
    strangers: BTreeSet<String>,
    /// Envelopes stored from unidentified sends.
    unidentified: usize,
}

impl State {
    /// The server's clock, in ms.
    fn now(&self) -> i64 {
        SERVER_NOW
    }
}

/// The server several test devices share.
#[derive(Default)]
pub(crate) struct Server {
    state: RefCell<State>,
    /// The key sender certificates are signed with.
    pub(crate) authority: Authority,
    /// The transparency log of every account's devices.
    pub(crate) log: super::TestLog,
}

impl Server {
    /// A new, empty server, to share.
    pub(crate) fn new() -> Rc<Self> {
        Rc::new(Self::default())
    }

    /// Registers a device (its account too, when new) with its identity
    /// key; its prekeys come with its first upload.
    pub(crate) fn register(&self, username: &str, device: u32, identity: IdentityKey) {
        self.state
            .borrow_mut()
            .accounts
            .entry(username.to_owned())
            .or_default()
            .insert(
                device,
                Keys {
                    identity,
                    signed: None,
                    one_time: VecDeque::new(),
                    kem: VecDeque::new(),
                    last_resort: None,
                    certificate: None,
                },
            );
    }

    /// Keeps a device's certificate, served beside its keys.
    pub(crate) fn certify(&self, username: &str, device: u32, certificate: Vec<u8>) {
        if let Some(keys) = self
            .state
            .borrow_mut()
            .accounts
            .get_mut(username)
            .and_then(|devices| devices.get_mut(&device))
        {
            keys.certificate = Some(certificate);
        }
    }

    /// Removes a device and its mailbox.
    pub(crate) fn remove_device(&self, username: &str, device: u32) {
        let mut state = self.state.borrow_mut();
        if let Some(devices) = state.accounts.get_mut(username) {
            devices.remove(&device);
        }
        state.mailboxes.remove(&(username.to_owned(), device));
    }

    /// Envelopes stored so far from sends without a credential.
    pub(crate) fn unidentified_envelopes(&self) -> usize {
        self.state.borrow().unidentified
    }

    /// Replaces an account's access key (as if another device set it).
    pub(crate) fn set_access_key(&self, username: &str, key: [u8; 16]) {
        self.state
            .borrow_mut()
            .access
            .insert(username.to_owned(), key);
    }

    /// Takes the next access key set, then fails the call as if its
    /// answer were lost on the way back.
    pub(crate) fn lose_next_access_answer(&self) {
        self.state.borrow_mut().lose_access_answer = true;
    }

    /// The access key the server holds for `username`.
    pub(crate) fn access_key(&self, username: &str) -> Option<[u8; 16]> {
        self.state.borrow().access.get(username).copied()
    }

    /// Makes every call fail (or work again).
    pub(crate) fn set_offline(&self, offline: bool) {
        self.state.borrow_mut().offline = offline;
    }

    /// Serves bundles without ML-KEM prekeys (or with them again), as a
    /// server attempting a downgrade would.
    pub(crate) fn set_withhold_kem(&self, withhold: bool) {
        self.state.borrow_mut().withhold_kem = withhold;
    }

    /// Answers the next send with `missing` and `extra` devices of
    /// `username`, whatever the send held.
    pub(crate) fn claim_stale_once(&self, username: &str, missing: &[u32], extra: &[u32]) {
        let lists = StaleLists {
            missing: missing.to_vec(),
            extra: extra.to_vec(),
        };
        self.state.borrow_mut().claim_stale = Some((username.to_owned(), lists));
    }

    /// Takes the envelopes waiting for a device, oldest first.
    pub(crate) fn take(&self, username: &str, device: u32) -> Vec<Envelope> {
        self.state
            .borrow_mut()
            .mailboxes
            .remove(&(username.to_owned(), device))
            .unwrap_or_default()
    }

    /// How many envelopes wait for a device.
    pub(crate) fn waiting(&self, username: &str, device: u32) -> usize {
        self.state
            .borrow()
            .mailboxes
            .get(&(username.to_owned(), device))
            .map_or(0, Vec::len)
    }

    /// One-time X25519 prekeys left for a device.
    pub(crate) fn one_time_left(&self, username: &str, device: u32) -> usize {
        self.state
            .borrow()
            .accounts
            .get(username)
            .and_then(|d| d.get(&device))
            .map_or(0, |k| k.one_time.len())
    }
}

impl State {
    /// The next envelope, as the real server stores it: no sender for
    /// sealed content.
    fn envelope(&mut self, sender: Option<(&str, u32)>, content: Vec<u8>) -> Envelope {
        self.stored += 1;
        let mut id = vec![0; 8];
        id.extend_from_slice(&self.stored.to_be_bytes());
        let sender = sender.filter(|_| !starling_crypto::sealed::is_sealed(&content));
        Envelope {
            id,
            sender: sender.map(|(u, _)| u.to_owned()).unwrap_or_default(),
            sender_device: sender.map_or(0, |(_, d)| d),
            server_timestamp: self.now(),
            content,
        }
    }
}

/// What a send's devices lack and have too many of, against `expected`;
/// `None` when they match.
fn stale_lists(expected: &BTreeSet<u32>, envelopes: &[(u32, Vec<u8>)]) -> Option<StaleLists> {
    let given: BTreeSet<u32> = envelopes.iter().map(|(d, _)| *d).collect();
    (*expected != given).then(|| StaleLists {
        missing: expected.difference(&given).copied().collect(),
        extra: given.difference(expected).copied().collect(),
    })
}

/// A device's connection to the shared [`Server`].
pub(crate) struct Link {
    server: Rc<Server>,
    username: String,
    device: u32,
}

impl Link {
    /// The server, as `username`'s `device`.
    pub(crate) fn new(server: &Rc<Server>, username: &str, device: u32) -> Self {
        Self {
            server: Rc::clone(server),
            username: username.to_owned(),
            device,
        }
    }

    /// The shared server.
    pub(crate) fn server(&self) -> &Server {
        &self.server
    }

    /// Takes the envelopes waiting for this device, oldest first.
    pub(crate) fn take_mine(&self) -> Vec<Envelope> {
        self.server.take(&self.username, self.device)
    }

    /// The log's proof of `username`'s devices as the server holds them
    /// (published first when they changed).
    fn logged(&self, username: &str) -> Result<LogProof, Refused> {
        let devices: Vec<(u32, [u8; 64])> = {
            let state = self.state()?;
            let account = state.accounts.get(username).ok_or(Refused::NotFound)?;
            account
                .iter()
                .map(|(id, keys)| (*id, keys.identity.public_bytes()))
                .collect()
        };
        Ok(self.server.log.prove(username, &devices))
    }

    fn state(&self) -> Result<std::cell::RefMut<'_, State>, Refused> {
        let state = self.server.state.borrow_mut();
        if state.offline {
            Err(Refused::Offline)
        } else {
            Ok(state)
        }
    }
}

fn decode<V, E>(text: &str, parse: impl FnOnce(&[u8]) -> Result<V, E>) -> Result<V, Refused> {
    let bytes = B64.decode(text).map_err(|_| Refused::BadRequest)?;
    parse(&bytes).map_err(|_| Refused::BadRequest)
}

fn counts(keys: &Keys) -> PrekeyCounts {
    PrekeyCounts {
        one_time: u32::try_from(keys.one_time.len()).unwrap_or(u32::MAX),
        kem: u32::try_from(keys.kem.len()).unwrap_or(u32::MAX),
    }
}

impl Transport for Link {
    type Error = Refused;

    async fn upload_keys(&self, upload: &KeyUpload) -> Result<PrekeyCounts, Refused> {
        let mut state = self.state()?;
        let keys = state
            .accounts
            .get_mut(&self.username)
            .and_then(|d| d.get_mut(&self.device))
            .ok_or(Refused::NotFound)?;
        if let Some(signed) = &upload.signed_prekey {
            keys.signed = Some(decode(signed, SignedPreKey::from_bytes)?);
        }
        for key in &upload.one_time_prekeys {
            keys.one_time
                .push_back(decode(key, OneTimePreKey::from_bytes)?);
        }
        for key in &upload.kem_prekeys {
            keys.kem.push_back(decode(key, KemPreKey::from_bytes)?);
        }
        if let Some(key) = &upload.last_resort_kem_prekey {
            keys.last_resort = Some(decode(key, KemPreKey::from_bytes)?);
        }
        Ok(counts(keys))
    }

    async fn key_count(&self) -> Result<PrekeyCounts, Refused> {
        let state = self.state()?;
        let keys = state
            .accounts
            .get(&self.username)
            .and_then(|d| d.get(&self.device))
            .ok_or(Refused::NotFound)?;
        Ok(counts(keys))
    }

    async fn devices(&self, username: &str) -> Result<Proved<Vec<u32>>, Refused> {
        let proof = self.logged(username)?;
        let state = self.state()?;
        let devices = state.accounts.get(username).ok_or(Refused::NotFound)?;
        Ok(Proved {
            value: devices.keys().copied().collect(),
            proof: Some(proof),
            certificates: certificates(devices.iter()),
        })
    }

    async fn bundles(
        &self,
        username: &str,
        device: Option<u32>,
    ) -> Result<Proved<Vec<(u32, PreKeyBundle)>>, Refused> {
        let proof = self.logged(username)?;
        let mut state = self.state()?;
        let withhold_kem = state.withhold_kem;
        let devices = state.accounts.get_mut(username).ok_or(Refused::NotFound)?;
        if device.is_some_and(|d| !devices.contains_key(&d)) {
            return Err(Refused::NotFound);
        }
        let mut bundles = Vec::new();
        for (id, keys) in devices
            .iter_mut()
            .filter(|(id, _)| device.is_none_or(|d| d == **id))
        {
            let Some(signed) = keys.signed.clone() else {
                continue;
            };
            let one_time = keys.one_time.pop_front();
            let kem = keys.kem.pop_front().or_else(|| keys.last_resort.clone());
            let kem = kem.filter(|_| !withhold_kem);
            let bundle = PreKeyBundle::new(keys.identity.clone(), signed, one_time, kem)
                .map_err(|_| Refused::BadRequest)?;
            bundles.push((*id, bundle));
        }
        let certificates = certificates(
            devices
                .iter()
                .filter(|(id, _)| bundles.iter().any(|(b, _)| b == *id)),
        );
        Ok(Proved {
            value: bundles,
            proof: Some(proof),
            certificates,
        })
    }

    async fn log_pins(&self) -> Result<Option<LogPins>, Refused> {
        Ok(Some(self.server.log.pins()))
    }

    async fn own_history(&self) -> Result<Option<ServedHistory>, Refused> {
        self.state()?;
        Ok(self.server.log.history(&self.username))
    }

    async fn latest_version(&self, username: &str) -> Result<Option<ServedHistory>, Refused> {
        self.state()?;
        Ok(self.server.log.latest(username))
    }

    async fn audit_steps(&self, from: u64) -> Result<Vec<AuditStep>, Refused> {
        Ok(self.server.log.audit_steps(from))
    }

    async fn check_append_only(
        &self,
        proof: &[u8],
        claim: &AppendOnlyClaim,
    ) -> Result<(), TransparencyError> {
        self.server.log.check_append_only(proof, claim)
    }

    async fn send(
        &self,
        destination: &str,
        envelopes: &[(u32, Vec<u8>)],
    ) -> Result<SendOutcome, Refused> {
        self.send_many(&[AccountEnvelopes {
            destination: destination.to_owned(),
            envelopes: envelopes.to_vec(),
        }])
        .await
    }

    /// Stores every envelope, or none when a device list is stale: each
    /// account's devices (our own but this one) exactly once.
    async fn send_many(&self, sends: &[AccountEnvelopes]) -> Result<SendOutcome, Refused> {
        let mut state = self.state()?;
        let mut stale = BTreeMap::new();
        if let Some((username, lists)) = state.claim_stale.take() {
            stale.insert(username, lists);
            return Ok(SendOutcome::Stale(stale));
        }
        for send in sends {
            let devices = state
                .accounts
                .get(&send.destination)
                .ok_or(Refused::NotFound)?;
            let expected: BTreeSet<u32> = devices
                .keys()
                .copied()
                .filter(|d| send.destination != self.username || *d != self.device)
                .collect();
            if let Some(lists) = stale_lists(&expected, &send.envelopes) {
                stale.insert(send.destination.clone(), lists);
            }
        }
        if !stale.is_empty() {
            return Ok(SendOutcome::Stale(stale));
        }
        for send in sends {
            for (device, content) in &send.envelopes {
                let sender = (self.username.as_str(), self.device);
                let envelope = state.envelope(Some(sender), content.clone());
                state
                    .mailboxes
                    .entry((send.destination.clone(), *device))
                    .or_default()
                    .push(envelope);
            }
        }
        Ok(SendOutcome::Stored)
    }

    /// Stores every envelope with no sender when each destination's
    /// access key is right (or it takes strangers) and its device list
    /// complete (every device:
    /// there is no sender to leave out), else none.
    async fn send_unidentified(
        &self,
        sends: &[(AccountEnvelopes, [u8; 16])],
    ) -> Result<SendOutcome, Refused> {
        let mut state = self.state()?;
        let refused: Vec<String> = sends
            .iter()
            .filter(|(send, key)| {
                !state.strangers.contains(&send.destination)
                    && state.access.get(&send.destination) != Some(key)
            })
            .map(|(send, _)| send.destination.clone())
            .collect();
        if !refused.is_empty() {
            return Ok(SendOutcome::Unauthorized(refused));
        }
        let mut stale = BTreeMap::new();
        for (send, _) in sends {
            let devices = state
                .accounts
                .get(&send.destination)
                .ok_or(Refused::NotFound)?;
            let expected: BTreeSet<u32> = devices.keys().copied().collect();
            if let Some(lists) = stale_lists(&expected, &send.envelopes) {
                stale.insert(send.destination.clone(), lists);
            }
        }
        if !stale.is_empty() {
            return Ok(SendOutcome::Stale(stale));
        }
        for (send, _) in sends {
            for (device, content) in &send.envelopes {
                if !starling_crypto::sealed::is_sealed(content) {
                    return Err(Refused::BadRequest);
                }
                let envelope = state.envelope(None, content.clone());
                state.unidentified += 1;
                state
                    .mailboxes
                    .entry((send.destination.clone(), *device))
                    .or_default()
                    .push(envelope);
            }
        }
        Ok(SendOutcome::Stored)
    }

    async fn set_access(
        &self,
        access_key: &[u8; 16],
        sealed_from_strangers: bool,
        if_absent: bool,
    ) -> Result<bool, Refused> {
        let mut state = self.state()?;
        if if_absent {
            match state.access.get(&self.username) {
                Some(held) if held == access_key => return Ok(true),
                Some(_) => return Ok(false),
                None => {}
            }
        }
        state.access.insert(self.username.clone(), *access_key);
        if std::mem::take(&mut state.lose_access_answer) {
            return Err(Refused::Offline);
        }
        if sealed_from_strangers {
            state.strangers.insert(self.username.clone());
        } else {
            state.strangers.remove(&self.username);
        }
        Ok(true)
    }

    async fn sender_certificate(&self) -> Result<Vec<u8>, Refused> {
        let state = self.state()?;
        let keys = state
            .accounts
            .get(&self.username)
            .and_then(|d| d.get(&self.device))
            .ok_or(Refused::NotFound)?;
        let expires = state.now().unsigned_abs() + CERTIFICATE_TTL;
        let certificate =
            self.server
                .authority
                .issue(&self.username, self.device, &keys.identity, expires);
        Ok(certificate.to_bytes())
    }

    async fn server_key_chain(&self) -> Result<Vec<u8>, Refused> {
        self.state()?;
        Ok(self.server.authority.chain())
    }

    fn is_not_found(error: &Refused) -> bool {
        *error == Refused::NotFound
    }
}
