//! The organisation's directory: departments and published member profiles.

use sqlx::Row;

use super::{Store, with_pool};

pub use starling_protocol::api::DirectoryEntry;

impl Store {
    /// Creates or updates entries (and their departments) in one
    /// transaction.
    pub async fn import_directory(&self, entries: &[DirectoryEntry]) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            for entry in entries {
                let department: Option<i64> = if entry.department.is_empty() {
                    None
                } else {
                    sqlx::query("INSERT INTO departments (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
                        .bind(&entry.department)
                        .execute(&mut *tx)
                        .await?;
                    Some(
                        sqlx::query("SELECT id FROM departments WHERE name = $1")
                            .bind(&entry.department)
                            .fetch_one(&mut *tx)
                            .await?
                            .try_get("id")?,
                    )
                };
                sqlx::query(
                    "INSERT INTO directory_entries (username, display_name, title, department_id) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (username) DO UPDATE SET display_name = excluded.display_name, \
                     title = excluded.title, department_id = excluded.department_id",
                )
                .bind(&entry.username)
                .bind(&entry.display_name)
                .bind(&entry.title)
                .bind(department)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        })
    }

    /// Every published entry, by display name.
    pub async fn directory(&self) -> Result<Vec<DirectoryEntry>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query(
                "SELECT e.username, e.display_name, e.title, COALESCE(d.name, '') AS department \
                 FROM directory_entries e LEFT JOIN departments d ON d.id = e.department_id ORDER BY e.display_name",
            )
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| {
                Ok(DirectoryEntry {
                    username: row.try_get("username")?,
                    display_name: row.try_get("display_name")?,
                    title: row.try_get("title")?,
                    department: row.try_get("department")?,
                })
            })
            .collect()
        })
    }
}
