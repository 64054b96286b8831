//! Presence policies: friends-only and the friends list, per number.

use sqlx::{Any, Row};

use crate::{Store, StoreError};

impl Store {
    /// Stores (or replaces) a number's presence policy and its friends
    /// list (the portal's friends, [`Store::friends`]), in one transaction;
    /// durable when it returns. `friends` are numbers in their integer form.
    pub async fn put_presence_policy(&self, number: i64, friends_only: bool, friends: &[i64], now_ms: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        self.put_friends_only_on(&mut tx, number, friends_only, now_ms).await?;
        sqlx::query("DELETE FROM friends WHERE owner = $1")
            .bind(number)
            .execute(&mut *tx)
            .await?;
        for f in friends {
            sqlx::query("INSERT INTO friends (owner, friend, added_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(number)
                .bind(*f)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sets only whether a number's presence is friends-only (its friends
    /// list stays as it is).
    pub async fn put_friends_only(&self, number: i64, friends_only: bool, now_ms: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        self.put_friends_only_on(&mut tx, number, friends_only, now_ms).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn put_friends_only_on(
        &self,
        tx: &mut sqlx::Transaction<'_, Any>,
        number: i64,
        friends_only: bool,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO presence_policy (number, friends_only, friends, updated_ms) VALUES ($1, $2, '', $3) \
             ON CONFLICT (number) DO UPDATE SET friends_only = excluded.friends_only, updated_ms = excluded.updated_ms",
        )
        .bind(number)
        .bind(friends_only as i64)
        .bind(now_ms)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Every stored presence policy: (number, friends_only, friends), the
    /// friends from the friends lists.
    pub async fn presence_policies(&self) -> Result<Vec<(i64, bool, Vec<i64>)>, StoreError> {
        let rows = sqlx::query("SELECT number, friends_only FROM presence_policy")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let number: i64 = r.try_get(0)?;
            let only: i64 = r.try_get(1)?;
            out.push((number, only != 0, self.friends(number).await?));
        }
        Ok(out)
    }
}
