//! `starling directory`: the organisation's directory.

use starling_client::Client;

use crate::error::Result;
use crate::output::{Output, clean};

/// `starling directory search`.
pub(crate) async fn search(client: &Client, query: &str, limit: u32, out: Output) -> Result<()> {
    let found = client.directory_search(query, limit).await?;
    if found.is_empty() && !out.json {
        eprintln!("no one in the directory matches \"{}\"", clean(query));
    }
    for entry in found {
        out.print(&entry, || {
            format!(
                "{} — {} ({}, {})",
                clean(&entry.username),
                clean(&entry.display_name),
                clean(&entry.title),
                clean(&entry.department)
            )
        });
    }
    Ok(())
}
