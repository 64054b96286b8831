//! Greeting pictures: each number's caller and callee PNG with its
//! update code (ETag).

use sqlx::Row;

use crate::{Store, StoreError};

impl Store {
    /// Stores (or replaces) a greeting picture; durable when it returns.
    pub async fn put_greeting(&self, number: i64, kind: &str, png: &[u8], etag: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO greetings (number, kind, png, etag, updated_ms) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (number, kind) DO UPDATE SET png = excluded.png, etag = excluded.etag, updated_ms = excluded.updated_ms",
        )
        .bind(number)
        .bind(kind)
        .bind(png.to_vec())
        .bind(etag)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes a greeting picture; whether there was one.
    pub async fn delete_greeting(&self, number: i64, kind: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM greetings WHERE number = $1 AND kind = $2")
            .bind(number)
            .bind(kind)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// One greeting picture: its ETag and PNG.
    pub async fn greeting(&self, number: i64, kind: &str) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        let row = sqlx::query("SELECT etag, png FROM greetings WHERE number = $1 AND kind = $2")
            .bind(number)
            .bind(kind)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    /// Every greeting's number, kind and ETag (not the pictures).
    pub async fn greeting_etags(&self) -> Result<Vec<(i64, String, String)>, StoreError> {
        let rows = sqlx::query("SELECT number, kind, etag FROM greetings")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect()
    }
}
