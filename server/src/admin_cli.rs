//! `starling-server admin …`: what an operator does to accounts, invites,
//! the directory and the keys, from any folder: the commands find the
//! server's data with the same `--config FILE` or `STARLING_DATA_DIR` as
//! the server (which prints its data folder at start). Part of the
//! `starling-server` binary.

use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Subcommand;
use rand::RngCore;
use starling_server::config::Config;
use starling_server::store::{AccountRemoval, Store, now_millis};
use starling_server::{auth, services};

use super::{Error, JSON_LOGS};

#[derive(Subcommand)]
pub(crate) enum AdminCommand {
    /// Print single-use invite codes, one per line (their expiry goes to
    /// stderr).
    Invite {
        /// How many.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Bind the (single) invite to this username: it registers only
        /// that name. Names in the imported directory can only be taken
        /// with such an invite.
        #[arg(long, conflicts_with = "count")]
        username: Option<String>,
    },
    /// List the invites not yet used: the name each is bound to, and when
    /// it expires.
    Invites,
    /// Import members and departments from a CSV file whose header is
    /// `username,display_name,title,department` (title and department may
    /// be left out); existing entries are updated. Bad lines are listed by
    /// number, and then nothing is imported.
    Import {
        /// The CSV file.
        file: PathBuf,
    },
    /// List accounts.
    List,
    /// Disable an account and close its connections (enable undoes it).
    Disable {
        /// The username.
        username: String,
    },
    /// Re-enable an account.
    Enable {
        /// The username.
        username: String,
    },
    /// Delete an account with its devices, queued messages and uploaded
    /// files; the name is free again (for a new invite).
    Delete {
        /// The username.
        username: String,
    },
    /// An account's devices.
    Devices {
        #[command(subcommand)]
        command: DevicesCommand,
    },
    /// The organisation's directory.
    Directory {
        #[command(subcommand)]
        command: DirectoryCommand,
    },
    /// Write a consistent copy of the database (SQLite's online backup,
    /// while the server runs) and of the data folder's key files into DIR.
    /// With PostgreSQL, back up the database with pg_dump: only the key
    /// files are copied.
    Backup {
        /// A new folder for the copy (created; readable by you only).
        dir: PathBuf,
    },
    /// Print the public key the media relay verifies join tokens with
    /// (`STARLING_RELAY_TOKEN_KEY` of a separate `starling-relay`).
    RelayKey,
    /// Add a sender-certificate key, endorsed by the newest one (sealed
    /// sender). Clients accept it through that endorsement; the server
    /// signs with it from its next start.
    RotateSenderKey {
        /// Start a new chain when the key files are lost: every device
        /// pinned the old one and must be linked (or registered) again to
        /// trust the new one.
        #[arg(long)]
        new_chain: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum DevicesCommand {
    /// Remove every device of an account (a member who lost them all) and
    /// print an invite bound to the name: with it the member registers a
    /// new first device in the same account. Contacts are warned of the
    /// new keys.
    Reset {
        /// The username.
        username: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum DirectoryCommand {
    /// Take a member out of the directory (the account, if any, stays).
    Remove {
        /// The username.
        username: String,
    },
}

/// Runs an admin command.
pub(crate) async fn run(
    store: Store,
    config: &Config,
    command: AdminCommand,
) -> Result<ExitCode, Error> {
    match command {
        AdminCommand::Invite { count, username } => invite(&store, config, count, username).await?,
        AdminCommand::Invites => {
            let invites = store.open_invites(now_millis()).await?;
            if invites.is_empty() {
                say!("no open invites");
            }
            for (username, expires_at) in invites {
                let name = username.as_deref().unwrap_or("(any name)");
                out!("{name}\texpires {}", utc(expires_at));
            }
        }
        AdminCommand::Import { file } => {
            let reader =
                std::fs::File::open(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let entries = starling_server::directory::parse_csv(reader)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            store.import_directory(&entries).await?;
            out!("imported {} directory entries", entries.len());
        }
        AdminCommand::List => {
            for (username, devices, disabled) in store.list_accounts().await? {
                let state = if disabled { "disabled" } else { "active" };
                out!("{username}\t{devices} device(s)\t{state}");
            }
        }
        AdminCommand::Disable { username } => {
            if !store.set_disabled(&username, true, now_millis()).await? {
                return Err(no_account(&username));
            }
            out!("{username} disabled");
        }
        AdminCommand::Enable { username } => {
            if !store.set_disabled(&username, false, now_millis()).await? {
                return Err(no_account(&username));
            }
            out!("{username} enabled");
        }
        AdminCommand::Delete { username } => delete(&store, config, &username).await?,
        AdminCommand::Devices {
            command: DevicesCommand::Reset { username },
        } => reset_devices(&store, config, &username).await?,
        AdminCommand::Directory {
            command: DirectoryCommand::Remove { username },
        } => {
            if !store.remove_directory_entry(&username).await? {
                return Err(format!("{username} is not in the directory").into());
            }
            out!("{username} removed from the directory");
        }
        AdminCommand::Backup { dir } => backup(&store, config, dir).await?,
        AdminCommand::RelayKey => {
            let signer = services::calls::load_or_create_signer(&config.data_dir)?;
            out!("{}", URL_SAFE_NO_PAD.encode(signer.public_key()));
        }
        AdminCommand::RotateSenderKey { new_chain } => {
            if !new_chain {
                let accounts = !store.list_accounts().await?.is_empty();
                services::certificates::check_keys_present(&config.data_dir, accounts)?;
            }
            let id = services::certificates::CertificateKeys::rotate(&config.data_dir)?;
            out!(
                "sender-certificate key {id} written to {}; restart the server to sign with it",
                config.data_dir.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn no_account(username: &str) -> Error {
    format!("no account named {username}").into()
}

/// A new invite code: 16 random bytes, hex.
fn new_code() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// When an invite made now expires (ms).
fn invite_expiry(config: &Config) -> i64 {
    let ttl = config
        .registration
        .invite_ttl_hours
        .saturating_mul(3_600_000);
    now_millis().saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX))
}

/// `ms` since the epoch as `YYYY-MM-DD HH:MM UTC`.
fn utc(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| format!("{ms} ms since the epoch"))
}

/// Prints `count` invites, or one bound to `username`, on stdout; their
/// expiry on stderr.
async fn invite(
    store: &Store,
    config: &Config,
    count: u32,
    username: Option<String>,
) -> Result<(), Error> {
    let expires_at = invite_expiry(config);
    let codes = match username {
        Some(username) => {
            let username = starling_protocol::Username::parse(&username)
                .map_err(|e| format!("`{username}`: {e}"))?;
            let code = new_code();
            store
                .create_invite_for(&auth::hash_secret(&code), expires_at, username.as_str())
                .await?;
            vec![code]
        }
        None => {
            let codes: Vec<String> = (0..count.clamp(1, 10_000)).map(|_| new_code()).collect();
            let hashes: Vec<[u8; 32]> = codes.iter().map(|c| auth::hash_secret(c)).collect();
            store.create_invites(&hashes, expires_at).await?;
            codes
        }
    };
    for code in &codes {
        out!("{code}");
    }
    say!(
        "{} invite(s), single use, valid until {} ({} hours)",
        codes.len(),
        utc(expires_at),
        config.registration.invite_ttl_hours
    );
    Ok(())
}

/// Deletes an account and the files it uploaded.
async fn delete(store: &Store, config: &Config, username: &str) -> Result<(), Error> {
    let AccountRemoval::Done {
        devices,
        attachments,
    } = store.delete_account(username, now_millis()).await?
    else {
        return Err(no_account(username));
    };
    let folder = config.data_dir.join("attachments");
    for id in &attachments {
        let _ = std::fs::remove_file(folder.join(hex::encode(id)));
    }
    out!(
        "{username} deleted: {devices} device(s), {} uploaded file(s); the name can be registered again with a new invite",
        attachments.len()
    );
    Ok(())
}

/// Removes every device of an account and prints an invite bound to it
/// (the only one left for the name).
async fn reset_devices(store: &Store, config: &Config, username: &str) -> Result<(), Error> {
    let code = new_code();
    let expires_at = invite_expiry(config);
    let removal = store
        .reset_devices(
            username,
            &auth::hash_secret(&code),
            expires_at,
            now_millis(),
        )
        .await?;
    let AccountRemoval::Done { devices, .. } = removal else {
        return Err(no_account(username));
    };
    say!(
        "{username}: {devices} device(s) removed; register a new device with this invite (valid until {}):",
        utc(expires_at)
    );
    out!("{code}");
    Ok(())
}

/// Writes the backup and says what it holds.
async fn backup(store: &Store, config: &Config, dir: PathBuf) -> Result<(), Error> {
    let data = config.data_dir.clone();
    let database = store.sqlite_path().map(std::path::Path::to_path_buf);
    let report = tokio::task::spawn_blocking(move || {
        starling_server::backup::backup(&data, database.as_deref(), &dir)
    })
    .await??;
    match &report.database {
        Some((path, size)) => out!("database: {} ({size} bytes)", path.display()),
        None => out!("database: PostgreSQL: back it up with pg_dump (see docs/OPERATIONS.md)"),
    }
    for file in &report.files {
        out!("key file: {}", file.display());
    }
    say!("the backup holds the server's secret keys: keep it as safe as the server");
    Ok(())
}
