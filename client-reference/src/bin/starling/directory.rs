//! `starling directory`: the organisation's directory.

use starling_client::Client;

use crate::error::Result;
use crate::output::{Output, clean};

/// `starling directory search`.
pub(crate) async fn search(client: &Client, query: &str, limit: u32, out: Output) -> Result<()> {
    for entry in client.directory_search(query, limit).await? {
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
