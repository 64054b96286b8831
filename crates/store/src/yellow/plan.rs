//! The yellow pages' search planner: from every term's keys and counts,
//! the cheapest way (rows read and probes made, estimated) to produce
//! candidates in number order, and the terms left to check on each. Pure:
//! no SQL here; `yellow.rs` writes the statements for the chosen source.

/// How one term's candidates can be produced.
#[derive(Debug, Default)]
pub(super) struct Term {
    pub text: String,
    /// Keys whose lists together are exactly this term's matches, with
    /// their counts; `None` when there are more than [`super::MAX_KEYS`].
    pub exact: Option<Vec<(String, i64)>>,
    /// A key whose list holds every match and more (the term's first
    /// [`super::PREFIX`] characters), with its count.
    pub wider: Option<(String, i64)>,
}

impl Term {
    /// Matching profiles, as far as the counts tell (at most).
    pub fn matches(&self, all: f64) -> f64 {
        match (&self.exact, &self.wider) {
            (Some(keys), _) => keys.iter().map(|(_, n)| *n as f64).sum(),
            (None, Some((_, n))) => *n as f64,
            (None, None) => all,
        }
    }
}

/// Where a search takes its candidates from, in number order.
#[derive(Debug, PartialEq)]
pub(super) enum Source {
    /// One key's list, in index order; the page ends the walk.
    Key(String),
    /// Several keys' lists, read whole and sorted.
    Keys(Vec<String>),
    /// The profiles table, in number order.
    Profiles,
    /// The profiles holding every one of several terms (each any of its
    /// keys), from the GIN index of keys: for terms that are rare together
    /// though each is not, where walking one list would probe most of it.
    Intersect(Vec<Vec<String>>),
}

/// What probing one candidate for one key costs, in rows of a list read
/// in order (a b-tree descent against a step along a leaf; measured on
/// PostgreSQL with a million profiles: about 1 µs against 0.15 µs).
const PROBE: f64 = 6.0;
/// What checking one candidate's row (its `search_words`) costs. (Rows
/// are not read for terms that have a list of keys, even long ones: with
/// a cold cache each read is a random page from disk, and measured warm
/// it was no faster than probing up to 16 keys.)
const ROW: f64 = 3.0 * PROBE;
/// What one entry of a key's list costs in the GIN index of keys (a
/// compressed list of row ids, decoded in order).
const GIN_ENTRY: f64 = 0.5;

impl Term {
    /// What checking one candidate for this term costs: a probe per key,
    /// or the row (after the prefix key's probe when there is no list).
    fn check_cost(&self) -> f64 {
        match (&self.exact, &self.wider) {
            (Some(keys), _) => PROBE * keys.len() as f64,
            (None, Some(_)) => PROBE + ROW,
            (None, None) => ROW,
        }
    }
}

