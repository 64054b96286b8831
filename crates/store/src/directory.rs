//! Rows of the directory (issue 13), kept by the top: users' talkers with
//! their accounts and verification state, and the hashes of users' bearer
//! tokens. Matching and codes are `peerdial-directory`'s work.

use sqlx::Row;

use crate::{Store, StoreError};

/// A talker as stored. `kind` is "peerdial" (then `number` is set) or
/// "sip" (then `aor` and `server`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TalkerRow {
    pub id: i64,
    pub owner: i64,
    pub name: String,
    pub kind: String,
    pub number: i64,
    pub aor: String,
    pub server: String,
    pub verified: bool,
}

const COLUMNS: &str = "id, owner, name, kind, number, aor, server, verified";

fn row(r: &sqlx::any::AnyRow) -> Result<TalkerRow, StoreError> {
    Ok(TalkerRow {
        id: r.try_get(0)?,
        owner: r.try_get(1)?,
        name: r.try_get(2)?,
        kind: r.try_get(3)?,
        number: r.try_get(4)?,
        aor: r.try_get(5)?,
        server: r.try_get(6)?,
        verified: r.try_get::<i64, _>(7)? != 0,
    })
}

impl Store {
    /// A user's talkers, oldest first.
    pub async fn talkers(&self, owner: i64) -> Result<Vec<TalkerRow>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM talkers WHERE owner = $1 ORDER BY id"))
            .bind(owner)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(row).collect()
    }

    /// Adds a talker; `None` when the owner already has one of that name.
    pub async fn add_talker(&self, t: &TalkerRow, now_ms: i64) -> Result<Option<i64>, StoreError> {
        let r = sqlx::query(
            "INSERT INTO talkers (owner, name, kind, number, aor, server, verified, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (owner, name) DO NOTHING RETURNING id",
        )
        .bind(t.owner)
        .bind(&t.name)
        .bind(&t.kind)
        .bind(t.number)
        .bind(&t.aor)
        .bind(&t.server)
        .bind(i64::from(t.verified))
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        r.map(|r| r.try_get(0).map_err(StoreError::from)).transpose()
    }

    /// Marks a talker of `owner` verified; whether it existed.
    pub async fn verify_talker(&self, owner: i64, id: i64) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE talkers SET verified = 1 WHERE owner = $1 AND id = $2")
            .bind(owner)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Removes a talker of `owner`; whether it existed.
    pub async fn remove_talker(&self, owner: i64, id: i64) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM talkers WHERE owner = $1 AND id = $2")
            .bind(owner)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Keeps a user's token (its hash) until `expires_ms`; expired ones go.
    pub async fn put_user_token(&self, token_hash: &str, number: i64, expires_ms: i64, now_ms: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM user_tokens WHERE expires_ms <= $1")
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO user_tokens (token_hash, number, expires_ms) VALUES ($1, $2, $3)")
            .bind(token_hash)
            .bind(number)
            .bind(expires_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The user a token hash belongs to, if it has not expired.
    pub async fn user_token(&self, token_hash: &str, now_ms: i64) -> Result<Option<i64>, StoreError> {
        let r = sqlx::query("SELECT number FROM user_tokens WHERE token_hash = $1 AND expires_ms > $2")
            .bind(token_hash)
            .bind(now_ms)
            .fetch_optional(&self.pool)
            .await?;
        r.map(|r| r.try_get(0).map_err(StoreError::from)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn talkers_and_tokens_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&format!("sqlite:{}", dir.path().join("t.db").display())).await.unwrap();
        let t = TalkerRow {
            id: 0,
            owner: 8860200000001,
            name: "desk phone".into(),
            kind: "sip".into(),
            number: 0,
            aor: "sip:a@h".into(),
            server: "127.0.0.1:5070".into(),
            verified: false,
        };
        let id = s.add_talker(&t, 1).await.unwrap().unwrap();
        assert_eq!(s.add_talker(&t, 1).await.unwrap(), None, "names are unique per owner");
        assert!(!s.verify_talker(8860200000002, id).await.unwrap(), "someone else's talker");
        assert!(s.verify_talker(t.owner, id).await.unwrap());
        let got = s.talkers(t.owner).await.unwrap();
        assert_eq!(
            got,
            vec![TalkerRow {
                id,
                verified: true,
                ..t.clone()
            }]
        );
        assert!(!s.remove_talker(8860200000002, id).await.unwrap());
        assert!(s.remove_talker(t.owner, id).await.unwrap());
        assert!(s.talkers(t.owner).await.unwrap().is_empty());
        s.put_user_token("h", 5, 100, 0).await.unwrap();
        assert_eq!(s.user_token("h", 50).await.unwrap(), Some(5));
        assert_eq!(s.user_token("h", 100).await.unwrap(), None);
        assert_eq!(s.user_token("x", 50).await.unwrap(), None);
    }
}
