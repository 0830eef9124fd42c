//! What each `starling` subcommand does, on top of `starling_client`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use starling_client::content::{self, Body};
use starling_client::{Client, ClientError, Event, Result, ServerConfig, StoreKey, kind_for};
use tokio::io::AsyncBufReadExt;

use crate::output::{Output, clean, clean_list, message_line};
use crate::{Cli, Command, DeviceCommand, DirectoryCommand, GroupCommand};

fn home_dir(cli_home: Option<PathBuf>) -> Result<PathBuf> {
    match cli_home {
        Some(home) => Ok(home),
        None => dirs::data_dir().map(|d| d.join("starling")).ok_or_else(|| {
            ClientError::Invalid("no data folder on this system: pass --home DIR".into())
        }),
    }
}

/// The store key: from `STARLING_PASSPHRASE`, or asked without echo.
fn store_key(home: &Path, new: bool) -> Result<StoreKey> {
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
                    return Err(ClientError::Invalid(
                        "the passphrases differ; try again".into(),
                    ));
                }
            }
            first
        }
    };
    if passphrase.is_empty() {
        return Err(ClientError::Invalid(
            "an empty passphrase is not allowed".into(),
        ));
    }
    StoreKey::derive(home, &passphrase)
}

pub(crate) async fn run(cli: Cli, out: Output) -> Result<()> {
    let home = home_dir(cli.home)?;
    let fresh = !home.join(starling_client::store::DATABASE_FILE).exists();
    let setup = matches!(cli.command, Command::Register { .. } | Command::Link { .. });
    let result = run_in(&home, cli.command, out).await;
    if setup
        && fresh
        && result.is_err()
        && !home.join(starling_client::store::DATABASE_FILE).exists()
    {
        // Nothing was set up: the next attempt may use another passphrase.
        let _ = std::fs::remove_file(home.join(starling_client::store::SALT_FILE));
    }
    result
}

async fn run_in(home: &Path, command: Command, out: Output) -> Result<()> {
    let home = home.to_path_buf();
    match command {
        Command::Register {
            server,
            username,
            invite,
            ca_fingerprint,
        } => {
            let key = store_key(&home, true)?;
            let config = ServerConfig {
                url: server,
                ca_fingerprint,
            };
            let client =
                Client::register(&home, &key, &config, &username, invite.as_deref()).await?;
            out.print(
                &serde_json::json!({ "registered": client.username(), "device_id": client.device_id() }),
                || format!("registered {} (device {}) in {}", client.username(), client.device_id(), home.display()),
            );
            client.close().await;
            return Ok(());
        }
        Command::Link {
            server,
            code,
            ca_fingerprint,
        } => {
            let key = store_key(&home, true)?;
            let config = ServerConfig {
                url: server,
                ca_fingerprint,
            };
            let client = Client::link(&home, &key, &config, &code).await?;
            out.print(
                &serde_json::json!({ "linked": client.username(), "device_id": client.device_id() }),
                || format!("linked as {} device {}", client.username(), client.device_id()),
            );
            client.close().await;
            return Ok(());
        }
        _ => {}
    }
    if !home.join(starling_client::store::DATABASE_FILE).exists() {
        return Err(ClientError::NotRegistered);
    }
    let key = store_key(&home, false)?;
    let mut client = Client::open(&home, &key).await?;
    if !out.json {
        for (_, text) in client.warnings().await? {
            eprintln!("WARNING: {text}");
        }
    }
    let result = dispatch(&mut client, command, out).await;
    client.close().await;
    result
}

