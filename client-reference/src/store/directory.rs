//! The organisation's directory as last fetched: display names to show
//! next to usernames.

use std::collections::HashMap;

use super::Store;
use crate::error::Result;

impl Store {
    /// Username to display name, as last fetched.
    pub async fn display_names(&self) -> Result<HashMap<String, String>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT username, display_name FROM directory_names")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().collect())
    }

    /// When the directory was last fetched (Unix milliseconds).
    pub async fn directory_fetched_at(&self) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT fetched_at FROM directory_fetched WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Replaces the kept directory with `names`, fetched at `now`.
    pub async fn replace_display_names(&self, names: &[(String, String)], now: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM directory_names")
            .execute(&mut *tx)
            .await?;
        for (username, display_name) in names {
            sqlx::query(
                "INSERT OR REPLACE INTO directory_names (username, display_name) VALUES (?, ?)",
            )
            .bind(username)
            .bind(display_name)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO directory_fetched (id, fetched_at) VALUES (1, ?) \
             ON CONFLICT (id) DO UPDATE SET fetched_at = excluded.fetched_at",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
