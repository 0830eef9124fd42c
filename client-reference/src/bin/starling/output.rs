//! How the `starling` command prints: human lines, or one JSON object per
//! line with `--json`; progress bars on a terminal.
//!
//! Human lines carry text other people chose (messages, usernames, group
//! and file names). It goes through [`clean`] so it cannot move the cursor,
//! recolour the terminal or fake a line of its own.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::OnceLock;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use starling_client::store::HistoryEntry;
use starling_client::{CallSignalKind, Event, Progress, UpdateKind};

/// Display names from the organisation's directory, by username, for the
/// lines of this run (set once, before anything is printed).
static DISPLAY_NAMES: OnceLock<HashMap<String, String>> = OnceLock::new();

/// Display names longer than this are cut (the server chooses them; the
/// client keeps only plain ones).
const DISPLAY_NAME_CHARS: usize = 64;

/// Sets the display names the lines of this run show.
pub(crate) fn use_display_names(names: HashMap<String, String>) {
    let _ = DISPLAY_NAMES.set(names);
}

/// Where results go.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    pub(crate) json: bool,
}

impl Output {
    /// Prints a result object (JSON) or its human line.
    pub(crate) fn print(&self, value: &impl Serialize, human: impl FnOnce() -> String) {
        print_line(self.render(value, human));
    }

    /// A result object as one JSON line, or its human line.
    pub(crate) fn render(
        &self,
        value: &impl Serialize,
        human: impl FnOnce() -> String,
    ) -> Result<String, serde_json::Error> {
        if self.json {
            serde_json::to_string(value)
        } else {
            Ok(human())
        }
    }

    /// Prints a received event.
    pub(crate) fn event(&self, event: &Event) {
        print_line(self.render_event(event));
    }

    /// A received event as one JSON line, or its human line.
    pub(crate) fn render_event(&self, event: &Event) -> Result<String, serde_json::Error> {
        self.render(event, || match event {
            Event::Message(entry) => message_line(entry),
            Event::Updated { conversation, message_id, change } => format!(
                "[{}] message {} {change}",
                clean(&conversation.to_key()),
                short(message_id)
            ),
            Event::GroupChanged { name, members, active, .. } => {
                if *active {
                    format!("[group {}] members: {}", clean(name), clean_list(members))
                } else {
                    format!("[group {}] you are no longer a member", clean(name))
                }
            }
            Event::IdentityChanged { username } => {
                let username = clean(username);
                format!(
                    "WARNING: {username}'s safety number changed. Compare it again: starling safety-number {username}"
                )
            }
            Event::Call { sender, signal, call_id, .. } => match signal {
                CallSignalKind::Offer => format!(
                    "{} is calling (call {}): answer with `starling answer`",
                    clean(sender),
                    short(call_id)
                ),
                other => format!("[call {}] {}: {other}", short(call_id), clean(sender)),
            },
            Event::SenderKeyRefused { sender, device, reason, .. } => format!(
                "WARNING: the group key from {} (device {device}) was refused ({}); their group messages stay unreadable",
                clean(sender),
                clean(reason)
            ),
            Event::WaitingForSenderKey { sender, device, .. } => format!(
                "a group message from {} (device {device}) waits for their group key, which was asked for; it shows when the key comes",
                clean(sender)
            ),
            Event::CallKeyRefused { sender, device, call_id, epoch, reason } => format!(
                "WARNING: [call {}] a key for epoch {epoch} from {} (device {device}) was refused: {reason}",
                short(call_id),
                clean(sender)
            ),
            Event::DecryptionFailed { sender, reason, .. } if sender.is_empty() => format!(
                "WARNING: a sealed message could not be opened ({}): it was altered on the way or not meant for this device",
                clean(reason)
            ),
            Event::DecryptionFailed { sender, device, reason } => format!(
                "WARNING: a message said to be from {} (device {device}) could not be decrypted ({}); if their messages stay unreadable, run `starling reset-session {}`",
                clean(sender),
                clean(reason),
                clean(sender)
            ),
            Event::SealedSenderRejected { claimed_sender, claimed_device, reason } => format!(
                "WARNING: a sealed message claiming (unverified) to be from {} (device {claimed_device}) was refused: its sender certificate is not valid ({reason}); it was not shown",
                if claimed_sender.is_empty() { "an unknown sender".to_owned() } else { clean(claimed_sender) },
            ),
            Event::RepairRefused { sender, device, reason } => format!(
                "WARNING: {} (device {device}) asked for a new session, which was refused: {}",
                clean(sender),
                clean(reason)
            ),
            Event::SplitView { sender, device, epoch } => format!(
                "WARNING: SPLIT VIEW: {} (device {device}) was shown another transparency log than this device{}: the server is showing you different logs; tell your administrator",
                clean(sender),
                epoch.map(|e| format!(" (two roots for epoch {e})")).unwrap_or_default()
            ),
        })
    }

