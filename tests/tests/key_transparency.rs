//! Key transparency end to end, on both databases: an operator who copies
//! one account's published keys over another's in the database (so that
//! the server serves mallory's keys as bob's, valid signatures and all)
//! gets no message through: alice's client refuses bob's keys because the
//! transparency log holds the ones bob published, records nothing of them
//! and sends nothing. A device the operator adds to an account behind
//! its owner's back is in the log for everyone to encrypt to, so every
//! device of the owner finds it in its own history and warns. Two people
//! shown two different logs find out as soon as one writes to the other,
//! and both warn. And an auditor with no account (`starling
//! audit-log`) verifies the whole log, and names the epoch of a history
//! the operator rewrote.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use sqlx::Connection;
use starling_client::{Event, OwnLogChange};
use starling_e2e::{TestServer, message_count, workspace_binary};
use starling_test_support::{DbKind, both_databases};

/// The statements that move mallory's device 1 keys (identity and every
/// prekey) onto bob's device 1, as an operator with database access
/// would; both databases take the same text.
fn swap_statements(bob: i64, mallory: i64) -> Vec<String> {
    let mut statements = vec![format!(
        "UPDATE devices SET identity_key = \
         (SELECT identity_key FROM devices WHERE account_id = {mallory} AND device_id = 1) \
         WHERE account_id = {bob} AND device_id = 1"
    )];
    for (table, columns) in [
        ("signed_prekeys", "prekey"),
        ("one_time_prekeys", "key_id, prekey"),
        ("kem_prekeys", "key_id, last_resort, prekey"),
    ] {
        statements.push(format!("DELETE FROM {table} WHERE account_id = {bob}"));
        statements.push(format!(
            "INSERT INTO {table} (account_id, device_id, {columns}) \
             SELECT {bob}, device_id, {columns} FROM {table} \
             WHERE account_id = {mallory} AND device_id = 1"
        ));
    }
    statements
}

/// Runs, as an operator with database access would, the statements
/// `edit` makes of the account ids of `victim` and `source`.
macro_rules! operator_edit {
    ($connection:ty, $url:expr, $victim:expr, $source:expr, $edit:expr) => {{
        let mut conn = <$connection>::connect($url).await.unwrap();
        let mut ids = Vec::new();
        for name in [$victim, $source] {
            let id: i64 = sqlx::query_scalar("SELECT id FROM accounts WHERE username = $1")
                .bind(name)
                .fetch_one(&mut conn)
                .await
                .unwrap();
            ids.push(id);
        }
        for statement in $edit(ids[0], ids[1]) {
            sqlx::query(&statement).execute(&mut conn).await.unwrap();
        }
    }};
}

/// [`operator_edit`] on either database.
async fn operator_edit(
    server: &TestServer,
    db: DbKind,
    (victim, source): (&str, &str),
    edit: fn(i64, i64) -> Vec<String>,
) {
    let url = server.database_url();
    match db {
        DbKind::Sqlite => operator_edit!(sqlx::SqliteConnection, url, victim, source, edit),
        DbKind::Postgres => operator_edit!(sqlx::PgConnection, url, victim, source, edit),
    }
}

