//! Direct messages, offline delivery, several devices per account, groups
//! with removal, identity changes and a tampered envelope — the real server
//! binary and library clients, on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sqlx::Connection;
use starling_client::{ClientError, Event};
use starling_e2e::{TestServer, texts};
use starling_test_support::{DbKind, both_databases};

async fn direct_messages_both_ways_and_in_order_after_being_offline(db: DbKind) {
    let server = TestServer::start(db).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    // Bob is offline while alice writes five messages.
    for i in 0..5 {
        alice
            .client
            .send_text("bob", &format!("message {i}"))
            .await
            .unwrap();
    }
    let received = bob.messages(5).await;
    let bodies: Vec<_> = received.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(
        bodies,
        [
            "message 0",
            "message 1",
            "message 2",
            "message 3",
            "message 4"
        ]
    );
    assert!(
        received
            .iter()
            .all(|m| m.sender == "alice" && m.conversation == "@alice")
    );
    bob.client.send_text("alice", "got them").await.unwrap();
    // Alice listens the way an app does: a stream of typed events.
    {
        use futures_util::StreamExt;
        let stream = alice.client.events().await.unwrap();
        let mut stream = std::pin::pin!(stream);
        let reply = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            loop {
                if let Event::Message(m) = stream.next().await.unwrap().unwrap() {
                    break m;
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(reply.body, "got them");
        assert_eq!(reply.conversation_name, "bob");
    }
    // Both histories agree.
    let a: Vec<_> = alice
        .client
        .history("bob", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect();
    let b: Vec<_> = bob
        .client
        .history("alice", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(a, b);
    assert_eq!(a.len(), 6);
    // Nothing is delivered twice.
    assert!(texts(&bob.drain().await).is_empty());
}
both_databases!(
    direct_messages,
    direct_messages_both_ways_and_in_order_after_being_offline
);

async fn both_devices_of_an_account_see_the_whole_conversation(db: DbKind) {
    let server = TestServer::start(db).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice
        .client
        .send_text("bob", "before linking")
        .await
        .unwrap();
    bob.messages(1).await;
    let code = alice.client.link_code().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let key = starling_e2e::test_key("alice-2");
    let laptop = starling_client::Client::link(home.path(), &key, &server.config(), &code)
        .await
        .unwrap();
    let mut laptop = starling_e2e::TestClient::new(laptop, home, key);
    assert_eq!(laptop.client.device_id(), 2);

    // Bob's client learns of the new device from the server's stale-device
    // refusal and resends to both, without Bob noticing.
    bob.client
        .send_text("alice", "to every device")
        .await
        .unwrap();
    assert_eq!(
        texts(&alice.events_until(|e| !texts(e).is_empty()).await),
        ["to every device"]
    );
    assert_eq!(
        texts(&laptop.events_until(|e| !texts(e).is_empty()).await),
        ["to every device"]
    );

    // What one of alice's devices sends shows on the other.
    alice
        .client
        .send_text("bob", "sent from the phone")
        .await
        .unwrap();
    let synced = laptop.messages(1).await;
    assert_eq!(synced[0].body, "sent from the phone");
    assert!(synced[0].outgoing);
    assert_eq!(synced[0].conversation, "@bob");
    // The phone vouched for the laptop it linked, so it is not warned of
    // it; the laptop, linked last, was not warned about the phone.
    let phone_warnings = alice.client.warnings().await.unwrap();
    assert!(
        !phone_warnings
            .iter()
            .any(|(_, t)| t.contains("new device (2) was linked")),
        "{phone_warnings:?}"
    );
    assert!(laptop.client.warnings().await.unwrap().is_empty());
    laptop
        .client
        .send_text("bob", "sent from the laptop")
        .await
        .unwrap();
    assert_eq!(alice.messages(1).await[0].body, "sent from the laptop");
    assert_eq!(
        texts(&bob.events_until(|e| texts(e).len() >= 2).await),
        ["sent from the phone", "sent from the laptop"]
    );
}
both_databases!(
    multi_device,
    both_devices_of_an_account_see_the_whole_conversation
);

async fn a_removed_group_member_can_read_nothing_sent_afterwards(db: DbKind) {
    let server = TestServer::start(db).await;
    let mut members = Vec::new();
    for name in ["ann", "ben", "cat", "dan", "eve"] {
        members.push(server.client(name).await);
    }
    let others: Vec<String> = ["ben", "cat", "dan", "eve"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    members[0]
        .client
        .create_group("project falcon", &others)
        .await
        .unwrap();
    for m in members.iter_mut().skip(1) {
        m.events_until(|e| e.iter().any(|e| matches!(e, Event::GroupChanged { .. })))
            .await;
    }
    members[1]
        .client
        .send_text("project falcon", "hello from ben")
        .await
        .unwrap();
    for (i, m) in members.iter_mut().enumerate() {
        if i != 1 {
            assert_eq!(
                texts(&m.events_until(|e| !texts(e).is_empty()).await),
                ["hello from ben"],
                "member {i}"
            );
        }
    }
    members[0]
        .client
        .remove_members("project falcon", &["eve".to_string()])
        .await
        .unwrap();
    let removed = members[4]
        .events_until(|e| {
            e.iter()
                .any(|e| matches!(e, Event::GroupChanged { active: false, .. }))
        })
        .await;
    assert!(
        removed
            .iter()
            .any(|e| matches!(e, Event::GroupChanged { active: false, .. }))
    );
    for m in members.iter_mut().take(4).skip(1) {
        m.events_until(|e| e.iter().any(|e| matches!(e, Event::GroupChanged { .. })))
            .await;
    }
    // Ben's client rotates its sender key because eve held it.
    members[1]
        .client
        .send_text("project falcon", "after eve left")
        .await
        .unwrap();
    for m in members.iter_mut().take(4).skip(2) {
        assert_eq!(
            texts(&m.events_until(|e| !texts(e).is_empty()).await),
            ["after eve left"]
        );
    }
    assert_eq!(members[0].messages(1).await[0].body, "after eve left");
    // Eve receives nothing she can read, and her client no longer sends there.
    let eve = members[4].drain().await;
    assert!(texts(&eve).is_empty(), "{eve:?}");
    let history = members[4]
        .client
        .history("project falcon", 100)
        .await
        .unwrap();
    assert!(history.iter().all(|m| m.body != "after eve left"));
    assert!(
        members[4]
            .client
            .send_text("project falcon", "still here?")
            .await
            .is_err()
    );
}
both_databases!(
    group_removal,
    a_removed_group_member_can_read_nothing_sent_afterwards
);

async fn a_new_identity_warns_and_blocks_a_verified_contact(db: DbKind) {
    let server = TestServer::start(db).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice.client.send_text("bob", "hi").await.unwrap();
    bob.messages(1).await;
    alice.client.verify("bob", None).await.unwrap();
    let before = alice.client.safety_number("bob").await.unwrap();
    assert!(before.verified && !before.identity_changed);

    // Bob "reinstalls": a new device with a new identity replaces the old
    // (linked as a manager, so that it may remove the old one), with a
    // code that lost its secret, so that no device of his vouches for it.
    let code = bob.client.manager_link_code().await.unwrap();
    let code = code.split_once('.').unwrap().0;
    let home = tempfile::tempdir().unwrap();
    let key = starling_e2e::test_key("bob-2");
    let mut new_bob = starling_client::Client::link(home.path(), &key, &server.config(), code)
        .await
        .unwrap();
    new_bob.remove_device(1).await.unwrap();
    // The old device is told why its WebSocket is refused.
    let refused = starling_client::connection::Connection::open(bob.client.api()).await;
    assert!(
        matches!(refused, Err(ClientError::DeviceRemoved)),
        "{:?}",
        refused.err()
    );

    let blocked = alice.client.send_text("bob", "are you still you?").await;
    assert!(
        matches!(blocked, Err(ClientError::UntrustedIdentity(ref u)) if u == "bob"),
        "{blocked:?}"
    );
    let warnings = alice.client.warnings().await.unwrap();
    assert!(
        warnings
            .iter()
            .any(|(u, text)| u == "bob" && text.contains("safety number changed")),
        "{warnings:?}"
    );
    let after = alice.client.safety_number("bob").await.unwrap();
    assert_ne!(before.display, after.display);
    assert!(after.identity_changed);

    // After comparing again, sending works and the warning is gone.
    alice
        .client
        .verify("bob", Some(&after.display))
        .await
        .unwrap();
    alice
        .client
        .send_text("bob", "verified again")
        .await
        .unwrap();
    assert!(alice.client.warnings().await.unwrap().is_empty());
    let _ = new_bob
        .receive(Some(std::time::Duration::from_secs(2)))
        .await
        .unwrap();
    assert!(
        new_bob
            .history("alice", 10)
            .await
            .unwrap()
            .iter()
            .any(|m| m.body == "verified again")
    );
}
both_databases!(
    identity_change,
    a_new_identity_warns_and_blocks_a_verified_contact
);

/// Flips one byte of every queued envelope's ciphertext, in the server's
/// own database (one query text: both accept `$N` placeholders).
macro_rules! flip_last_bytes {
    ($connection:ty, $url:expr) => {{
        let mut conn = <$connection>::connect($url).await.unwrap();
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as("SELECT seq, content FROM envelopes")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        for (seq, mut content) in rows.clone() {
            let last = content.len() - 1;
            content[last] ^= 0x01;
            sqlx::query("UPDATE envelopes SET content = $1 WHERE seq = $2")
                .bind(content)
                .bind(seq)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        rows.len()
    }};
}

/// Flips a byte of every queued envelope; returns how many there were.
async fn tamper_with_queued_envelopes(server: &TestServer, db: DbKind) -> usize {
    match db {
        DbKind::Sqlite => flip_last_bytes!(sqlx::SqliteConnection, server.database_url()),
        DbKind::Postgres => flip_last_bytes!(sqlx::PgConnection, server.database_url()),
    }
}

async fn a_tampered_envelope_is_reported_and_the_conversation_recovers(db: DbKind) {
    let server = TestServer::start(db).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice.client.send_text("bob", "first").await.unwrap();
    assert_eq!(bob.messages(1).await[0].body, "first");
    bob.client.send_text("alice", "reply").await.unwrap();
    alice.messages(1).await;

    alice
        .client
        .send_text("bob", "this one is tampered with")
        .await
        .unwrap();
    assert_eq!(tamper_with_queued_envelopes(&server, db).await, 1);
    let events = bob.drain().await;
    // Sealed, the altered envelope opens for nobody and names no sender.
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::DecryptionFailed { sender, .. } if sender.is_empty())),
        "{events:?}"
    );
    assert!(texts(&events).is_empty());

    // Alice's client takes the repair; the conversation goes on both ways.
    alice.drain().await;
    alice
        .client
        .send_text("bob", "after the repair")
        .await
        .unwrap();
    assert_eq!(bob.messages(1).await[0].body, "after the repair");
    bob.client.send_text("alice", "all good").await.unwrap();
    assert_eq!(alice.messages(1).await[0].body, "all good");
}
both_databases!(
    tampered_envelope,
    a_tampered_envelope_is_reported_and_the_conversation_recovers
);

async fn disappearing_messages_vanish_on_both_sides(db: DbKind) {
    let server = TestServer::start(db).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice
        .client
        .send_text("bob", "this one stays")
        .await
        .unwrap();
    bob.messages(1).await;
    alice.client.set_timer("bob", 2).await.unwrap();
    alice
        .client
        .send_text("bob", "this one disappears")
        .await
        .unwrap();
    let got = bob.messages(2).await;
    assert_eq!(got.last().unwrap().body, "this one disappears");
    // Bob's side now uses the timer too.
    bob.client
        .send_text("alice", "so does this reply")
        .await
        .unwrap();
    alice.messages(1).await;
    // The behaviour under test is time passing: the 2 s timer runs out
    // (the clients read the wall clock, which a test cannot move).
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    for side in [&alice, &bob] {
        side.client.delete_expired().await.unwrap();
        let history = side
            .client
            .history(
                if side.client.username() == "alice" {
                    "bob"
                } else {
                    "alice"
                },
                100,
            )
            .await
            .unwrap();
        let bodies: Vec<_> = history.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(bodies, ["this one stays"], "{}", side.client.username());
        assert!(
            side.client
                .search("disappears", None)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
both_databases!(disappearing, disappearing_messages_vanish_on_both_sides);

async fn prekeys_are_replenished_when_the_server_runs_low(db: DbKind) {
    let server = TestServer::start(db).await;
    let mut bob = server.client("bob").await;
    let initial = bob.client.api().key_count().await.unwrap();
    assert_eq!(initial.one_time as usize, starling_client::PREKEY_BATCH);
    // Others claim most of bob's one-time prekeys: five accounts, as one
    // account may claim only so many of another's.
    for name in ["ann", "ben", "cat", "dan", "eve"] {
        let other = server.client(name).await;
        for _ in 0..18 {
            other.client.api().bundles("bob", None).await.unwrap();
        }
    }
    let low = bob.client.api().key_count().await.unwrap();
    assert!(low.one_time < starling_client::PREKEY_LOW_WATER, "{low:?}");
    // Bob's client tops up as soon as it is online.
    bob.drain().await;
    let after = bob.client.api().key_count().await.unwrap();
    assert!(
        after.one_time >= starling_client::PREKEY_LOW_WATER + 90,
        "{after:?}"
    );
    assert!(
        after.kem >= starling_client::PREKEY_LOW_WATER + 90,
        "{after:?}"
    );
    // Sessions made from the old and new prekeys all work.
    let mut carol = server.client("carol").await;
    carol.client.send_text("bob", "fresh prekey").await.unwrap();
    assert_eq!(bob.messages(1).await[0].body, "fresh prekey");
}
both_databases!(
    prekey_replenish,
    prekeys_are_replenished_when_the_server_runs_low
);

async fn a_redelivery_after_a_crash_before_the_ack_is_shown_once(db: DbKind) {
    let server = TestServer::start(db).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice.client.send_text("bob", "exactly once").await.unwrap();
    // Bob's client stores the message, then "crashes" before acknowledging.
    let mut connection = starling_client::connection::Connection::open(bob.client.api())
        .await
        .unwrap();
    let envelope = loop {
        match connection.next_event().await.unwrap().unwrap() {
            starling_client::connection::ServerEvent::Envelope(envelope) => break envelope,
            _ => continue,
        }
    };
    let first = bob.client.process_envelope(envelope).await.unwrap();
    assert_eq!(texts(&first), ["exactly once"]);
    drop(connection);
    let (bob_home, key) = bob.close_into_home().await;
    // On restart the server delivers it again; it shows once, and the
    // session is intact.
    let client = starling_client::Client::open(bob_home.path(), &key)
        .await
        .unwrap();
    let mut bob = starling_e2e::TestClient::new(client, bob_home, key);
    assert!(texts(&bob.drain().await).is_empty());
    assert_eq!(bob.client.history("alice", 10).await.unwrap().len(), 1);
    alice
        .client
        .send_text("bob", "and the next one")
        .await
        .unwrap();
    assert_eq!(bob.messages(1).await[0].body, "and the next one");
}
both_databases!(
    redelivery,
    a_redelivery_after_a_crash_before_the_ack_is_shown_once
);
