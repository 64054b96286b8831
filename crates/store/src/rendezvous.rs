//! Rows of the identity rendezvous (issue 14), kept by the top: which
//! MSISDN maps to which keyed IMSI hash. Hashing, codes and pairing are the
//! `peerdial-rendezvous` crate's work; this stores what it is given.

use sqlx::Row;

use crate::{Store, StoreError};

impl Store {
    /// Every mapping: (MSISDN, IMSI hash in hex).
    pub async fn rendezvous_devices(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT msisdn, imsi_hash FROM rendezvous_devices")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// Maps `msisdn` to `imsi_hash`, replacing whatever either had (a new
    /// SIM for a number, or a SIM moved to another number); durable when it
    /// returns.
    pub async fn put_rendezvous_device(&self, msisdn: &str, imsi_hash: &str, now_ms: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM rendezvous_devices WHERE msisdn = $1 OR imsi_hash = $2")
            .bind(msisdn)
            .bind(imsi_hash)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO rendezvous_devices (msisdn, imsi_hash, updated_ms) VALUES ($1, $2, $3)")
            .bind(msisdn)
            .bind(imsi_hash)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a mapping; whether there was one.
    pub async fn delete_rendezvous_device(&self, msisdn: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM rendezvous_devices WHERE msisdn = $1")
            .bind(msisdn)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }
}
