//! How the `starling` command prints: human lines, or one JSON object per
//! line with `--json`; progress bars on a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use starling_client::store::HistoryEntry;
use starling_client::{Event, Progress};

/// Where results go.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    pub(crate) json: bool,
}

impl Output {
    /// Prints a result object (JSON) or its human line.
    pub(crate) fn print(&self, value: &impl Serialize, human: impl FnOnce() -> String) {
        if self.json {
            match serde_json::to_string(value) {
                Ok(line) => println!("{line}"),
                Err(e) => eprintln!("error: cannot encode output: {e}"),
            }
        } else {
            println!("{}", human());
        }
    }

    /// Prints a received event.
    pub(crate) fn event(&self, event: &Event) {
        self.print(event, || match event {
            Event::Message(entry) => message_line(entry),
            Event::Updated { conversation, message_id, change } => {
                format!("[{conversation}] message {} {change}", short(message_id))
            }
            Event::GroupChanged { name, members, active, .. } => {
                if *active {
                    format!("[group {name}] members: {}", members.join(", "))
                } else {
                    format!("[group {name}] you are no longer a member")
                }
            }
            Event::IdentityChanged { username } => format!(
                "WARNING: {username}'s safety number changed. Compare it again: starling safety-number {username}"
            ),
            Event::DecryptionFailed { sender, device, reason } => format!(
                "WARNING: a message from {sender} (device {device}) could not be decrypted ({reason}); a new session was requested"
            ),
        });
    }

    /// A progress bar on a terminal, nothing otherwise.
    pub(crate) fn progress(&self, label: &str) -> Box<dyn Progress> {
        if self.json || !std::io::stderr().is_terminal() {
            return Box::new(());
        }
        Box::new(Bar {
            bar: None,
            label: label.to_owned(),
        })
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// One history line.
pub(crate) fn message_line(entry: &HistoryEntry) -> String {
    let mut line = format!(
        "[{}] {}{}: {}",
        if entry.conversation.starts_with('#') {
            format!("#{}", entry.conversation_name)
        } else {
            entry.conversation_name.clone()
        },
        entry.sender,
        if entry.edited { " (edited)" } else { "" },
        entry.body
    );
    if !entry.reactions.is_empty() {
        let reactions: Vec<String> = entry
            .reactions
            .iter()
            .map(|(u, e)| format!("{u} {e}"))
            .collect();
        line.push_str(&format!("  [{}]", reactions.join(", ")));
    }
    line.push_str(&format!("  (id {})", short(&entry.message_id)));
    if matches!(entry.kind.as_str(), "file" | "image" | "voice" | "video") {
        line.push_str(&format!(
            "\n  save it with: starling save {} DIR",
            short(&entry.message_id)
        ));
    }
    line
}

struct Bar {
    bar: Option<ProgressBar>,
    label: String,
}

impl Progress for Bar {
    fn start(&mut self, total: u64, done: u64) {
        let bar = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(self.label.clone());
        bar.set_position(done);
        self.bar = Some(bar);
    }

    fn advance(&mut self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
