//! Directory import (CSV) and search (prefix, then fuzzy).
//!
//! The CSV has a header row with the columns `username`, `display_name`,
//! `title` and `department` (the last two may be left out or empty); a
//! refused file lists its bad lines by number. Search matches each word of
//! a query against the words of the display name, username, title and
//! department: a word that starts with it ranks first, then words close to
//! it by Jaro-Winkler similarity (typos, transpositions); a display name
//! that starts with the whole query (a full name) ranks above all.

use thiserror::Error;

use crate::store::DirectoryEntry;

/// Most entries one import accepts.
pub const MAX_IMPORT_ROWS: usize = 100_000;
/// Similarity a word needs to count as a fuzzy match.
const FUZZY_THRESHOLD: f64 = 0.85;

/// Most bad lines one refusal lists.
const MAX_REPORTED_LINES: usize = 20;

/// An import file was refused; nothing was imported.
#[derive(Debug, Error)]
pub enum ImportError {
    /// The header row is not the expected one.
    #[error(
        "the first line must be the header `username,display_name,title,department` (title and department may be left out): {0}"
    )]
    Header(String),
    /// Lines are malformed (the first twenty are listed).
    #[error("{}", list_lines(.0))]
    Rows(Vec<BadLine>),
    /// Too many rows.
    #[error("more than {MAX_IMPORT_ROWS} rows")]
    TooLarge,
}

/// A malformed line of an import file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line number in the file.
    pub line: u64,
    /// What is wrong.
    pub reason: String,
}

fn list_lines(lines: &[BadLine]) -> String {
    let mut text = format!("{} bad line(s); nothing was imported", lines.len());
    for bad in lines {
        text.push_str(&format!("\nline {}: {}", bad.line, bad.reason));
    }
    text
}

/// The columns an import file has.
const COLUMNS: [&str; 4] = ["username", "display_name", "title", "department"];

#[derive(serde::Deserialize)]
struct Row {
    username: String,
    display_name: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    department: String,
}

/// Checks the header: `username` and `display_name`, then optionally
/// `title` and `department`, nothing else, none twice.
fn check_header(header: &csv::StringRecord) -> Result<(), ImportError> {
    let names: Vec<&str> = header.iter().collect();
    if let Some(unknown) = names.iter().find(|n| !COLUMNS.contains(n)) {
        return Err(ImportError::Header(format!("unknown column `{unknown}`")));
    }
    for required in &COLUMNS[..2] {
        if !names.contains(required) {
            return Err(ImportError::Header(format!("no `{required}` column")));
        }
    }
    let mut seen = names.clone();
    seen.sort_unstable();
    seen.dedup();
    if seen.len() != names.len() {
        return Err(ImportError::Header("a column appears twice".into()));
    }
    Ok(())
}

/// Validates one row.
fn check_row(row: &Row) -> Result<(), String> {
    starling_protocol::Username::parse(&row.username)
        .map_err(|e| format!("username `{}`: {e}", row.username))?;
    if row.display_name.is_empty() {
        return Err("display_name is empty".into());
    }
    if [&row.display_name, &row.title, &row.department]
        .iter()
        .any(|f| f.len() > 200)
    {
        return Err("a field is longer than 200 bytes".into());
    }
    Ok(())
}

