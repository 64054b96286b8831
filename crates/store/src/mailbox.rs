//! Rows of the mailbox (issue 12): the call log, stored messages and who
//! confirmed them, owners' prompts, and each number's last known state
//! (the patent's `user_call` and `user_property`). Quotas, retention and
//! delivery rules are `peerdial-mailbox`'s; this stores what it is given.
//! Every call returns after its commit: the region acknowledges a message
//! only then.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Store, StoreError};

/// One call the mailbox answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRow {
    pub id: i64,
    pub callee: i64,
    pub caller: String,
    pub verified: bool,
    pub at_ms: i64,
}

/// A stored message; `path` not empty: the body is in that file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    pub id: i64,
    pub number: i64,
    pub kind: String,
    pub content_type: String,
    pub sender: String,
    pub verified: bool,
    pub at_ms: i64,
    pub size: i64,
    /// 0: new.
    pub read_ms: i64,
    pub body: Vec<u8>,
    pub path: String,
}

/// A number's last known state and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberStateRow {
    pub number: i64,
    pub online: bool,
    pub addr: String,
    pub changed_ms: i64,
}

/// The INSERT of one message, returning its id.
pub(crate) fn insert_message(m: &MessageRow) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
    sqlx::query(
        "INSERT INTO mailbox_messages (number, kind, content_type, sender, verified, at_ms, size, read_ms, body, path) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind(m.number)
    .bind(m.kind.clone())
    .bind(m.content_type.clone())
    .bind(m.sender.clone())
    .bind(m.verified as i64)
    .bind(m.at_ms)
    .bind(m.size)
    .bind(m.read_ms)
    .bind(m.body.clone())
    .bind(m.path.clone())
}

const MESSAGE_COLUMNS: &str = "id, number, kind, content_type, sender, verified, at_ms, size, read_ms";

fn message_row(r: &AnyRow, body: bool) -> Result<MessageRow, StoreError> {
    Ok(MessageRow {
        id: r.try_get(0)?,
        number: r.try_get(1)?,
        kind: r.try_get(2)?,
        content_type: r.try_get(3)?,
        sender: r.try_get(4)?,
        verified: r.try_get::<i64, _>(5)? != 0,
        at_ms: r.try_get(6)?,
        size: r.try_get(7)?,
        read_ms: r.try_get(8)?,
        body: if body { r.try_get(9)? } else { Vec::new() },
        path: if body { r.try_get(10)? } else { String::new() },
    })
}

impl Store {
    /// Logs a call to the mailbox; returns its id.
    pub async fn add_call(&self, callee: i64, caller: &str, verified: bool, at_ms: i64) -> Result<i64, StoreError> {
        let r = sqlx::query("INSERT INTO mailbox_calls (callee, caller, verified, at_ms) VALUES ($1, $2, $3, $4) RETURNING id")
            .bind(callee)
            .bind(caller)
            .bind(verified as i64)
            .bind(at_ms)
            .fetch_one(&self.pool)
            .await?;
        Ok(r.try_get(0)?)
    }

    /// The calls `callee` missed, oldest first.
    pub async fn calls(&self, callee: i64) -> Result<Vec<CallRow>, StoreError> {
        let rows = sqlx::query("SELECT id, callee, caller, verified, at_ms FROM mailbox_calls WHERE callee = $1 ORDER BY id")
            .bind(callee)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(CallRow {
                    id: r.try_get(0)?,
                    callee: r.try_get(1)?,
                    caller: r.try_get(2)?,
                    verified: r.try_get::<i64, _>(3)? != 0,
                    at_ms: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// Removes a logged call; whether there was one.
    pub async fn delete_call(&self, callee: i64, id: i64) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM mailbox_calls WHERE callee = $1 AND id = $2")
            .bind(callee)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Stores a message (its `id` is ignored) in the writer's next group
    /// commit, so texts arriving together share one sync; the new id.
    pub async fn add_message(&self, m: &MessageRow) -> Result<i64, StoreError> {
        Ok(self.write(crate::Write::AddMessage(Box::new(m.clone()))).await? as i64)
    }

    /// Stores messages in one transaction (all or none); their new ids.
    pub async fn add_messages(&self, rows: &[MessageRow]) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut ids = Vec::with_capacity(rows.len());
        for m in rows {
            ids.push(insert_message(m).fetch_one(&mut *tx).await?.try_get(0)?);
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// Every message without its body (the region's index at start-up).
    pub async fn message_index(&self) -> Result<Vec<MessageRow>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {MESSAGE_COLUMNS} FROM mailbox_messages ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| message_row(r, false)).collect()
    }

    /// One message of `number`, with its body.
    pub async fn message(&self, number: i64, id: i64) -> Result<Option<MessageRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS}, body, path FROM mailbox_messages WHERE number = $1 AND id = $2"
        ))
        .bind(number)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| message_row(&r, true)).transpose()
    }

    /// Marks a message read at `now_ms` (if it was new); whether it exists.
    pub async fn mark_message_read(&self, number: i64, id: i64, now_ms: i64) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE mailbox_messages SET read_ms = CASE WHEN read_ms = 0 THEN $1 ELSE read_ms END WHERE number = $2 AND id = $3",
        )
        .bind(now_ms)
        .bind(number)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Deletes a message and its delivery state; whether there was one.
    pub async fn delete_message(&self, number: i64, id: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("DELETE FROM mailbox_messages WHERE number = $1 AND id = $2")
            .bind(number)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM mailbox_deliveries WHERE message = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() > 0)
    }

    /// `device` confirmed message `id`; whether this was news.
    pub async fn confirm_delivery(&self, id: i64, device: &str, now_ms: i64) -> Result<bool, StoreError> {
        let w = crate::Write::ConfirmDelivery {
            message: id,
            device: device.to_string(),
            at_ms: now_ms,
        };
        Ok(self.write(w).await? > 0)
    }

    /// Every confirmation: (message, device).
    pub async fn deliveries(&self) -> Result<Vec<(i64, String)>, StoreError> {
        let rows = sqlx::query("SELECT message, device FROM mailbox_deliveries ORDER BY message, device")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// Sets (replaces) a number's prompt.
    pub async fn put_prompt(&self, number: i64, wav: &[u8], now_ms: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM mailbox_prompts WHERE number = $1")
            .bind(number)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO mailbox_prompts (number, wav, updated_ms) VALUES ($1, $2, $3)")
            .bind(number)
            .bind(wav)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn prompt(&self, number: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT wav FROM mailbox_prompts WHERE number = $1")
            .bind(number)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok(r.try_get(0)?)).transpose()
    }

    /// Records a number's state and address (online or not, since when).
    pub async fn put_number_state(&self, s: &NumberStateRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO number_state (number, online, addr, changed_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (number) DO UPDATE SET online = excluded.online, addr = excluded.addr, changed_ms = excluded.changed_ms",
        )
        .bind(s.number)
        .bind(s.online as i64)
        .bind(&s.addr)
        .bind(s.changed_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn number_state(&self, number: i64) -> Result<Option<NumberStateRow>, StoreError> {
        let row = sqlx::query("SELECT number, online, addr, changed_ms FROM number_state WHERE number = $1")
            .bind(number)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(NumberStateRow {
                number: r.try_get(0)?,
                online: r.try_get::<i64, _>(1)? != 0,
                addr: r.try_get(2)?,
                changed_ms: r.try_get(3)?,
            })
        })
        .transpose()
    }
}