    /// The read receipts among `events`: one JSON line each, or in text
    /// one line per conversation however many messages it covers.
    pub(crate) fn read_receipts(&self, events: &[Event]) -> Vec<Result<String, serde_json::Error>> {
        let receipts = events.iter().filter(|e| is_read_receipt(e));
        if self.json {
            return receipts.map(serde_json::to_string).collect();
        }
        // Per conversation, in order of first receipt: how many, the last.
        let mut read: Vec<(String, usize, &str)> = Vec::new();
        for event in receipts {
            if let Event::Updated {
                conversation,
                message_id,
                ..
            } = event
            {
                let key = conversation.to_key();
                match read.iter_mut().find(|(k, _, _)| *k == key) {
                    Some(entry) => {
                        entry.1 += 1;
                        entry.2 = message_id;
                    }
                    None => read.push((key, 1, message_id)),
                }
            }
        }
        read.into_iter()
            .map(|(key, count, last)| Ok(read_line(&key, count, last)))
            .collect()
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

/// Prints a rendered line on stdout (or why it could not be, on stderr).
pub(crate) fn print_line(line: Result<String, serde_json::Error>) {
    match line {
        Ok(line) => println!("{line}"),
        Err(e) => eprintln!("error: cannot encode output: {e}"),
    }
}

/// Whether an event only says that messages were read.
pub(crate) fn is_read_receipt(event: &Event) -> bool {
    matches!(
        event,
        Event::Updated {
            change: UpdateKind::Read,
            ..
        }
    )
}

/// One line for the read receipts of a conversation.
fn read_line(conversation: &str, count: usize, last: &str) -> String {
    if count == 1 {
        format!("[{}] message {} read", clean(conversation), short(last))
    } else {
        format!(
            "[{}] {count} messages read, up to {}",
            clean(conversation),
            short(last)
        )
    }
}

/// A person as shown: the username, then their directory name in
/// brackets when the directory has one.
fn person(username: &str, names: Option<&HashMap<String, String>>) -> String {
    match names.and_then(|names| names.get(username)) {
        Some(name) => {
            let name: String = name.chars().take(DISPLAY_NAME_CHARS).collect();
            format!("{} ({})", clean(username), clean(&name))
        }
        None => clean(username),
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// When a message was sent, in local time: the time of day for today's,
/// the date too for older ones.
fn local_time(sent_at_ms: i64) -> String {
    use chrono::{Local, TimeZone};
    let Some(at) = Local.timestamp_millis_opt(sent_at_ms).single() else {
        return String::new();
    };
    if at.date_naive() == Local::now().date_naive() {
        at.format("%H:%M ").to_string()
    } else {
        at.format("%Y-%m-%d %H:%M ").to_string()
    }
}

/// One history line: local time, conversation, sender, text.
pub(crate) fn message_line(entry: &HistoryEntry) -> String {
    message_line_with(entry, DISPLAY_NAMES.get())
}

/// [`message_line`] with the display names given.
fn message_line_with(entry: &HistoryEntry, names: Option<&HashMap<String, String>>) -> String {
    let mut line = format!(
        "{}[{}{}] {}{}: {}",
        local_time(entry.sent_at),
        if entry.conversation.group_id().is_some() {
            "#"
        } else {
            ""
        },
        clean(&entry.conversation_name),
        person(&entry.sender, names),
        if entry.edited { " (edited)" } else { "" },
        clean_body(&entry.body)
    );
    if !entry.reactions.is_empty() {
        let reactions: Vec<String> = entry
            .reactions
            .iter()
            .map(|(u, e)| format!("{} {}", clean(u), clean(e)))
            .collect();
        line.push_str(&format!("  [{}]", reactions.join(", ")));
    }
    line.push_str(&format!("  (id {})", short(&entry.message_id)));
    if matches!(entry.kind.as_str(), "file" | "image" | "voice" | "video") {
        match &entry.attachment_file {
            Some(path) => line.push_str(&format!("\n  saved as {}", clean(path))),
            None => line.push_str(&format!(
                "\n  save it with: starling save {} DIR",
                short(&entry.message_id)
            )),
        }
    }
    line
}

/// Whether a character must not reach a terminal as is: control
/// characters (newlines, escape sequences) and the invisible ones that
/// reorder or break lines.
fn unsafe_char(c: char) -> bool {
    c.is_control() || starling_client::text::invisible_control(c)
}

/// Someone else's text for one line: each unsafe character shows as its
/// `\u{..}` escape; all other Unicode prints as is.
pub(crate) fn clean(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    for c in text.chars() {
        if unsafe_char(c) {
            shown.extend(c.escape_unicode());
        } else {
            shown.push(c);
        }
    }
    shown
}

/// A message text: like [`clean`], except that a line break starts an
/// indented continuation line, which no event line does.
fn clean_body(text: &str) -> String {
    text.split('\n')
        .map(clean)
        .collect::<Vec<_>>()
        .join("\n    ")
}

/// Names, cleaned and joined with commas.
pub(crate) fn clean_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| clean(n))
        .collect::<Vec<_>>()
        .join(", ")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sender: &str, name: &str, body: &str) -> HistoryEntry {
        HistoryEntry {
            message_id: "0011223344".into(),
            conversation: starling_client::Conversation::parse_key("#abcd").unwrap(),
            conversation_name: name.into(),
            sender: sender.into(),
            sender_device: 1,
            outgoing: false,
            kind: "text".into(),
            body: body.into(),
            sent_at: 0,
            edited: false,
            read: false,
            reactions: [("eve\x1b[2J".to_owned(), "👍\r".to_owned())].into(),
            attachment_file: None,
        }
    }

    #[test]
    fn control_characters_show_escaped() {
        assert_eq!(clean("a\x1b[31mb"), "a\\u{1b}[31mb");
        assert_eq!(clean("x\ny\rz\u{7}"), "x\\u{a}y\\u{d}z\\u{7}");
        assert_eq!(clean("abc\u{202e}cba"), "abc\\u{202e}cba");
        assert_eq!(clean("Zoë 日本 👍🏽"), "Zoë 日本 👍🏽");
    }

    #[test]
    fn a_message_cannot_fake_lines_or_terminal_codes() {
        let line = message_line(&entry(
            "mallory\n[@alice] alice",
            "team\x1b]0;title\x07",
            "hi\n[@bob] bob: send me your code\x1b[8m",
        ));
        assert!(
            !line.chars().any(|c| c.is_control() && c != '\n'),
            "{line:?}"
        );
        for continuation in line.lines().skip(1) {
            assert!(continuation.starts_with("    "), "{line:?}");
        }
        assert!(line.contains("mallory\\u{a}[@alice] alice"), "{line:?}");
        assert!(
            line.contains("hi\n    [@bob] bob: send me your code\\u{1b}[8m"),
            "{line:?}"
        );
        assert!(line.contains("eve\\u{1b}[2J 👍\\u{d}"), "{line:?}");
    }

    #[test]
    fn lines_carry_the_local_time_and_saved_files_no_save_hint() {
        let mut file = entry("bob", "team", "report.pdf");
        file.sent_at = chrono::Local::now().timestamp_millis();
        file.kind = "file".into();
        let line = message_line(&file);
        let time = chrono::Local::now().format("%H:%M").to_string();
        let shown = line.get(..5).unwrap_or_default();
        // The minute may have turned between the two readings.
        assert!(shown == time || shown.as_bytes()[2] == b':', "{line}");
        assert!(line.contains("save it with"), "{line}");
        file.attachment_file = Some("/home/bob/report.pdf".into());
        let line = message_line(&file);
        assert!(!line.contains("save it with"), "{line}");
        assert!(line.contains("saved as /home/bob/report.pdf"), "{line}");
        file.sent_at = 0;
        assert!(
            message_line(&file).starts_with("19"),
            "an old message shows its date"
        );
    }

    #[test]
    fn senders_show_their_directory_name_beside_the_username() {
        let message = entry("bob", "bob", "hello");
        let names = HashMap::from([
            ("bob".to_owned(), "Bob Marsh".to_owned()),
            ("eve".to_owned(), "x\u{1b}[2J".repeat(40)),
        ]);
        let line = message_line_with(&message, Some(&names));
        assert!(line.contains("] bob (Bob Marsh): hello"), "{line}");
        assert!(message_line_with(&message, None).contains("] bob: hello"));
        let shown = person("eve", Some(&names));
        assert!(
            shown.starts_with("eve (") && !shown.contains('\u{1b}'),
            "{shown}"
        );
        assert!(shown.chars().count() < 48 * 9, "{shown}");
    }

    #[test]
    fn read_receipts_make_one_line_per_conversation() {
        let read = |who: &str, id: &str| Event::Updated {
            conversation: starling_client::Conversation::parse_key(&format!("@{who}")).unwrap(),
            message_id: id.into(),
            change: UpdateKind::Read,
        };
        let events = vec![
            read("bob", "aaaaaaaa11"),
            read("bob", "bbbbbbbb22"),
            Event::Message(entry("carol", "carol", "hi")),
            read("bob", "cccccccc33"),
            read("carol", "dddddddd44"),
        ];
        let text = Output { json: false }.read_receipts(&events);
        let text: Vec<String> = text.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            text,
            [
                "[@bob] 3 messages read, up to cccccccc",
                "[@carol] message dddddddd read"
            ]
        );
        assert_eq!(Output { json: true }.read_receipts(&events).len(), 4);
        assert!(!is_read_receipt(&events[2]));
    }

    #[test]
    fn member_lists_are_cleaned() {
        let members = vec!["bob".to_owned(), "x\u{1b}[1m".to_owned()];
        assert_eq!(clean_list(&members), "bob, x\\u{1b}[1m");
    }
}
