//! Regions' signing keys, found through DNS alone (design §9): the TXT
//! record at an area zone's apex, cached for the record's TTL. The callee
//! checking a caller, and a region checking a watcher from another region,
//! both ask here.
//!
//! [`Tokens`] puts the two together for a server that checks PASSporTs
//! from any region: keys found here, each token verified once.
//!
//! What this is not: the verification itself (`peerdial_identity::Verifier`),
//! and it never fetches a key URL a token names (a sender could point it
//! anywhere).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use peerdial_identity::{PublicKey, Verdict, Verifier};
use peerdial_number::Number;

use crate::Dns;

/// Keys kept at most this long, whatever the TTL says.
pub const MAX_KEY_TTL_MS: u64 = 3_600_000;
/// Areas remembered at most.
pub const MAX_ZONES: usize = 256;

/// Regions' keys by area zone, each until its TTL runs out. Pure: the time
/// (ms, any monotonic origin) is passed in.
#[derive(Debug, Default)]
pub struct KeyCache {
    zones: HashMap<String, (Vec<PublicKey>, u64)>,
}

impl KeyCache {
    /// The keys for `zone` while fresh.
    pub fn get(&self, zone: &str, now: u64) -> Option<Vec<PublicKey>> {
        self.zones.get(zone).filter(|(_, until)| *until > now).map(|(k, _)| k.clone())
    }

    /// Remembers keys for `ttl` seconds (capped at an hour; 0 keeps nothing).
    pub fn put(&mut self, zone: &str, keys: Vec<PublicKey>, ttl: u32, now: u64) {
        let until = now + (ttl as u64 * 1000).min(MAX_KEY_TTL_MS);
        if until <= now {
            return;
        }
        self.zones.retain(|_, (_, u)| *u > now);
        if self.zones.len() >= MAX_ZONES {
            if let Some(oldest) = self.zones.iter().min_by_key(|(_, (_, u))| *u).map(|(z, _)| z.clone()) {
                self.zones.remove(&oldest);
            }
        }
        self.zones.insert(zone.to_string(), (keys, until));
    }

    pub fn len(&self) -> usize {
        self.zones.len()
    }

    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }
}

/// A [`KeyCache`] shared by the tasks that look keys up, with its clock.
#[derive(Debug, Clone)]
pub struct Keys {
    cache: Arc<Mutex<KeyCache>>,
    clock: Instant,
    root: String,
}

impl Keys {
    /// Keys for area zones under `root` (the tree's root domain).
    pub fn new(root: &str) -> Keys {
        Keys {
            cache: Arc::default(),
            clock: Instant::now(),
            root: root.to_string(),
        }
    }

    /// The keys of the region that holds `number`, from the cache or the DNS.
    pub async fn of(&self, dns: &Dns, number: Number) -> Result<Vec<PublicKey>, String> {
        let zone = number.area().zone_name(&self.root);
        let now = || self.clock.elapsed().as_millis() as u64;
        if let Some(k) = self.cache.lock().expect("key cache").get(&zone, now()) {
            return Ok(k);
        }
        let server = dns.server_for(number).await.map_err(|e| e.to_string())?;
        let (records, ttl) = crate::txt(server, &zone).await.map_err(|e| e.to_string())?;
        let keys = PublicKey::from_txt_records(&records).map_err(|e| format!("no usable key for {zone}: {e}"))?;
        self.cache.lock().expect("key cache").put(&zone, keys.clone(), ttl, now());
        Ok(keys)
    }
}

/// Checks `Identity` headers from any region: the signer's keys from DNS
/// (cached by [`Keys`]), each token once (replays refused). A region
/// checking remote watchers and private posts, and the top checking
/// publishers, both use it.
#[derive(Debug)]
pub struct Tokens {
    keys: Keys,
    verifier: Mutex<Verifier>,
}

impl Tokens {
    /// Keys for area zones under `root` (the tree's root domain).
    pub fn new(root: &str) -> Tokens {
        Tokens {
            keys: Keys::new(root),
            verifier: Mutex::new(Verifier::default()),
        }
    }

    /// Checks that `token` says `orig` speaks to `dest`, signed by one of
    /// `keys`, at `unix_ms`; why not otherwise.
    pub fn check_with(&self, keys: &[PublicKey], orig: Number, dest: Number, token: &str, unix_ms: u64) -> Result<(), String> {
        match self
            .verifier
            .lock()
            .expect("verifier")
            .verify_any(Some(token), orig, dest, keys, unix_ms)
        {
            Verdict::Verified(_) => Ok(()),
            Verdict::Unverified(reason) => Err(reason.to_string()),
        }
    }

    /// As [`Tokens::check_with`], with `orig`'s region keys found through `dns`.
    pub async fn check(&self, dns: &Dns, orig: Number, dest: Number, token: &str, unix_ms: u64) -> Result<(), String> {
        let keys = self.keys.of(dns, orig).await?;
        self.check_with(&keys, orig, dest, token, unix_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerdial_identity::SigningKey;

    #[test]
    fn keys_are_kept_for_their_ttl_and_no_longer() {
        let key = SigningKey::generate(&mut rand::rngs::OsRng).public_key().clone();
        let mut c = KeyCache::default();
        c.put("2.0.6.8.8.x.", vec![key.clone()], 60, 1_000);
        assert_eq!(c.get("2.0.6.8.8.x.", 60_999).map(|k| k.len()), Some(1));
        assert!(c.get("2.0.6.8.8.x.", 61_000).is_none());
        assert!(c.get("3.0.6.8.8.x.", 2_000).is_none());
        // TTL 0: nothing kept; huge TTLs are capped at an hour.
        c.put("3.0.6.8.8.x.", vec![key.clone()], 0, 1_000);
        assert!(c.get("3.0.6.8.8.x.", 1_000).is_none());
        c.put("4.0.6.8.8.x.", vec![key.clone()], u32::MAX, 0);
        assert!(c.get("4.0.6.8.8.x.", MAX_KEY_TTL_MS).is_none());
        // Bounded: the entry closest to expiry goes first.
        for i in 0..MAX_ZONES + 10 {
            c.put(&format!("z{i}"), vec![key.clone()], 100 + i as u32, 0);
        }
        assert_eq!(c.len(), MAX_ZONES);
        assert!(c.get("z0", 1).is_none() && c.get(&format!("z{}", MAX_ZONES + 9), 1).is_some());
    }
}
