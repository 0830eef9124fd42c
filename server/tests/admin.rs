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

/// `starling-server admin ARGS` run in `cwd` with no configuration at all.
fn admin_in(cwd: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_starling-server"))
        .env_clear()
        .env("RUST_LOG", "warn")
        .current_dir(cwd)
        .arg("admin")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn admin_in_a_folder_without_the_server_says_where_it_looked() {
    let elsewhere = tempfile::tempdir().unwrap();
    let output = admin_in(elsewhere.path(), &["list"]);
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no server data in"), "{stderr}");
    assert!(stderr.contains("STARLING_DATA_DIR"), "{stderr}");
    // Nothing was created there.
    assert!(!elsewhere.path().join("starling-data").exists());
}

#[test]
fn a_config_files_data_folder_is_found_from_any_folder() {
    let etc = tempfile::tempdir().unwrap();
    let config = etc.path().join("starling.toml");
    std::fs::write(&config, "data_dir = \"data\"\n").unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let config = config.to_string_lossy().into_owned();
    let output = admin_in(elsewhere.path(), &["--config", &config, "invite"]);
    assert!(output.status.success(), "{output:?}");
    assert!(etc.path().join("data/starling.db").exists());
    assert!(!elsewhere.path().join("data").exists());
}

#[test]
fn invites_show_when_they_expire() {
    let data = tempfile::tempdir().unwrap();
    let output = admin(data.path(), &["invite", "--count", "2"]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 2);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("valid until 20"), "{stderr}");
    admin(data.path(), &["invite", "--username", "mmueller"]);
    let listed = admin(data.path(), &["invites"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert_eq!(
        listed.matches("(any name)\texpires 20").count(),
        2,
        "{listed}"
    );
    assert!(listed.contains("mmueller\texpires 20"), "{listed}");
}

#[test]
fn a_directory_import_lists_its_bad_lines_and_entries_can_be_removed() {
    let data = tempfile::tempdir().unwrap();
    let csv = data.path().join("people.csv");
    std::fs::write(
        &csv,
        "username,display_name,title,department\n\
         mmueller,Maria Müller,Engineer,Platform\n\
         Bad Name,Someone,,\n\
         jsmith,John Smith,Director,Sales\n\
         nodisplay,,,\n",
    )
    .unwrap();
    let path = csv.to_string_lossy().into_owned();
    let output = admin(data.path(), &["import", &path]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 3: "), "{stderr}");
    assert!(stderr.contains("line 5: "), "{stderr}");
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    std::fs::write(&csv, "name,display_name\nmmueller,Maria\n").unwrap();
    let output = admin(data.path(), &["import", &path]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown column `name`"));

    std::fs::write(
        &csv,
        "username,display_name,title,department\nmmueller,Maria Müller,Engineer,Platform\n",
    )
    .unwrap();
    assert!(admin(data.path(), &["import", &path]).status.success());
    let removed = admin(data.path(), &["directory", "remove", "mmueller"]);
    assert!(removed.status.success(), "{removed:?}");
    let again = admin(data.path(), &["directory", "remove", "mmueller"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not in the directory"));
}

#[test]
fn a_backup_is_a_database_that_opens_and_the_key_files() {
    let data = tempfile::tempdir().unwrap();
    let invite = admin(data.path(), &["invite", "--username", "mmueller"]);
    assert!(invite.status.success());
    assert!(admin(data.path(), &["relay-key"]).status.success());
    let dest = tempfile::tempdir().unwrap();
    let dir = dest.path().join("nightly");
    let output = admin(data.path(), &["backup", &dir.to_string_lossy()]);
    assert!(output.status.success(), "{output:?}");
    assert!(dir.join("call-token.key").exists());
    // Restored as a data folder, it serves what was there.
    let listed = admin(&dir, &["invites"]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("mmueller"),
        "{listed:?}"
    );
    // A second backup into the same folder is refused.
    let output = admin(data.path(), &["backup", &dir.to_string_lossy()]);
    assert!(!output.status.success());
}