async fn dispatch(client: &mut Client, command: Command, out: Output) -> Result<()> {
    match command {
        Command::Register { .. } | Command::Link { .. } => Ok(()),
        Command::Send { to, text, reply_to } => {
            let quote = match reply_to {
                Some(prefix) => Some(quote_of(client, &to, &prefix).await?),
                None => None,
            };
            let id = client
                .send_with_quote(&to, Body::Text(content::Text { body: text }), quote)
                .await?;
            sent(out, &to, &id);
            Ok(())
        }
        Command::SendFile { to, path, caption } => {
            let mut progress = out.progress("uploading");
            let kind = kind_for(&path.to_string_lossy());
            let id = client
                .send_file(&to, &path, kind, &caption, progress.as_mut())
                .await?;
            sent(out, &to, &id);
            Ok(())
        }
        Command::SendCode { to, path, language } => {
            let code = tokio::fs::read_to_string(&path).await?;
            let id = client
                .send_body(&to, Body::Code(content::CodeSnippet { language, code }))
                .await?;
            sent(out, &to, &id);
            Ok(())
        }
        Command::SendLocation {
            to,
            latitude,
            longitude,
            label,
        } => {
            if !(-90.0..=90.0).contains(&latitude) || !(-180.0..=180.0).contains(&longitude) {
                return Err(ClientError::Invalid(
                    "latitude is -90..90 and longitude -180..180".into(),
                ));
            }
            let id = client
                .send_body(
                    &to,
                    Body::Location(content::Location {
                        latitude,
                        longitude,
                        label,
                    }),
                )
                .await?;
            sent(out, &to, &id);
            Ok(())
        }
        Command::React {
            conversation,
            message,
            emoji,
        } => {
            let message_id = message_id_of(client, &conversation, &message).await?;
            let id = client
                .send_body(
                    &conversation,
                    Body::Reaction(content::Reaction {
                        message_id,
                        emoji,
                        remove: false,
                    }),
                )
                .await?;
            sent(out, &conversation, &id);
            Ok(())
        }
        Command::Edit {
            conversation,
            message,
            text,
        } => {
            let message_id = message_id_of(client, &conversation, &message).await?;
            let key = client.conversation_key(&conversation).await?;
            if !client
                .store()
                .edit_message(&message_id, &key, client.username(), &text)
                .await?
            {
                return Err(ClientError::Invalid(
                    "you can only edit your own messages of this conversation".into(),
                ));
            }
            let id = client
                .send_body(
                    &conversation,
                    Body::Edit(content::Edit {
                        message_id,
                        body: text,
                    }),
                )
                .await?;
            sent(out, &conversation, &id);
            Ok(())
        }
        Command::Delete {
            conversation,
            message,
        } => {
            let message_id = message_id_of(client, &conversation, &message).await?;
            let username = client.username().to_owned();
            let key = client.conversation_key(&conversation).await?;
            match client
                .store()
                .delete_message(&message_id, &key, &username)
                .await?
            {
                Some(file) => {
                    if let Some(file) = file {
                        client.store().remove_attachment_file(&file).await;
                    }
                }
                None => {
                    return Err(ClientError::Invalid(
                        "you can only delete your own messages of this conversation".into(),
                    ));
                }
            }
            let id = client
                .send_body(&conversation, Body::Delete(content::Delete { message_id }))
                .await?;
            sent(out, &conversation, &id);
            Ok(())
        }
        Command::Timer {
            conversation,
            seconds,
        } => {
            client.set_timer(&conversation, seconds).await?;
            out.print(&serde_json::json!({ "timer": seconds }), || {
                format!("disappearing messages: {seconds} s")
            });
            Ok(())
        }
        Command::Receive {
            wait,
            save_dir,
            no_read_receipts,
        } => receive(client, wait, save_dir, !no_read_receipts, out).await,
        Command::Save { message, path } => {
            let message_id = message_id_anywhere(client, &message).await?;
            let mut progress = out.progress("downloading");
            let written = client
                .save_attachment(&message_id, &path, progress.as_mut())
                .await?;
            out.print(&serde_json::json!({ "saved": written }), || {
                format!("saved {}", clean(&written.to_string_lossy()))
            });
            Ok(())
        }
        Command::Chat { with } => chat(client, &with, out).await,
        Command::Call {
            with,
            duration,
            audio_only,
        } => crate::calls::call(client, &with, duration, audio_only, out).await,
        Command::Answer {
            wait,
            duration,
            audio_only,
        } => crate::calls::answer(client, wait, duration, audio_only, out).await,
        Command::Group(command) => group(client, command, out).await,
        Command::History {
            conversation,
            limit,
        } => {
            for entry in client.history(&conversation, limit).await? {
                out.print(&entry, || message_line(&entry));
            }
            Ok(())
        }
        Command::Search {
            words,
            conversation,
        } => {
            for entry in client.search(&words, conversation.as_deref()).await? {
                out.print(&entry, || message_line(&entry));
            }
            Ok(())
        }
        Command::SafetyNumber { user } => {
            let number = client.safety_number(&user).await?;
            out.print(&number, || {
                let state = if number.verified && !number.identity_changed {
                    "verified"
                } else if number.identity_changed {
                    "CHANGED since you last compared"
                } else {
                    "not verified"
                };
                format!(
                    "Safety number with {}:\n{}\n({state}; compare it with {} in person, then run `starling verify {}`)",
                    number.username, number.display, number.username, number.username
                )
            });
            Ok(())
        }
        Command::Verify { user, digits } => {
            client.verify(&user, digits.as_deref()).await?;
            out.print(&serde_json::json!({ "verified": user }), || {
                format!("{user} is verified")
            });
            Ok(())
        }
        Command::Warnings => {
            for (username, text) in client.warnings().await? {
                out.print(
                    &serde_json::json!({ "username": username, "warning": text }),
                    || text.clone(),
                );
            }
            Ok(())
        }
        Command::Directory(DirectoryCommand::Search { query, limit }) => {
            for entry in client.directory_search(&query, limit).await? {
                out.print(&entry, || {
                    format!(
                        "{} — {} ({}, {})",
                        clean(&entry.username),
                        clean(&entry.display_name),
                        clean(&entry.title),
                        clean(&entry.department)
                    )
                });
            }
            Ok(())
        }
        Command::Devices { command } => {
            match command.unwrap_or(DeviceCommand::List) {
                DeviceCommand::List => {
                    let this = client.device_id();
                    for device in client.devices().await? {
                        out.print(&serde_json::json!({ "device_id": device, "this_device": device == this }), || {
                        format!("device {device}{}", if device == this { " (this one)" } else { "" })
                    });
                    }
                    Ok(())
                }
                DeviceCommand::Remove { id } => {
                    client.remove_device(id).await?;
                    out.print(&serde_json::json!({ "removed": id }), || {
                        format!("removed device {id}")
                    });
                    Ok(())
                }
                DeviceCommand::LinkCode => {
                    let code = client.link_code().await?;
                    out.print(&serde_json::json!({ "link_code": code }), || {
                    format!("link code (valid 10 minutes, once): {code}\non the new device: starling link --server URL --code {code}")
                });
                    Ok(())
                }
            }
        }
    }
}

