//! What a typed chat line means: a message, or one of the slash commands.
//! Pure: parsing only, so every form is tested here.

use std::path::PathBuf;

/// The commands, as `/help` lists them.
pub(crate) const HELP: &str = "\
commands:
  /help              this list
  /file PATH         send a file (encrypted before it leaves this device)
  /safety [USER]     show the safety number to compare in person
  /verify [USER] [DIGITS]
                     mark the contact verified: shows the safety number, then
                     a second /verify marks it if it still matches (or give
                     the digits they read to you to have them checked)
  /quit              leave the chat (Ctrl-D too)
  //text             send a message that starts with /
Up and Down recall what you typed; lines typed while the connection is down
are sent once it is back.";

/// One typed line, understood.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Typed {
    /// Nothing to do (a blank line).
    Nothing,
    /// A message to send.
    Text(String),
    /// `/help`.
    Help,
    /// `/file PATH`.
    File(PathBuf),
    /// `/safety [USER]`.
    Safety { user: Option<String> },
    /// `/verify [USER] [DIGITS]`.
    Verify {
        user: Option<String>,
        digits: Option<String>,
    },
    /// `/quit`.
    Quit,
    /// A command that needs something it was not given.
    Incomplete(&'static str),
    /// A slash word that is no command.
    Unknown(String),
}

/// Reads a typed line.
pub(crate) fn parse(line: &str) -> Typed {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Typed::Nothing;
    }
    if let Some(text) = line.strip_prefix("//") {
        return Typed::Text(format!("/{text}"));
    }
    let Some(command) = line.trim_start().strip_prefix('/') else {
        return Typed::Text(line.to_owned());
    };
    let (word, rest) = command
        .split_once(char::is_whitespace)
        .unwrap_or((command, ""));
    let rest = rest.trim();
    match word {
        "help" | "?" => Typed::Help,
        "quit" | "exit" => Typed::Quit,
        "file" if rest.is_empty() => Typed::Incomplete("/file needs the path of the file to send"),
        "file" => Typed::File(path(rest)),
        "safety" => Typed::Safety {
            user: (!rest.is_empty()).then(|| user(rest)),
        },
        "verify" => verify(rest),
        _ => Typed::Unknown(format!("/{word}")),
    }
}

/// `/verify`'s words: an optional user first, then the digits (which may
/// be written in groups with spaces).
fn verify(rest: &str) -> Typed {
    let Some(first) = rest.split_whitespace().next() else {
        return Typed::Verify {
            user: None,
            digits: None,
        };
    };
    if first.chars().all(|c| c.is_ascii_digit()) {
        return Typed::Verify {
            user: None,
            digits: Some(rest.to_owned()),
        };
    }
    let digits = rest[first.len()..].trim();
    Typed::Verify {
        user: Some(user(first)),
        digits: (!digits.is_empty()).then(|| digits.to_owned()),
    }
}

fn user(word: &str) -> String {
    word.trim_start_matches('@').to_owned()
}

/// A typed path: quotes around it dropped, `~/` for the home folder.
fn path(typed: &str) -> PathBuf {
    let unquoted = typed
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .or_else(|| typed.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')))
        .unwrap_or(typed);
    match (unquoted.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(unquoted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_are_messages_and_blank_ones_nothing() {
        assert_eq!(parse("hello there"), Typed::Text("hello there".into()));
        assert_eq!(
            parse("  indented stays"),
            Typed::Text("  indented stays".into())
        );
        assert_eq!(parse("   "), Typed::Nothing);
        assert_eq!(
            parse("//etc/hosts is a path"),
            Typed::Text("/etc/hosts is a path".into())
        );
    }

    #[test]
    fn commands_are_read_with_their_arguments() {
        assert_eq!(parse("/help"), Typed::Help);
        assert_eq!(parse("/quit"), Typed::Quit);
        assert_eq!(parse("/file report.pdf"), Typed::File("report.pdf".into()));
        assert_eq!(
            parse("/file \"my report.pdf\""),
            Typed::File("my report.pdf".into())
        );
        assert!(matches!(parse("/file"), Typed::Incomplete(_)));
        assert_eq!(parse("/safety"), Typed::Safety { user: None });
        assert_eq!(
            parse("/safety @bob"),
            Typed::Safety {
                user: Some("bob".into())
            }
        );
        assert_eq!(parse("/frobnicate x"), Typed::Unknown("/frobnicate".into()));
    }

    #[test]
    fn verify_takes_an_optional_user_then_digits() {
        assert_eq!(
            parse("/verify"),
            Typed::Verify {
                user: None,
                digits: None
            }
        );
        assert_eq!(
            parse("/verify 12345 67890"),
            Typed::Verify {
                user: None,
                digits: Some("12345 67890".into())
            }
        );
        assert_eq!(
            parse("/verify @bob 12345 67890"),
            Typed::Verify {
                user: Some("bob".into()),
                digits: Some("12345 67890".into())
            }
        );
        assert_eq!(
            parse("/verify bob"),
            Typed::Verify {
                user: Some("bob".into()),
                digits: None
            }
        );
    }

    #[test]
    fn help_names_every_command() {
        for command in ["/help", "/file", "/safety", "/verify", "/quit"] {
            assert!(HELP.contains(command), "{command}");
        }
    }
}
