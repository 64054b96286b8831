//! Rows behind the portal's accounts (issue 10): one-time pairing codes
//! (hashed), signed-in sessions per number, friends lists, operator
//! accounts and disabled numbers.
//!
//! Like [`crate::portal`], this module stores what it is given: hashing
//! codes and passwords, and deciding who may do what, are the callers' work.

use sqlx::Row;

use crate::{Store, StoreError};

/// What became of a pairing code presented at sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairingOutcome {
    /// It was valid and is now used up.
    Accepted,
    /// It was right but has expired.
    Expired,
    /// It was right but was used before.
    Used,
    /// No such code for this number.
    Wrong,
}

impl Store {
    /// Keeps a new pairing code's hash (replacing the number's live one).
    pub async fn put_pairing_code(&self, number: i64, code_hash: &str, expires_ms: i64, now_ms: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // Expired and used codes stay a day, so a late try is told
        // "expired" or "used", not "wrong"; a new code replaces a live
        // unused one, so a number has at most one live code.
        sqlx::query("DELETE FROM pairing_codes WHERE number = $1 AND (expires_ms < $2 OR (used_ms = 0 AND expires_ms > $3))")
            .bind(number)
            .bind(now_ms - 24 * 3600 * 1000)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO pairing_codes (number, code_hash, expires_ms, used_ms) VALUES ($1, $2, $3, 0) \
             ON CONFLICT (number, code_hash) DO UPDATE SET expires_ms = excluded.expires_ms, used_ms = 0",
        )
        .bind(number)
        .bind(code_hash)
        .bind(expires_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Uses a pairing code up, if it is valid now: one statement, so two
    /// sign-ins racing with one code cannot both win.
    pub async fn use_pairing_code(&self, number: i64, code_hash: &str, now_ms: i64) -> Result<PairingOutcome, StoreError> {
        let r =
            sqlx::query("UPDATE pairing_codes SET used_ms = $1 WHERE number = $2 AND code_hash = $3 AND used_ms = 0 AND expires_ms > $1")
                .bind(now_ms)
                .bind(number)
                .bind(code_hash)
                .execute(&self.pool)
                .await?;
        if r.rows_affected() == 1 {
            return Ok(PairingOutcome::Accepted);
        }
        let row = sqlx::query("SELECT used_ms FROM pairing_codes WHERE number = $1 AND code_hash = $2")
            .bind(number)
            .bind(code_hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            None => PairingOutcome::Wrong,
            Some(r) if r.try_get::<i64, _>(0)? != 0 => PairingOutcome::Used,
            Some(_) => PairingOutcome::Expired,
        })
    }

