//! The real clients against a server that misbehaves on purpose (a proxy
//! in front of the real server, `starling_e2e::MaliciousServer`): each
//! test has it do one thing a compromised operator could, and checks that
//! the clients refuse, warn the user, or are unaffected — never silently
//! degrade.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::Ordering;

use starling_client::Event;
use starling_e2e::{MaliciousServer, texts};
use starling_test_support::{DbKind, both_databases};

/// Every text bob receives within the wait, in order.
async fn texts_received(bob: &mut starling_e2e::TestClient, count: usize) -> Vec<String> {
    let events = bob
        .events_until(|events| starling_e2e::message_count(events) >= count)
        .await;
    texts(&events)
}

async fn duplicated_envelopes(db: DbKind) {
    let evil = MaliciousServer::start(db).await;
    let mut alice = evil.client("alice").await;
    let mut bob = evil.client("bob").await;
    evil.tamper
        .duplicate_envelopes
        .store(true, Ordering::Relaxed);
    for i in 0..3 {
        alice
            .client
            .send_text("bob", &format!("once {i}"))
            .await
            .unwrap();
    }
    // Each envelope arrives twice; each message is shown once, and no
    // duplicate is reported as a failure.
    let events = bob
        .events_until(|events| starling_e2e::message_count(events) >= 3)
        .await;
    let more = bob.events_until(|_| false).await;
    assert_eq!(texts(&events), ["once 0", "once 1", "once 2"]);
    assert!(evil.tamper.duplicated.load(Ordering::Relaxed) >= 3);
    assert!(
        texts(&more).is_empty(),
        "a duplicate was shown again: {:?}",
        texts(&more)
    );
    assert!(
        !events
            .iter()
            .chain(&more)
            .any(|e| matches!(e, Event::DecryptionFailed { .. })),
        "a duplicate was reported as undecryptable"
    );
    // The session still works both ways.
    bob.client.send_text("alice", "still here").await.unwrap();
    assert_eq!(texts_received(&mut alice, 1).await, ["still here"]);
}
both_databases!(duplicated_envelopes_are_shown_once, duplicated_envelopes);

async fn dropped_envelopes(db: DbKind) {
    let evil = MaliciousServer::start(db).await;
    let mut alice = evil.client("alice").await;
    let mut bob = evil.client("bob").await;
    // The proxy swallows the first two envelopes bob's connection is
    // sent; the server still holds them (bob never acknowledged them), so
    // a later connection gets them: nothing is lost, nothing reordered.
    evil.tamper.drop_next("bob:1", 2);
    for i in 0..3 {
        alice
            .client
            .send_text("bob", &format!("kept {i}"))
            .await
            .unwrap();
    }
    let mut received = Vec::new();
    for _ in 0..4 {
        received.extend(texts_received(&mut bob, 3 - received.len()).await);
        if received.len() >= 3 {
            break;
        }
    }
    let mut sorted = received.clone();
    sorted.sort();
    assert_eq!(sorted, ["kept 0", "kept 1", "kept 2"], "{received:?}");
    assert_eq!(evil.tamper.dropped.load(Ordering::Relaxed), 2);
    bob.client.send_text("alice", "all there").await.unwrap();
    assert_eq!(texts_received(&mut alice, 1).await, ["all there"]);
}
both_databases!(
    dropped_envelopes_arrive_on_a_later_connection,
    dropped_envelopes
);

async fn stripped_kem_prekeys(db: DbKind) {
    let evil = MaliciousServer::start(db).await;
    let mut alice = evil.client("alice").await;
    let mut bob = evil.client("bob").await;
    evil.tamper.strip_kem_prekeys.store(true, Ordering::Relaxed);
    // A first message would set up a session from the stripped bundle:
    // refused, with an error that names the likely cause.
    let refused = alice.client.send_text("bob", "classical?").await;
    let error = refused.expect_err("a bundle without a KEM prekey was used");
    let text = error.to_string();
    assert!(
        text.contains("ML-KEM") && text.contains("downgrade"),
        "{text}"
    );
    assert!(evil.tamper.delivered("bob:1").is_empty());
    // Whole bundles again: the session is set up (post-quantum) and works.
    evil.tamper
        .strip_kem_prekeys
        .store(false, Ordering::Relaxed);
    alice.client.send_text("bob", "quantum").await.unwrap();
    assert_eq!(texts_received(&mut bob, 1).await, ["quantum"]);
}
both_databases!(stripped_kem_prekeys_are_refused, stripped_kem_prekeys);