/// Parses and validates a directory CSV. Every bad line is reported (up to
/// twenty) with its line number, and then nothing is
/// imported.
pub fn parse_csv(mut input: impl std::io::Read) -> Result<Vec<DirectoryEntry>, ImportError> {
    let mut text = Vec::new();
    input
        .read_to_end(&mut text)
        .map_err(|e| ImportError::Header(e.to_string()))?;
    // The reader gives a record the line it started reading at, blank
    // lines before it included: the record's own line is the first that
    // is not blank.
    let blank: Vec<bool> = text
        .split(|b| *b == b'\n')
        .map(|l| l.iter().all(u8::is_ascii_whitespace))
        .collect();
    let line_of = |position: Option<&csv::Position>| {
        let start = position.map_or(0, csv::Position::line);
        let mut line = start;
        while usize::try_from(line)
            .ok()
            .and_then(|l| blank.get(l.checked_sub(1)?))
            .copied()
            .unwrap_or(false)
        {
            line += 1;
        }
        line
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text.as_slice());
    let header = reader
        .headers()
        .map_err(|e| ImportError::Header(e.to_string()))?
        .clone();
    check_header(&header)?;
    let mut entries = Vec::new();
    let mut bad = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for record in reader.records() {
        let (line, row) = match record {
            Ok(record) => {
                let line = line_of(record.position());
                if record.len() != header.len() {
                    let reason =
                        format!("{} fields, the header has {}", record.len(), header.len());
                    bad.push(BadLine { line, reason });
                    continue;
                }
                (
                    line,
                    record
                        .deserialize::<Row>(Some(&header))
                        .map_err(|e| e.to_string()),
                )
            }
            Err(e) => (
                e.position().map_or(0, csv::Position::line),
                Err(e.to_string()),
            ),
        };
        let checked = row.and_then(|row| {
            check_row(&row)?;
            if !seen.insert(row.username.clone()) {
                return Err(format!("username `{}` appears twice", row.username));
            }
            Ok(row)
        });
        match checked {
            Ok(row) if bad.is_empty() => {
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
            Ok(_) => {}
            Err(reason) => bad.push(BadLine { line, reason }),
        }
        if bad.len() >= MAX_REPORTED_LINES {
            break;
        }
    }
    if !bad.is_empty() {
        return Err(ImportError::Rows(bad));
    }
    Ok(entries)
}

/// The words an entry is found by: its display name, username, title and
/// department, lowercase.
fn words(entry: &DirectoryEntry) -> Vec<String> {
    [
        &entry.display_name,
        &entry.username,
        &entry.title,
        &entry.department,
    ]
    .iter()
    .flat_map(|field| field.split_whitespace())
    .map(str::to_lowercase)
    .collect()
}

/// How well one query word matches one of `words`: a prefix ranks 2, a
/// close spelling its similarity; `None` below the fuzzy threshold.
fn word_score(words: &[String], query: &str) -> Option<f64> {
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
    best
}

/// How well `entry` matches `query` (lowercase): every word of the query
/// must match a word of the entry; a display name or full name that starts
/// with the whole query ranks first. `None` for no match.
fn score(entry: &DirectoryEntry, query: &str) -> Option<f64> {
    let display = entry.display_name.to_lowercase();
    if display.starts_with(query) || entry.username.to_lowercase() == query {
        return Some(3.0 * 8.0);
    }
    let words = words(entry);
    let mut total = 0.0;
    for part in query.split_whitespace() {
        total += word_score(&words, part)?;
    }
    Some(total)
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
    fn full_names_titles_and_departments_are_found() {
        let names = |q| {
            search(entries(), q, 10)
                .into_iter()
                .map(|e| e.username)
                .collect::<Vec<_>>()
        };
        assert_eq!(names("Maria Müller"), vec!["mmueller"]);
        assert_eq!(names("karen jones"), vec!["kjones"]);
        assert_eq!(names("director"), vec!["jsmith"]);
        assert_eq!(names("finance"), vec!["kjones"]);
        assert_eq!(names("platform eng"), vec!["mmueller"]);
        // Every word must match something of the entry.
        assert!(names("john zzzz").is_empty());
    }

    #[test]
    fn every_bad_line_is_reported_by_its_number() {
        let text = "username,display_name,title,department\n\
                    good,Good Name,,\n\
                    Bad User,X,,\n\
                    \n\
                    ok2,,,\n\
                    good,Again,,\n\
                    short,Only\n";
        let Err(ImportError::Rows(bad)) = parse_csv(text.as_bytes()) else {
            panic!("accepted");
        };
        let lines: Vec<u64> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, vec![3, 5, 6, 7], "{bad:?}");
    }

    #[test]
    fn a_wrong_header_is_refused_by_name() {
        let error = parse_csv("user,name\nalice,Alice\n".as_bytes()).unwrap_err();
        assert!(
            error.to_string().contains("unknown column `user`"),
            "{error}"
        );
        let error = parse_csv("alice,Alice Smith\n".as_bytes()).unwrap_err();
        assert!(matches!(error, ImportError::Header(_)), "{error}");
        let only_required = parse_csv("username,display_name\nalice,Alice\n".as_bytes());
        assert_eq!(only_required.unwrap().len(), 1);
    }

    #[test]
    fn bad_rows_are_refused_with_their_line() {
        let error = parse_csv("username,display_name\ngood,Good Name\nBad User,X\n".as_bytes())
            .unwrap_err();
        assert!(error.to_string().contains("\nline 3: "), "{error}");
        assert!(parse_csv("username,display_name\nok_user,\n".as_bytes()).is_err());
        assert!(parse_csv("nothing,here\n1,2\n".as_bytes()).is_err());
    }
}
