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