fn sent(out: Output, to: &str, id: &[u8]) {
    let id = hex::encode(id);
    out.print(&serde_json::json!({ "sent": to, "message_id": id }), || {
        format!("sent to {to} (id {})", id.get(..8).unwrap_or_default())
    });
}

async fn message_id_of(client: &Client, _conversation: &str, prefix: &str) -> Result<Vec<u8>> {
    message_id_anywhere(client, prefix).await
}

async fn message_id_anywhere(client: &Client, prefix: &str) -> Result<Vec<u8>> {
    let prefix = prefix.to_ascii_lowercase();
    if prefix.len() < 4 || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ClientError::Invalid(
            "give a message id (at least 4 hex characters, from `starling history`)".into(),
        ));
    }
    let ids = client.store().message_ids_with_prefix(&prefix).await?;
    match ids.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(ClientError::Invalid(format!(
            "no message `{prefix}` (see `starling history`)"
        ))),
        _ => Err(ClientError::Invalid(format!(
            "`{prefix}` matches several messages; give more characters"
        ))),
    }
}

async fn quote_of(client: &Client, conversation: &str, prefix: &str) -> Result<content::Quote> {
    let id = message_id_of(client, conversation, prefix).await?;
    let entry = client
        .history(conversation, 100_000)
        .await?
        .into_iter()
        .find(|e| e.message_id == hex::encode(&id))
        .ok_or_else(|| ClientError::Invalid("no such message".into()))?;
    Ok(content::Quote {
        message_id: id,
        author: entry.sender,
        text: entry.body.chars().take(200).collect(),
    })
}

