//! Sealed sender end to end, on both databases: while bob and carol are
//! offline, alice writes to bob and to their group. Every queued envelope
//! row names no sender, is sealed, padded to a bucket and stamped with the
//! hour only; a 1-character and a 100-character message are stored at the
//! same length; alice's name and identity appear in no row and in no line
//! of the server's log; and bob still sees, after decryption, that alice
//! wrote, from the identity he verified.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rand::RngCore;
use sqlx::Connection;
use starling_client::Event;
use starling_crypto::padding::is_envelope_bucket;
use starling_crypto::sealed::is_sealed;
use starling_e2e::TestServer;
use starling_test_support::{DbKind, both_databases};

/// One queued envelope row, as the server stored it.
#[derive(Debug)]
struct Row {
    account_id: i64,
    sender: Option<String>,
    sender_device: Option<i64>,
    created_at: i64,
    content: Vec<u8>,
}

/// Every queued envelope row (one query text: both accept it).
macro_rules! envelope_rows {
    ($connection:ty, $url:expr, $names:expr) => {{
        let mut conn = <$connection>::connect($url).await.unwrap();
        let rows: Vec<(i64, Option<String>, Option<i64>, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT account_id, sender, CAST(sender_device AS BIGINT), created_at, content FROM envelopes ORDER BY seq",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let mut ids = Vec::new();
        for name in $names {
            let id: i64 = sqlx::query_scalar("SELECT id FROM accounts WHERE username = $1")
                .bind(name)
                .fetch_one(&mut conn)
                .await
                .unwrap();
            ids.push(id);
        }
        let rows: Vec<Row> = rows
            .into_iter()
            .map(|(account_id, sender, sender_device, created_at, content)| Row {
                account_id,
                sender,
                sender_device,
                created_at,
                content,
            })
            .collect();
        (rows, ids)
    }};
}

/// The queued rows and the account ids of `names`.
async fn queued(server: &TestServer, db: DbKind, names: [&str; 2]) -> (Vec<Row>, Vec<i64>) {
    match db {
        DbKind::Sqlite => envelope_rows!(sqlx::SqliteConnection, server.database_url(), names),
        DbKind::Postgres => envelope_rows!(sqlx::PgConnection, server.database_url(), names),
    }
}

/// A username no other text in the server's files could contain by chance.
fn random_name(prefix: char) -> String {
    let mut bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn rows_name_no_sender_and_bob_still_knows_it_was_alice(db: DbKind) {
    let server = TestServer::start(db).await;
    let (a, b, c) = (random_name('a'), random_name('b'), random_name('c'));
    let mut alice = server.client(&a).await;
    let mut bob = server.client(&b).await;
    let mut carol = server.client(&c).await;

    alice.client.send_text(&b, "hello").await.unwrap();
    bob.messages(1).await;
    bob.client.send_text(&a, "hi").await.unwrap();
    alice.messages(1).await;
    alice.client.verify(&b, None).await.unwrap();
    bob.client.verify(&a, None).await.unwrap();
    let group = format!("g{}", &c[1..9]);
    alice
        .client
        .create_group(&group, &[b.clone(), c.clone()])
        .await
        .unwrap();
    for member in [&mut bob, &mut carol] {
        member
            .events_until(|e| e.iter().any(|e| matches!(e, Event::GroupChanged { .. })))
            .await;
    }
    // Bob and carol are offline from here on.
    alice.client.send_text(&b, "x").await.unwrap();
    alice.client.send_text(&b, &"y".repeat(100)).await.unwrap();
    alice
        .client
        .send_text(&format!("#{group}"), "to the group")
        .await
        .unwrap();

    // Bob shared his profile key in his reply: alice's texts to him and
    // her group message's copy for him went without her credential.
    let metrics = server.metrics().await;
    let unidentified = metric(&metrics, "starling_sends_unidentified_total");
    assert!(unidentified >= 3.0, "{metrics}");

    let (rows, ids) = queued(&server, db, [&a, &b]).await;
    let (alice_id, bob_id) = (ids[0], ids[1]);
    assert!(rows.len() >= 4, "{} rows", rows.len());
    for row in &rows {
        assert_eq!(row.sender, None, "{row:?}");
        assert_eq!(row.sender_device, None, "{row:?}");
        assert!(is_sealed(&row.content), "{row:?}");
        assert!(is_envelope_bucket(row.content.len() as u64), "{row:?}");
        assert_eq!(row.created_at % 3_600_000, 0, "{row:?}");
        assert_ne!(row.account_id, alice_id);
        assert!(!contains(&row.content, a.as_bytes()));
        assert!(!contains(
            &row.content,
            hex::encode(a.as_bytes()).as_bytes()
        ));
    }
    // Bob's rows (both texts, and the group's) are ratchet and Sender Key
    // messages: all in the smallest bucket, whatever the text's length.
    let lengths: std::collections::BTreeSet<usize> = rows
        .iter()
        .filter(|r| r.account_id == bob_id)
        .map(|r| r.content.len())
        .collect();
    assert_eq!(
        lengths.into_iter().collect::<Vec<_>>(),
        [1024],
        "a 1-character and a 100-character message are stored alike"
    );
    let log = std::fs::read(&server.log_path).unwrap();
    for form in [a.clone(), format!("{a}:1"), hex::encode(a.as_bytes())] {
        assert!(
            !contains(&log, form.as_bytes()),
            "the log names alice as {form}"
        );
    }
    // Nor any client's address: the only addresses in the info log are
    // the server's own (where it listens, and its in-process relay's
    // media sockets).
    let log = String::from_utf8_lossy(&log);
    let own = |l: &&str| l.contains("listening on") || l.starts_with("media relay:");
    for line in log.lines().filter(|l| !own(l)) {
        assert!(!line.contains("127.0.0.1"), "the log names a peer: {line}");
    }

    // Bob comes back: alice wrote, from the identity he verified.
    let events = bob
        .events_until(|e| {
            e.iter()
                .filter(|e| matches!(e, Event::Message(m) if m.sender == a))
                .count()
                >= 3
        })
        .await;
    let from_alice: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) if m.sender == a => Some(m.body.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(from_alice.len(), 3, "{events:?}");
    assert!(from_alice.contains(&"x"));
    assert!(from_alice.contains(&"to the group"));
    assert!(
        !events.iter().any(|e| matches!(
            e,
            Event::IdentityChanged { .. } | Event::SealedSenderRejected { .. }
        )),
        "{events:?}"
    );
    assert!(bob.client.safety_number(&a).await.unwrap().verified);

    let audit = server.server_command(&["audit"]);
    assert!(audit.contains(", 0 unsealed"), "{audit}");
}
both_databases!(
    sealed_rows,
    rows_name_no_sender_and_bob_still_knows_it_was_alice
);

/// A metric's value, 0 when absent.
fn metric(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A group message to members who have not written back goes as one
/// multi-recipient upload (one seal, each device its own copy on the
/// server), and every member reads it as alice's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_message_is_uploaded_once() {
    let server = TestServer::start(DbKind::Sqlite).await;
    let (a, b, c) = (random_name('a'), random_name('b'), random_name('c'));
    let mut alice = server.client(&a).await;
    let mut bob = server.client(&b).await;
    let mut carol = server.client(&c).await;
    let group = format!("g{}", &c[1..9]);
    alice
        .client
        .create_group(&group, &[b.clone(), c.clone()])
        .await
        .unwrap();
    let name = "starling_sends_multi_recipient_total";
    let before = metric(&server.metrics().await, name);
    alice
        .client
        .send_text(&format!("#{group}"), "once for all")
        .await
        .unwrap();
    let after = metric(&server.metrics().await, name);
    assert_eq!(after, before + 1.0, "one upload for the group message");
    for member in [&mut bob, &mut carol] {
        let events = member
            .events_until(|e| {
                e.iter()
                    .any(|e| matches!(e, Event::Message(m) if m.body == "once for all"))
            })
            .await;
        assert!(
            events.iter().any(
                |e| matches!(e, Event::Message(m) if m.sender == a && m.body == "once for all")
            ),
            "{events:?}"
        );
    }
}
