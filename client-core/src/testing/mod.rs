//! Test doubles: an in-memory [`Storage`](crate::Storage) and
//! [`Transport`](crate::Transport) in one value ([`Memory`]), a shared
//! in-memory server several devices talk to ([`Server`], reached through
//! a [`Link`]), and a way to run the core's futures without a runtime
//! (with everything in memory, they never wait).
//!
//! [`Memory`] keeps what the shell's SQLCipher store keeps, with the same
//! conditions on every change (see `client-reference/src/store/`, and
//! `tests` here, which checks them); its transport half is a scripted
//! server that records what it is asked to send.

mod log;
mod server;
mod storage;
mod tests;
mod transport;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use rand::rngs::OsRng;
use starling_crypto::sealed::{
    CertificateVerifier, Certified, SenderCertificate, ServerKeyChain, ServerSigningKey,
    TrustedServerKeys,
};
use starling_crypto::{IdentityKey, IdentityKeyPair, PreKeyBundle};
use starling_protocol::api::{KeyUpload, StaleLists};
use thiserror::Error;

use crate::records::{GroupRecord, InboxItem, NewMessage};
use crate::sealed::SealedRecord;
use crate::storage::ContactRecord;
use crate::transport::AccountEnvelopes;

pub(crate) use log::TestLog;
pub(crate) use server::{Link, Server};

/// Runs a future whose I/O is all in memory.
pub(crate) fn run<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("an in-memory fake never waits"),
    }
}

/// The time the fake servers stamp envelopes with, in ms (the devices'
/// clocks in tests say the same).
pub(crate) const SERVER_NOW: i64 = 1_750_000_000_000;

/// How long the fake servers' sender certificates last, in ms.
pub(crate) const CERTIFICATE_TTL: u64 = 24 * 3_600_000;

/// A server's sender-certificate key, as the fakes sign with it.
pub(crate) struct Authority {
    pub(crate) key: ServerSigningKey,
}

impl Default for Authority {
    fn default() -> Self {
        Self {
            key: ServerSigningKey::generate(0, &mut OsRng),
        }
    }
}

impl Authority {
    /// A certificate for `identity`, expiring at `expires_at`.
    pub(crate) fn issue(
        &self,
        username: &str,
        device: u32,
        identity: &IdentityKey,
        expires_at: u64,
    ) -> SenderCertificate {
        SenderCertificate::issue(&self.key, username, device, identity, expires_at).unwrap()
    }

    /// Trust in this key alone.
    pub(crate) fn trust(&self) -> TrustedServerKeys {
        let public = self.key.public();
        TrustedServerKeys::pin(public.id(), &public.public_key(), public.created_at()).unwrap()
    }

    /// Opens an envelope sealed to `identity` under a certificate of this
    /// key, checked at [`SERVER_NOW`].
    pub(crate) fn unseal(&self, identity: &IdentityKeyPair, content: &[u8]) -> Certified {
        starling_crypto::sealed::open(identity, content)
            .unwrap()
            .verify(
                &mut CertificateVerifier::new(self.trust()),
                SERVER_NOW.unsigned_abs(),
            )
            .unwrap()
    }

    /// The encoded chain of this one key.
    pub(crate) fn chain(&self) -> Vec<u8> {
        ServerKeyChain::new(vec![self.key.public().clone()])
            .unwrap()
            .to_bytes()
    }
}

/// The fakes' one failure.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("fake failure")]
pub(crate) struct Fake;

/// A message of the history, with what happened to it since.
#[derive(Debug, Clone)]
pub(crate) struct StoredMessage {
    /// What was recorded (body, content and attachment wiped on deletion).
    pub(crate) message: NewMessage,
    /// Its author changed the text.
    pub(crate) edited: bool,
    /// Deleted for everyone.
    pub(crate) deleted: bool,
    /// A read receipt arrived.
    pub(crate) read: bool,
    /// Reactions by username.
    pub(crate) reactions: BTreeMap<String, String>,
}

/// Our outbound Sender Key session of a group, serialised, and the member
/// devices (`user.device`) holding it.
pub(crate) type Outbound = (Vec<u8>, BTreeSet<String>);

/// Whose inbound Sender Key session: (group, member, device).
pub(crate) type InboundKey = (Vec<u8>, String, u32);

/// One destination of an unidentified send, with its access key.
pub(crate) type Unidentified = (AccountEnvelopes, [u8; 16]);

/// A sender key as first given to a holder, and when.
pub(crate) type GivenKey = (Vec<u8>, i64);