async fn receive(
    client: &mut Client,
    wait: Option<f64>,
    save_dir: Option<PathBuf>,
    read_receipts: bool,
    out: Output,
) -> Result<()> {
    let wait = match wait {
        Some(s) if s.is_finite() && (0.0..=86_400.0).contains(&s) => {
            Some(Duration::from_secs_f64(s))
        }
        Some(_) => {
            return Err(ClientError::Invalid(
                "--wait takes a number of seconds, at most 86400".into(),
            ));
        }
        None => None,
    };
    let events = client.receive(wait).await?;
    for event in &events {
        out.event(event);
        if let (Event::Message(entry), Some(dir)) = (event, &save_dir)
            && matches!(entry.kind.as_str(), "file" | "image" | "voice" | "video")
        {
            tokio::fs::create_dir_all(dir).await?;
            let id =
                hex::decode(&entry.message_id).map_err(|e| ClientError::Invalid(e.to_string()))?;
            let mut progress = out.progress("downloading");
            let path = client.save_attachment(&id, dir, progress.as_mut()).await?;
            out.print(
                &serde_json::json!({ "saved": path, "message_id": entry.message_id }),
                || format!("  saved {}", clean(&path.to_string_lossy())),
            );
        }
    }
    if read_receipts {
        let shown: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::Message(entry) => Some(entry.clone()),
                _ => None,
            })
            .collect();
        client.send_read_receipts(&shown).await?;
    }
    Ok(())
}

async fn chat(client: &mut Client, with: &str, out: Output) -> Result<()> {
    let conversation = client.conversation_key(with).await?;
    for entry in client.history(with, 20).await? {
        out.print(&entry, || message_line(&entry));
    }
    if !out.json {
        eprintln!("chatting with {with}: type a message and press Enter; /quit or Ctrl-D to leave");
    }
    let mut connection = client.connect().await?;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut drained = false;
    let mut keepalive = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { break };
                let line = line.trim();
                if line == "/quit" { break; }
                if line.is_empty() { continue; }
                match client.send_text(with, line).await {
                    Ok(_) => {}
                    Err(e) => out.print(&serde_json::json!({ "error": e.to_string() }), || format!("error: {e}")),
                }
            }
            events = client.next_events(&mut connection, &mut drained) => {
                let Some(events) = events? else {
                    return Err(ClientError::Network("the server closed the connection".into()));
                };
                for event in events {
                    let here = match &event {
                        Event::Message(entry) => entry.conversation == conversation,
                        _ => true,
                    };
                    if here { out.event(&event); }
                }
            }
            _ = keepalive.tick() => connection.ping().await?,
        }
    }
    connection.close().await;
    Ok(())
}

async fn group(client: &mut Client, command: GroupCommand, out: Output) -> Result<()> {
    let show = |group: &starling_client::store::GroupRecord| {
        out.print(
            &serde_json::json!({
                "group_id": hex::encode(&group.group_id),
                "name": group.name,
                "members": group.members,
                "active": group.active,
            }),
            || {
                format!(
                    "{} ({}){}: {}",
                    clean(&group.name),
                    hex::encode(&group.group_id).get(..8).unwrap_or_default(),
                    if group.active { "" } else { " [left]" },
                    clean_list(&group.members)
                )
            },
        )
    };
    match command {
        GroupCommand::Create { name, members } => {
            show(&client.create_group(&name, &members).await?)
        }
        GroupCommand::Add { group, users } => show(&client.add_members(&group, &users).await?),
        GroupCommand::Remove { group, users } => {
            show(&client.remove_members(&group, &users).await?)
        }
        GroupCommand::Rename { group, name } => show(&client.rename_group(&group, &name).await?),
        GroupCommand::Leave { group } => {
            client.leave_group(&group).await?;
            out.print(&serde_json::json!({ "left": group }), || {
                format!("left {group}")
            });
        }
        GroupCommand::List => {
            for group in client.groups().await? {
                show(&group);
            }
        }
        GroupCommand::Send { group, text } => {
            let id = client.send_text(&format!("#{group}"), &text).await?;
            sent(out, &group, &id);
        }
    }
    Ok(())
}
