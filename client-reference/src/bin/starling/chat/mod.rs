//! `starling chat`: the conversation's last messages, then a live chat.
//! Each typed line is sent, what arrives is shown above the line being
//! typed, and the slash commands of [`typed::HELP`] work.
//!
//! The chat outlives its connection: when the server goes away (a restart,
//! a network change) it says so, tries again with a growing wait, and
//! sends what was typed meanwhile once the connection is back. Only what
//! cannot get better by waiting (this device removed, credentials refused)
//! ends it.

mod terminal;
mod trust;
mod typed;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use starling_client::connection::{Connection, ServerEvent};
use starling_client::{Client, ClientError, Conversation, Event, kind_for};
use tokio::time::Instant;

use crate::error::Result;
use crate::output::{Output, clean, is_read_receipt, message_line};
use terminal::Screen;
use typed::Typed;

/// Messages of the conversation shown when a chat starts.
const CHAT_HISTORY: u32 = 20;

/// How often an idle connection is pinged (a dead one is noticed then).
const KEEPALIVE: Duration = Duration::from_secs(30);

/// `starling chat`, until `/quit`, Ctrl-D or the end of the input.
pub(crate) async fn chat(client: &mut Client, with: &str, out: Output) -> Result<()> {
    let conversation = client.resolve(with).await?;
    let (screen, mut typed) = terminal::open(out.json);
    let mut chat = Chat {
        conversation,
        with: with.trim_start_matches(['@', '#']).to_owned(),
        out,
        screen,
        connection: None,
        drained: false,
        backoff: Backoff::default(),
        retry_at: Instant::now(),
        down: false,
        pending: VecDeque::new(),
        compared: None,
    };
    for entry in client.history(&chat.conversation, CHAT_HISTORY).await? {
        chat.show(out.render(&entry, || message_line(&entry)));
    }
    if !out.json {
        chat.screen.note(format!(
            "chatting with {}: type a message and press Enter; /help lists the commands, /quit or Ctrl-D leaves",
            clean(with)
        ));
    }
    let ended = chat.run(client, &mut typed).await;
    chat.leave().await;
    ended
}

/// The next event on the connection, or never while there is none.
async fn next_event(
    connection: &mut Option<Connection>,
) -> std::result::Result<Option<ServerEvent>, ClientError> {
    match connection {
        Some(connection) => connection.next_event().await,
        None => std::future::pending().await,
    }
}

/// Something typed to be sent.
enum Outgoing {
    Text(String),
    File(PathBuf),
}

/// A chat in progress.
struct Chat {
    conversation: Conversation,
    /// Who with, as typed (without `@` or `#`).
    with: String,
    out: Output,
    screen: Screen,
    connection: Option<Connection>,
    drained: bool,
    backoff: Backoff,
    /// When to try to connect again (while there is no connection).
    retry_at: Instant,
    /// Whether a connection was lost or a try failed since the last
    /// one worked (then a new one is announced as "reconnected").
    down: bool,
    /// Typed while there was no connection, in order.
    pending: VecDeque<Outgoing>,
    /// The last safety number shown: (username, digits).
    compared: Option<(String, String)>,
}

