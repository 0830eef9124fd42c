//! The chat's two ends on the person's side: what they type, read on a
//! thread of its own, and the screen the chat writes to.
//!
//! On a terminal the typed line is edited with rustyline (history, cursor
//! keys, Ctrl-A/E and the rest), and everything the chat prints goes
//! through rustyline's external printer, which clears the line being
//! typed, prints above it and redraws it: an incoming message never lands
//! in the middle of what is being typed. The terminal's settings are
//! restored when the chat ends, whatever way it ends.
//!
//! Fed from a pipe (or with `--json`), lines are read as they come and
//! printed as they are: results on stdout, notes on stderr.
//!
//! The history of typed lines lives in memory for the chat only: a file of
//! it would keep message text in the clear beside the encrypted store.

use std::io::{BufRead, IsTerminal};

use rustyline::error::ReadlineError;
use rustyline::{Config, DefaultEditor, ExternalPrinter};
use tokio::sync::mpsc;

/// The prompt before the line being typed.
pub(crate) const PROMPT: &str = "> ";

/// Typed lines kept for the Up key.
const HISTORY_LINES: usize = 1000;

/// Lines typed but not yet taken by the chat.
const TYPED_BACKLOG: usize = 64;

/// Where the chat's lines go.
pub(crate) struct Screen {
    printer: Option<Box<dyn ExternalPrinter + Send>>,
    _restore: Option<TerminalRestore>,
}

impl Screen {
    /// A result line (a message, an event, a command's answer).
    pub(crate) fn show(&mut self, line: String) {
        match &mut self.printer {
            Some(printer) => Self::above(printer.as_mut(), line),
            None => println!("{line}"),
        }
    }

    /// A note about the chat itself (connection, hints, errors).
    pub(crate) fn note(&mut self, line: String) {
        match &mut self.printer {
            Some(printer) => Self::above(printer.as_mut(), line),
            None => eprintln!("{line}"),
        }
    }

    fn above(printer: &mut dyn ExternalPrinter, line: String) {
        // The printer fails only once the terminal is gone; the chat
        // notices that as the end of its input.
        let _ = printer.print(line + "\n");
    }
}

/// Starts reading what is typed. On a terminal (and without `--json`) the
/// line editor is used; the receiver yields each line and closes at the
/// end of the input (Ctrl-D, Ctrl-C, `/quit`, or the pipe's end).
pub(crate) fn open(json: bool) -> (Screen, mpsc::Receiver<String>) {
    let (sender, typed) = mpsc::channel(TYPED_BACKLOG);
    let on_terminal = !json && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    if on_terminal && let Some((editor, printer)) = editor() {
        let restore = TerminalRestore::save();
        std::thread::spawn(move || edit_lines(editor, &sender));
        let screen = Screen {
            printer: Some(printer),
            _restore: restore,
        };
        return (screen, typed);
    }
    std::thread::spawn(move || read_lines(&sender));
    let screen = Screen {
        printer: None,
        _restore: None,
    };
    (screen, typed)
}

/// The line editor and its printer, or `None` if the terminal refuses.
fn editor() -> Option<(DefaultEditor, Box<dyn ExternalPrinter + Send>)> {
    let config = Config::builder()
        .auto_add_history(true)
        .history_ignore_space(true)
        .max_history_size(HISTORY_LINES)
        .ok()?
        .history_ignore_dups(true)
        .ok()?
        .build();
    let mut editor = DefaultEditor::with_config(config).ok()?;
    let printer = editor.create_external_printer().ok()?;
    Some((editor, Box::new(printer)))
}

/// The editing thread: one line at a time until the input ends.
fn edit_lines(mut editor: DefaultEditor, sender: &mpsc::Sender<String>) {
    loop {
        match editor.readline(PROMPT) {
            Ok(line) => {
                let quit = is_quit(&line);
                if sender.blocking_send(line).is_err() || quit {
                    return;
                }
            }
            Err(ReadlineError::Signal(_)) => {}
            Err(_) => return,
        }
    }
}

/// The reading thread for a pipe.
fn read_lines(sender: &mpsc::Sender<String>) {
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { return };
        let quit = is_quit(&line);
        if sender.blocking_send(line).is_err() || quit {
            return;
        }
    }
}

/// Whether a typed line ends the chat (the reading stops there, so the
/// terminal is left as it was found).
fn is_quit(line: &str) -> bool {
    super::typed::parse(line) == super::typed::Typed::Quit
}

/// The terminal's settings from before the chat, put back on drop: the
/// editing thread may still hold the terminal in raw mode when the chat
/// ends on an error.
#[cfg(unix)]
struct TerminalRestore {
    saved: nix::sys::termios::Termios,
}

#[cfg(unix)]
impl TerminalRestore {
    fn save() -> Option<Self> {
        let saved = nix::sys::termios::tcgetattr(std::io::stdin()).ok()?;
        Some(Self { saved })
    }
}

#[cfg(unix)]
impl Drop for TerminalRestore {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.saved,
        );
    }
}

#[cfg(not(unix))]
struct TerminalRestore;

#[cfg(not(unix))]
impl TerminalRestore {
    fn save() -> Option<Self> {
        None
    }
}
