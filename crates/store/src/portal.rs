//! Rows of the web portal: sign-in passwords (already hashed by the
//! portal; this module never sees a password) and profiles with
//! per-field privacy, and the plain `LIKE` scan the yellow pages' search
//! (yellow.rs) is measured against.
//!
//! Privacy is kept in SQL: only public fields' values are indexed,
//! and a search answers private fields as empty strings, so a private value
//! never leaves the database through a search.

use sqlx::any::AnyRow;
use sqlx::Row;

pub use crate::yellow::search_terms;
use crate::yellow::{apply_counts, indexed_words, repost, search_words};
use crate::{Backend, Store, StoreError};

/// The profile's text fields, in the order of their `public_mask` bits.
pub const FIELDS: [&str; 5] = ["display_name", "city", "organisation", "interests", "introduction"];

/// A profile. In search answers, private fields are empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileRow {
    pub number: i64,
    /// Values in the order of [`FIELDS`].
    pub fields: [String; 5],
    /// Bit `i` set: `fields[i]` is public.
    pub public_mask: i64,
    /// Shown in the yellow pages at all.
    pub listed: bool,
}

impl ProfileRow {
    pub fn is_public(&self, i: usize) -> bool {
        self.public_mask & (1 << i) != 0
    }

    /// The text the yellow pages may search: public fields only.
    pub(crate) fn public_text(&self) -> String {
        let parts: Vec<&str> = (0..FIELDS.len())
            .filter(|&i| self.is_public(i))
            .map(|i| self.fields[i].as_str())
            .collect();
        parts.join("\n")
    }
}

pub(crate) fn profile_row(r: &AnyRow) -> Result<ProfileRow, StoreError> {
    let mut p = ProfileRow {
        number: r.try_get(0)?,
        public_mask: r.try_get(6)?,
        listed: r.try_get::<i64, _>(7)? != 0,
        ..ProfileRow::default()
    };
    for (i, f) in p.fields.iter_mut().enumerate() {
        *f = r.try_get(1 + i)?;
    }
    Ok(p)
}

/// Each field's value only when its bit is set, else ''.
pub(crate) fn public_columns() -> String {
    FIELDS
        .iter()
        .enumerate()
        .map(|(i, f)| format!("CASE WHEN (p.public_mask & {}) <> 0 THEN p.{f} ELSE '' END", 1 << i))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// Stores a number's password hash (a PHC string), replacing any.
    pub async fn set_password_hash(&self, number: i64, hash: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO accounts (number, password_hash, updated_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (number) DO UPDATE SET password_hash = excluded.password_hash, updated_ms = excluded.updated_ms",
        )
        .bind(number)
        .bind(hash)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A number's password hash, if it has set a password.
    pub async fn password_hash(&self, number: i64) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT password_hash FROM accounts WHERE number = $1")
            .bind(number)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok(r.try_get(0)?)).transpose()
    }

    /// Stores (or replaces) a profile and its search entry, in one transaction.
    pub async fn put_profile(&self, p: &ProfileRow, now_ms: i64) -> Result<(), StoreError> {
        self.put_profiles(std::slice::from_ref(p), now_ms).await
    }

    /// Stores (or replaces) profiles and their yellow-pages index entries
    /// (SQLite: FTS5 rows; PostgreSQL: postings), all in one transaction
    /// (a bulk load: the yellow-pages benchmark's million).
    pub async fn put_profiles(&self, profiles: &[ProfileRow], now_ms: i64) -> Result<(), StoreError> {
        let pg = self.backend == Backend::Postgres;
        let mut tx = self.pool.begin().await?;
        let mut counts = std::collections::BTreeMap::new();
        for p in profiles {
            let text = p.public_text();
            let (mut old, mut words) = (String::new(), String::new());
            if pg {
                // Lock the row, then read the words it was indexed under.
                sqlx::query("UPDATE profiles SET updated_ms = updated_ms WHERE number = $1")
                    .bind(p.number)
                    .execute(&mut *tx)
                    .await?;
                old = indexed_words(&mut tx, p.number).await?;
                words = search_words(p);
            }
            let (col, val, set) = if pg {
                (", search_words", ", $11", ", search_words = excluded.search_words")
            } else {
                ("", "", "")
            };
            let sql = format!(
                "INSERT INTO profiles (number, display_name, city, organisation, interests, introduction, \
                 public_mask, listed, public_text, updated_ms{col}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10{val}) \
                 ON CONFLICT (number) DO UPDATE SET display_name = excluded.display_name, city = excluded.city, \
                 organisation = excluded.organisation, interests = excluded.interests, \
                 introduction = excluded.introduction, public_mask = excluded.public_mask, \
                 listed = excluded.listed, public_text = excluded.public_text, updated_ms = excluded.updated_ms{set}"
            );
            let mut q = sqlx::query(&sql)
                .bind(p.number)
                .bind(&p.fields[0])
                .bind(&p.fields[1])
                .bind(&p.fields[2])
                .bind(&p.fields[3])
                .bind(&p.fields[4])
                .bind(p.public_mask)
                .bind(i64::from(p.listed))
                .bind(&text)
                .bind(now_ms);
            if pg {
                q = q.bind(&words);
            }
            q.execute(&mut *tx).await?;
            if pg {
                repost(&mut tx, self.backend, p.number, &old, &words, &mut counts).await?;
                continue;
            }
            sqlx::query("DELETE FROM profile_search WHERE rowid = $1")
                .bind(p.number)
                .execute(&mut *tx)
                .await?;
            if p.listed && !text.is_empty() {
                sqlx::query("INSERT INTO profile_search (rowid, public_text) VALUES ($1, $2)")
                    .bind(p.number)
                    .bind(&text)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        apply_counts(&mut tx, self.backend, &counts).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A number's whole profile (private fields included: for its owner).
    pub async fn profile(&self, number: i64) -> Result<Option<ProfileRow>, StoreError> {
        let row = sqlx::query(
            "SELECT number, display_name, city, organisation, interests, introduction, public_mask, listed \
             FROM profiles WHERE number = $1",
        )
        .bind(number)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(profile_row).transpose()
    }

    /// How many profiles (listed or not) have numbers in `lo..=hi`.
    pub async fn count_profiles(&self, lo: i64, hi: i64) -> Result<i64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM profiles WHERE number BETWEEN $1 AND $2")
            .bind(lo)
            .bind(hi)
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }

    /// About the same answer as [`Store::search_profiles`] by a plain
    /// `LIKE '%term%'` scan over the public text: no index, the
    /// floor the full-text search is measured against (`peerdial bench
    /// yellow`). Not used by the portal.
    pub async fn scan_profiles(&self, terms: &[String], lo: i64, hi: i64, limit: i64) -> Result<Vec<ProfileRow>, StoreError> {
        let cols = public_columns();
        let likes: Vec<String> = (0..terms.len()).map(|i| format!("lower(p.public_text) LIKE ${}", i + 4)).collect();
        let mut sql = format!(
            "SELECT p.number, {cols}, p.public_mask, p.listed FROM profiles p \
             WHERE p.listed <> 0 AND p.number BETWEEN $1 AND $2"
        );
        for l in &likes {
            sql.push_str(" AND ");
            sql.push_str(l);
        }
        sql.push_str(" ORDER BY p.number LIMIT $3");
        let mut q = sqlx::query(&sql).bind(lo).bind(hi).bind(limit);
        for t in terms {
            q = q.bind(format!("%{t}%"));
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(profile_row).collect()
    }
}
