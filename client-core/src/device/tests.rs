//! Tests of the [`Device`] engine end to end: several devices, each with
//! its own in-memory store, share one in-memory server, and what one sends
//! is what another's [`Device::process_envelope`] opens. Keys are real
//! (`starling-crypto`), randomness is seeded and the clock fixed, so every
//! run is the same.
//!
//! By concept: [`incoming`] (delivery, redelivery, crashes, unreadable
//! envelopes), [`repair`] (downgrades refused, repairs only on purpose), [`updates`] (edits, deletions, reactions,
//! receipts, replies, timers), [`groups`] (membership and Sender Keys) and
//! [`calls`] (call signalling) and [`sealed`] (sealed sender and the
//! certificates a receiver refuses).

mod calls;
mod groups;
mod incoming;
mod repair;
mod sealed;
mod updates;

use std::rc::Rc;

use prost::Message as _;
use rand::SeedableRng;
use rand::rngs::StdRng;
use starling_crypto::{IdentityKeyPair, PreKeyStore};
use starling_protocol::Username;
use starling_protocol::frames::Envelope;

use super::{Account, Device};
use crate::clock::FixedClock;
use crate::content::{self, Body, transport};
use crate::conversation::Conversation;
use crate::events::Event;
use crate::history::HistoryEntry;
use crate::testing::{Link, Memory, Server, run};

/// The time every device's clock says, in ms.
const NOW: i64 = 1_750_000_000_000;

type TestDevice = Device<Memory, Link, FixedClock, StdRng>;

/// The shared server, and the seed of the next device's randomness.
struct World {
    server: Rc<Server>,
    seed: u64,
}

impl World {
    fn new() -> Self {
        Self {
            server: Server::new(),
            seed: 0,
        }
    }

    /// A new device of `username`: registered with the server, its first
    /// prekeys stored and uploaded.
    fn device(&mut self, username: &str, device_id: u32) -> TestDevice {
        self.seed += 1;
        let mut rng = StdRng::seed_from_u64(self.seed);
        let identity = IdentityKeyPair::generate(&mut rng);
        self.server
            .register(username, device_id, identity.public().clone());
        let account = Account {
            username: username.to_owned(),
            device_id,
            identity,
            prekeys: PreKeyStore::new(),
        };
        let link = Link::new(&self.server, username, device_id);
        let mut device = Device::new(Memory::default(), link, FixedClock(NOW), rng, account);
        run(device.upload_initial_prekeys()).unwrap();
        device
    }

    /// A new device of `by`'s account that `by` linked: it carries `by`'s
    /// certificate (`crypto/SPEC.md` §2.5).
    fn linked_device(&mut self, by: &TestDevice, device_id: u32) -> TestDevice {
        let username = by.username().to_owned();
        let device = self.device(&username, device_id);
        let secret = starling_crypto::link::LinkSecret::generate(&mut rand::rngs::OsRng);
        let grant = by.link_grant(&secret);
        let endorsement = starling_crypto::link::endorse(&secret, device.account.identity.public());
        let certificate =
            starling_crypto::link::DeviceCertificate::new(by.device_id(), grant, endorsement);
        self.server
            .certify(&username, device_id, certificate.to_bytes());
        device
    }
}

/// Opens one envelope; a failure of the store or server is a test failure.
fn process(device: &mut TestDevice, envelope: &Envelope) -> Vec<Event> {
    run(device.process_envelope(envelope)).unwrap()
}

/// Opens every envelope waiting for `device`, in order.
fn receive(device: &mut TestDevice) -> Vec<Event> {
    let envelopes = take(device);
    envelopes
        .iter()
        .flat_map(|envelope| process(device, envelope))
        .collect()
}

/// Takes the envelopes waiting for `device`, to open them one by one.
fn take(device: &TestDevice) -> Vec<Envelope> {
    device.transport().take_mine()
}

/// A direct conversation with `name`.
fn direct(name: &str) -> Conversation {
    Conversation::Direct(Username::parse(name).unwrap())
}

fn text(body: &str) -> Body {
    Body::Text(content::Text {
        body: body.to_owned(),
    })
}

/// Sends a text; returns its message id.
fn say(device: &mut TestDevice, to: &Conversation, body: &str) -> Vec<u8> {
    run(device.send(to, text(body), None)).unwrap()
}

/// Events in a few words each, for comparing whole lists.
fn summary(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|event| match event {
            Event::Message(entry) => format!("message {}: {}", entry.sender, entry.body),
            Event::Updated { change, .. } => format!("updated {change}"),
            Event::GroupChanged {
                name,
                members,
                active,
                ..
            } => format!(
                "group {name} [{}]{}",
                members.join(" "),
                if *active { "" } else { " inactive" }
            ),
            Event::IdentityChanged { username } => format!("identity changed {username}"),
            Event::Call {
                sender,
                device,
                signal,
                ..
            } => format!("call {signal} from {sender}.{device}"),
            Event::SenderKeyRefused { sender, device, .. } => {
                format!("refused key from {sender}.{device}")
            }
            Event::CallKeyRefused {
                sender,
                device,
                epoch,
                reason,
                ..
            } => format!("call key {epoch} refused from {sender}.{device}: {reason}"),
            Event::SealedSenderRejected {
                claimed_sender,
                claimed_device,
                reason,
            } => format!("sealed sender {reason} from {claimed_sender}.{claimed_device}"),
            Event::DecryptionFailed { sender, device, .. } => {
                format!("unreadable from {sender}.{device}")
            }
            Event::WaitingForSenderKey { sender, device, .. } => {
                format!("waiting for key from {sender}.{device}")
            }
            Event::RepairRefused { sender, device, .. } => {
                format!("repair refused {sender}.{device}")
            }
            Event::SplitView {
                sender,
                device,
                epoch,
            } => format!("split view {epoch:?} from {sender}.{device}"),
        })
        .collect()
}

/// An envelope no session can open, "from" `sender`'s `device`.
fn garbage(n: u8, sender: &str, device: u32) -> Envelope {
    Envelope {
        id: vec![0xee, n, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        sender: sender.to_owned(),
        sender_device: device,
        server_timestamp: 0,
        content: content::Transport {
            body: Some(transport::Body::Pairwise(vec![7; 64])),
        }
        .encode_to_vec(),
    }
}

/// The one event, a new message.
fn only_message(events: &[Event]) -> &HistoryEntry {
    match events {
        [Event::Message(entry)] => entry,
        other => panic!("one message expected, got {:?}", summary(other)),
    }
}
