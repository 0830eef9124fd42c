//! What queued envelopes leave at rest: the hour a send was accepted and no
//! finer time, and, on SQLite, nothing of an acknowledged envelope in the
//! database or its write-ahead log once the next sweep has run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{DbKind, TestServer};
use rand::RngCore;
use starling_server::store::ACCEPTED_TIME_GRANULARITY_MS;
use starling_test_support::both_databases;

async fn only_the_hour_is_stored(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    server.register("bob", 2).await;
    for i in 0..3u8 {
        server.send_to(&alice.auth, "bob", &[i]).await;
    }
    let times: Vec<(i64,)> = common::rows(&server.db, "SELECT created_at FROM envelopes").await;
    assert_eq!(times.len(), 3);
    for (time,) in times {
        assert_eq!(time % ACCEPTED_TIME_GRANULARITY_MS, 0, "{time}");
        assert!(time > 0);
    }
    let columns = server.state.store.schema_columns().await.unwrap();
    let envelope_columns: Vec<&str> = columns
        .iter()
        .filter(|(table, _)| table == "envelopes")
        .map(|(_, column)| column.as_str())
        .collect();
    assert!(
        !envelope_columns.contains(&"expires_at"),
        "{envelope_columns:?}"
    );
    assert!(envelope_columns.contains(&"created_at"));
}
both_databases!(
    envelopes_keep_only_the_hour_they_were_accepted,
    only_the_hour_is_stored
);

/// Every file of the SQLite database (main file, log, shared memory).
fn database_bytes(server: &TestServer) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(server.db.dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("test.db"))
        })
        .map(|path| (path.display().to_string(), std::fs::read(&path).unwrap()))
        .collect()
}

fn holds(files: &[(String, Vec<u8>)], marker: &[u8]) -> Vec<String> {
    files
        .iter()
        .filter(|(_, bytes)| bytes.windows(marker.len()).any(|w| w == marker))
        .map(|(name, _)| name.clone())
        .collect()
}

#[tokio::test]
async fn an_acknowledged_envelope_leaves_no_trace_in_the_sqlite_files() {
    let server = TestServer::start(DbKind::Sqlite).await;
    let alice = server.register("alice", 1).await;
    let bob = server.register("bob", 2).await;
    let mut marker = [0u8; 48];
    rand::thread_rng().fill_bytes(&mut marker);
    server.send_to(&alice.auth, "bob", &marker).await;
    // The scan finds the queued envelope (so it would find a leftover).
    assert!(!holds(&database_bytes(&server), &marker).is_empty());
    let mut ws = server.ws(&bob.auth).await;
    let queued = ws.drain().await;
    assert_eq!(queued.len(), 1);
    ws.ack(queued.iter().map(|e| e.id.clone()).collect()).await;
    // The acknowledgement is applied before the next frame is answered.
    drop(ws);
    let mut ws = server.ws(&bob.auth).await;
    assert!(ws.drain().await.is_empty());
    drop(ws);
    assert!(server.state.store.truncate_log().await.unwrap());
    let left = holds(&database_bytes(&server), &marker);
    assert!(
        left.is_empty(),
        "the envelope is still readable in {left:?}"
    );
}
