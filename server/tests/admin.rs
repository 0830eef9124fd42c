//! `starling-server admin`, run as the separate process an operator runs:
//! invites bound to a username.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output, Stdio};

use starling_server::store::{NewDevice, RegisterError, Store};

fn admin(data: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_starling-server"))
        .env_clear()
        .env("STARLING_DATA_DIR", data)
        .env("RUST_LOG", "warn")
        .arg("admin")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn device() -> NewDevice {
    NewDevice {
        credential_hash: [7; 32],
        identity_key: vec![1; 33],
    }
}

#[tokio::test]
async fn an_invite_bound_to_a_username_registers_only_that_name() {
    let data = tempfile::tempdir().unwrap();
    let output = admin(data.path(), &["invite", "--username", "mmueller"]);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let codes: Vec<&str> = stdout.lines().collect();
    assert_eq!(codes.len(), 1, "{stdout}");
    let hash = starling_server::auth::hash_secret(codes[0]);

    let store = Store::open(None, data.path()).await.unwrap();
    store.migrate().await.unwrap();
    let other = store.register("mallory", Some(hash), &device(), 0).await;
    assert!(
        matches!(other, Err(RegisterError::InviteForAnotherName)),
        "{other:?}"
    );
    store
        .register("mmueller", Some(hash), &device(), 0)
        .await
        .unwrap();
    store.close().await;
}

#[test]
fn a_bad_username_or_several_bound_invites_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let output = admin(data.path(), &["invite", "--username", "no spaces"]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no spaces"),
        "{output:?}"
    );
    let output = admin(
        data.path(),
        &["invite", "--count", "2", "--username", "mmueller"],
    );
    assert!(!output.status.success(), "{output:?}");
}
