//! One-time session keys: made by the pairing table for one caller and
//! one callee, handed to both; the caller puts it in its INVITE
//! ([`KEY_HEADER`]) and the callee checks it offline against the key it
//! was handed itself ([`KeyRing`]): it must be known, not expired, not
//! used before, and come from the caller it was made for. No server is
//! asked at INVITE time, so a check costs nothing and leaks nothing.

use std::collections::HashMap;

use base64::Engine;
use rand::RngCore;

/// The SIP header that carries the key in the caller's INVITE.
pub const KEY_HEADER: &str = "X-Peerdial-Rendezvous-Key";

/// 256 random bits, base64url without padding (43 characters).
pub fn new_key(rng: &mut impl RngCore) -> String {
    let mut b = [0u8; 32];
    rng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Why a presented key was refused (the INVITE gets 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefused {
    /// Never handed to us (forged, or for another callee).
    Unknown,
    Expired,
    Used,
    /// Handed to us for another caller.
    Misbound,
}

impl KeyRefused {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyRefused::Unknown => "unknown",
            KeyRefused::Expired => "expired",
            KeyRefused::Used => "already used",
            KeyRefused::Misbound => "issued for another caller",
        }
    }
}

#[derive(Debug)]
struct Expected {
    caller: String,
    expires: u64,
    used: bool,
}

/// The callee's keys: the ones the rendezvous handed it, each for one
/// caller (the user part of the caller's SIP contact).
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: HashMap<String, Expected>,
}

/// How long a used or expired key is remembered, so a replay hears
/// "already used"/"expired" rather than "unknown".
const REMEMBER_MS: u64 = 10 * 60_000;

impl KeyRing {
    pub fn expect(&mut self, key: &str, caller: &str, expires: u64) {
        self.keys.insert(
            key.to_string(),
            Expected {
                caller: caller.to_string(),
                expires,
                used: false,
            },
        );
    }

    /// Checks and uses up `key` presented by `caller` at `now`. A misbound
    /// try does not use the key up (the right caller may still come).
    pub fn check(&mut self, key: &str, caller: &str, now: u64) -> Result<(), KeyRefused> {
        self.keys.retain(|_, e| now < e.expires + REMEMBER_MS);
        let e = self.keys.get_mut(key.trim()).ok_or(KeyRefused::Unknown)?;
        if e.used {
            return Err(KeyRefused::Used);
        }
        if now >= e.expires {
            return Err(KeyRefused::Expired);
        }
        if e.caller != caller {
            return Err(KeyRefused::Misbound);
        }
        e.used = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn keys_are_single_use_short_lived_and_bound() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let (k, other) = (new_key(&mut rng), new_key(&mut rng));
        assert_eq!(k.len(), 43);
        assert_ne!(k, other);
        let mut ring = KeyRing::default();
        ring.expect(&k, "886021234567", 30_000);
        assert_eq!(ring.check(&other, "886021234567", 10), Err(KeyRefused::Unknown));
        assert_eq!(ring.check(&k, "886039999999", 10), Err(KeyRefused::Misbound));
        assert_eq!(ring.check(&k, "886021234567", 20), Ok(()));
        assert_eq!(ring.check(&k, "886021234567", 30), Err(KeyRefused::Used));
        ring.expect(&other, "886021234567", 30_000);
        assert_eq!(ring.check(&other, "886021234567", 30_000), Err(KeyRefused::Expired));
        assert_eq!(ring.check(&other, "886021234567", 30_000 + REMEMBER_MS), Err(KeyRefused::Unknown));
    }
}