macro_rules! envelope_count {
    ($connection:ty, $url:expr) => {{
        let mut conn = <$connection>::connect($url).await.unwrap();
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM envelopes")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    }};
}

async fn envelopes(server: &TestServer, db: DbKind) -> i64 {
    match db {
        DbKind::Sqlite => envelope_count!(sqlx::SqliteConnection, server.database_url()),
        DbKind::Postgres => envelope_count!(sqlx::PgConnection, server.database_url()),
    }
}

async fn an_operators_key_swap_is_refused(db: DbKind) {
    let server = TestServer::start(db).await;
    let mut alice = server.client("alice").await;
    let _bob = server.client("bob").await;
    let mallory = server.client("mallory").await;
    let carol = server.client("carol").await;

    operator_edit(&server, db, ("bob", "mallory"), swap_statements).await;

    // The swap works on the server: bob's bundle now carries mallory's
    // identity key, with signatures that verify.
    let served = carol.client.api().bundles("bob", None).await.unwrap();
    let mallorys = mallory
        .client
        .store()
        .account()
        .await
        .unwrap()
        .identity
        .public()
        .public_bytes();
    assert_eq!(served.value.len(), 1);
    assert_eq!(served.value[0].1.identity().public_bytes(), mallorys);

    let error = alice
        .client
        .send_text("bob", "for bob only")
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the keys the server sent for bob are not the ones in the transparency log"
    );
    assert!(
        alice
            .client
            .store()
            .identity_keys("bob")
            .await
            .unwrap()
            .is_empty(),
        "nothing of the served keys is recorded"
    );
    assert_eq!(envelopes(&server, db).await, 0, "nothing was sent");

    // Keys the log holds still work, from the same client.
    alice.client.send_text("carol", "hello").await.unwrap();
}

both_databases!(operator_key_swap, an_operators_key_swap_is_refused);

/// Runs `starling --json audit-log` against `server`, with no home; its
/// exit status and the one JSON object it prints.
fn audit_log(server: &TestServer, extra: &[&str]) -> (bool, Value) {
    let config = server.config();
    let mut command = std::process::Command::new(workspace_binary("starling"));
    command
        .args(["--json", "audit-log", "--server", &config.url])
        .args(extra)
        .env_remove("STARLING_HOME")
        .env("HOME", "/nonexistent");
    if let Some(fingerprint) = &config.ca_fingerprint {
        command.args(["--ca-fingerprint", fingerprint]);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let object = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"));
    (output.status.success(), object)
}

macro_rules! rewrite_history {
    ($connection:ty, $url:expr) => {{
        let mut conn = <$connection>::connect($url).await.unwrap();
        // The operator replaces epoch 2's step with epoch 3's.
        sqlx::query(
            "UPDATE kt_audit SET proof = (SELECT proof FROM kt_audit WHERE epoch = 3) \
             WHERE epoch = 2",
        )
        .execute(&mut conn)
        .await
        .unwrap();
    }};
}

async fn an_auditor_catches_a_rewritten_history(db: DbKind) {
    let server = TestServer::start(db).await;
    for name in ["alice", "bob", "carol", "dave"] {
        let person = server.client(name).await;
        person.client.close().await;
    }
    let (ok, report) = audit_log(&server, &[]);
    assert!(ok, "{report}");
    assert_eq!(report["verified"], true);
    let latest = report["epoch"].as_u64().unwrap();
    assert!(latest >= 4, "one epoch per registration at least: {report}");
    assert_eq!(report["root"].as_str().unwrap().len(), 64);
    let (ok, from_three) = audit_log(&server, &["--from", "3"]);
    assert!(ok, "{from_three}");
    assert_eq!(from_three["epoch"], report["epoch"]);
    assert_eq!(from_three["root"], report["root"]);

    match db {
        DbKind::Sqlite => rewrite_history!(sqlx::SqliteConnection, server.database_url()),
        DbKind::Postgres => rewrite_history!(sqlx::PgConnection, server.database_url()),
    }
    let (ok, report) = audit_log(&server, &[]);
    assert!(!ok, "a rewritten history passed: {report}");
    assert_eq!(report["verified"], false);
    assert_eq!(report["epoch"], 2, "{report}");
    let (ok, after) = audit_log(&server, &["--from", "2"]);
    assert!(ok, "the steps after the rewritten one still hold: {after}");
}

both_databases!(rewritten_history, an_auditor_catches_a_rewritten_history);

/// The statements that give alice a device 9 with mallory's keys and
/// queue her account for the next epoch, as an operator with database
/// access would (the server then publishes it as it would a link).
fn plant_statements(alice: i64, mallory: i64) -> Vec<String> {
    vec![
        format!(
            "INSERT INTO devices (account_id, device_id, credential_hash, identity_key, created_at, manager) \
             SELECT {alice}, 9, credential_hash, identity_key, created_at, manager FROM devices \
             WHERE account_id = {mallory} AND device_id = 1"
        ),
        format!(
            "INSERT INTO kt_pending (account_id, seq) VALUES ({alice}, 1000000) \
             ON CONFLICT (account_id) DO UPDATE SET seq = excluded.seq"
        ),
    ]
}

/// What `device`'s check of its own history finds, as soon as it finds
/// something (the epoch may still be publishing), or nothing after 30 s.
async fn own_changes(device: &starling_client::Client) -> Vec<OwnLogChange> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let changes = device.check_own_log().await.unwrap();
        if !changes.is_empty() || std::time::Instant::now() > deadline {
            return changes;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

fn added(changes: &[OwnLogChange]) -> Vec<u32> {
    changes
        .iter()
        .map(|change| match change {
            OwnLogChange::DeviceAdded { device_id, .. } => *device_id,
            other => panic!("not an added device: {other:?}"),
        })
        .collect()
}

async fn a_device_added_without_the_owner_is_seen_by_each_of_its_devices(db: DbKind) {
    let server = TestServer::start(db).await;
    let alice = server.client("alice").await;
    let _mallory = server.client("mallory").await;
    let code = alice.client.link_code().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let key = starling_e2e::test_key("alice-2");
    let laptop = starling_client::Client::link(home.path(), &key, &server.config(), &code)
        .await
        .unwrap();

    // The laptop takes the account as it found it; the phone is shown the
    // laptop it linked (the log cannot tell a link from a plant).
    assert_eq!(added(&own_changes(&alice.client).await), [2]);
    assert_eq!(laptop.check_own_log().await.unwrap(), []);
    assert!(
        laptop.store().own_log_state().await.unwrap().is_some(),
        "the laptop found itself in the log"
    );
    assert_eq!(alice.client.check_own_log().await.unwrap(), [], "said once");
    assert!(laptop.warnings().await.unwrap().is_empty());

    operator_edit(&server, db, ("alice", "mallory"), plant_statements).await;
    // The publisher takes the queued account within its poll.
    assert_eq!(added(&own_changes(&laptop).await), [9], "the laptop warns");
    assert_eq!(
        added(&alice.client.check_own_log().await.unwrap()),
        [9],
        "the phone warns"
    );
    for device in [&laptop, &alice.client] {
        let warnings = device.warnings().await.unwrap();
        assert!(
            warnings.iter().any(|(username, text)| username == "alice"
                && text.contains("a device (9) added to your account")),
            "{warnings:?}"
        );
    }
    // Bob, meanwhile, is served the planted device with a valid proof:
    // it is what the log holds, which is why alice must be told.
    let bob = server.client("bob").await;
    let served = bob.client.api().devices("alice").await.unwrap();
    assert!(served.contains(&9), "{served:?}");
    laptop.close().await;
}

both_databases!(
    own_account_watch,
    a_device_added_without_the_owner_is_seen_by_each_of_its_devices
);

fn split_views(events: &[Event], from: &str) -> Vec<Option<u64>> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::SplitView { sender, epoch, .. } if sender == from => Some(*epoch),
            _ => None,
        })
        .collect()
}