/// Alice and bob after one message each way.
async fn talking(evil: &MaliciousServer) -> (starling_e2e::TestClient, starling_e2e::TestClient) {
    let mut alice = evil.client("alice").await;
    let mut bob = evil.client("bob").await;
    alice.client.send_text("bob", "hello").await.unwrap();
    assert_eq!(texts_received(&mut bob, 1).await, ["hello"]);
    bob.client.send_text("alice", "hi").await.unwrap();
    assert_eq!(texts_received(&mut alice, 1).await, ["hi"]);
    (alice, bob)
}

/// Checks that nothing reached alice since `before` envelopes (no repair,
/// no reset), and that the sessions still carry messages both ways.
async fn unaffected(
    evil: &MaliciousServer,
    alice: &mut starling_e2e::TestClient,
    bob: &mut starling_e2e::TestClient,
    before: usize,
) {
    assert_eq!(
        evil.tamper.delivered("alice:1").len(),
        before,
        "bob sent alice something: a session repair the server caused"
    );
    alice.client.send_text("bob", "still one").await.unwrap();
    assert_eq!(texts_received(bob, 1).await, ["still one"]);
    bob.client.send_text("alice", "still two").await.unwrap();
    assert_eq!(texts_received(alice, 1).await, ["still two"]);
}

async fn replayed_envelopes(db: DbKind) {
    let evil = MaliciousServer::start(db).await;
    let (mut alice, mut bob) = talking(&evil).await;
    let before = evil.tamper.delivered("alice:1").len();
    // The server delivers alice's first message again, under a new id:
    // bob cannot read it twice, says so, and starts no new session.
    let first = evil.tamper.delivered("bob:1")[0].clone();
    evil.tamper.replay("bob:1", &first);
    let events = bob
        .events_until(|events| {
            events
                .iter()
                .any(|e| matches!(e, Event::DecryptionFailed { .. }))
        })
        .await;
    assert!(texts(&events).is_empty(), "a replay was shown: {events:?}");
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::DecryptionFailed { sender, .. } if sender == "alice"
        )),
        "the replay was not reported: {events:?}"
    );
    unaffected(&evil, &mut alice, &mut bob, before).await;
}
both_databases!(replayed_envelopes_change_no_session, replayed_envelopes);

async fn spoofed_garbage(db: DbKind) {
    let evil = MaliciousServer::start(db).await;
    let (mut alice, mut bob) = talking(&evil).await;
    let before = evil.tamper.delivered("alice:1").len();
    for _ in 0..3 {
        evil.tamper.inject_garbage("bob:1", "alice", 1);
    }
    let events = bob
        .events_until(|events| {
            events
                .iter()
                .filter(|e| matches!(e, Event::DecryptionFailed { .. }))
                .count()
                >= 3
        })
        .await;
    assert!(texts(&events).is_empty(), "{events:?}");
    unaffected(&evil, &mut alice, &mut bob, before).await;
}
both_databases!(
    garbage_under_a_spoofed_sender_changes_no_session,
    spoofed_garbage
);

async fn another_devices_keys(db: DbKind) {
    let evil = MaliciousServer::start(db).await;
    let (mut alice, mut bob) = talking(&evil).await;
    let mut carol = evil.client("carol").await;
    alice.client.send_text("carol", "hi carol").await.unwrap();
    assert_eq!(texts_received(&mut carol, 1).await, ["hi carol"]);
    alice.client.verify("bob", None).await.unwrap();
    // From now on the server answers for bob's keys with carol's (and
    // carol's proof from the transparency log). Alice resets her session
    // with bob: the log does not hold those keys for bob, so nothing is
    // sent and nothing of them is recorded.
    let carols = evil.tamper.bundles_served("carol").unwrap();
    evil.tamper.serve_bundles_for("bob", carols);
    let to_bob = evil.tamper.delivered("bob:1").len();
    let refusal = "the keys the server sent for bob are not the ones in the transparency log";
    let refused = alice.client.reset_session("bob", false).await;
    let error = refused.map_err(|e| e.to_string()).unwrap_err();
    assert!(
        error.starts_with(refusal),
        "a contact's swapped keys were used: {error}"
    );
    assert_eq!(evil.tamper.delivered("bob:1").len(), to_bob);
    assert!(carol.events_until(|_| false).await.is_empty());
    let bobs = alice.client.store().identity_keys("bob").await.unwrap();
    assert_eq!(bobs.len(), 1, "only bob's own key stays recorded");
    assert!(alice.client.safety_number("bob").await.unwrap().verified);
    // The session with bob's own keys still stands: a message goes to
    // bob, and only to him.
    alice.client.send_text("bob", "still bob").await.unwrap();
    assert_eq!(texts_received(&mut bob, 1).await, ["still bob"]);
    assert!(carol.events_until(|_| false).await.is_empty());
    // Closed before the runtime ends, so no store is torn down mid-write.
    for person in [alice, bob, carol] {
        person.client.close().await;
    }
}
both_databases!(another_devices_keys_are_refused, another_devices_keys);

