//! The yellow pages' index and search. On PostgreSQL, a posting table of
//! our own (migration 0017); on SQLite, FTS5 walked in rowid (= number)
//! order (migration 0007), which measured faster there (docs/decisions.md,
//! docs/benchmarks.md). The rest of this text is about the posting table.
//!
//! A listed profile's public fields are cut into words (runs of letters
//! and digits, lower-cased); `profiles.search_words` holds them, each after
//! a space, and `profile_terms` holds one row per key and number, where a
//! key is a word or the first [`PREFIX`] characters of a longer one, in
//! b-tree order (key, number). `profile_words` counts the profiles of each
//! key (and, under the empty key, all indexed profiles).
//!
//! Every search term matches words it begins. A search looks up every
//! term's keys and counts in one statement (a small b-tree range per
//! term), picks the cheapest way to produce candidates in number order —
//! the list of one key (stopping at the page), the few lists that are
//! exactly a rare prefix's (read whole, then sorted), the profiles that
//! hold terms rare together though not apart (from a GIN index of every
//! profile's keys, migration 0020, which intersects the lists itself), or
//! the profiles themselves (when every term is common) — and checks every
//! other term on the postings
//! (a probe of (key, number), near the last one as candidates come in
//! number order), and on the row's `search_words` with `LIKE '% term%'`
//! only for a term that begins too many words to list. Only the page's
//! rows are read whole. So a page costs about the postings read before it
//! is full, and a term nobody has ends the search at once.
//!
//! This module is not the profile rows (portal.rs) and does no ranking:
//! the yellow pages list in number order, as a phone book does.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{Any, Row, Transaction};

use crate::portal::{profile_row, public_columns, ProfileRow};
use crate::{Backend, Store, StoreError};

mod plan;

use plan::{plan, Source, Term};

/// Length (in characters) of the prefix keys: a term this long is one key.
const PREFIX: usize = 3;
/// Most keys whose lists are read whole for one term.
const MAX_KEYS: usize = 16;
/// Most terms a search uses; the rest are ignored.
const MAX_TERMS: usize = 8;
/// Longest term and longest indexed word (in characters).
const MAX_TERM_CHARS: usize = 64;
/// The key under which `profile_words` counts all indexed profiles (no
/// word is empty).
const ALL: &str = "";
/// Profiles indexed per transaction when an upgraded database's rows are.
const REINDEX_BATCH: i64 = 1_000;

/// The words of a text as the yellow pages index and search them: runs of
/// letters and digits, lower-cased, diacritics removed (`café` is found
/// as `cafe`, as SQLite's FTS5 tokenizer does it), each cut at
/// [`MAX_TERM_CHARS`].
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    use unicode_normalization::char::is_combining_mark;
    use unicode_normalization::UnicodeNormalization;
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .filter_map(|t| {
            // Recomposed after, so that Hangul syllables stay whole.
            let w: String = t
                .nfd()
                .filter(|c| !is_combining_mark(*c))
                .nfc()
                .take(MAX_TERM_CHARS)
                .collect::<String>()
                .to_lowercase();
            (!w.is_empty()).then_some(w)
        })
}

/// Plain search terms from whatever a user typed: runs of letters and
/// digits, lower-cased. Full-text syntax (quotes, `NEAR`, `*`, brackets,
/// `-`, `:`) is thereby only a separator; `NEAR`/`AND`/`OR` become words,
/// and `%` or `_` never reach a `LIKE`.
pub fn search_terms(query: &str) -> Vec<String> {
    words(query).take(MAX_TERMS).collect()
}

/// What the index holds for a profile: its public words (distinct, each
/// after a space), or "" when it is unlisted or has no public word.
pub(crate) fn search_words(p: &ProfileRow) -> String {
    if !p.listed {
        return String::new();
    }
    let mut seen = BTreeSet::new();
    let mut out = String::new();
    for w in words(&p.public_text()) {
        if seen.insert(w.clone()) {
            out.push(' ');
            out.push_str(&w);
        }
    }
    out
}

/// The posting keys of a `search_words` value. PostgreSQL migration
/// 0020's `peerdial_search_keys` computes the same in SQL for its GIN
/// index: a change here must be made there too (in a new migration).
fn keys(search_words: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for w in search_words.split(' ').filter(|w| !w.is_empty()) {
        if w.chars().count() > PREFIX {
            out.insert(w.chars().take(PREFIX).collect());
        }
        out.insert(w.to_string());
    }
    out
}

