//! Per-account attachment bounds against SQLite and PostgreSQL: the quota
//! on the announced sizes of an account's unexpired attachments (refused
//! with 409 `attachment_quota_exceeded`, nothing created, space freed by
//! expiry, never exceeded by concurrent creations) and the creation rate
//! (429 `rate_limited` with `Retry-After` after the burst).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{DbKind, JsonRequest, TestServer};
use serde_json::{Value, json};
use starling_crypto::attachment::stored_len;
use starling_test_support::both_databases;
use starling_test_support::http::oneshot;

/// Asks to create an attachment of `size` bytes; returns the reply.
async fn create(server: &TestServer, auth: &str, size: u64) -> common::Reply {
    server
        .send(
            JsonRequest::post("/v1/attachments")
                .auth(Some(auth))
                .json(&json!({ "size": size })),
        )
        .await
}

/// Creates an attachment of `size` bytes, which must succeed; returns its
/// id.
async fn created(server: &TestServer, auth: &str, size: u64) -> String {
    let reply = create(server, auth, size).await;
    let body = reply.json();
    assert_eq!(reply.status, StatusCode::OK, "{body}");
    body["id"].as_str().unwrap().to_string()
}

/// One integer `sql` computes, read from the test database directly.
async fn scalar(server: &TestServer, sql: &str) -> i64 {
    match server.db.kind() {
        DbKind::Sqlite => {
            let pool = sqlx::SqlitePool::connect(server.db.url()).await.unwrap();
            let value = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
            pool.close().await;
            value
        }
        DbKind::Postgres => {
            let pool = sqlx::PgPool::connect(server.db.url()).await.unwrap();
            let value = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
            pool.close().await;
            value
        }
    }
}

/// Attachment records in the database, and the bytes they announce.
async fn stored(server: &TestServer) -> (i64, i64) {
    (
        scalar(server, "SELECT COUNT(*) FROM attachments").await,
        scalar(
            server,
            "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM attachments",
        )
        .await,
    )
}

/// Attachment files in the data folder.
fn files(server: &TestServer) -> usize {
    std::fs::read_dir(server.db.dir().join("attachments"))
        .map(|dir| dir.count())
        .unwrap_or(0)
}

/// Makes the attachment `id` expire now, as if its TTL had passed.
async fn expire(server: &TestServer, id: &str) {
    let id = hex::decode(id).unwrap();
    let sql = "UPDATE attachments SET expires_at = 1 WHERE id = $1";
    let updated = match server.db.kind() {
        DbKind::Sqlite => {
            let pool = sqlx::SqlitePool::connect(server.db.url()).await.unwrap();
            let done = sqlx::query(sql).bind(id).execute(&pool).await.unwrap();
            pool.close().await;
            done.rows_affected()
        }
        DbKind::Postgres => {
            let pool = sqlx::PgPool::connect(server.db.url()).await.unwrap();
            let done = sqlx::query(sql).bind(id).execute(&pool).await.unwrap();
            pool.close().await;
            done.rows_affected()
        }
    };
    assert_eq!(updated, 1);
}

async fn quota_refuses_and_frees_on_expiry(kind: DbKind) {
    // Stored (padded, encrypted) lengths of files of 5,000 and 4,096 bytes.
    const LARGE: u64 = 5_144;
    const SMALL: u64 = 4_120;
    const QUOTA: u64 = LARGE + SMALL;
    assert_eq!(stored_len(5_000), Some(LARGE));
    assert_eq!(stored_len(4_096), Some(SMALL));
    let server = TestServer::start_with(kind, |c| {
        c.attachments.quota_bytes_per_account = QUOTA;
    })
    .await;
    let alice = server.register("alice", 1).await;
    let bob = server.register("bob", 2).await;
    let first = created(&server, &alice.auth, LARGE).await;
    // LARGE in use (an unfinished upload counts): LARGE more does not fit.
    let refused = create(&server, &alice.auth, LARGE).await;
    let body: Value = refused.json();
    assert_eq!(
        (refused.status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("attachment_quota_exceeded")),
        "{body}"
    );
    let reason = body["reason"].as_str().unwrap();
    for needle in ["5144 bytes", "9264 bytes", "expire"] {
        assert!(reason.contains(needle), "{needle} missing from: {reason}");
    }
    // Nothing of the refused attachment was kept.
    assert_eq!(stored(&server).await, (1, LARGE as i64));
    assert_eq!(files(&server), 1);
    assert_eq!(server.state.metrics.attachments_refused_quota.get(), 1);
    // Exactly up to the quota fits, uploaded or not.
    let second = created(&server, &alice.auth, SMALL).await;
    let upload = Request::put(format!("/v1/attachments/{second}"))
        .header("authorization", &alice.auth)
        .header("upload-offset", "0")
        .body(Body::from(vec![7u8; usize::try_from(SMALL).unwrap()]))
        .unwrap();
    assert_eq!(
        oneshot(server.router(), upload).await.status,
        StatusCode::OK
    );
    let smallest = stored_len(0).unwrap();
    assert_eq!(
        create(&server, &alice.auth, smallest).await.status,
        StatusCode::CONFLICT
    );
    // Another account has a quota of its own.
    created(&server, &bob.auth, LARGE).await;
    created(&server, &bob.auth, SMALL).await;
    // Once the first attachment expires its space is free again, swept
    // or not.
    expire(&server, &first).await;
    created(&server, &alice.auth, LARGE).await;
    assert_eq!(
        create(&server, &alice.auth, smallest).await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        starling_server::services::blobs::delete_expired(&server.state)
            .await
            .unwrap(),
        1
    );
    assert_eq!(stored(&server).await, (4, 2 * QUOTA as i64));
    assert_eq!(files(&server), 4);
}

