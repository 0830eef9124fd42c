//! Display names from the organisation's directory, shown beside
//! usernames. The whole directory is fetched at once, at most once a day:
//! never one name at a time, which would tell the server whose messages
//! arrive. The names are the server's words: only plain names are kept
//! (no brackets, at signs, control or invisible characters, runs of
//! spaces), so that one cannot pass for a username or hide the one beside
//! it.

use std::collections::HashMap;

use super::Client;
use crate::error::Result;

/// How old the kept copy may grow before it is fetched again: a day.
const REFRESH_MILLIS: i64 = 86_400 * 1000;

/// Longest display name kept, in characters.
const LONGEST_NAME: usize = 64;

/// Most names kept (a directory larger than this is cut).
const MOST_NAMES: usize = 200_000;

impl Client {
    /// Display names by username. The whole directory is fetched again
    /// when the copy kept is older than a day and `refresh` is set; if
    /// that fails (no connection), the copy kept is used. Show them beside
    /// the username, never instead of it.
    pub async fn display_names(&self, refresh: bool) -> Result<HashMap<String, String>> {
        let now = crate::store::now_millis();
        let fetched = self.store().directory_fetched_at().await?;
        let stale = fetched.is_none_or(|at| now.saturating_sub(at) > REFRESH_MILLIS);
        if refresh && stale {
            match self.api().directory_all().await {
                Ok(entries) => {
                    let names: Vec<(String, String)> = entries
                        .into_iter()
                        .filter(|e| {
                            starling_protocol::Username::parse(&e.username).is_ok()
                                && e.display_name != e.username
                                && plain_name(&e.display_name)
                        })
                        .take(MOST_NAMES)
                        .map(|e| (e.username, e.display_name))
                        .collect();
                    self.store().replace_display_names(&names, now).await?;
                }
                Err(error) => tracing::debug!(%error, "directory not refreshed"),
            }
        }
        self.store().display_names().await
    }
}

/// Whether a display name is one to show: not empty, at most
/// [`LONGEST_NAME`] characters, single spaces between words, and none of
/// the characters that could fake a username or a line's layout.
fn plain_name(name: &str) -> bool {
    let count = name.chars().count();
    count > 0
        && count <= LONGEST_NAME
        && !name.starts_with(' ')
        && !name.ends_with(' ')
        && !name.contains("  ")
        && name.chars().all(plain_char)
}

fn plain_char(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !(c.is_control()
        || c.is_whitespace()
        || crate::text::invisible_control(c)
        || matches!(c, '(' | ')' | '[' | ']' | '<' | '>' | '@' | '#' | ':' | '"' | '`')
        // Characters that show as nothing: soft hyphen, zero-width space
        // and joiners, word joiner and friends, the byte-order mark,
        // Hangul fillers, variation selectors.
        || matches!(c, '\u{ad}' | '\u{115f}' | '\u{1160}' | '\u{180e}' | '\u{3164}' | '\u{ffa0}' | '\u{feff}')
        || ('\u{200b}'..='\u{200d}').contains(&c)
        || ('\u{2060}'..='\u{2065}').contains(&c)
        || ('\u{206a}'..='\u{206f}').contains(&c)
        || ('\u{fe00}'..='\u{fe0f}').contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_kept() {
        for name in [
            "Alice Martin",
            "José Ñúñez-O'Brien",
            "李小龍",
            "Zoë d'Arc Jr.",
        ] {
            assert!(plain_name(name), "{name}");
        }
    }

    #[test]
    fn names_that_could_pass_for_another_are_dropped() {
        for name in [
            "",
            "Bob Marsh (bob)",
            "bob]",
            "@bob",
            "Bob  Marsh",
            " Bob",
            "Bob\u{200b}Marsh",
            "Bob\u{3000}Marsh",
            "Bob\u{202e}hsraM",
            "Bob\u{3164}",
            "Bob\nMarsh",
            &"x".repeat(65),
        ] {
            assert!(!plain_name(name), "{name:?}");
        }
    }
}
