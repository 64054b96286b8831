//! A token bucket per key (a caller's MSISDN, a source address), fed the
//! time by the caller: what keeps one client from enumerating MSISDNs or
//! sending a number a flood of SMS codes. It is not a fairness scheduler.

use std::collections::HashMap;
use std::hash::Hash;

/// Most keys remembered; full buckets are forgotten first.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone)]
pub struct RateLimit<K> {
    /// Tokens a key may spend at once.
    burst: f64,
    /// Tokens regained per millisecond.
    per_ms: f64,
    buckets: HashMap<K, (f64, u64)>,
}

impl<K: Hash + Eq + Clone> RateLimit<K> {
    /// `burst` at once, then `per_minute` more each minute.
    pub fn new(burst: u32, per_minute: u32) -> RateLimit<K> {
        RateLimit {
            burst: burst as f64,
            per_ms: per_minute as f64 / 60_000.0,
            buckets: HashMap::new(),
        }
    }

    /// Spends one token of `key`; `Err(ms)` until one is back.
    pub fn take(&mut self, key: &K, now: u64) -> Result<(), u64> {
        if self.buckets.len() >= MAX_KEYS && !self.buckets.contains_key(key) {
            self.forget_full(now);
        }
        let (burst, per_ms) = (self.burst, self.per_ms);
        let (tokens, last) = self.buckets.entry(key.clone()).or_insert((burst, now));
        *tokens = (*tokens + now.saturating_sub(*last) as f64 * per_ms).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else if per_ms > 0.0 {
            Err(((1.0 - *tokens) / per_ms).ceil() as u64)
        } else {
            Err(u64::MAX)
        }
    }

    fn forget_full(&mut self, now: u64) {
        let (burst, per_ms) = (self.burst, self.per_ms);
        self.buckets
            .retain(|_, (t, last)| *t + now.saturating_sub(*last) as f64 * per_ms < burst);
        if self.buckets.len() >= MAX_KEYS {
            self.buckets.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let mut l = RateLimit::new(2, 60);
        assert!(l.take(&"a", 0).is_ok() && l.take(&"a", 0).is_ok());
        assert_eq!(l.take(&"a", 0), Err(1000));
        assert!(l.take(&"b", 0).is_ok(), "keys are separate");
        assert!(l.take(&"a", 999).is_err());
        assert!(l.take(&"a", 2000).is_ok());
    }
}