    /// Records a signed-in session.
    pub async fn add_portal_session(&self, sid_hash: &str, number: i64, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO portal_sessions (sid_hash, number, created_ms) VALUES ($1, $2, $3)")
            .bind(sid_hash)
            .bind(number)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The number a signed-in session belongs to (None: ended).
    pub async fn portal_session(&self, sid_hash: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT number FROM portal_sessions WHERE sid_hash = $1")
            .bind(sid_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok(r.try_get(0)?)).transpose()
    }

    /// Ends one session.
    pub async fn end_portal_session(&self, sid_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM portal_sessions WHERE sid_hash = $1")
            .bind(sid_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends every session of a number except `keep` (the one that asked).
    pub async fn end_number_sessions(&self, number: i64, keep: Option<&str>) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM portal_sessions WHERE number = $1 AND sid_hash <> $2")
            .bind(number)
            .bind(keep.unwrap_or(""))
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    /// Signed-in sessions started at or after `since_ms`: numbers' and
    /// operators' (whose rows carry a negative key).
    pub async fn portal_session_counts(&self, since_ms: i64) -> Result<(i64, i64), StoreError> {
        let row = sqlx::query(
            "SELECT COALESCE(SUM(CASE WHEN number >= 0 THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN number < 0 THEN 1 ELSE 0 END), 0) \
             FROM portal_sessions WHERE created_ms >= $1",
        )
        .bind(since_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// A number's friends, in order.
    pub async fn friends(&self, owner: i64) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query("SELECT friend FROM friends WHERE owner = $1 ORDER BY friend")
            .bind(owner)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Adds a friend (no-op if listed); whether it was new.
    pub async fn add_friend(&self, owner: i64, friend: i64, now_ms: i64) -> Result<bool, StoreError> {
        let r = sqlx::query("INSERT INTO friends (owner, friend, added_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(owner)
            .bind(friend)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Removes a friend; whether it was listed.
    pub async fn remove_friend(&self, owner: i64, friend: i64) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM friends WHERE owner = $1 AND friend = $2")
            .bind(owner)
            .bind(friend)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Stores (or replaces) an operator account.
    pub async fn put_operator(&self, name: &str, password_hash: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO operators (name, password_hash, created_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash",
        )
        .bind(name)
        .bind(password_hash)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// An operator's password hash.
    pub async fn operator_hash(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT password_hash FROM operators WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok(r.try_get(0)?)).transpose()
    }

    /// Marks a number disabled (true) or enabled again (false); whether
    /// anything changed.
    pub async fn set_disabled(&self, number: i64, disabled: bool, now_ms: i64) -> Result<bool, StoreError> {
        let r = if disabled {
            sqlx::query("INSERT INTO disabled_numbers (number, disabled_ms) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(number)
                .bind(now_ms)
                .execute(&self.pool)
                .await?
        } else {
            sqlx::query("DELETE FROM disabled_numbers WHERE number = $1")
                .bind(number)
                .execute(&self.pool)
                .await?
        };
        Ok(r.rows_affected() == 1)
    }

    /// Every disabled number.
    pub async fn disabled_numbers(&self) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query("SELECT number FROM disabled_numbers ORDER BY number")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Whether a number's presence is friends-only.
    pub async fn friends_only(&self, number: i64) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT friends_only FROM presence_policy WHERE number = $1")
            .bind(number)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => r.try_get::<i64, _>(0)? != 0,
            None => false,
        })
    }

    /// The device holding a number.
    pub async fn device_by_number(&self, number: i64) -> Result<Option<crate::DeviceRow>, StoreError> {
        let row =
            sqlx::query("SELECT mac, number, secret_hash, ha1_md5, ha1_sha256, ip, created_ms, updated_ms FROM devices WHERE number = $1")
                .bind(number)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(crate::device_row).transpose()
    }

    /// Moves a device from `old` to `new` (a vanity number), in one
    /// transaction: the device row (the UNIQUE number column makes exactly
    /// one of two racing moves to `new` win; the loser gets `Ok(false)`),
    /// with new SIP credentials; the number's account, profile, greetings,
    /// friends list, presence policy and signed-in sessions follow it; its
    /// binding row and pending pairing codes go; `old` enters the
    /// quarantine of retired numbers. A `new` still in quarantine is refused
    /// the same way.
    pub async fn move_number(
        &self,
        old: i64,
        new: i64,
        ha1_md5: &str,
        ha1_sha256: &str,
        quarantine_since_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // A write first (SQLite: a transaction that reads before it writes
        // cannot wait for the write lock), with the quarantine check in it.
        let moved = sqlx::query(
            "UPDATE devices SET number = $1, ha1_md5 = $2, ha1_sha256 = $3, updated_ms = $4 WHERE number = $5 \
             AND NOT EXISTS (SELECT 1 FROM retired_numbers WHERE number = $1 AND retired_ms >= $6)",
        )
        .bind(new)
        .bind(ha1_md5)
        .bind(ha1_sha256)
        .bind(now_ms)
        .bind(old)
        .bind(quarantine_since_ms)
        .execute(&mut *tx)
        .await;
        match moved {
            Ok(r) if r.rows_affected() == 1 => {}
            Ok(_) => return Ok(false),
            // The UNIQUE constraint: someone else holds `new`.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        let mut follow = vec![
            ("accounts", "number"),
            ("profiles", "number"),
            ("greetings", "number"),
            ("friends", "owner"),
            ("presence_policy", "number"),
            ("portal_sessions", "number"),
        ];
        if self.backend == crate::Backend::Sqlite {
            follow.push(("profile_search", "rowid"));
        }
        for (table, key) in follow {
            sqlx::query(&format!("UPDATE {table} SET {key} = $1 WHERE {key} = $2"))
                .bind(new)
                .bind(old)
                .execute(&mut *tx)
                .await?;
        }
        crate::yellow::renumber(&mut tx, self.backend, old, new).await?;
        for (table, key) in [("bindings", "number"), ("pairing_codes", "number"), ("retired_numbers", "number")] {
            sqlx::query(&format!("DELETE FROM {table} WHERE {key} = $1"))
                .bind(old)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("INSERT INTO retired_numbers (number, retired_ms) VALUES ($1, $2)")
            .bind(old)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}