async fn two_people_shown_two_logs_both_warn(db: DbKind) {
    let server = TestServer::start(db).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice.client.send_text("bob", "hello").await.unwrap();
    bob.messages(1).await;
    bob.client.send_text("alice", "hi").await.unwrap();
    alice.messages(1).await;

    // Carol joins; alice, writing to her, follows the log to its newest
    // epoch. The server shows bob another root for that epoch (a second
    // tree, signed with the log key, as a server keeping two views
    // would): bob's device holds it as its newest.
    let _carol = server.client("carol").await;
    alice.client.send_text("carol", "welcome").await.unwrap();
    let alices = alice.client.store().log_record().await.unwrap().unwrap();
    let real = alices.newest.unwrap();
    let key: [u8; 32] = std::fs::read(server.data_dir().join("transparency-log.key"))
        .unwrap()
        .try_into()
        .unwrap();
    let mut statement = real.statement;
    statement.root = [0x5a; 32];
    let forged = starling_transparency::LogSigningKey::from_bytes(&key).sign(statement);
    let bobs = bob.client.store().log_record().await.unwrap().unwrap();
    assert!(bobs.newest.unwrap().statement.epoch < real.statement.epoch);
    bob.client
        .store()
        .save_log_record(&starling_client_core::transparency::LogRecord {
            pins: bobs.pins,
            newest: Some(forged),
        })
        .await
        .unwrap();
    assert!(alice.client.warnings().await.unwrap().is_empty());
    assert!(bob.client.warnings().await.unwrap().is_empty());

    // Alice writes: bob compares her root with his, warns, and answers
    // with his; alice, reading the answer, warns too.
    alice.client.send_text("bob", "all well?").await.unwrap();
    let epoch = Some(real.statement.epoch);
    let events = bob
        .events_until(|events| !split_views(events, "alice").is_empty())
        .await;
    assert_eq!(split_views(&events, "alice"), [epoch], "bob warns");
    assert_eq!(message_count(&events), 1, "the message itself is delivered");
    let events = alice
        .events_until(|events| !split_views(events, "bob").is_empty())
        .await;
    assert_eq!(split_views(&events, "bob"), [epoch], "alice warns");
    for (person, other) in [(&alice, "bob"), (&bob, "alice")] {
        let warnings = person.client.warnings().await.unwrap();
        assert!(
            warnings
                .iter()
                .any(|(username, text)| username == other && text.starts_with("SPLIT VIEW")),
            "{warnings:?}"
        );
    }
}

both_databases!(split_view, two_people_shown_two_logs_both_warn);