/// The cheapest source (by rows read and probes made, estimated) and the
/// terms it does not settle, which are checked on each candidate.
pub(super) fn plan(terms: &[Term], all: i64, limit: i64) -> (Source, Vec<usize>) {
    let all = all.max(1) as f64;
    let limit = limit.max(1) as f64;
    let share: Vec<f64> = terms.iter().map(|t| (t.matches(all) / all).clamp(1.0 / all, 1.0)).collect();
    let others = |i: usize| -> f64 { (0..terms.len()).filter(|&j| j != i).map(|j| share[j]).product() };
    // Rows taken from a list of `len` rows of which a share `pass` is a
    // hit, until the page is full.
    let taken = |len: f64, pass: f64| -> f64 { len.min(limit / pass.max(1e-12)) };
    // Walking such a list in order, each row checked at a cost `check`.
    let walk = |len: f64, pass: f64, check: f64| -> f64 { taken(len, pass) * (1.0 + check) };
    let n = terms.len();
    // What checking a candidate for every term but those settled costs.
    let check = |settled: &[usize]| -> f64 { (0..n).filter(|i| !settled.contains(i)).map(|i| terms[i].check_cost()).sum() };
    let mut best = (walk(all, share.iter().product(), check(&[])), Source::Profiles, vec![]);
    for (i, t) in terms.iter().enumerate() {
        if let Some(keys) = &t.exact {
            let (cost, source) = if let [(k, rows)] = keys.as_slice() {
                (walk(*rows as f64, others(i), check(&[i])), Source::Key(k.clone()))
            } else {
                // Read whole and sorted: a little dearer per row.
                let rows = t.matches(all);
                let probes = taken(rows, others(i)) * check(&[i]);
                (rows * 1.5 + probes, Source::Keys(keys.iter().map(|(k, _)| k.clone()).collect()))
            };
            if cost < best.0 {
                best = (cost, source, vec![i]);
            }
        }
        if let Some((k, rows)) = &t.wider {
            let own = share[i] * all / (*rows).max(1) as f64;
            let cost = walk(*rows as f64, own.min(1.0) * others(i), check(&[]));
            if cost < best.0 {
                best = (cost, Source::Key(k.clone()), vec![]);
            }
        }
    }
    // The rarest exact terms met in the GIN index of keys: their lists
    // decoded whole (compressed, cheaper per entry than a b-tree's), and
    // every profile that has them all read and sorted.
    let mut exact: Vec<usize> = (0..n).filter(|&i| terms[i].exact.is_some()).collect();
    exact.sort_by(|&a, &b| share[a].total_cmp(&share[b]));
    for k in 2..=exact.len() {
        let chosen = &exact[..k];
        let read: f64 = chosen.iter().map(|&i| terms[i].matches(all) * GIN_ENTRY).sum();
        let out = all * chosen.iter().map(|&i| share[i]).product::<f64>();
        let rest: f64 = (0..n).filter(|i| !chosen.contains(i)).map(|i| share[i]).product();
        let cost = read + out * PROBE + taken(out, rest) * check(chosen);
        if cost < best.0 {
            let lists = chosen
                .iter()
                .map(|&i| terms[i].exact.iter().flatten().map(|(k, _)| k.clone()).collect())
                .collect();
            best = (cost, Source::Intersect(lists), chosen.to_vec());
        }
    }
    let settled = best.2;
    (best.1, (0..n).filter(|i| !settled.contains(i)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(text: &str, exact: Option<&[(&str, i64)]>, wider: Option<(&str, i64)>) -> Term {
        Term {
            text: text.into(),
            exact: exact.map(|e| e.iter().map(|(k, n)| (k.to_string(), *n)).collect()),
            wider: wider.map(|(k, n)| (k.to_string(), n)),
        }
    }

    #[test]
    fn plans_walk_the_rarest_list() {
        let all = 1_000_000;
        // One common word: its own list, stopping at the page.
        let common = term("ltd", Some(&[("ltd", 900_000)]), None);
        assert_eq!(plan(&[common], all, 20), (Source::Key("ltd".into()), vec![]));
        // A common word and a rare one: the rare one's list, the common one checked.
        let common = term("ltd", Some(&[("ltd", 900_000)]), None);
        let rare = term("kalomi", Some(&[("kalomi", 30), ("kalomita", 5)]), Some(("kal", 50_000)));
        assert_eq!(
            plan(&[common, rare], all, 20),
            (Source::Keys(vec!["kalomi".into(), "kalomita".into()]), vec![0])
        );
        // A prefix of too many words: the prefix key's list, the term checked.
        let many = term("kalo", None, Some(("kal", 50_000)));
        assert_eq!(plan(&[many], all, 20), (Source::Key("kal".into()), vec![0]));
        // A city and a word, a few thousand profiles each and rare
        // together: both lists read whole and intersected, not one walked
        // to its end with a probe per row.
        let city = term("kalomita", Some(&[("kalomita", 3_300)]), Some(("kal", 60_000)));
        let word = term("shiren", Some(&[("shiren", 2_900), ("shirenpo", 100)]), Some(("shi", 50_000)));
        assert_eq!(
            plan(&[city, word], all, 20),
            (
                Source::Intersect(vec![vec!["shiren".into(), "shirenpo".into()], vec!["kalomita".into()]]),
                vec![]
            )
        );
        // The counts of the store test `words_rare_together_meet_only_in_public_listed_profiles`:
        // it exercises this plan on a real PostgreSQL.
        let city = term("tainan", Some(&[("tainan", 35)]), Some(("tai", 35)));
        let word = term("kites", Some(&[("kites", 34)]), Some(("kit", 34)));
        assert_eq!(
            plan(&[city, word], 265, 10),
            (Source::Intersect(vec![vec!["kites".into()], vec!["tainan".into()]]), vec![])
        );
        // The same city with a common word: the city's list, walked.
        let city = term("kalomita", Some(&[("kalomita", 3_300)]), Some(("kal", 60_000)));
        let common = term("ltd", Some(&[("ltd", 300_000)]), None);
        assert_eq!(plan(&[city, common], all, 20), (Source::Key("kalomita".into()), vec![1]));
        // Nothing but very common short prefixes: the profiles in order.
        let (k, l) = (term("k", None, None), term("l", None, None));
        assert_eq!(plan(&[k, l], all, 20), (Source::Profiles, vec![0, 1]));
    }
}
