//! The MSISDN ↔ IMSI mappings and the one-time SMS codes that prove them.
//! A device asks for a code ([`Registry::request_code`]); the code goes to
//! the MSISDN by SMS (the edge's work); the device returns it with the same
//! MSISDN and IMSI ([`Registry::verify`]) and only then the mapping exists.
//! A new SIM for the same MSISDN replaces the mapping after the same proof.
//!
//! Changes come back as [`Change`]s: the edge stores them durably and then
//! [`Registry::apply`]s them. Codes live only in memory (a restart asks
//! devices to register again). This module keeps no clock and sends nothing.

use std::collections::HashMap;

use rand::Rng;

use crate::ids::{ImsiHash, Msisdn};
use crate::limit::RateLimit;
use crate::RendezvousError;
use subtle::ConstantTimeEq;

#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// How long a code may be used.
    pub code_ttl_ms: u64,
    /// Wrong tries before a code is void.
    pub max_attempts: u32,
    /// Codes one MSISDN may be sent: at once, then per minute.
    pub codes_burst: u32,
    pub codes_per_minute: u32,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            code_ttl_ms: 5 * 60_000,
            max_attempts: 5,
            codes_burst: 3,
            codes_per_minute: 1,
        }
    }
}

/// What a registration request leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// Send `code` to `msisdn` by SMS.
    SendCode { msisdn: Msisdn, code: String },
    /// This MSISDN already maps to this IMSI: nothing to prove again.
    AlreadyRegistered,
}

/// A change of mappings, to store before applying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Put { msisdn: Msisdn, imsi: ImsiHash },
    Remove { msisdn: Msisdn },
}

#[derive(Debug)]
struct Pending {
    imsi: ImsiHash,
    code: [u8; 6],
    expires: u64,
    attempts: u32,
    used: bool,
}

#[derive(Debug)]
pub struct Registry {
    cfg: RegistryConfig,
    by_msisdn: HashMap<Msisdn, ImsiHash>,
    by_imsi: HashMap<ImsiHash, Msisdn>,
    pending: HashMap<Msisdn, Pending>,
    sends: RateLimit<Msisdn>,
}

impl Registry {
    pub fn new(cfg: RegistryConfig) -> Registry {
        Registry {
            sends: RateLimit::new(cfg.codes_burst, cfg.codes_per_minute),
            cfg,
            by_msisdn: HashMap::new(),
            by_imsi: HashMap::new(),
            pending: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.by_msisdn.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_msisdn.is_empty()
    }

    /// The MSISDN a SIM is registered for.
    pub fn msisdn_of(&self, imsi: &ImsiHash) -> Option<&Msisdn> {
        self.by_imsi.get(imsi)
    }

    /// Whether `msisdn` is registered with exactly this SIM.
    pub fn is_mapped(&self, msisdn: &Msisdn, imsi: &ImsiHash) -> bool {
        self.by_msisdn.get(msisdn) == Some(imsi)
    }

    /// Starts a registration: a fresh 6-digit code for `msisdn`, replacing
    /// any earlier one. Rate-limited per MSISDN (each code is an SMS).
    pub fn request_code(&mut self, msisdn: &Msisdn, imsi: ImsiHash, now: u64, rng: &mut impl Rng) -> Result<Requested, RendezvousError> {
        if self.is_mapped(msisdn, &imsi) {
            return Ok(Requested::AlreadyRegistered);
        }
        self.sends
            .take(msisdn, now)
            .map_err(|ms| RendezvousError::RateLimited { retry_after_ms: ms })?;
        let mut code = [0u8; 6];
        for c in &mut code {
            *c = b'0' + rng.gen_range(0..10u8);
        }
        self.pending.insert(
            msisdn.clone(),
            Pending {
                imsi,
                code,
                expires: now + self.cfg.code_ttl_ms,
                attempts: 0,
                used: false,
            },
        );
        Ok(Requested::SendCode {
            msisdn: msisdn.clone(),
            code: String::from_utf8_lossy(&code).into_owned(),
        })
    }

    /// Checks a returned code. Right: the code is used up and the mapping
    /// change comes back (to store, then apply). Wrong, expired, used, or
    /// for another SIM: an error, and only the try is counted.
    pub fn verify(&mut self, msisdn: &Msisdn, imsi: &ImsiHash, code: &str, now: u64) -> Result<Change, RendezvousError> {
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RendezvousError::Code("a code is 6 digits".into()));
        }
        let max = self.cfg.max_attempts;
        let p = match self.pending.get_mut(msisdn) {
            // A code sent for another SIM is no code for this one.
            Some(p) if p.imsi == *imsi => p,
            _ => return Err(RendezvousError::NoCode),
        };
        if p.used {
            return Err(RendezvousError::CodeUsed);
        }
        if now >= p.expires {
            return Err(RendezvousError::CodeExpired);
        }
        // Constant time: the code is compared whole.
        if !bool::from(p.code.ct_eq(code.as_bytes())) {
            p.attempts += 1;
            let left = max.saturating_sub(p.attempts);
            if left == 0 {
                self.pending.remove(msisdn);
                return Err(RendezvousError::TooManyAttempts);
            }
            return Err(RendezvousError::WrongCode { left });
        }
        p.used = true;
        Ok(Change::Put {
            msisdn: msisdn.clone(),
            imsi: *imsi,
        })
    }

    /// Removal by the device itself: it shows the MSISDN and its IMSI.
    pub fn remove(&self, msisdn: &Msisdn, imsi: &ImsiHash) -> Result<Change, RendezvousError> {
        if !self.is_mapped(msisdn, imsi) {
            return Err(RendezvousError::NotRegistered);
        }
        Ok(Change::Remove { msisdn: msisdn.clone() })
    }

    /// Makes a stored change visible. A SIM maps to one MSISDN and an
    /// MSISDN to one SIM: a new pair replaces whatever either had.
    pub fn apply(&mut self, change: &Change) {
        match change {
            Change::Put { msisdn, imsi } => {
                if let Some(old) = self.by_msisdn.insert(msisdn.clone(), *imsi) {
                    self.by_imsi.remove(&old);
                }
                if let Some(other) = self.by_imsi.insert(*imsi, msisdn.clone()) {
                    if other != *msisdn {
                        self.by_msisdn.remove(&other);
                    }
                }
            }
            Change::Remove { msisdn } => {
                if let Some(old) = self.by_msisdn.remove(msisdn) {
                    self.by_imsi.remove(&old);
                }
                self.pending.remove(msisdn);
            }
        }
    }

    /// Forgets codes long past use (kept a while so a late try hears
    /// "expired" or "used" rather than "no code").
    pub fn handle_timeout(&mut self, now: u64) {
        let keep = self.cfg.code_ttl_ms;
        self.pending.retain(|_, p| now < p.expires + keep);
    }
}
