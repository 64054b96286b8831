//! Verification codes for foreign accounts: the top sends a 6-digit code
//! in a SIP MESSAGE to the account's address of record, and the user
//! types it back. A code is kept only as a hash, expires, allows a few
//! tries, and is used once. A new code for the same talker replaces the
//! old one.

use std::collections::HashMap;

use rand::Rng;
use sha2::{Digest, Sha256};

pub const CODE_LIFETIME_MS: u64 = 10 * 60 * 1000;
pub const MAX_TRIES: u32 = 5;
/// Pending codes kept at most (the oldest go first).
const MAX_PENDING: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("that code is not the one sent")]
    Wrong,
    #[error("no code is waiting for this talker (expired, used, or too many tries): ask for a new one")]
    NoCode,
}

struct Pending {
    hash: [u8; 32],
    expires_ms: u64,
    tries: u32,
}

/// Codes waiting to be typed back, by talker id.
#[derive(Default)]
pub struct Codes {
    pending: HashMap<i64, Pending>,
}

fn hash(talker: i64, code: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(talker.to_be_bytes());
    h.update(code.trim().as_bytes());
    h.finalize().into()
}

impl Codes {
    /// A fresh code for `talker` (to send; never stored in clear).
    pub fn issue(&mut self, talker: i64, now_ms: u64) -> String {
        self.pending.retain(|_, p| p.expires_ms > now_ms);
        if self.pending.len() >= MAX_PENDING {
            if let Some(oldest) = self.pending.iter().min_by_key(|(_, p)| p.expires_ms).map(|(k, _)| *k) {
                self.pending.remove(&oldest);
            }
        }
        let code = format!("{:06}", rand::thread_rng().gen_range(0..1_000_000));
        self.pending.insert(
            talker,
            Pending {
                hash: hash(talker, &code),
                expires_ms: now_ms + CODE_LIFETIME_MS,
                tries: 0,
            },
        );
        code
    }

    /// Checks a typed code; right once, then gone.
    pub fn check(&mut self, talker: i64, code: &str, now_ms: u64) -> Result<(), VerifyError> {
        let p = self.pending.get_mut(&talker).ok_or(VerifyError::NoCode)?;
        if p.expires_ms <= now_ms || p.tries >= MAX_TRIES {
            self.pending.remove(&talker);
            return Err(VerifyError::NoCode);
        }
        p.tries += 1;
        if p.hash == hash(talker, code) {
            self.pending.remove(&talker);
            Ok(())
        } else {
            Err(VerifyError::Wrong)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_works_once_before_it_expires_and_forged_ones_are_refused() {
        let mut c = Codes::default();
        let code = c.issue(7, 0);
        assert_eq!(code.len(), 6);
        let forged = if code == "000000" { "000001" } else { "000000" };
        assert_eq!(c.check(7, forged, 1), Err(VerifyError::Wrong));
        assert_eq!(c.check(8, &code, 1), Err(VerifyError::NoCode));
        assert_eq!(c.check(7, &code, 2), Ok(()));
        assert_eq!(c.check(7, &code, 3), Err(VerifyError::NoCode));
        let code = c.issue(7, 0);
        assert_eq!(c.check(7, &code, CODE_LIFETIME_MS), Err(VerifyError::NoCode));
    }

    #[test]
    fn tries_are_limited() {
        let mut c = Codes::default();
        let code = c.issue(1, 0);
        let forged = if code == "000000" { "000001" } else { "000000" };
        for _ in 0..MAX_TRIES {
            assert_eq!(c.check(1, forged, 1), Err(VerifyError::Wrong));
        }
        assert_eq!(c.check(1, &code, 1), Err(VerifyError::NoCode));
    }
}
