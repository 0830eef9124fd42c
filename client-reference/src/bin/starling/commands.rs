//! Running a `starling` command: the home and its passphrase, setting up
//! a device (`register`, `link`), opening the client, and handing every
//! other command to the module of its group.

use std::path::{Path, PathBuf};

use starling_client::store::{DATABASE_FILE, SALT_FILE, Store};
use starling_client::{Client, ClientError, ServerConfig, StoreKey};

use crate::error::{CliError, Result};
use crate::output::Output;
use crate::{
    Cli, Command, DirectoryCommand, agent, calls, devices, directory, groups, messages, privacy,
    reading, trust,
};

fn home_dir(cli_home: Option<PathBuf>) -> Result<PathBuf> {
    match cli_home {
        Some(home) => Ok(home),
        None => dirs::data_dir()
            .map(|d| d.join("starling"))
            .ok_or(CliError::NoDataFolder),
    }
}

/// Opens the home's store with the key from `STARLING_PASSPHRASE`, the
/// home's agent (`starling unlock`), or a passphrase asked without echo.
/// A key from the agent that does not open the store is said, and the
/// passphrase asked for instead.
async fn open_client(home: &Path) -> Result<Client> {
    if std::env::var_os("STARLING_PASSPHRASE").is_none()
        && let Some(key) = agent::key_from_agent(home)
    {
        match Client::open(home, &key).await {
            Err(ClientError::WrongPassphrase) => eprintln!(
                "note: the key `starling unlock` left does not open this store (run `starling lock`)"
            ),
            opened => return Ok(opened?),
        }
    }
    let key = passphrase_key(home, false)?;
    Ok(Client::open(home, &key).await?)
}

/// The store key from `STARLING_PASSPHRASE` or a passphrase asked for.
fn passphrase_key(home: &Path, new: bool) -> Result<StoreKey> {
    let passphrase = match std::env::var("STARLING_PASSPHRASE") {
        Ok(p) => zeroize::Zeroizing::new(p),
        Err(_) => {
            let first = zeroize::Zeroizing::new(rpassword::prompt_password(
                "Passphrase for this Starling home: ",
            )?);
            if new {
                let again =
                    zeroize::Zeroizing::new(rpassword::prompt_password("Repeat the passphrase: ")?);
                if *first != *again {
                    return Err(CliError::PassphrasesDiffer);
                }
            }
            first
        }
    };
    if passphrase.is_empty() {
        return Err(CliError::EmptyPassphrase);
    }
    Ok(StoreKey::derive(home, &passphrase)?)
}

pub(crate) async fn run(cli: Cli, out: Output) -> Result<()> {
    if let Command::AuditLog {
        server,
        ca_fingerprint,
        from,
        log_key,
    } = cli.command
    {
        let server = crate::error::server_url(&server)?;
        return crate::trust::audit_log(&server, ca_fingerprint.as_deref(), from, log_key, out)
            .await;
    }
    let home = home_dir(cli.home)?;
    let fresh = !home.join(DATABASE_FILE).exists();
    let setup = matches!(cli.command, Command::Register { .. } | Command::Link { .. });
    let result = run_in(&home, cli.command, out).await;
    if setup && fresh && result.is_err() && !home.join(DATABASE_FILE).exists() {
        // Nothing was set up: the next attempt may use another passphrase.
        let _ = std::fs::remove_file(home.join(SALT_FILE));
    }
    result
}

async fn run_in(home: &Path, command: Command, out: Output) -> Result<()> {
    match command {
        Command::Register {
            server,
            username,
            invite,
            ca_fingerprint,
        } => {
            let server = ServerConfig {
                url: crate::error::server_url(&server)?,
                ca_fingerprint,
            };
            register(home, &server, &username, invite.as_deref(), out).await
        }
        Command::Link {
            server,
            code,
            ca_fingerprint,
        } => {
            let server = ServerConfig {
                url: crate::error::server_url(&server)?,
                ca_fingerprint,
            };
            link(home, &server, &code, out).await
        }
        Command::Lock => {
            agent::lock(home, out);
            Ok(())
        }
        Command::Agent { seconds } => agent::serve::serve(home, seconds).await,
        command => {
            if !home.join(DATABASE_FILE).exists() {
                return Err(ClientError::NotRegistered.into());
            }
            if let Command::Unlock { minutes } = command {
                return unlock(home, minutes, out).await;
            }
            let mut client = open_client(home).await?;
            // On every start: our own account's history in the log. What
            // it finds is stored as warnings, shown below; a server out of
            // reach only postpones it, and says so.
            match client.check_own_log().await {
                // What is stored stays readable; nothing else can work.
                Err(ClientError::DeviceRemoved) if needs_server(&command) => {
                    client.close().await;
                    return Err(ClientError::DeviceRemoved.into());
                }
                Err(ClientError::DeviceRemoved) if !out.json => {
                    eprintln!("note: {}", ClientError::DeviceRemoved);
                }
                Err(error) if !out.json => eprintln!(
                    "note: your account's history in the transparency log was not checked: {}",
                    crate::output::clean(&error.to_string())
                ),
                _ => {}
            }
            if !out.json {
                for (_, text) in client.warnings().await? {
                    eprintln!("WARNING: {text}");
                }
            }
            if shows_messages(&command) && !out.json {
                match client.display_names(needs_server(&command)).await {
                    Ok(names) => crate::output::use_display_names(names),
                    Err(error) => eprintln!(
                        "note: directory names not shown: {}",
                        crate::output::clean(&error.to_string())
                    ),
                }
            }
            let result = dispatch(&mut client, command, out).await;
            client.close().await;
            result
        }
    }
}

