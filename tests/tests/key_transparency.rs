//! Key transparency end to end, on both databases: an operator who copies
//! one account's published keys over another's in the database (so that
//! the server serves mallory's keys as bob's, valid signatures and all)
//! gets no message through: alice's client refuses bob's keys because the
//! transparency log holds the ones bob published, records nothing of them
//! and sends nothing. And an auditor with no account (`starling
//! audit-log`) verifies the whole log, and names the epoch of a history
//! the operator rewrote.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use sqlx::Connection;
use starling_e2e::{TestServer, workspace_binary};
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

macro_rules! swap_keys {
    ($connection:ty, $url:expr) => {{
        let mut conn = <$connection>::connect($url).await.unwrap();
        let mut ids = Vec::new();
        for name in ["bob", "mallory"] {
            let id: i64 = sqlx::query_scalar("SELECT id FROM accounts WHERE username = $1")
                .bind(name)
                .fetch_one(&mut conn)
                .await
                .unwrap();
            ids.push(id);
        }
        for statement in swap_statements(ids[0], ids[1]) {
            sqlx::query(&statement).execute(&mut conn).await.unwrap();
        }
    }};
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

async fn swap_keys(server: &TestServer, db: DbKind) {
    match db {
        DbKind::Sqlite => swap_keys!(sqlx::SqliteConnection, server.database_url()),
        DbKind::Postgres => swap_keys!(sqlx::PgConnection, server.database_url()),
    }
}

async fn an_operators_key_swap_is_refused(db: DbKind) {
    let server = TestServer::start(db).await;
    let mut alice = server.client("alice").await;
    let _bob = server.client("bob").await;
    let mallory = server.client("mallory").await;
    let carol = server.client("carol").await;

    swap_keys(&server, db).await;

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
