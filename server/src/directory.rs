//! Directory import (CSV) and search (prefix, then fuzzy).
//!
//! The CSV has a header row with the columns `username`, `display_name`,
//! `title` and `department` (the last two may be empty). Search matches a
//! query against the words of the display name and the username: a word
//! that starts with the query ranks first, then words close to it by
//! Jaro-Winkler similarity (typos, transpositions).

use thiserror::Error;

use crate::store::DirectoryEntry;

/// Most entries one import accepts.
pub const MAX_IMPORT_ROWS: usize = 100_000;
/// Similarity a word needs to count as a fuzzy match.
const FUZZY_THRESHOLD: f64 = 0.85;

/// An import file was refused; nothing was imported.
#[derive(Debug, Error)]
pub enum ImportError {
    /// The CSV is malformed.
    #[error("line {line}: {reason}")]
    Row {
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// Too many rows.
    #[error("more than {MAX_IMPORT_ROWS} rows")]
    TooLarge,
}

#[derive(serde::Deserialize)]
struct Row {
    username: String,
    display_name: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    department: String,
}

/// Parses and validates a directory CSV.
pub fn parse_csv(input: impl std::io::Read) -> Result<Vec<DirectoryEntry>, ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let mut entries = Vec::new();
    for record in reader.deserialize::<Row>() {
        let row = record.map_err(|e| ImportError::Row {
            line: e.position().map_or(0, |p| p.line()),
            reason: e.to_string(),
        })?;
        let line = u64::try_from(entries.len())
            .unwrap_or(u64::MAX)
            .saturating_add(2);
        starling_protocol::Username::parse(&row.username).map_err(|e| ImportError::Row {
            line,
            reason: e.to_string(),
        })?;
        if row.display_name.is_empty()
            || row.display_name.len() > 200
            || row.title.len() > 200
            || row.department.len() > 200
        {
            return Err(ImportError::Row {
                line,
                reason: "display_name is required; fields are at most 200 bytes".into(),
            });
        }
        if entries.len() >= MAX_IMPORT_ROWS {
            return Err(ImportError::TooLarge);
        }
        entries.push(DirectoryEntry {
            username: row.username,
            display_name: row.display_name,
            title: row.title,
            department: row.department,
        });
    }
    Ok(entries)
}

/// How well `entry` matches `query` (lowercase); `None` for no match.
fn score(entry: &DirectoryEntry, query: &str) -> Option<f64> {
    let display = entry.display_name.to_lowercase();
    let words = display
        .split_whitespace()
        .chain(std::iter::once(entry.username.as_str()));
    let mut best: Option<f64> = None;
    for word in words {
        let score = if word.starts_with(query) {
            2.0
        } else {
            let prefix: String = word.chars().take(query.chars().count()).collect();
            let similarity =
                strsim::jaro_winkler(query, &prefix).max(strsim::jaro_winkler(query, word));
            if similarity < FUZZY_THRESHOLD {
                continue;
            }
            similarity
        };
        best = Some(best.map_or(score, |b: f64| b.max(score)));
    }
    if display.starts_with(query) {
        best = Some(3.0);
    }
    best
}

/// The best `limit` matches for `query`, best first.
pub fn search(entries: Vec<DirectoryEntry>, query: &str, limit: usize) -> Vec<DirectoryEntry> {
    let query = query.trim().to_lowercase();
    if query.is_empty() {
        return entries.into_iter().take(limit).collect();
    }
    let mut scored: Vec<(f64, DirectoryEntry)> = entries
        .into_iter()
        .filter_map(|e| score(&e, &query).map(|s| (s, e)))
        .collect();
    scored.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then_with(|| a.1.display_name.cmp(&b.1.display_name))
    });
    scored.into_iter().take(limit).map(|(_, e)| e).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<DirectoryEntry> {
        parse_csv(
            "username,display_name,title,department\n\
             mmueller,Maria Müller,Engineer,Platform\n\
             jsmith,John Smith,Director,Sales\n\
             asmithers,Anna Smithers,,\n\
             kjones,Karen Jones,Analyst,Finance\n"
                .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn prefix_then_fuzzy() {
        let names = |q| {
            search(entries(), q, 10)
                .into_iter()
                .map(|e| e.username)
                .collect::<Vec<_>>()
        };
        assert_eq!(names("smi"), vec!["asmithers", "jsmith"]);
        // Prefix matches first; close spellings after them.
        assert_eq!(names("john")[0], "jsmith");
        assert_eq!(names("jnoes"), vec!["kjones"]);
        assert_eq!(names("müller"), vec!["mmueller"]);
        assert!(names("zzzz").is_empty());
        assert_eq!(names("").len(), 4);
    }

    #[test]
    fn bad_rows_are_refused_with_their_line() {
        let error = parse_csv("username,display_name\ngood,Good Name\nBad User,X\n".as_bytes())
            .unwrap_err();
        assert!(error.to_string().starts_with("line 3"), "{error}");
        assert!(parse_csv("username,display_name\nok_user,\n".as_bytes()).is_err());
        assert!(parse_csv("nothing,here\n1,2\n".as_bytes()).is_err());
    }
}
