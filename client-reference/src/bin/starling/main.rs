//! `starling`: the command-line client. Every command takes `--home DIR`
//! and `--json`; errors are one line saying what to do next.
#![forbid(unsafe_code)]

mod agent;
mod calls;
mod chat;
mod commands;
mod devices;
mod directory;
mod error;
mod groups;
mod messages;
mod output;
mod privacy;
mod reading;
mod trust;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use output::Output;

/// How conversations are named, shown under every `--help`.
const NAMING: &str = "\
Naming people and groups: `@alice` is the person alice; `#team` is the group \
named team (or whose id starts with `team`, as `group list` shows it); a bare \
`alice` means the person unless only a group has that name, and is refused \
as ambiguous when both exist.
The store's passphrase comes from STARLING_PASSPHRASE, from the agent that `starling unlock` starts (for a while), or is asked for.";

#[derive(Debug, Parser)]
#[command(
    name = "starling",
    version,
    about = "Starling: end-to-end encrypted messaging",
    after_help = NAMING
)]
struct Cli {
    /// Where this device's encrypted store lives (default: your data folder).
    #[arg(long, global = true, env = "STARLING_HOME")]
    home: Option<PathBuf>,
    /// One JSON object per line instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create an account on a server (with an invite code from its admin).
    Register {
        /// The server's address, https://HOST:PORT (the server prints it
        /// at start).
        #[arg(long)]
        server: String,
        /// The username to take: lowercase letters, digits, `.`, `_`, `-`.
        #[arg(long)]
        username: String,
        /// The invite code from the server's admin (`starling-server admin
        /// invite`); not needed when the server takes open registration.
        #[arg(long)]
        invite: Option<String>,
        /// SHA-256 fingerprint of the server's certificate (printed by the
        /// server); needed when the server uses its own certificate.
        #[arg(long)]
        ca_fingerprint: Option<String>,
    },
    /// Ask for the passphrase once: for the time given, commands on this
    /// home take the store's key from a small agent instead of asking.
    Unlock {
        /// How long, in minutes (at most 1440).
        #[arg(long = "for", value_name = "MINUTES", default_value_t = 30.0)]
        minutes: f64,
    },
    /// End the agent `unlock` started: commands ask for the passphrase again.
    Lock,
    /// The agent itself, started by `unlock`: reads the key on stdin.
    #[command(hide = true)]
    Agent {
        /// How long to serve the key.
        #[arg(long)]
        seconds: u64,
    },
    /// Check a server's transparency log: every epoch only added to the one
    /// before (needs no account or home). Exits non-zero naming the first
    /// epoch that fails.
    AuditLog {
        /// The server's URL (https://host:port).
        #[arg(long)]
        server: String,
        /// SHA-256 fingerprint of the server's certificate (printed by the server).
        #[arg(long)]
        ca_fingerprint: Option<String>,
        /// The epoch to start from (0: the log's beginning); its root is
        /// taken as the server signed it.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// The log key to check every root against (base64, as your
        /// organisation publishes it; default: the key the server names).
        #[arg(long)]
        log_key: Option<String>,
    },
    /// Link this home as a new device of your account (code from `starling devices link-code`).
    Link {
        /// The server's address, https://HOST:PORT (as on your other device).
        #[arg(long)]
        server: String,
        /// The code `starling devices link-code` printed on your other
        /// device (base64url; it may begin with `-`).
        #[arg(long, allow_hyphen_values = true)]
        code: String,
        /// SHA-256 fingerprint of the server's certificate (the link-code
        /// hint shows it).
        #[arg(long)]
        ca_fingerprint: Option<String>,
    },
    /// Send a text message to a user or a group.
    Send {
        /// Who to: `@user`, `#group` or a bare name.
        to: String,
        /// The message.
        text: String,
        /// Reply to a message (id or its first characters, from `history`).
        #[arg(long)]
        reply_to: Option<String>,
    },
    /// Send a file (photos, voice notes and videos are recognised by extension).
    SendFile {
        /// Who to: `@user`, `#group` or a bare name.
        to: String,
        /// The file to send (encrypted before it leaves this device).
        path: PathBuf,
        /// Text shown with the file.
        #[arg(long, default_value = "")]
        caption: String,
    },
    /// Send a code snippet from a file.
    SendCode {
        /// Who to: `@user`, `#group` or a bare name.
        to: String,
        /// The file holding the snippet.
        path: PathBuf,
        /// Its language, for highlighting (`rust`, `python`, ...).
        #[arg(long)]
        language: String,
    },
    /// Send a location (degrees; south and west are negative).
    #[command(allow_negative_numbers = true)]
    SendLocation {
        /// Who to: `@user`, `#group` or a bare name.
        to: String,
        /// Latitude in degrees, -90 to 90 (negative: south).
        #[arg(allow_negative_numbers = true)]
        latitude: f64,
        /// Longitude in degrees, -180 to 180 (negative: west).
        #[arg(allow_negative_numbers = true)]
        longitude: f64,
        /// A name for the place.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// React to a message.
    React {
        /// The conversation: `@user`, `#group` or a bare name.
        conversation: String,
        /// The message's id, or its first characters (from `history`).
        message: String,
        /// The reaction, one emoji.
        emoji: String,
    },
    /// Edit one of your messages.
    Edit {
        /// The conversation: `@user`, `#group` or a bare name.
        conversation: String,
        /// The message's id, or its first characters (from `history`).
        message: String,
        /// The new text.
        text: String,
    },
    /// Delete one of your messages for everyone.
    Delete {
        /// The conversation: `@user`, `#group` or a bare name.
        conversation: String,
        /// The message's id, or its first characters (from `history`).
        message: String,
    },
    /// Set the disappearing-message timer of a conversation (0 = off).
    Timer {
        /// The conversation: `@user`, `#group` or a bare name.
        conversation: String,
        /// Messages disappear this many seconds after they are read (0:
        /// never).
        seconds: u32,
    },
    /// Print what arrived, then exit.
    Receive {
        /// Wait up to this many seconds for something to arrive (default:
        /// print what is waiting and exit).
        #[arg(long)]
        wait: Option<f64>,
        /// Decrypt received files into this folder.
        #[arg(long)]
        save_dir: Option<PathBuf>,
        /// Do not tell senders their messages were read.
        #[arg(long)]
        no_read_receipts: bool,
    },
    /// Save a received attachment (decrypted) to a file or folder.
    Save {
        /// The message's id, or its first characters (from `history`).
        message: String,
        /// The file to write, or a folder to write it into under its name.
        path: PathBuf,
    },
    /// Chat interactively: type to send, see replies live.
    Chat {
        /// Who with: `@user`, `#group` or a bare name.
        with: String,
    },
    /// Place a headless call (synthetic audio and video, encrypted end to
    /// end) and print what it measured.
    Call {
        /// Who to call: `@user` or a bare name.
        with: String,
        /// Seconds to stay in the call.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Publish audio only.
        #[arg(long)]
        audio_only: bool,
    },
    /// Wait for a call, answer it, and print what it measured.
    Answer {
        /// Seconds to wait for a call.
        #[arg(long, default_value_t = 60.0)]
        wait: f64,
        /// Seconds to stay in the call (less if the caller hangs up).
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Publish audio only.
        #[arg(long)]
        audio_only: bool,
    },
    /// Groups.
    #[command(subcommand)]
    Group(GroupCommand),
    /// A conversation's history.
    History {
        /// The conversation: `@user`, `#group` or a bare name.
        conversation: String,
        /// Show at most this many of the newest messages.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Search your history.
    Search {
        /// The words to find.
        words: String,
        /// Search one conversation only: `@user`, `#group` or a bare name.
        #[arg(long = "in")]
        conversation: Option<String>,
    },
    /// Show the safety number with a contact (compare it in person).
    SafetyNumber {
        /// The contact: `@user` or a bare name.
        user: String,
    },
    /// Mark a contact verified after comparing the safety number.
    Verify {
        /// The contact: `@user` or a bare name.
        user: String,
        /// The digits they read to you, checked before marking.
        #[arg(long)]
        digits: Option<String>,
    },
    /// Start fresh sessions with a contact whose messages stay unreadable.
    ResetSession {
        /// The contact: `@user` or a bare name.
        user: String,
        /// Ask the contact's devices to start fresh sessions with this one
        /// instead (when they cannot read yours).
        #[arg(long)]
        ask: bool,
    },
    /// Outstanding identity warnings.
    Warnings,
    /// The organisation's directory.
    #[command(subcommand)]
    Directory(DirectoryCommand),
    /// Your devices.
    Devices {
        #[command(subcommand)]
        command: Option<DeviceCommand>,
    },
    /// Privacy settings of your account (shown when no setting is given).
    Privacy {
        #[command(subcommand)]
        command: Option<PrivacyCommand>,
    },
}

#[derive(Debug, Subcommand)]
enum PrivacyCommand {
    /// Whether people who have not received your profile key yet (it
    /// travels inside your messages) may send you sealed messages without
    /// saying who they are. Off: only contacts you have written to can.
    SealedFromStrangers {
        /// `on` or `off`.
        state: OnOff,
    },
}

/// A setting's new state.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// Create a group.
    Create {
        /// The group's name.
        name: String,
        /// Its first members besides you, comma-separated usernames.
        #[arg(long, value_delimiter = ',')]
        members: Vec<String>,
    },
    /// Add members.
    Add {
        /// The group: its name or the start of its id (`#` optional).
        group: String,
        /// The usernames to add, comma- or space-separated.
        #[arg(value_delimiter = ',', required = true)]
        users: Vec<String>,
    },
    /// Remove members (they can read nothing sent afterwards).
    Remove {
        /// The group: its name or the start of its id (`#` optional).
        group: String,
        /// The usernames to remove, comma- or space-separated.
        #[arg(value_delimiter = ',', required = true)]
        users: Vec<String>,
    },
    /// Rename.
    Rename {
        /// The group: its name or the start of its id (`#` optional).
        group: String,
        /// Its new name.
        name: String,
    },
    /// Leave.
    Leave {
        /// The group: its name or the start of its id (`#` optional).
        group: String,
    },
    /// List your groups.
    List,
    /// Send a text to a group.
    Send {
        /// The group: its name or the start of its id (`#` optional).
        group: String,
        /// The message.
        text: String,
    },
}

#[derive(Debug, Subcommand)]
enum DirectoryCommand {
    /// Search by name.
    Search {
        /// What to look for: a name or a username.
        query: String,
        /// Show at most this many people.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
enum DeviceCommand {
    /// List your devices.
    List,
    /// Remove another device (from a manager device).
    Remove {
        /// The device's id (from `starling devices`).
        id: u32,
    },
    /// Issue a one-time code to link a new device (from a manager device).
    LinkCode {
        /// The new device may link and remove devices too.
        #[arg(long)]
        manager: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let output = Output { json: cli.json };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STARLING_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli, output)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error::CliError::AuditFailed(report)) => {
            if output.json {
                output.print(&report, String::new);
            } else {
                eprintln!(
                    "error: epoch {} of the log fails its audit: {}",
                    report.epoch,
                    output::clean(report.error.as_deref().unwrap_or(""))
                );
            }
            ExitCode::FAILURE
        }
        Err(error) => {
            if output.json {
                println!("{}", serde_json::json!({ "error": error.to_string() }));
            } else {
                eprintln!("error: {}", output::clean(&error.to_string()));
            }
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every option and positional of every command says what it is.
    #[test]
    fn every_argument_is_explained() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") || arg.is_hide_set() {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(format!("{path} {} (the command)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(
            &<Cli as clap::CommandFactory>::command(),
            "starling",
            &mut missing,
        );
        assert!(missing.is_empty(), "no help: {missing:?}");
    }

    #[test]
    fn a_location_south_and_west_is_negative() {
        let cli = Cli::try_parse_from(["starling", "send-location", "bob", "-33.45", "-70.66"])
            .map_err(|e| e.to_string());
        match cli.map(|c| c.command) {
            Ok(Command::SendLocation {
                latitude,
                longitude,
                ..
            }) => assert_eq!((latitude, longitude), (-33.45, -70.66)),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn a_link_code_beginning_with_a_dash_is_a_value() {
        let code = "-iBd2Xk0h8nYqk1-_4s9aQ";
        let cli = Cli::try_parse_from(["starling", "link", "--server", "s", "--code", code])
            .map_err(|e| e.to_string());
        match cli.map(|c| c.command) {
            Ok(Command::Link { code: parsed, .. }) => assert_eq!(parsed, code),
            other => panic!("parsed as {other:?}"),
        }
    }
}
