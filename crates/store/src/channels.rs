//! Rows behind broadcasts, channels, private channels and the marquee
//! (issue 11). Like the rest of this crate it stores what it is given:
//! who may post, and cleaning the text, are the callers' work.

use sqlx::Row;

use crate::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRow {
    pub id: i64,
    pub name: String,
    pub title: String,
    pub scope: String,
    /// When it stops taking posts (0: never).
    pub until_ms: i64,
}

/// An item: `channel` 0 is the private channel of `owner`; `poster` 0 an
/// operator; `delivered_ms` 0 a private item not yet shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRow {
    pub id: i64,
    pub channel: i64,
    pub owner: i64,
    pub poster: i64,
    pub text: String,
    pub posted_ms: i64,
    pub expires_ms: i64,
    pub delivered_ms: i64,
    /// The top's id of an item relayed from a global channel (else 0).
    pub origin: i64,
}

/// A broadcast: `every_ms` 0 is once, `until_ms` 0 no end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastRow {
    pub id: i64,
    pub text: String,
    pub every_ms: i64,
    pub until_ms: i64,
    pub next_ms: i64,
}

impl Store {
    /// Creates a channel; returns its id.
    pub async fn add_channel(&self, name: &str, title: &str, scope: &str, now_ms: i64) -> Result<i64, StoreError> {
        self.add_channel_until(name, title, scope, 0, now_ms).await
    }

    /// Creates a channel that stops taking posts at `until_ms` (0: never).
    pub async fn add_channel_until(&self, name: &str, title: &str, scope: &str, until_ms: i64, now_ms: i64) -> Result<i64, StoreError> {
        let r = sqlx::query("INSERT INTO channels (name, title, scope, created_ms, until_ms) VALUES ($1, $2, $3, $4, $5) RETURNING id")
            .bind(name)
            .bind(title)
            .bind(scope)
            .bind(now_ms)
            .bind(until_ms)
            .fetch_one(&self.pool)
            .await?;
        Ok(r.try_get(0)?)
    }