impl Chat {
    /// Until the input ends, `/quit`, or what no retry cures.
    async fn run(
        &mut self,
        client: &mut Client,
        typed: &mut tokio::sync::mpsc::Receiver<String>,
    ) -> Result<()> {
        self.connect(client).await?;
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                line = typed.recv() => {
                    let Some(line) = line else { return Ok(()) };
                    if !self.typed(client, &line).await? {
                        return Ok(());
                    }
                }
                event = next_event(&mut self.connection) => self.server_event(client, event).await?,
                () = tokio::time::sleep_until(self.retry_at), if self.connection.is_none() => {
                    self.connect(client).await?;
                    keepalive.reset();
                }
                _ = keepalive.tick(), if self.connection.is_some() => self.ping().await?,
            }
        }
    }

    /// Acts on a typed line; `false` ends the chat.
    async fn typed(&mut self, client: &mut Client, line: &str) -> Result<bool> {
        match typed::parse(line) {
            Typed::Nothing => {}
            Typed::Quit => return Ok(false),
            Typed::Help => self.screen.note(typed::HELP.to_owned()),
            Typed::Text(text) => self.send(client, Outgoing::Text(text)).await?,
            Typed::File(path) => self.send(client, Outgoing::File(path)).await?,
            Typed::Safety { user } => self.safety(client, user).await?,
            Typed::Verify { user, digits } => self.verify(client, user, digits).await?,
            Typed::Incomplete(why) => self.screen.note(why.to_owned()),
            Typed::Unknown(word) => self.screen.note(format!(
                "{} is not a command: /help lists them (start a message with // to send a leading /)",
                clean(&word)
            )),
        }
        Ok(true)
    }

    /// Sends now, or keeps it for when the connection is back.
    async fn send(&mut self, client: &mut Client, item: Outgoing) -> Result<()> {
        if self.connection.is_none() || !self.pending.is_empty() {
            self.pending.push_back(item);
            self.screen.note(
                "not sent yet: there is no connection to the server; it is sent once the connection is back".into(),
            );
            return Ok(());
        }
        match self.deliver(client, &item).await {
            Ok(()) => Ok(()),
            Err(e) if connection_trouble(&e) => {
                self.pending.push_back(item);
                self.lost();
                self.screen
                    .note("not sent yet: it is sent once the connection is back".into());
                Ok(())
            }
            Err(e) => self.refused(e),
        }
    }

    /// Sends what was typed while the connection was down, in order.
    async fn flush(&mut self, client: &mut Client) -> Result<()> {
        let mut sent = 0;
        while let Some(item) = self.pending.pop_front() {
            match self.deliver(client, &item).await {
                Ok(()) => sent += 1,
                Err(e) if connection_trouble(&e) => {
                    self.pending.push_front(item);
                    self.lost();
                    break;
                }
                Err(e) => self.refused(e)?,
            }
        }
        if sent > 0 {
            let lines = if sent == 1 { "line" } else { "lines" };
            self.screen.note(format!(
                "sent the {sent} {lines} typed while the connection was down"
            ));
        }
        Ok(())
    }

    async fn deliver(
        &mut self,
        client: &mut Client,
        item: &Outgoing,
    ) -> std::result::Result<(), ClientError> {
        match item {
            Outgoing::Text(text) => client.send_text(&self.conversation, text).await.map(drop),
            Outgoing::File(path) => {
                let kind = kind_for(&path.to_string_lossy());
                client
                    .send_file(&self.conversation, path, kind, "", &mut ())
                    .await?;
                self.screen.note(format!("sent {}", file_name(path)));
                Ok(())
            }
        }
    }

    /// A send the server or this device refused: said, and the chat goes
    /// on, unless nothing can be sent from this device any more.
    fn refused(&mut self, error: ClientError) -> Result<()> {
        if ends_the_chat(&error) {
            return Err(error.into());
        }
        self.screen.note(format!(
            "not sent: {} (Up brings the line back)",
            said(&error)
        ));
        Ok(())
    }

    /// Processes what the server pushed, to completion.
    async fn server_event(
        &mut self,
        client: &mut Client,
        event: std::result::Result<Option<ServerEvent>, ClientError>,
    ) -> Result<()> {
        let event = match event {
            Ok(Some(event)) => event,
            Ok(None) => {
                self.lost();
                return Ok(());
            }
            Err(e) if ends_the_chat(&e) => return Err(e.into()),
            Err(_) => {
                self.lost();
                return Ok(());
            }
        };
        let Some(connection) = self.connection.as_mut() else {
            return Ok(());
        };
        match client
            .handle_server_event(connection, event, &mut self.drained)
            .await
        {
            Ok(events) => {
                // A connection that delivered its queue is a working one:
                // the next loss starts the waits afresh.
                if self.drained {
                    self.backoff = Backoff::default();
                }
                for event in events.iter().filter(|e| !is_read_receipt(e)) {
                    if self.belongs_here(event) {
                        self.show(self.out.render_event(event));
                    }
                }
                for line in self.out.read_receipts(&events) {
                    self.show(line);
                }
            }
            Err(e) if ends_the_chat(&e) => return Err(e.into()),
            Err(e) if connection_trouble(&e) => self.lost(),
            Err(e) => self.screen.note(format!("error: {}", said(&e))),
        }
        Ok(())
    }

    /// Messages of other conversations wait for `receive`; everything else
    /// (warnings, calls, group changes) is shown.
    fn belongs_here(&self, event: &Event) -> bool {
        match event {
            Event::Message(entry) => entry.conversation == self.conversation,
            _ => true,
        }
    }

    /// Tries to (re)connect; on failure the next try is planned.
    async fn connect(&mut self, client: &mut Client) -> Result<()> {
        match client.connect().await {
            Ok(connection) => {
                self.connection = Some(connection);
                self.drained = false;
                if std::mem::take(&mut self.down) {
                    self.screen.note("reconnected".into());
                }
                self.flush(client).await
            }
            Err(e) if ends_the_chat(&e) => Err(e.into()),
            Err(_) => {
                let wait = self.plan_retry();
                self.down = true;
                self.screen.note(format!(
                    "cannot reach the server; trying again in {} s",
                    wait.as_secs()
                ));
                Ok(())
            }
        }
    }

    /// The working connection broke: said, and a new one planned (only
    /// a live connection is ever lost; failed tries say so themselves).
    fn lost(&mut self) {
        self.connection = None;
        self.down = true;
        let wait = self.plan_retry();
        self.screen.note(format!(
            "connection to the server lost; reconnecting in {} s",
            wait.as_secs()
        ));
    }

    fn plan_retry(&mut self) -> Duration {
        let wait = self.backoff.next_wait();
        self.retry_at = Instant::now() + wait;
        wait
    }

    async fn ping(&mut self) -> Result<()> {
        let Some(connection) = self.connection.as_mut() else {
            return Ok(());
        };
        match connection.ping().await {
            Ok(()) => Ok(()),
            Err(e) if ends_the_chat(&e) => Err(e.into()),
            Err(_) => {
                self.lost();
                Ok(())
            }
        }
    }

    fn show(&mut self, line: std::result::Result<String, serde_json::Error>) {
        match line {
            Ok(line) => self.screen.show(line),
            Err(e) => self
                .screen
                .note(format!("error: cannot encode output: {e}")),
        }
    }

    /// Closes the connection; what could not be sent is shown so that it
    /// is not lost.
    async fn leave(&mut self) {
        if let Some(connection) = self.connection.take() {
            connection.close().await;
        }
        for item in std::mem::take(&mut self.pending) {
            let what = match &item {
                Outgoing::Text(text) => clean(text),
                Outgoing::File(path) => format!("/file {}", file_name(path)),
            };
            self.screen
                .note(format!("not sent (no connection to the server): {what}"));
        }
    }
}

