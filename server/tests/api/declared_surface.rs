//! What the server declares matches what it has: the database audit finds
//! exactly the declared columns (and catches an undeclared one), and every
//! path of the OpenAPI document is routed.

use axum::http::StatusCode;
use starling_test_support::both_databases;

use crate::common::{self, DbKind, TestServer};

async fn audit_matches_inventory(kind: DbKind) {
    let db = common::TestDatabase::create(kind).await;
    let store = common::open_store(&db).await;
    let report = starling_server::audit::audit(&store).await.unwrap();
    assert!(
        report.undeclared.is_empty(),
        "undeclared: {:?}",
        report.undeclared
    );
    assert!(
        report.missing.is_empty(),
        "declared but absent: {:?}",
        report.missing
    );
    // The audit must be able to fail: an extra column is caught.
    let add = "ALTER TABLE accounts ADD COLUMN display_name TEXT";
    match kind {
        DbKind::Sqlite => {
            let pool = sqlx::SqlitePool::connect(db.url()).await.unwrap();
            sqlx::query(add).execute(&pool).await.unwrap();
        }
        DbKind::Postgres => {
            let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
            sqlx::query(add).execute(&pool).await.unwrap();
        }
    }
    let report = starling_server::audit::audit(&store).await.unwrap();
    assert_eq!(
        report.undeclared,
        vec![("accounts".to_string(), "display_name".to_string())]
    );
    assert!(!report.passed());
}
both_databases!(audit, audit_matches_inventory);

async fn openapi_matches_the_router(kind: DbKind) {
    let server = TestServer::start(kind).await;
    let (status, doc) = server.request("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 18);
    for (path, operations) in paths {
        let concrete = path
            .replace("{username}", "alice")
            .replace("{device_id}", "1")
            .replace("{device}", "1")
            .replace("{id}", &"00".repeat(16))
            .replace("{call_id}", "call-1");
        for method in operations.as_object().unwrap().keys() {
            let (status, body) = server
                .request_raw(&method.to_uppercase(), &concrete, None, None)
                .await;
            // A route the router lacks answers 404/405 with no JSON body.
            let unrouted = (status == StatusCode::NOT_FOUND
                || status == StatusCode::METHOD_NOT_ALLOWED)
                && !body["code"].is_string();
            assert!(
                !unrouted,
                "{method} {path} is documented but not routed ({status})"
            );
        }
    }
}
both_databases!(openapi_document, openapi_matches_the_router);

async fn envelope_rows_checked(kind: DbKind) {
    let db = common::TestDatabase::create(kind).await;
    let store = common::open_store(&db).await;
    let now = starling_server::store::now_millis();
    let device = starling_server::store::NewDevice {
        credential_hash: [1; 32],
        identity_key: vec![1],
    };
    let account = store.register("bob", None, &device, now).await.unwrap();
    let sealed = |index: u16, len: usize| {
        let mut envelope = common::envelope(account, 1, index);
        envelope.content = [vec![0x31], vec![0; len - 1]].concat();
        envelope.sender = None;
        envelope.sender_device = None;
        envelope
    };
    // What sealed sending stores, and one legacy unsealed envelope.
    store
        .insert_envelopes(&[
            sealed(1, 1024),
            sealed(2, 1088),
            common::envelope(account, 1, 3),
        ])
        .await
        .unwrap();
    let report = starling_server::audit::audit(&store).await.unwrap();
    assert_eq!((report.envelopes.sealed, report.envelopes.unsealed), (2, 1));
    assert!(report.passed(), "{:?}", report.envelopes);
    let envelopes = report
        .tables
        .iter()
        .find(|t| t.name == "envelopes")
        .unwrap();
    assert_eq!(envelopes.rows, 3);
    assert!(
        envelopes
            .metadata
            .contains("no sender for sealed envelopes")
    );
    // A sealed row naming its sender, one of no bucket's length, one with
    // a time to the millisecond: each fails the audit.
    let mut named = sealed(4, 1024);
    named.sender = Some("alice".into());
    let mut fine = sealed(6, 1024);
    fine.created_at += 1;
    store
        .insert_envelopes(&[named, sealed(5, 1000), fine])
        .await
        .unwrap();
    let report = starling_server::audit::audit(&store).await.unwrap();
    assert_eq!(report.envelopes.sealed_with_sender, 1);
    assert_eq!(report.envelopes.sealed_unpadded, 1);
    assert_eq!(report.envelopes.fine_times, 1);
    assert!(!report.passed());
}
both_databases!(
    audit_fails_on_sealed_rows_that_say_too_much,
    envelope_rows_checked
);