async fn stale_device_lists(db: DbKind) {
    let evil = MaliciousServer::start(db).await;
    let (mut alice, mut bob) = talking(&evil).await;
    let before = evil.tamper.delivered("alice:1").len();
    let bundles_before = evil.tamper.bundles_served("bob");
    // The server claims alice's send lacked bob's device 1, which it did
    // not: alice keeps her session (no bundle fetched) and sends again.
    evil.tamper.claim_missing_once("bob", &[1]);
    alice.client.send_text("bob", "one more").await.unwrap();
    assert_eq!(texts_received(&mut bob, 1).await, ["one more"]);
    assert_eq!(
        evil.tamper.bundles_served("bob"),
        bundles_before,
        "a made-up stale list made alice fetch a new bundle"
    );
    unaffected(&evil, &mut alice, &mut bob, before).await;
}
both_databases!(
    made_up_stale_device_lists_restart_nothing,
    stale_device_lists
);

/// The server holds back every envelope for bob during a group call while
/// carol joins and leaves, then delivers them last first, and replays
/// everything bob was ever sent: bob takes the newest call epoch, refuses
/// the older one that arrives after it, and no replay moves him to an
/// epoch he already left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reordered_and_replayed_call_keys_never_take_a_callee_back() {
    use std::time::Duration;

    use starling_client::CallOptions;
    use starling_e2e::{TestRelay, wait_for_participants};

    let (server, relay) = TestRelay::start(DbKind::Sqlite).await;
    let evil = MaliciousServer::in_front_of(server).await;
    let mut alice = evil.client("alice").await;
    let mut bob = evil.client("bob").await;
    let mut carol = evil.client("carol").await;
    let others = ["bob".to_owned(), "carol".to_owned()];
    alice.client.create_group("standup", &others).await.unwrap();
    for member in [&mut bob, &mut carol] {
        member
            .events_until(|e| e.iter().any(|e| matches!(e, Event::GroupChanged { .. })))
            .await;
    }
    let options = |secs| CallOptions {
        duration: Duration::from_secs(secs),
        video: false,
    };
    let answering = tokio::spawn(async move {
        let report = bob
            .client
            .answer_call(Duration::from_secs(30), options(14))
            .await
            .unwrap();
        (bob, report)
    });
    let tamper = evil.tamper.clone();
    let relay_url = relay.url.clone();
    let late = tokio::spawn(async move {
        wait_for_participants(&relay_url, Duration::from_secs(30), 2).await;
        // From here on bob is sent nothing: not carol's join epoch, not
        // her media key, not the epoch made when she leaves.
        tamper.hold("bob:1");
        let report = carol
            .client
            .answer_call(Duration::from_secs(30), options(3))
            .await
            .unwrap();
        // Her leave's epoch reaches the server; then bob gets it all,
        // newest first, and afterwards every envelope again.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let held = tamper.release_reversed("bob:1");
        tokio::time::sleep(Duration::from_secs(1)).await;
        for envelope in tamper.delivered("bob:1") {
            tamper.replay("bob:1", &envelope);
        }
        (report, held)
    });
    let caller = alice
        .client
        .place_call("#standup", options(18))
        .await
        .unwrap();
    let (carol, held) = late.await.unwrap();
    let (_bob, callee) = answering.await.unwrap();
    assert!(held >= 2, "held {held}");
    let carols_epoch = carol.epochs[0];
    // Bob's epochs only ever went up, never through carol's, and end at
    // the one made when she left (bob's own leave makes the caller's last).
    assert!(
        callee.epochs.windows(2).all(|pair| pair[0] < pair[1]),
        "{callee:?}"
    );
    assert!(
        !callee.epochs.contains(&carols_epoch),
        "{callee:?} {carol:?}"
    );
    let after_carol = carol.epochs.last().unwrap() + 1;
    assert!(caller.epochs.contains(&after_carol), "{caller:?}");
    assert_eq!(
        callee.epochs.last(),
        Some(&after_carol),
        "{callee:?} {carol:?}"
    );
    // The older epoch, arriving after the newer, was refused and said so.
    assert!(callee.keys_refused >= 1, "{callee:?}");
    assert_eq!(callee.frames_corrupt, 0, "{callee:?}");
    assert!(callee.frames_received > 20, "{callee:?}");
}