async fn unpadded_size_refused(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let alice = server.register("alice", 1).await;
    // A version 3 (unpadded) stream of 5,000 bytes: its size is the file's.
    let refused = create(&server, &alice.auth, 5_000 + 24).await;
    let body: Value = refused.json();
    assert_eq!(
        (refused.status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unpadded_attachment")),
        "{body}"
    );
    assert_eq!(stored(&server).await.0, 0);
    created(&server, &alice.auth, stored_len(5_000).unwrap()).await;
}
both_databases!(unpadded_attachment_sizes_are_refused, unpadded_size_refused);

both_databases!(
    the_attachment_quota_refuses_clearly_and_frees_on_expiry,
    quota_refuses_and_frees_on_expiry
);

async fn racing_creations_stay_within_quota(kind: DbKind) {
    const SIZE: u64 = 1_048; // a 1,024-byte file, padded and encrypted
    const QUOTA: u64 = 10 * SIZE;
    const RACERS: usize = 40;
    let server = TestServer::start_with(kind, |c| {
        c.attachments.quota_bytes_per_account = QUOTA;
        c.attachments.creation_burst = 1_000;
    })
    .await;
    let alice = server.register("alice", 1).await;
    // Eight fit before the race: two more may win it.
    for _ in 0..8 {
        created(&server, &alice.auth, SIZE).await;
    }
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(RACERS));
    let racers: Vec<_> = (0..RACERS)
        .map(|_| {
            let router = server.router();
            let auth = alice.auth.clone();
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                JsonRequest::post("/v1/attachments")
                    .auth(Some(&auth))
                    .json(&json!({ "size": SIZE }))
                    .oneshot(router)
                    .await
                    .status
            })
        })
        .collect();
    let mut won = 0;
    for racer in racers {
        match racer.await.unwrap() {
            StatusCode::OK => won += 1,
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(won, 2);
    assert_eq!(stored(&server).await, (10, QUOTA as i64));
    assert_eq!(files(&server), 10);
}
both_databases!(
    racing_creations_never_exceed_the_quota,
    racing_creations_stay_within_quota
);

async fn creation_rate_refused_after_burst(kind: DbKind) {
    let server = TestServer::start_with(kind, |c| {
        c.attachments.creations_per_hour = 1;
        c.attachments.creation_burst = 3;
    })
    .await;
    let alice = server.register("alice", 1).await;
    let bob = server.register("bob", 2).await;
    for _ in 0..3 {
        created(&server, &alice.auth, 128).await;
    }
    let refused = create(&server, &alice.auth, 128).await;
    let body = refused.json();
    assert_eq!(
        (refused.status, body["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")),
        "{body}"
    );
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!(retry_after > 60, "Retry-After {retry_after}");
    assert_eq!(body["retry_after_secs"].as_u64(), Some(retry_after));
    // Nothing was created, and another account is not affected.
    assert_eq!(stored(&server).await.0, 3);
    assert_eq!(files(&server), 3);
    assert_eq!(server.state.metrics.attachments_refused_rate.get(), 1);
    created(&server, &bob.auth, 128).await;
}
both_databases!(
    attachment_creation_is_rate_limited_per_account,
    creation_rate_refused_after_burst
);