    pub async fn channels(&self) -> Result<Vec<ChannelRow>, StoreError> {
        let rows = sqlx::query("SELECT id, name, title, scope, until_ms FROM channels ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ChannelRow {
                    id: r.try_get(0)?,
                    name: r.try_get(1)?,
                    title: r.try_get(2)?,
                    scope: r.try_get(3)?,
                    until_ms: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// Grants (`on`) or withdraws a publisher; returns whether it changed.
    pub async fn set_publisher(&self, channel: i64, number: i64, on: bool) -> Result<bool, StoreError> {
        let q = if on {
            "INSERT INTO channel_publishers (channel, number) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM channel_publishers WHERE channel = $1 AND number = $2"
        };
        Ok(sqlx::query(q).bind(channel).bind(number).execute(&self.pool).await?.rows_affected() > 0)
    }

    /// Every (channel, publisher).
    pub async fn publishers(&self) -> Result<Vec<(i64, i64)>, StoreError> {
        self.pairs("SELECT channel, number FROM channel_publishers").await
    }

    async fn pairs(&self, q: &str) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows = sqlx::query(q).fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// Stores an item (its `id` is ignored); returns the new id.
    pub async fn add_item(&self, i: &ItemRow) -> Result<i64, StoreError> {
        let r = sqlx::query(
            "INSERT INTO channel_items (channel, owner, poster, text, posted_ms, expires_ms, delivered_ms, origin) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, $7) RETURNING id",
        )
        .bind(i.channel)
        .bind(i.owner)
        .bind(i.poster)
        .bind(&i.text)
        .bind(i.posted_ms)
        .bind(i.expires_ms)
        .bind(i.origin)
        .fetch_one(&self.pool)
        .await?;
        Ok(r.try_get(0)?)
    }

    /// Items still live at `now`, except private ones already delivered.
    pub async fn live_items(&self, now_ms: i64) -> Result<Vec<ItemRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, channel, owner, poster, text, posted_ms, expires_ms, delivered_ms, origin FROM channel_items \
             WHERE expires_ms > $1 AND (channel <> 0 OR delivered_ms = 0) ORDER BY id",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ItemRow {
                    id: r.try_get(0)?,
                    channel: r.try_get(1)?,
                    owner: r.try_get(2)?,
                    poster: r.try_get(3)?,
                    text: r.try_get(4)?,
                    posted_ms: r.try_get(5)?,
                    expires_ms: r.try_get(6)?,
                    delivered_ms: r.try_get(7)?,
                    origin: r.try_get(8)?,
                })
            })
            .collect()
    }

    /// Per channel, the top's id of the last item relayed into it.
    pub async fn relay_marks(&self) -> Result<Vec<(i64, i64)>, StoreError> {
        self.pairs("SELECT channel, MAX(origin) FROM channel_items WHERE origin > 0 GROUP BY channel")
            .await
    }

    /// A private item reached its owner.
    pub async fn mark_delivered(&self, id: i64, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE channel_items SET delivered_ms = $1 WHERE id = $2 AND delivered_ms = 0")
            .bind(now_ms)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets expired items; returns how many.
    pub async fn delete_expired_items(&self, now_ms: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM channel_items WHERE expires_ms <= $1")
            .bind(now_ms)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Subscribes (`on`) or unsubscribes; returns whether it changed.
    pub async fn set_subscription(&self, number: i64, channel: i64, on: bool) -> Result<bool, StoreError> {
        let q = if on {
            "INSERT INTO channel_subscriptions (number, channel) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM channel_subscriptions WHERE number = $1 AND channel = $2"
        };
        Ok(sqlx::query(q).bind(number).bind(channel).execute(&self.pool).await?.rows_affected() > 0)
    }

    /// Every (number, channel) subscription.
    pub async fn subscriptions(&self) -> Result<Vec<(i64, i64)>, StoreError> {
        self.pairs("SELECT number, channel FROM channel_subscriptions").await
    }

    /// Raises watermarks (number, channel, item) in one transaction.
    pub async fn put_seen(&self, marks: &[(i64, i64, i64)]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (n, c, i) in marks {
            sqlx::query(
                "INSERT INTO marquee_seen (number, channel, item) VALUES ($1, $2, $3) \
                 ON CONFLICT (number, channel) DO UPDATE SET item = excluded.item WHERE marquee_seen.item < excluded.item",
            )
            .bind(n)
            .bind(c)
            .bind(i)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn seen(&self) -> Result<Vec<(i64, i64, i64)>, StoreError> {
        let rows = sqlx::query("SELECT number, channel, item FROM marquee_seen")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect()
    }

    /// Stores a broadcast (its `id` is ignored); returns the new id.
    pub async fn add_broadcast(&self, b: &BroadcastRow, now_ms: i64) -> Result<i64, StoreError> {
        let r = sqlx::query(
            "INSERT INTO broadcasts (text, every_ms, until_ms, next_ms, created_ms, done_ms) VALUES ($1, $2, $3, $4, $5, 0) RETURNING id",
        )
        .bind(&b.text)
        .bind(b.every_ms)
        .bind(b.until_ms)
        .bind(b.next_ms)
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(r.try_get(0)?)
    }

    /// Broadcasts with a delivery still to start.
    pub async fn pending_broadcasts(&self) -> Result<Vec<BroadcastRow>, StoreError> {
        let rows = sqlx::query("SELECT id, text, every_ms, until_ms, next_ms FROM broadcasts WHERE next_ms > 0 ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(BroadcastRow {
                    id: r.try_get(0)?,
                    text: r.try_get(1)?,
                    every_ms: r.try_get(2)?,
                    until_ms: r.try_get(3)?,
                    next_ms: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// A delivery of broadcast `id` started; `next_ms` 0 when it was the last.
    pub async fn broadcast_started(&self, id: i64, next_ms: i64, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE broadcasts SET next_ms = $1, done_ms = $2 WHERE id = $3")
            .bind(next_ms)
            .bind(now_ms)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