/// `starling unlock`: the passphrase checked against the store (also
/// while another command, such as `chat`, has it open), then left with an
/// agent.
async fn unlock(home: &Path, minutes: f64, out: Output) -> Result<()> {
    let key = passphrase_key(home, false)?;
    match Store::open(home, &key).await {
        Ok(store) => store.close().await,
        Err(ClientError::HomeInUse) => Store::check_key(home, &key).await?,
        Err(error) => return Err(error.into()),
    }
    agent::unlock(home, &key, minutes, out).await
}

/// Whether `command` prints messages (whose senders get their directory
/// names).
fn shows_messages(command: &Command) -> bool {
    matches!(
        command,
        Command::Receive { .. }
            | Command::Chat { .. }
            | Command::History { .. }
            | Command::Search { .. }
    )
}

/// Whether `command` talks to the server (others read the local store).
fn needs_server(command: &Command) -> bool {
    !matches!(
        command,
        Command::History { .. }
            | Command::Search { .. }
            | Command::Save { .. }
            | Command::SafetyNumber { .. }
            | Command::Warnings
    )
}

/// `starling register`.
async fn register(
    home: &Path,
    server: &ServerConfig,
    username: &str,
    invite: Option<&str>,
    out: Output,
) -> Result<()> {
    let key = passphrase_key(home, true)?;
    let client = Client::register(home, &key, server, username, invite).await?;
    out.print(
        &serde_json::json!({ "registered": client.username(), "device_id": client.device_id() }),
        || {
            format!(
                "registered {} (device {}) in {}",
                client.username(),
                client.device_id(),
                home.display()
            )
        },
    );
    client.close().await;
    Ok(())
}

/// `starling link`.
async fn link(home: &Path, server: &ServerConfig, code: &str, out: Output) -> Result<()> {
    let key = passphrase_key(home, true)?;
    let client = Client::link(home, &key, server, code).await?;
    out.print(
        &serde_json::json!({ "linked": client.username(), "device_id": client.device_id() }),
        || {
            format!(
                "linked as {} device {}",
                client.username(),
                client.device_id()
            )
        },
    );
    client.close().await;
    Ok(())
}

/// Hands a command to the module of its group.
async fn dispatch(client: &mut Client, command: Command, out: Output) -> Result<()> {
    match command {
        Command::Register { .. }
        | Command::Link { .. }
        | Command::AuditLog { .. }
        | Command::Unlock { .. }
        | Command::Lock
        | Command::Agent { .. } => Ok(()),
        Command::Send { to, text, reply_to } => {
            messages::send(client, &to, text, reply_to.as_deref(), out).await
        }
        Command::SendFile { to, path, caption } => {
            messages::send_file(client, &to, &path, &caption, out).await
        }
        Command::SendCode { to, path, language } => {
            messages::send_code(client, &to, &path, language, out).await
        }
        Command::SendLocation {
            to,
            latitude,
            longitude,
            label,
        } => messages::send_location(client, &to, (latitude, longitude), label, out).await,
        Command::React {
            conversation,
            message,
            emoji,
        } => messages::react(client, &conversation, &message, emoji, out).await,
        Command::Edit {
            conversation,
            message,
            text,
        } => messages::edit(client, &conversation, &message, text, out).await,
        Command::Delete {
            conversation,
            message,
        } => messages::delete(client, &conversation, &message, out).await,
        Command::Timer {
            conversation,
            seconds,
        } => messages::timer(client, &conversation, seconds, out).await,
        Command::Receive {
            wait,
            save_dir,
            no_read_receipts,
        } => reading::receive(client, wait, save_dir, !no_read_receipts, out).await,
        Command::Save { message, path } => reading::save(client, &message, &path, out).await,
        Command::Chat { with } => crate::chat::chat(client, &with, out).await,
        Command::History {
            conversation,
            limit,
        } => reading::history(client, &conversation, limit, out).await,
        Command::Search {
            words,
            conversation,
        } => reading::search(client, &words, conversation.as_deref(), out).await,
        Command::Call {
            with,
            duration,
            audio_only,
        } => calls::call(client, &with, duration, audio_only, out).await,
        Command::Answer {
            wait,
            duration,
            audio_only,
        } => calls::answer(client, wait, duration, audio_only, out).await,
        Command::Group(command) => groups::run(client, command, out).await,
        Command::SafetyNumber { user } => trust::safety_number(client, &user, out).await,
        Command::Verify { user, digits } => {
            trust::verify(client, &user, digits.as_deref(), out).await
        }
        Command::ResetSession { user, ask } => trust::reset_session(client, &user, ask, out).await,
        Command::Warnings => trust::warnings(client, out).await,
        Command::Directory(DirectoryCommand::Search { query, limit }) => {
            directory::search(client, &query, limit, out).await
        }
        Command::Devices { command } => devices::run(client, command, out).await,
        Command::Privacy { command } => privacy::run(client, command, out).await,
    }
}