/// An error as shown: its text may carry the server's words, so it is
/// cleaned like any other text from outside.
pub(super) fn said(error: &ClientError) -> String {
    clean(&error.to_string())
}

fn file_name(path: &Path) -> String {
    clean(&path.to_string_lossy())
}

/// Trouble that waiting and reconnecting can cure.
fn connection_trouble(error: &ClientError) -> bool {
    match error {
        ClientError::Network(_) | ClientError::Protocol(_) => true,
        ClientError::Server { status, .. } => *status >= 500 || matches!(status, 408 | 429),
        _ => false,
    }
}

/// Trouble no retry cures: this device can no longer use the account.
fn ends_the_chat(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::DeviceRemoved | ClientError::Server { status: 401, .. }
    )
}

/// The wait before the next try to connect: 1 s, doubling up to 30 s, each
/// with up to a fifth more at random so that clients cut off together do
/// not all come back in the same instant.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_secs(1);
    const LONGEST: Duration = Duration::from_secs(30);

    fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(Self::LONGEST);
        let spread = u64::try_from(wait.as_millis() / 5).unwrap_or(0);
        let extra = rand::random::<u64>() % spread.max(1);
        wait + Duration::from_millis(extra)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: Self::FIRST }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_up_to_half_a_minute_with_a_little_spread() {
        let mut backoff = Backoff::default();
        for base in [1, 2, 4, 8, 16, 30, 30, 30] {
            let wait = backoff.next_wait();
            let base = Duration::from_secs(base);
            assert!(
                wait >= base && wait < base + base / 5 + Duration::from_millis(1),
                "{wait:?}"
            );
        }
    }

    #[test]
    fn only_trouble_that_waiting_cures_is_retried() {
        let server = |status| ClientError::Server {
            status,
            code: String::new(),
            reason: String::new(),
        };
        assert!(connection_trouble(&ClientError::Network("reset".into())));
        assert!(connection_trouble(&server(503)));
        assert!(connection_trouble(&server(429)));
        assert!(!connection_trouble(&server(403)));
        assert!(!connection_trouble(&ClientError::DeviceRemoved));
        assert!(ends_the_chat(&ClientError::DeviceRemoved));
        assert!(ends_the_chat(&server(401)));
        assert!(!ends_the_chat(&ClientError::Network("reset".into())));
    }
}