/// A JSON array of strings. Keys are letters and digits only, so nothing
/// needs escaping.
fn json_array<'a>(items: impl Iterator<Item = &'a String>) -> String {
    let items: Vec<String> = items.map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", items.join(","))
}

/// `SELECT value FROM` the JSON array in `param`, in each database's words.
fn json_values(backend: Backend, param: &str) -> String {
    match backend {
        Backend::Sqlite => format!("SELECT value FROM json_each({param})"),
        Backend::Postgres => format!("SELECT value FROM json_array_elements_text(CAST({param} AS json))"),
    }
}

/// An FTS5 query matching every term as a prefix; each term is quoted, so
/// no operator survives.
fn fts5_query(terms: &[String]) -> String {
    terms.iter().map(|t| format!("\"{t}\"*")).collect::<Vec<_>>().join(" ")
}

/// The smallest string above every string that begins with `t`.
fn prefix_end(t: &str) -> String {
    format!("{t}{}", char::MAX)
}

/// Moves a number's postings from the `old` search words to the `new`
/// ones, adding the changes of the key counts to `counts`.
pub(crate) async fn repost(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    number: i64,
    old: &str,
    new: &str,
    counts: &mut BTreeMap<String, i64>,
) -> Result<(), StoreError> {
    let (old_keys, new_keys) = (keys(old), keys(new));
    let gone: Vec<&String> = old_keys.difference(&new_keys).collect();
    let came: Vec<&String> = new_keys.difference(&old_keys).collect();
    if !gone.is_empty() {
        sqlx::query(&format!(
            "DELETE FROM profile_terms WHERE number = $1 AND term IN ({})",
            json_values(backend, "$2")
        ))
        .bind(number)
        .bind(json_array(gone.iter().copied()))
        .execute(&mut **tx)
        .await?;
    }
    if !came.is_empty() {
        let values = json_values(backend, "$2").replacen("SELECT value", "SELECT value, CAST($1 AS BIGINT)", 1);
        sqlx::query(&format!("INSERT INTO profile_terms (term, number) {values}"))
            .bind(number)
            .bind(json_array(came.iter().copied()))
            .execute(&mut **tx)
            .await?;
    }
    for k in gone {
        *counts.entry(k.clone()).or_default() -= 1;
    }
    for k in came {
        *counts.entry(k.clone()).or_default() += 1;
    }
    let all = i64::from(!new.is_empty()) - i64::from(!old.is_empty());
    if all != 0 {
        *counts.entry(ALL.to_string()).or_default() += all;
    }
    Ok(())
}