/// Milliseconds since the Unix epoch.
fn now_millis() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    u64::try_from(since.as_millis()).unwrap()
}

/// A sealed envelope for bob's device 1 from a stranger's identity,
/// under `certificate` (which the stranger's identity must be bound to).
fn sealed_for_bob(
    evil: &MaliciousServer,
    sealer: &starling_crypto::IdentityKeyPair,
    certificate: &starling_crypto::sealed::SenderCertificate,
) -> starling_client::frames::Envelope {
    use base64::Engine;
    let served = evil.tamper.bundles_served("bob").unwrap();
    let bundle = served["devices"][0]["bundle"].as_str().unwrap();
    let bundle = base64::engine::general_purpose::STANDARD
        .decode(bundle)
        .unwrap();
    let bob = starling_crypto::PreKeyBundle::from_bytes(&bundle).unwrap();
    let content = starling_crypto::sealed::seal_single(
        sealer,
        bob.identity(),
        certificate,
        b"not a message anyone should read",
        &mut rand::rngs::OsRng,
    )
    .unwrap();
    let mut id = vec![0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
    let now = now_millis();
    starling_client::frames::Envelope {
        id,
        sender: String::new(),
        sender_device: 0,
        // The hour it was "accepted", as the server stamps it.
        server_timestamp: i64::try_from(now - now % 3_600_000).unwrap(),
        content,
    }
}

/// The operator forges sender certificates: one with a flipped signature
/// byte, one expired (signed with the server's own key, read from its
/// data folder), one signed by a key not in the chain bob pinned. Bob
/// refuses each with a `SealedSenderRejected` naming the reason, and his
/// sessions with alice carry messages both ways afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_sender_certificates_are_refused() {
    use starling_crypto::sealed::{SenderCertificate, ServerSigningKey};
    let evil = MaliciousServer::start(DbKind::Sqlite).await;
    let (mut alice, mut bob) = talking(&evil).await;
    let before = evil.tamper.delivered("alice:1").len();
    let key_file = evil.server.data_dir().join("sender-certificate-1.key");
    let server_key = ServerSigningKey::from_bytes(&std::fs::read(key_file).unwrap()).unwrap();
    let mallory = starling_crypto::IdentityKeyPair::generate(&mut rand::rngs::OsRng);
    let now = now_millis();
    let valid = |signer: &ServerSigningKey, expires_at: u64| {
        SenderCertificate::issue(signer, "alice", 1, mallory.public(), expires_at).unwrap()
    };
    let mut forged = valid(&server_key, now + 3_600_000).to_bytes();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let forged = SenderCertificate::from_bytes(&forged).unwrap();
    let expired = valid(&server_key, now - 2 * 3_600_000);
    // A key id the server's chain does not have (a fresh key with the
    // chain's own id 1 is a bad signature instead, also refused).
    let stranger = ServerSigningKey::generate(now, &mut rand::rngs::OsRng)
        .successor(now, &mut rand::rngs::OsRng)
        .unwrap();
    let unknown = valid(&stranger, now + 3_600_000);
    for (certificate, reason) in [
        (forged, "bad_signature"),
        (expired, "expired"),
        (unknown, "unknown_signer"),
    ] {
        evil.tamper
            .inject("bob:1", sealed_for_bob(&evil, &mallory, &certificate));
        let events = bob
            .events_until(|e| {
                e.iter()
                    .any(|e| matches!(e, Event::SealedSenderRejected { .. }))
            })
            .await;
        let refused: Vec<String> = events
            .iter()
            .filter_map(|e| match e {
                Event::SealedSenderRejected { reason, .. } => Some(reason.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(refused, [reason], "{events:?}");
        assert!(texts(&events).is_empty(), "{events:?}");
    }
    unaffected(&evil, &mut alice, &mut bob, before).await;
    for person in [alice, bob] {
        person.client.close().await;
    }
}
