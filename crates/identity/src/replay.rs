//! A bounded cache of tokens already accepted, for replay detection.

use std::collections::{BTreeSet, HashMap};

/// A token's identity in the cache: its signature in low-S form.
pub type TokenId = [u8; 64];

/// Remembers accepted tokens until they expire. Bounded: when full, the
/// entry that expires first is dropped to make room (it is the one closest
/// to being refused as expired anyway). Times are in ms.
#[derive(Debug, Clone)]
pub struct ReplayCache {
    capacity: usize,
    by_id: HashMap<TokenId, u64>,
    by_expiry: BTreeSet<(u64, TokenId)>,
}

impl ReplayCache {
    /// A cache holding at most `capacity` tokens (at least one).
    pub fn new(capacity: usize) -> ReplayCache {
        ReplayCache {
            capacity: capacity.max(1),
            by_id: HashMap::new(),
            by_expiry: BTreeSet::new(),
        }
    }

    /// Whether `id` was seen and has not expired by `now`.
    pub fn contains(&self, id: &TokenId, now: u64) -> bool {
        self.by_id.get(id).is_some_and(|&exp| exp > now)
    }

    /// Records `id` as seen until `expires` (ms). Returns false, changing
    /// nothing, if it is already there: a replay.
    pub fn insert(&mut self, id: TokenId, expires: u64, now: u64) -> bool {
        self.handle_timeout(now);
        if self.by_id.contains_key(&id) {
            return false;
        }
        while self.by_id.len() >= self.capacity {
            let Some(first) = self.by_expiry.pop_first() else { break };
            self.by_id.remove(&first.1);
            tracing::debug!("identity replay cache full; dropped the entry expiring first");
        }
        self.by_id.insert(id, expires);
        self.by_expiry.insert((expires, id));
        true
    }

    /// Forgets every entry that has expired by `now`.
    pub fn handle_timeout(&mut self, now: u64) {
        while let Some(&(exp, id)) = self.by_expiry.first() {
            if exp > now {
                break;
            }
            self.by_expiry.pop_first();
            self.by_id.remove(&id);
        }
    }

    /// When the next entry expires, if any.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.by_expiry.first().map(|&(exp, _)| exp)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> TokenId {
        [n; 64]
    }

    #[test]
    fn second_insert_is_a_replay_until_expiry() {
        let mut c = ReplayCache::new(10);
        assert!(c.insert(id(1), 1000, 0));
        assert!(!c.insert(id(1), 1000, 500));
        assert!(c.contains(&id(1), 999));
        // Expired entries are forgotten; the token itself would be refused as expired.
        assert!(c.insert(id(1), 2000, 1000));
    }

    #[test]
    fn full_cache_drops_the_entry_expiring_first() {
        let mut c = ReplayCache::new(2);
        assert!(c.insert(id(1), 3000, 0));
        assert!(c.insert(id(2), 1000, 0));
        assert!(c.insert(id(3), 2000, 0));
        assert_eq!(c.len(), 2);
        assert!(!c.contains(&id(2), 0));
        assert!(c.contains(&id(1), 0) && c.contains(&id(3), 0));
    }

    #[test]
    fn timeout_purges_and_reports_next_expiry() {
        let mut c = ReplayCache::new(10);
        c.insert(id(1), 1000, 0);
        c.insert(id(2), 5000, 0);
        assert_eq!(c.poll_timeout(), Some(1000));
        c.handle_timeout(1000);
        assert_eq!(c.len(), 1);
        assert_eq!(c.poll_timeout(), Some(5000));
        c.handle_timeout(5000);
        assert!(c.is_empty());
        assert_eq!(c.poll_timeout(), None);
    }
}
