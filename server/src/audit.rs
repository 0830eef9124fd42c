//! The zero-knowledge audit: compares the live database schema with
//! `DATA_INVENTORY.md` (every table and column the server may hold, and
//! why) and reports what the queue holds. An undeclared column fails it.

use std::collections::BTreeSet;

use crate::store::{QueueStats, Store};

/// The inventory shipped with this build.
pub const INVENTORY: &str = include_str!("../DATA_INVENTORY.md");

/// `(table, column)` pairs declared in an inventory document: each table is
/// a `### name` heading followed by a Markdown table whose first column is
/// the column name.
pub fn declared_columns(inventory: &str) -> BTreeSet<(String, String)> {
    let mut declared = BTreeSet::new();
    let mut table: Option<String> = None;
    for line in inventory.lines() {
        if let Some(heading) = line.strip_prefix("### ") {
            table = Some(heading.trim().trim_matches('`').to_string());
            continue;
        }
        if line.starts_with("## ") {
            table = None;
        }
        let Some(table) = &table else { continue };
        let Some(row) = line.strip_prefix('|') else {
            continue;
        };
        let cell = row.split('|').next().unwrap_or("").trim().trim_matches('`');
        if cell.is_empty() || cell == "column" || cell.starts_with('-') {
            continue;
        }
        declared.insert((table.clone(), cell.to_string()));
    }
    declared
}

/// What the audit found.
#[derive(Debug, Clone)]
pub struct AuditReport {
    /// Columns in the database that the inventory does not declare.
    pub undeclared: Vec<(String, String)>,
    /// Declared columns the database does not have.
    pub missing: Vec<(String, String)>,
    /// Accounts in the database.
    pub accounts: usize,
    /// The envelope queue.
    pub queue: QueueStats,
}

impl AuditReport {
    /// Whether the database holds only declared data.
    pub fn passed(&self) -> bool {
        self.undeclared.is_empty()
    }
}

/// Runs the audit against a live store.
pub async fn audit(store: &Store) -> Result<AuditReport, sqlx::Error> {
    let actual: BTreeSet<(String, String)> = store.schema_columns().await?.into_iter().collect();
    let declared = declared_columns(INVENTORY);
    Ok(AuditReport {
        undeclared: actual.difference(&declared).cloned().collect(),
        missing: declared.difference(&actual).cloned().collect(),
        accounts: store.list_accounts().await?.len(),
        queue: store.queue_stats().await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tables_and_columns() {
        let doc = "# x\n### `accounts`\n| column | holds | why |\n|---|---|---|\n| `id` | a | b |\n| username | c | d |\n## Other\n| not | a | column |\n";
        let declared = declared_columns(doc);
        assert_eq!(declared.len(), 2);
        assert!(declared.contains(&("accounts".to_string(), "id".to_string())));
    }
}