/// A device's store and its server, in memory.
#[derive(Default)]
pub(crate) struct Memory {
    pub(crate) saved: RefCell<Option<Vec<u8>>>,
    pub(crate) identities: RefCell<BTreeMap<String, Vec<(u32, IdentityKey)>>>,
    /// Held keys that raised a warning and may not vouch (until verified).
    pub(crate) no_vouch: RefCell<BTreeSet<(String, u32)>>,
    pub(crate) contacts: RefCell<BTreeMap<String, ContactRecord>>,
    /// Accounts whose keys were ever observed.
    pub(crate) known: RefCell<BTreeSet<String>>,
    pub(crate) counts: Cell<(u32, u32)>,
    pub(crate) uploads: RefCell<Vec<KeyUpload>>,
    /// Fails the upload, as an unreachable server would.
    pub(crate) offline: Cell<bool>,
    /// Stored sessions, serialised, by (username, device).
    pub(crate) sessions: RefCell<BTreeMap<(String, u32), Vec<u8>>>,
    /// Device lists the server gives, by account (`[1]` when absent).
    pub(crate) devices: RefCell<BTreeMap<String, Vec<u32>>>,
    /// Bundles the server serves, by account.
    pub(crate) bundles: RefCell<BTreeMap<String, Vec<(u32, PreKeyBundle)>>>,
    /// Refusals the server answers the next sends with, in order.
    pub(crate) refusals: RefCell<Vec<BTreeMap<String, StaleLists>>>,
    /// Every send the server was asked for, refused or stored.
    pub(crate) sent: RefCell<Vec<Vec<AccountEnvelopes>>>,
    /// Ids of the envelopes processed.
    pub(crate) seen: RefCell<BTreeSet<Vec<u8>>>,
    /// Decrypted envelopes not yet applied, in the order staged.
    pub(crate) inbox: RefCell<Vec<InboxItem>>,
    /// Groups by id.
    pub(crate) groups: RefCell<BTreeMap<Vec<u8>, GroupRecord>>,
    /// Our outbound sessions, by group (only of groups we have).
    pub(crate) outbound: RefCell<BTreeMap<Vec<u8>, Outbound>>,
    /// Inbound sessions, serialised, by (group, member, device).
    pub(crate) inbound: RefCell<BTreeMap<InboundKey, Vec<u8>>>,
    /// Our keys as first given, by (group, holder): (distribution, when).
    pub(crate) given: RefCell<BTreeMap<(Vec<u8>, String), GivenKey>>,
    /// Group messages held for their sender keys, in the order held.
    pub(crate) held: RefCell<Vec<crate::records::HeldGroupMessage>>,
    /// The history, in the order recorded.
    pub(crate) messages: RefCell<Vec<StoredMessage>>,
    /// When a repair with each peer device last started.
    pub(crate) repairs: RefCell<BTreeMap<(String, u32), i64>>,
    /// Storage calls that fail (by method name) until taken out again.
    pub(crate) failing: RefCell<BTreeSet<&'static str>>,
    /// The trusted server keys and our sender certificate.
    pub(crate) sealed: RefCell<SealedRecord>,
    /// The server's certificate key.
    pub(crate) authority: Authority,
    /// Whom the server certifies (this device), once told.
    pub(crate) me: RefCell<Option<(String, u32, IdentityKey)>>,
    /// Contacts' profile keys.
    pub(crate) profile_keys: RefCell<BTreeMap<String, [u8; 32]>>,
    /// The account's access key on the server, once set.
    pub(crate) access_key: RefCell<Option<[u8; 16]>>,
    /// Every unidentified send the server was asked for.
    pub(crate) sent_unidentified: RefCell<Vec<Vec<Unidentified>>>,
    /// The server's transparency log.
    pub(crate) log: log::TestLog,
    /// The log's pins and newest verified root, once pinned.
    pub(crate) log_record: RefCell<Option<crate::transparency::LogRecord>>,
    /// The newest verified version of each account's log entry.
    pub(crate) log_versions: RefCell<BTreeMap<String, u64>>,
    /// How far the own account's history was checked.
    pub(crate) own_log: RefCell<Option<crate::transparency::OwnLogState>>,
    /// Every account whose newest version was asked for, in order.
    pub(crate) latest_asked: RefCell<Vec<String>>,
    /// What the server answers for any account's newest version, in place
    /// of the log's.
    pub(crate) latest_override: RefCell<Option<crate::transparency::ServedHistory>>,
    /// What the server answers for the own history, in place of the log's.
    pub(crate) history_override: RefCell<Option<crate::transparency::ServedHistory>>,
    /// Warnings added, (username, text), oldest first.
    pub(crate) warnings: RefCell<Vec<(String, String)>>,
}

impl Memory {
    /// Fails the storage call `method` until [`Self::recover`].
    pub(crate) fn fail(&self, method: &'static str) {
        self.failing.borrow_mut().insert(method);
    }

    /// Lets every storage call succeed again.
    pub(crate) fn recover(&self) {
        self.failing.borrow_mut().clear();
    }

    /// Refuses the call `method` when it was told to fail.
    fn check(&self, method: &'static str) -> Result<(), Fake> {
        if self.failing.borrow().contains(method) {
            Err(Fake)
        } else {
            Ok(())
        }
    }

    /// The recorded message with this id.
    pub(crate) fn message(&self, message_id: &[u8]) -> Option<StoredMessage> {
        self.messages
            .borrow()
            .iter()
            .find(|m| m.message.message_id == message_id)
            .cloned()
    }

    /// The bodies of a conversation's messages not deleted, oldest first.
    pub(crate) fn bodies(&self, conversation: &crate::Conversation) -> Vec<String> {
        self.messages
            .borrow()
            .iter()
            .filter(|m| m.message.conversation == *conversation && !m.deleted)
            .map(|m| m.message.body.clone())
            .collect()
    }
}