/// Applies key count changes (one statement, keys in order), and drops
/// keys no profile has any more.
pub(crate) async fn apply_counts(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    counts: &BTreeMap<String, i64>,
) -> Result<(), StoreError> {
    let changed: Vec<String> = counts
        .iter()
        .filter(|(_, &d)| d != 0)
        .map(|(k, d)| format!("\"{k}\":{d}"))
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    let source = match backend {
        Backend::Sqlite => "SELECT key, value FROM json_each($1) WHERE true",
        Backend::Postgres => "SELECT key, CAST(value AS BIGINT) FROM json_each_text(CAST($1 AS json))",
    };
    sqlx::query(&format!(
        "INSERT INTO profile_words (term, profiles) {source} \
         ON CONFLICT (term) DO UPDATE SET profiles = profile_words.profiles + excluded.profiles"
    ))
    .bind(format!("{{{}}}", changed.join(",")))
    .execute(&mut **tx)
    .await?;
    let fewer: Vec<&String> = counts.iter().filter(|(_, &d)| d < 0).map(|(k, _)| k).collect();
    if !fewer.is_empty() {
        sqlx::query(&format!(
            "DELETE FROM profile_words WHERE profiles <= 0 AND term IN ({})",
            json_values(backend, "$1")
        ))
        .bind(json_array(fewer.into_iter()))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// A number's indexed search words ("" when none or not indexed yet).
pub(crate) async fn indexed_words(tx: &mut Transaction<'_, Any>, number: i64) -> Result<String, StoreError> {
    let row = sqlx::query("SELECT search_words FROM profiles WHERE number = $1")
        .bind(number)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(match row {
        Some(r) => r.try_get::<Option<String>, _>(0)?.unwrap_or_default(),
        None => String::new(),
    })
}

/// Takes a number's profile out of the index (before its row goes).
pub(crate) async fn unindex(tx: &mut Transaction<'_, Any>, backend: Backend, number: i64) -> Result<(), StoreError> {
    if backend == Backend::Sqlite {
        return Ok(()); // FTS5: the caller deletes its row
    }
    let old = indexed_words(tx, number).await?;
    let mut counts = BTreeMap::new();
    repost(tx, backend, number, &old, "", &mut counts).await?;
    apply_counts(tx, backend, &counts).await
}

/// Moves the postings of a profile whose row has just moved from `old`
/// to `new` (a vanity number); the counts do not change.
pub(crate) async fn renumber(tx: &mut Transaction<'_, Any>, backend: Backend, old: i64, new: i64) -> Result<(), StoreError> {
    if backend == Backend::Sqlite {
        return Ok(()); // FTS5: the caller moves its row
    }
    let words = indexed_words(tx, new).await?;
    let mut counts = BTreeMap::new();
    repost(tx, backend, old, &words, "", &mut counts).await?;
    repost(tx, backend, new, "", &words, &mut counts).await
}

impl Store {
    /// Indexes the profiles the yellow pages do not know yet (a database
    /// upgraded from before migration 0017), a batch per transaction. Found
    /// through a partial index of such rows (migration 0018), so an open
    /// with none left reads no profile.
    pub(crate) async fn index_new_profiles(&self) -> Result<(), StoreError> {
        if self.backend == Backend::Sqlite {
            return Ok(()); // FTS5: migration 0007 filled it
        }
        let mut done = 0usize;
        loop {
            let rows = sqlx::query(
                "SELECT number, display_name, city, organisation, interests, introduction, public_mask, listed \
                 FROM profiles WHERE search_words IS NULL ORDER BY number LIMIT $1",
            )
            .bind(REINDEX_BATCH)
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                break;
            }
            let mut tx = self.pool.begin().await?;
            let mut counts = BTreeMap::new();
            for r in &rows {
                let p = profile_row(r)?;
                let new = search_words(&p);
                // A write first (SQLite: a transaction that reads before it
                // writes cannot wait for the write lock); only rows still
                // unindexed (another process may be at it too).
                let set = sqlx::query("UPDATE profiles SET search_words = $1 WHERE number = $2 AND search_words IS NULL")
                    .bind(&new)
                    .bind(p.number)
                    .execute(&mut *tx)
                    .await?;
                if set.rows_affected() == 1 {
                    repost(&mut tx, self.backend, p.number, "", &new, &mut counts).await?;
                }
            }
            apply_counts(&mut tx, self.backend, &counts).await?;
            tx.commit().await?;
            done += rows.len();
        }
        if done > 0 {
            tracing::info!(profiles = done, "yellow pages: indexed the profiles of an upgraded database");
        }
        Ok(())
    }

    /// The yellow pages: listed profiles with numbers in `lo..=hi` whose
    /// public fields have, for every term, a word it begins, in number
    /// order (a phone book's; it lets the search stop at `limit` rows
    /// instead of ranking every match of a common word); all listed ones
    /// when `terms` is empty. Private fields come back empty.
    pub async fn search_profiles(&self, terms: &[String], lo: i64, hi: i64, limit: i64) -> Result<Vec<ProfileRow>, StoreError> {
        let cols = public_columns();
        let select = format!("SELECT p.number, {cols}, p.public_mask, p.listed");
        let rows = if terms.is_empty() {
            sqlx::query(&format!(
                "{select} FROM profiles p WHERE p.listed <> 0 AND p.number BETWEEN $1 AND $2 ORDER BY p.number LIMIT $3"
            ))
            .bind(lo)
            .bind(hi)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
        } else if self.backend == Backend::Sqlite {
            sqlx::query(&format!(
                "{select} FROM profile_search s JOIN profiles p ON p.number = s.rowid \
                 WHERE profile_search MATCH $1 AND s.rowid BETWEEN $2 AND $3 AND p.listed <> 0 \
                 ORDER BY s.rowid LIMIT $4"
            ))
            .bind(fts5_query(terms))
            .bind(lo)
            .bind(hi)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
        } else {
            let Some((stats, all)) = self.terms(terms).await? else {
                return Ok(Vec::new());
            };
            let (source, check) = plan(&stats, all, limit);
            tracing::trace!(?source, ?check, "yellow pages search");
            // Text parameters from $4 on, in the order they are named.
            let mut binds: Vec<String> = Vec::new();
            let mut param = |v: &str| {
                binds.push(v.to_string());
                format!("${}", 3 + binds.len())
            };
            let list =
                |keys: &[String], param: &mut dyn FnMut(&str) -> String| keys.iter().map(|k| param(k)).collect::<Vec<_>>().join(", ");
            let inner = match &source {
                Source::Key(k) => format!(
                    "SELECT k.number FROM profile_terms k WHERE k.term = {} AND k.number BETWEEN $1 AND $2",
                    param(k)
                ),
                Source::Keys(keys) => format!(
                    "SELECT k.number FROM (SELECT DISTINCT number FROM profile_terms WHERE term IN ({}) \
                     AND number BETWEEN $1 AND $2) k WHERE 1 = 1",
                    list(keys, &mut param)
                ),
                Source::Profiles => "SELECT k.number FROM profiles k WHERE k.listed <> 0 AND k.number BETWEEN $1 AND $2".to_string(),
                Source::Intersect(lists) => {
                    // Through the GIN index of every profile's keys
                    // (migration 0020): one `&&` (any of the term's keys)
                    // per term. `string_to_array` of a text parameter, as
                    // the Any driver binds no arrays; it is immutable, so a
                    // custom plan sees the keys and their statistics.
                    let each: Vec<String> = lists
                        .iter()
                        .map(|keys| {
                            format!(
                                "peerdial_search_keys(k.search_words) && string_to_array({}, ' ')",
                                param(&keys.join(" "))
                            )
                        })
                        .collect();
                    // The range on `number + 0`, a filter on the few rows
                    // that meet: as an index condition, a generic plan
                    // (which guesses 0.5 % for any range) ANDs the GIN
                    // bitmap with a bitmap of the primary key over the
                    // whole area, 93 ms of the 94 a search took.
                    format!(
                        "SELECT k.number FROM profiles k WHERE {} AND k.listed <> 0 AND k.number + 0 BETWEEN $1 AND $2",
                        each.join(" AND ")
                    )
                }
            };
            // The few rows that meet are sorted; ordered by `number + 0` so
            // that the planner cannot walk the profiles in number order
            // testing each, which its guess for `&&` can make look cheap.
            let order = if matches!(source, Source::Intersect(_)) {
                "k.number + 0"
            } else {
                "k.number"
            };
            // The other terms, checked on the postings (their pages are
            // read in number order, as the candidates come), and on the
            // row's words only where the postings cannot tell. `LIMIT 1`
            // subqueries, not EXISTS: PostgreSQL would make a semi-join of
            // an EXISTS, hash a common term's whole list and sort, where a
            // probe per candidate stops with the page.
            // Terms the postings cannot tell are checked on the row's words
            // (one row read for all of them).
            let mut conds = String::new();
            let mut on_row = Vec::new();
            for &i in &check {
                let t = &stats[i];
                match (&t.exact, &t.wider) {
                    (Some(keys), _) => {
                        let keys: Vec<String> = keys.iter().map(|(k, _)| k.clone()).collect();
                        conds += &format!(
                            " AND (SELECT 1 FROM profile_terms e WHERE e.term IN ({}) AND e.number = k.number LIMIT 1) IS NOT NULL",
                            list(&keys, &mut param)
                        );
                    }
                    (None, Some((k, _))) => {
                        conds += &format!(
                            " AND (SELECT 1 FROM profile_terms e WHERE e.term = {} AND e.number = k.number LIMIT 1) IS NOT NULL",
                            param(k)
                        );
                        on_row.push(format!("r.search_words LIKE {}", param(&format!("% {}%", t.text))));
                    }
                    _ => on_row.push(format!("r.search_words LIKE {}", param(&format!("% {}%", t.text)))),
                }
            }
            if !on_row.is_empty() {
                conds += &format!(
                    " AND (SELECT 1 FROM profiles r WHERE r.number = k.number AND {} LIMIT 1) IS NOT NULL",
                    on_row.join(" AND ")
                );
            }
            let sql = format!(
                "{select} FROM ({inner}{conds} ORDER BY {order} LIMIT $3) c CROSS JOIN profiles p \
                 WHERE p.number = c.number AND p.listed <> 0 ORDER BY c.number"
            );
            let mut q = sqlx::query(&sql).bind(lo).bind(hi).bind(limit);
            for b in binds {
                q = q.bind(b);
            }
            q.fetch_all(&self.pool).await?
        };
        rows.iter().map(profile_row).collect()
    }

    /// Every term's keys and counts, and the count of all indexed
    /// profiles, in one statement; `None` when some term begins no word of
    /// any profile. A term of up to [`PREFIX`] characters: the keys of at
    /// most that length it begins (they cover its words). Longer: the words
    /// it begins, and the prefix key of its first characters, whose list
    /// holds them all.
    async fn terms(&self, terms: &[String]) -> Result<Option<(Vec<Term>, i64)>, StoreError> {
        let mut binds: Vec<String> = vec![ALL.to_string()];
        let mut param = |v: String| {
            binds.push(v);
            format!("${}", binds.len())
        };
        // Each row tagged: -1 the count of all, i a key term i begins,
        // -2 - i term i's prefix key.
        let mut parts = vec!["SELECT CAST(-1 AS BIGINT) AS i, term, profiles FROM profile_words WHERE term = $1".to_string()];
        for (i, t) in terms.iter().enumerate() {
            let len = t.chars().count();
            let short = if len <= PREFIX {
                format!(" AND length(term) <= {PREFIX}")
            } else {
                String::new()
            };
            let (from, to) = (param(t.clone()), param(prefix_end(t)));
            parts.push(format!(
                "SELECT * FROM (SELECT CAST({i} AS BIGINT) AS i, term, profiles FROM profile_words \
                 WHERE term >= {from} AND term < {to}{short} ORDER BY term LIMIT {}) t{i}",
                MAX_KEYS + 1
            ));
            if len > PREFIX {
                let key = param(t.chars().take(PREFIX).collect());
                parts.push(format!(
                    "SELECT CAST({} AS BIGINT), term, profiles FROM profile_words WHERE term = {key}",
                    -2 - i as i64
                ));
            }
        }
        let sql = parts.join(" UNION ALL ");
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(&self.pool).await?;
        let mut all = 0;
        let mut stats: Vec<Term> = terms
            .iter()
            .map(|t| Term {
                text: t.clone(),
                exact: Some(Vec::new()),
                wider: None,
            })
            .collect();
        for r in &rows {
            let (i, key, n) = (r.try_get::<i64, _>(0)?, r.try_get::<String, _>(1)?, r.try_get::<i64, _>(2)?);
            match i {
                -1 => all = n,
                i if i >= 0 => stats[i as usize].exact.get_or_insert_with(Vec::new).push((key, n)),
                i => stats[(-2 - i) as usize].wider = Some((key, n)),
            }
        }
        for t in &mut stats {
            match t.exact.as_ref().map(Vec::len) {
                Some(0) => return Ok(None),
                Some(n) if n > MAX_KEYS => t.exact = None,
                _ => {}
            }
        }
        Ok(Some((stats, all)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_text_syntax_becomes_plain_terms() {
        assert_eq!(search_terms("\"Tai pei\" NEAR(x* (y"), ["tai", "pei", "near", "x", "y"]);
        assert_eq!(search_terms("  ) ( * : - ^ \" % _ "), Vec::<String>::new());
        assert_eq!(search_terms("台北 Café 한국 Ĺódź"), ["台北", "cafe", "한국", "lodz"]);
        assert_eq!(search_terms(&"a ".repeat(50)).len(), MAX_TERMS);
        assert_eq!(fts5_query(&search_terms("x\"y")), "\"x\"* \"y\"*");
    }

    #[test]
    fn words_and_keys() {
        let p = ProfileRow {
            number: 1,
            fields: [
                "Ada Lin".into(),
                "Taipei".into(),
                "Secret".into(),
                "kites, Kites".into(),
                String::new(),
            ],
            public_mask: 0b11011,
            listed: true,
        };
        assert_eq!(search_words(&p), " ada lin taipei kites");
        let keys: Vec<String> = keys(&search_words(&p)).into_iter().collect();
        assert_eq!(keys, ["ada", "kit", "kites", "lin", "tai", "taipei"]);
        assert_eq!(search_words(&ProfileRow { listed: false, ..p }), "");
        assert_eq!(json_array(["a".to_string(), "台北".into()].iter()), "[\"a\",\"台北\"]");
    }
}
