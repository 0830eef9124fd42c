//! Push endpoints per device.

use sqlx::Row;

use super::{Store, with_pool};

impl Store {
    /// Sets (or replaces) a device's push endpoint.
    pub async fn set_push_endpoint(
        &self,
        account_id: i64,
        device: u32,
        endpoint: &str,
    ) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO push_endpoints (account_id, device_id, endpoint) VALUES ($1, $2, $3) \
                 ON CONFLICT (account_id, device_id) DO UPDATE SET endpoint = excluded.endpoint",
            )
            .bind(account_id)
            .bind(i64::from(device))
            .bind(endpoint)
            .execute(pool)
            .await
            .map(|_| ())
        })
    }

    /// A device's push endpoint.
    pub async fn push_endpoint(
        &self,
        account_id: i64,
        device: u32,
    ) -> Result<Option<String>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("SELECT endpoint FROM push_endpoints WHERE account_id = $1 AND device_id = $2")
                .bind(account_id)
                .bind(i64::from(device))
                .fetch_optional(pool)
                .await?
                .map(|row| row.try_get("endpoint"))
                .transpose()
        })
    }

    /// Removes a device's push endpoint (only if it is still `endpoint`,
    /// when given).
    pub async fn remove_push_endpoint(
        &self,
        account_id: i64,
        device: u32,
        endpoint: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query(
                "DELETE FROM push_endpoints WHERE account_id = $1 AND device_id = $2 AND ($3 IS NULL OR endpoint = $3)",
            )
            .bind(account_id)
            .bind(i64::from(device))
            .bind(endpoint)
            .execute(pool)
            .await
            .map(|_| ())
        })
    }
}
