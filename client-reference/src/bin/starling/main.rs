//! `starling`: the command-line client. Every command takes `--home DIR`
//! and `--json`; errors are one line saying what to do next.
#![forbid(unsafe_code)]

mod calls;
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

#[derive(Debug, Parser)]
#[command(
    name = "starling",
    version,
    about = "Starling: end-to-end encrypted messaging"
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
        #[arg(long)]
        server: String,
        #[arg(long)]
        username: String,
        #[arg(long)]
        invite: Option<String>,
        /// SHA-256 fingerprint of the server's certificate (printed by the server).
        #[arg(long)]
        ca_fingerprint: Option<String>,
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
        #[arg(long)]
        server: String,
        /// The code is base64url and may begin with `-`.
        #[arg(long, allow_hyphen_values = true)]
        code: String,
        #[arg(long)]
        ca_fingerprint: Option<String>,
    },
    /// Send a text message to a user or a group.
    Send {
        to: String,
        text: String,
        /// Reply to a message (id or its first characters, from `history`).
        #[arg(long)]
        reply_to: Option<String>,
    },
    /// Send a file (photos, voice notes and videos are recognised by extension).
    SendFile {
        to: String,
        path: PathBuf,
        #[arg(long, default_value = "")]
        caption: String,
    },
    /// Send a code snippet from a file.
    SendCode {
        to: String,
        path: PathBuf,
        #[arg(long)]
        language: String,
    },
    /// Send a location.
    SendLocation {
        to: String,
        latitude: f64,
        longitude: f64,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// React to a message.
    React {
        conversation: String,
        message: String,
        emoji: String,
    },
    /// Edit one of your messages.
    Edit {
        conversation: String,
        message: String,
        text: String,
    },
    /// Delete one of your messages for everyone.
    Delete {
        conversation: String,
        message: String,
    },
    /// Set the disappearing-message timer of a conversation (0 = off).
    Timer { conversation: String, seconds: u32 },
    /// Print what arrived, then exit.
    Receive {
        /// Wait up to this long for something to arrive.
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
    Save { message: String, path: PathBuf },
    /// Chat interactively: type to send, see replies live.
    Chat { with: String },
    /// Place a headless call (synthetic audio and video, encrypted end to
    /// end) and print what it measured.
    Call {
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
        conversation: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Search your history.
    Search {
        words: String,
        #[arg(long = "in")]
        conversation: Option<String>,
    },
    /// Show the safety number with a contact (compare it in person).
    SafetyNumber { user: String },
    /// Mark a contact verified after comparing the safety number.
    Verify {
        user: String,
        /// The digits they read to you, checked before marking.
        #[arg(long)]
        digits: Option<String>,
    },
    /// Start fresh sessions with a contact whose messages stay unreadable.
    ResetSession {
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
        name: String,
        #[arg(long, value_delimiter = ',')]
        members: Vec<String>,
    },
    /// Add members.
    Add {
        group: String,
        #[arg(value_delimiter = ',', required = true)]
        users: Vec<String>,
    },
    /// Remove members (they can read nothing sent afterwards).
    Remove {
        group: String,
        #[arg(value_delimiter = ',', required = true)]
        users: Vec<String>,
    },
    /// Rename.
    Rename { group: String, name: String },
    /// Leave.
    Leave { group: String },
    /// List your groups.
    List,
    /// Send a text to a group.
    Send { group: String, text: String },
}

#[derive(Debug, Subcommand)]
enum DirectoryCommand {
    /// Search by name.
    Search {
        query: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
enum DeviceCommand {
    /// List your devices.
    List,
    /// Remove another device (from a manager device).
    Remove { id: u32 },
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
                    report.error.as_deref().unwrap_or("")
                );
            }
            ExitCode::FAILURE
        }
        Err(error) => {
            if output.json {
                println!("{}", serde_json::json!({ "error": error.to_string() }));
            } else {
                eprintln!("error: {error}");
            }
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
