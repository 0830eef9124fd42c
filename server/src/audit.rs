//! The zero-knowledge audit: compares the live database schema with
//! `DATA_INVENTORY.md` (every table and column the server may hold, and
//! why), reports each table's rows with the metadata it holds, and checks
//! every queued envelope row. An undeclared column fails it, and so does a
//! sealed envelope row that names a sender or is not a padding bucket, or
//! a stored time finer than the hour.

use std::collections::BTreeSet;

use crate::store::{EnvelopeAudit, QueueStats, Store};

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

/// Each table's `Metadata:` line in an inventory document: what the
/// table tells about people, in a sentence.
pub fn table_metadata(inventory: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut table: Option<String> = None;
    for line in inventory.lines() {
        if let Some(heading) = line.strip_prefix("### ") {
            table = Some(heading.trim().trim_matches('`').to_string());
        } else if let (Some(name), Some(metadata)) = (&table, line.strip_prefix("Metadata: ")) {
            out.push((name.clone(), metadata.trim().to_string()));
        }
    }
    out
}

/// One table as the audit reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReport {
    /// The table.
    pub name: String,
    /// Its rows.
    pub rows: i64,
    /// What it holds about people (`DATA_INVENTORY.md`).
    pub metadata: String,
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
    /// Every table with its rows and metadata, in name order.
    pub tables: Vec<TableReport>,
    /// The checks of every queued envelope row.
    pub envelopes: EnvelopeAudit,
}

impl AuditReport {
    /// Whether the database holds only declared data, and every envelope
    /// row only what the inventory promises.
    pub fn passed(&self) -> bool {
        self.undeclared.is_empty() && self.envelopes.passed()
    }
}

/// Runs the audit against a live store.
pub async fn audit(store: &Store) -> Result<AuditReport, sqlx::Error> {
    let actual: BTreeSet<(String, String)> = store.schema_columns().await?.into_iter().collect();
    let declared = declared_columns(INVENTORY);
    let metadata = table_metadata(INVENTORY);
    let names: BTreeSet<&String> = actual.iter().map(|(table, _)| table).collect();
    let mut tables = Vec::with_capacity(names.len());
    for name in names {
        let described = metadata.iter().find(|(table, _)| table == name);
        tables.push(TableReport {
            name: name.clone(),
            rows: store.row_count(name).await?,
            metadata: described.map_or_else(|| "(not described)".to_string(), |(_, m)| m.clone()),
        });
    }
    Ok(AuditReport {
        undeclared: actual.difference(&declared).cloned().collect(),
        missing: declared.difference(&actual).cloned().collect(),
        accounts: store.list_accounts().await?.len(),
        queue: store.queue_stats().await?,
        tables,
        envelopes: store.audit_envelopes().await?,
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

    #[test]
    fn every_table_of_the_inventory_says_what_it_holds() {
        let tables: BTreeSet<String> = declared_columns(INVENTORY)
            .into_iter()
            .map(|(table, _)| table)
            .collect();
        let described: BTreeSet<String> = table_metadata(INVENTORY)
            .into_iter()
            .map(|(table, _)| table)
            .collect();
        assert_eq!(tables, described);
    }
}
