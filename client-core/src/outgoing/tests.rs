//! Tests of the pairwise outgoing path against the in-memory store and
//! server: sessions from bundles, one envelope per device, the copy to our
//! own other devices, and the stale-device answer.

use std::collections::BTreeMap;

use prost::Message as _;
use rand::rngs::OsRng;
use starling_crypto::ratchet::{CiphertextMessage, PeerSessions};
use starling_crypto::{IdentityKeyPair, PreKeyBundle, PreKeyStore};
use starling_protocol::api::StaleLists;

use super::{Outgoing, OutgoingError, OwnDevices};
use crate::clock::FixedClock;
use crate::content::{self, Content, transport};
use crate::sealed::Sealing;
use crate::testing::{Memory, run};
use crate::transport::AccountEnvelopes;

/// A device someone else holds: its keys, and the bundle its server serves.
struct Peer {
    identity: IdentityKeyPair,
    prekeys: PreKeyStore,
}

impl Peer {
    fn new() -> Self {
        let identity = IdentityKeyPair::generate(&mut OsRng);
        let mut prekeys = PreKeyStore::new();
        prekeys.generate_signed_prekey(&identity, 0, &mut OsRng);
        prekeys.generate_one_time_prekeys(1, &mut OsRng).unwrap();
        prekeys.generate_last_resort_kem_prekey(&identity, 0, &mut OsRng);
        Self { identity, prekeys }
    }

    fn bundle(&self) -> PreKeyBundle {
        self.prekeys.bundle(&self.identity).unwrap()
    }

    /// Opens an envelope meant for this device, sealed by alice under a
    /// certificate from `memory`'s server key.
    fn open(&mut self, memory: &Memory, envelope: &[u8]) -> Content {
        let certified = memory.authority.unseal(&self.identity, envelope);
        assert_eq!(certified.sender.username, "alice");
        let wrapped = content::Transport::decode(certified.inner.as_slice()).unwrap();
        let Some(transport::Body::Pairwise(bytes)) = wrapped.body else {
            panic!("not a pairwise envelope");
        };
        let message = CiphertextMessage::from_bytes(&bytes).unwrap();
        let decrypted = PeerSessions::new()
            .decrypt(&self.identity, &mut self.prekeys, &message, &mut OsRng)
            .unwrap();
        let mut content = Content::decode(decrypted.plaintext.as_slice()).unwrap();
        assert_eq!(
            content.profile_key.len(),
            32,
            "our profile key travels along"
        );
        content.profile_key.clear();
        content
    }
}

fn text(body: &str) -> Content {
    content::content_at(
        content::Body::Text(content::Text {
            body: body.to_owned(),
        }),
        1,
        &mut OsRng,
    )
}

/// Runs `f` with alice's device 1 sending through `memory`.
fn as_alice<V>(
    memory: &Memory,
    own_devices: &mut OwnDevices,
    f: impl AsyncFnOnce(&mut Outgoing<'_, Memory, Memory, FixedClock>) -> V,
) -> V {
    let identity = IdentityKeyPair::generate(&mut OsRng);
    *memory.me.borrow_mut() = Some(("alice".into(), 1, identity.public().clone()));
    let mut sealing = Sealing::default();
    let mut outgoing = Outgoing {
        storage: memory,
        transport: memory,
        clock: &FixedClock(crate::testing::SERVER_NOW),
        username: "alice",
        device_id: 1,
        identity: &identity,
        own_devices,
        sealing: &mut sealing,
    };
    run(f(&mut outgoing))
}

/// The envelopes of one send, by destination.
fn by_destination(memory: &Memory, send: usize) -> BTreeMap<String, Vec<(u32, Vec<u8>)>> {
    memory.sent.borrow()[send]
        .iter()
        .map(|a| (a.destination.clone(), a.envelopes.clone()))
        .collect()
}

#[test]
fn a_new_contact_gets_sessions_from_bundles_and_an_envelope_per_device() {
    let memory = Memory::default();
    let mut bob = [Peer::new(), Peer::new()];
    memory.bundles.borrow_mut().insert(
        "bob".into(),
        vec![(1, bob[0].bundle()), (3, bob[1].bundle())],
    );
    let message = text("hello");
    as_alice(&memory, &mut OwnDevices::default(), async |o| {
        o.send_pairwise(&["bob".into()], &message, &mut OsRng).await
    })
    .unwrap();

    let known: Vec<u32> = memory.identities.borrow()["bob"]
        .iter()
        .map(|(d, _)| *d)
        .collect();
    assert_eq!(known, [1, 3]);
    assert_eq!(memory.sessions.borrow().len(), 2);
    assert_eq!(memory.sent.borrow().len(), 1);
    let sent = by_destination(&memory, 0);
    let envelopes = &sent["bob"];
    assert_eq!(
        envelopes.iter().map(|(d, _)| *d).collect::<Vec<_>>(),
        [1, 3]
    );
    for (peer, (_, envelope)) in bob.iter_mut().zip(envelopes) {
        assert_eq!(peer.open(&memory, envelope), message);
    }
}

#[test]
fn keys_the_transparency_log_does_not_hold_get_no_session_and_no_message() {
    let memory = Memory::default();
    let bob = Peer::new();
    memory
        .bundles
        .borrow_mut()
        .insert("bob".into(), vec![(1, bob.bundle())]);
    // The log holds bob's key; then the operator serves its own instead.
    run(crate::Transport::bundles(&memory, "bob", None)).unwrap();
    memory.log.frozen.set(true);
    let operator = Peer::new();
    memory
        .bundles
        .borrow_mut()
        .insert("bob".into(), vec![(1, operator.bundle())]);
    let result = as_alice(&memory, &mut OwnDevices::default(), async |o| {
        o.send_pairwise(&["bob".into()], &text("hi"), &mut OsRng)
            .await
    });
    let Err(OutgoingError::Transparency(error)) = result else {
        panic!("not refused: {result:?}");
    };
    assert_eq!(
        error.to_string(),
        "the keys the server sent for bob are not the ones in the transparency log"
    );
    assert!(
        memory.identities.borrow().get("bob").is_none(),
        "no key recorded"
    );
    assert!(memory.sessions.borrow().is_empty());
    assert!(memory.sent.borrow().is_empty());
}

#[test]
fn an_unknown_account_is_refused() {
    let memory = Memory::default();
    let result = as_alice(&memory, &mut OwnDevices::default(), async |o| {
        o.send_pairwise(&["nobody".into()], &text("hi"), &mut OsRng)
            .await
    });
    assert!(matches!(result, Err(OutgoingError::UnknownUser(u)) if u == "nobody"));
    assert!(memory.sent.borrow().is_empty());
}

#[test]
fn stale_lists_are_fixed_and_the_send_repeated() {
    let memory = Memory::default();
    let mut bob1 = Peer::new();
    let mut bob2 = Peer::new();
    memory
        .bundles
        .borrow_mut()
        .insert("bob".into(), vec![(1, bob1.bundle())]);
    let message = text("hello");
    let mut own_devices = OwnDevices::default();
    as_alice(&memory, &mut own_devices, async |o| {
        o.ensure_sessions("bob", &mut OsRng).await
    })
    .unwrap();
    // Bob linked device 2 and removed device 1 meanwhile.
    memory
        .bundles
        .borrow_mut()
        .insert("bob".into(), vec![(2, bob2.bundle())]);
    memory.refusals.borrow_mut().push(BTreeMap::from([(
        "bob".to_owned(),
        StaleLists {
            missing: vec![2],
            extra: vec![1],
        },
    )]));
    // What arrives carries alice's newest root of the log besides, as it
    // was when she wrote.
    let newest = memory.log_record.borrow().and_then(|r| r.newest).unwrap();
    as_alice(&memory, &mut own_devices, async |o| {
        o.send_pairwise(&["bob".into()], &message, &mut OsRng).await
    })
    .unwrap();

    let message = Content {
        log_root: newest.to_bytes(),
        ..message
    };
    assert_eq!(memory.sent.borrow().len(), 2);
    let refused = by_destination(&memory, 0);
    assert_eq!(refused["bob"].len(), 1);
    assert_eq!(refused["bob"][0].0, 1);
    assert_eq!(bob1.open(&memory, &refused["bob"][0].1), message);
    let stored = by_destination(&memory, 1);
    assert_eq!(stored["bob"].len(), 1);
    assert_eq!(stored["bob"][0].0, 2);
    assert_eq!(bob2.open(&memory, &stored["bob"][0].1), message);
}

#[test]
fn lists_that_keep_changing_give_up() {
    let memory = Memory::default();
    let bob = Peer::new();
    memory
        .bundles
        .borrow_mut()
        .insert("bob".into(), vec![(1, bob.bundle())]);
    for _ in 0..super::STALE_RETRIES {
        memory
            .refusals
            .borrow_mut()
            .push(BTreeMap::from([("bob".to_owned(), StaleLists::default())]));
    }
    let result = as_alice(&memory, &mut OwnDevices::default(), async |o| {
        o.send_pairwise(&["bob".into()], &text("hi"), &mut OsRng)
            .await
    });
    assert!(matches!(
        result,
        Err(OutgoingError::DeviceListsKeptChanging)
    ));
    assert_eq!(memory.sent.borrow().len(), super::STALE_RETRIES);
}

#[test]
fn the_copy_goes_to_our_other_devices_never_this_one() {
    let memory = Memory::default();
    let mut bob = Peer::new();
    let mut alice2 = Peer::new();
    let mut alice3 = Peer::new();
    memory
        .bundles
        .borrow_mut()
        .insert("bob".into(), vec![(1, bob.bundle())]);
    memory.bundles.borrow_mut().insert(
        "alice".into(),
        vec![(2, alice2.bundle()), (3, alice3.bundle())],
    );
    memory
        .devices
        .borrow_mut()
        .insert("alice".into(), vec![1, 2, 3]);
    let message = text("hello");
    as_alice(&memory, &mut OwnDevices::default(), async |o| {
        o.send_pairwise(&["bob".into(), "alice".into()], &message, &mut OsRng)
            .await
    })
    .unwrap();

    let sent = by_destination(&memory, 0);
    assert_eq!(bob.open(&memory, &sent["bob"][0].1), message);
    let own = &sent["alice"];
    assert_eq!(own.iter().map(|(d, _)| *d).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(alice2.open(&memory, &own[0].1), message);
    assert_eq!(alice3.open(&memory, &own[1].1), message);
    assert!(
        !memory
            .sessions
            .borrow()
            .contains_key(&("alice".to_owned(), 1))
    );
}

#[test]
fn the_own_device_list_is_kept_for_a_minute() {
    let mut own = OwnDevices {
        listed: Some((1_000, vec![1, 2])),
    };
    assert_eq!(own.fresh(1_000), Some(&[1, 2][..]));
    assert_eq!(
        own.fresh(1_000 + super::OWN_DEVICES_MAX_AGE_MILLIS - 1),
        Some(&[1, 2][..])
    );
    assert_eq!(own.fresh(1_000 + super::OWN_DEVICES_MAX_AGE_MILLIS), None);
    assert_eq!(own.fresh(999), None);
    own.forget();
    assert_eq!(own.fresh(1_000), None);
}

#[test]
fn a_verified_contact_served_new_keys_mid_send_gets_nothing() {
    let memory = Memory::default();
    let mut bob = Peer::new();
    memory
        .bundles
        .borrow_mut()
        .insert("bob".into(), vec![(1, bob.bundle())]);
    let mut own = OwnDevices::default();
    let first = text("first");
    as_alice(&memory, &mut own, async |o| {
        o.send_pairwise(&["bob".into()], &first, &mut OsRng).await
    })
    .unwrap();
    assert_eq!(
        bob.open(&memory, &by_destination(&memory, 0)["bob"][0].1),
        first
    );
    run(crate::storage::Storage::set_verified(&memory, "bob")).unwrap();

    // The server says bob's device is gone, then serves its own key for
    // him: the new key is met while setting up, and nothing is sent.
    let mallory = Peer::new();
    memory
        .bundles
        .borrow_mut()
        .insert("bob".into(), vec![(1, mallory.bundle())]);
    memory.refusals.borrow_mut().push(BTreeMap::from([(
        "bob".to_owned(),
        StaleLists {
            missing: vec![],
            extra: vec![1],
        },
    )]));
    let result = as_alice(&memory, &mut own, async |o| {
        o.send_pairwise(&["bob".into()], &text("secret"), &mut OsRng)
            .await
    });
    assert!(matches!(result, Err(OutgoingError::Trust(_))), "{result:?}");
    // The refused attempt (to bob's old session) and nothing after it.
    assert_eq!(memory.sent.borrow().len(), 2);
}

#[test]
fn corrections_for_other_accounts_or_this_device_are_ignored() {
    let memory = Memory::default();
    let bob = Peer::new();
    let carol = Peer::new();
    memory.bundles.borrow_mut().extend([
        ("bob".to_owned(), vec![(1, bob.bundle())]),
        ("carol".to_owned(), vec![(1, carol.bundle())]),
    ]);
    let mut own = OwnDevices::default();
    as_alice(&memory, &mut own, async |o| {
        o.send_pairwise(&["carol".into()], &text("hi"), &mut OsRng)
            .await
    })
    .unwrap();
    // A send to bob answered with corrections for carol and for this
    // very device (alice's 1).
    memory.refusals.borrow_mut().push(BTreeMap::from([
        (
            "carol".to_owned(),
            StaleLists {
                missing: vec![],
                extra: vec![1],
            },
        ),
        (
            "alice".to_owned(),
            StaleLists {
                missing: vec![1],
                extra: vec![],
            },
        ),
    ]));
    as_alice(&memory, &mut own, async |o| {
        o.send_pairwise(&["bob".into()], &text("hello"), &mut OsRng)
            .await
    })
    .unwrap();
    assert_eq!(memory.identities.borrow()["carol"].len(), 1);
    assert!(!memory.identities.borrow().contains_key("alice"));
    assert!(
        memory
            .sessions
            .borrow()
            .contains_key(&("carol".to_owned(), 1))
    );
}

#[test]
fn unidentified_and_authenticated_requests_share_no_sealed_bytes() {
    let memory = Memory::default();
    let bob = IdentityKeyPair::generate(&mut OsRng);
    let alice2 = IdentityKeyPair::generate(&mut OsRng);
    memory
        .identities
        .borrow_mut()
        .insert("bob".into(), vec![(1, bob.public().clone())]);
    memory
        .identities
        .borrow_mut()
        .insert("alice".into(), vec![(2, alice2.public().clone())]);
    memory
        .profile_keys
        .borrow_mut()
        .insert("bob".into(), [5; 32]);
    // One group ciphertext for bob's device and our other device.
    let inner = vec![0x12, 3, 1, 2, 3];
    let sends = [
        AccountEnvelopes {
            destination: "bob".into(),
            envelopes: vec![(1, inner.clone())],
        },
        AccountEnvelopes {
            destination: "alice".into(),
            envelopes: vec![(2, inner)],
        },
    ];
    let stored = as_alice(&memory, &mut OwnDevices::default(), async |o| {
        let mut stored = std::collections::BTreeSet::new();
        o.send_or_fix(&sends, &mut stored, &mut OsRng)
            .await
            .unwrap();
        stored
    });
    assert_eq!(stored.len(), 2);
    let unidentified = memory.sent_unidentified.borrow()[0][0].0.envelopes[0]
        .1
        .clone();
    let authenticated = memory.sent.borrow()[0][0].envelopes[0].1.clone();
    assert_eq!(memory.sent.borrow()[0][0].destination, "alice");
    // Sealed apart: no run of the shared ciphertext links the two.
    let tail = &unidentified[unidentified.len() - 64..];
    assert!(!authenticated.windows(64).any(|w| w == tail));
    let ephemeral = &unidentified[1..33];
    assert!(!authenticated.windows(32).any(|w| w == ephemeral));
}
