//! Identity rendezvous (design §1 capability 4, §9 trust): a mobile call
//! that becomes an internet call. A device registers the mapping of its
//! phone number (MSISDN) to its SIM (IMSI), proven by a one-time code sent
//! by SMS. When someone places a mobile call, the caller's device submits
//! the callee's MSISDN; the callee's device, told of the call by the mobile
//! network and before it rings, submits its IMSI. [`Rendezvous`] pairs the
//! two through the mapping and gives each the other's SIP contact and a
//! one-time session key; the caller then INVITEs the callee directly.
//!
//! This crate is the sans-I/O core: requests and time in, outcomes out
//! (`poll_event`, `poll_timeout`, `handle_timeout`). It is not a server, an
//! SMS sender or a store: the top's HTTP edge does that, persisting each
//! [`Change`] before applying it. IMSIs are kept only as keyed hashes
//! ([`ImsiHasher`]) and never leave it in any form.

pub mod ids;
pub mod key;
pub mod limit;
pub mod pairing;
pub mod registry;
pub mod wire;

use rand::rngs::StdRng;

pub use ids::{Imsi, ImsiHash, ImsiHasher, Msisdn};
pub use key::{KeyRefused, KeyRing, KEY_HEADER};
pub use pairing::{Outcome, Pair, PairingConfig, Ticket};
pub use registry::{Change, RegistryConfig, Requested};
pub use wire::{CallRequest, DeviceRequest, RingRequest, VerifyRequest};

use limit::RateLimit;
use pairing::Pairing;
use registry::Registry;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RendezvousError {
    #[error("invalid MSISDN: {0}")]
    Msisdn(String),
    #[error("invalid IMSI: {0}")]
    Imsi(String),
    #[error("invalid code: {0}")]
    Code(String),
    #[error("invalid contact: {0}")]
    Contact(String),
    #[error("invalid request: {0}")]
    Body(String),
    #[error("no device is registered with this MSISDN and IMSI")]
    NotRegistered,
    #[error("no code is waiting for this MSISDN and IMSI: register first")]
    NoCode,
    #[error("wrong code ({left} tries left)")]
    WrongCode { left: u32 },
    #[error("the code has expired: register again for a new one")]
    CodeExpired,
    #[error("the code was used already")]
    CodeUsed,
    #[error("too many wrong codes: register again for a new one")]
    TooManyAttempts,
    #[error("too many requests: try again in {} s", retry_after_ms.div_ceil(1000))]
    RateLimited { retry_after_ms: u64 },
    #[error("a device cannot call its own number")]
    SelfCall,
    #[error("the rendezvous is overloaded: the mobile call goes on without it")]
    Overloaded,
}

impl RendezvousError {
    /// The HTTP status an edge answers with.
    pub fn status(&self) -> u16 {
        match self {
            RendezvousError::RateLimited { .. } => 429,
            RendezvousError::Overloaded => 503,
            RendezvousError::NotRegistered
            | RendezvousError::NoCode
            | RendezvousError::WrongCode { .. }
            | RendezvousError::CodeExpired
            | RendezvousError::CodeUsed
            | RendezvousError::TooManyAttempts => 403,
            _ => 400,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub registry: RegistryConfig,
    pub pairing: PairingConfig,
    /// Lookups (call and ring submissions, registrations) per caller and
    /// per source address: at once, then per minute.
    pub lookups_burst: u32,
    pub lookups_per_minute: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            registry: RegistryConfig::default(),
            pairing: PairingConfig::default(),
            lookups_burst: 10,
            lookups_per_minute: 20,
        }
    }
}

/// The whole service's state: mappings, codes, the pairing table, limits.
pub struct Rendezvous {
    hasher: ImsiHasher,
    registry: Registry,
    pairing: Pairing,
    lookups: RateLimit<String>,
    rng: StdRng,
}

impl Rendezvous {
    /// `secret` keys the IMSI hashes (keep it, or stored mappings are lost).
    pub fn new(secret: &[u8], cfg: Config, mut rng: StdRng) -> Rendezvous {
        let pairing_rng = rand::SeedableRng::from_rng(&mut rng).expect("StdRng seeds StdRng");
        Rendezvous {
            hasher: ImsiHasher::new(secret),
            registry: Registry::new(cfg.registry),
            pairing: Pairing::new(cfg.pairing, pairing_rng),
            lookups: RateLimit::new(cfg.lookups_burst, cfg.lookups_per_minute),
            rng,
        }
    }

    pub fn hasher(&self) -> &ImsiHasher {
        &self.hasher
    }

    pub fn window_ms(&self) -> u64 {
        self.pairing.config().window_ms
    }

    /// Registered devices.
    pub fn devices(&self) -> usize {
        self.registry.len()
    }

    /// Submissions waiting for their other half.
    pub fn pending(&self) -> usize {
        self.pairing.pending()
    }

    fn limit(&mut self, keys: &[String], now: u64) -> Result<(), RendezvousError> {
        for k in keys {
            self.lookups
                .take(k, now)
                .map_err(|ms| RendezvousError::RateLimited { retry_after_ms: ms })?;
        }
        Ok(())
    }

    /// A registration: a code to send by SMS, or "already registered".
    pub fn register(&mut self, req: &DeviceRequest, source: &str, now: u64) -> Result<Requested, RendezvousError> {
        self.limit(&[format!("s:{source}")], now)?;
        let imsi = self.hasher.hash(&req.imsi);
        self.registry.request_code(&req.msisdn, imsi, now, &mut self.rng)
    }

    /// The code returned: the mapping to store (then [`Rendezvous::apply`]).
    pub fn verify(&mut self, req: &VerifyRequest, now: u64) -> Result<Change, RendezvousError> {
        let imsi = self.hasher.hash(&req.imsi);
        self.registry.verify(&req.msisdn, &imsi, &req.code, now)
    }

    /// A device removing its own mapping.
    pub fn remove(&self, req: &DeviceRequest) -> Result<Change, RendezvousError> {
        self.registry.remove(&req.msisdn, &self.hasher.hash(&req.imsi))
    }

    /// A stored (or loaded) change becomes visible.
    pub fn apply(&mut self, change: &Change) {
        self.registry.apply(change);
    }

    /// A caller dials `req.callee`. Unknown callee or known callee whose
    /// device does not answer: the same [`Outcome::NoMatch`] after the
    /// same window.
    pub fn submit_call(&mut self, req: &CallRequest, source: &str, now: u64) -> Result<Ticket, RendezvousError> {
        self.limit(&[format!("s:{source}"), format!("m:{}", req.msisdn)], now)?;
        if !self.registry.is_mapped(&req.msisdn, &self.hasher.hash(&req.imsi)) {
            return Err(RendezvousError::NotRegistered);
        }
        if req.msisdn == req.callee {
            return Err(RendezvousError::SelfCall);
        }
        self.pairing
            .submit_call(&req.msisdn, &req.callee, &req.contact, now)
            .ok_or(RendezvousError::Overloaded)
    }

    /// A callee's device, before ringing, submits its SIM.
    pub fn submit_ring(&mut self, req: &RingRequest, source: &str, now: u64) -> Result<Ticket, RendezvousError> {
        self.limit(&[format!("s:{source}")], now)?;
        let own = match self.registry.msisdn_of(&self.hasher.hash(&req.imsi)) {
            Some(m) if req.msisdn.as_ref().is_none_or(|c| c == m) => m.clone(),
            _ => return Err(RendezvousError::NotRegistered),
        };
        self.pairing.submit_ring(&own, &req.contact, now).ok_or(RendezvousError::Overloaded)
    }

    pub fn poll_event(&mut self) -> Option<Outcome> {
        self.pairing.poll_event()
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        self.pairing.poll_timeout()
    }

    pub fn handle_timeout(&mut self, now: u64) {
        self.pairing.handle_timeout(now);
        self.registry.handle_timeout(now);
    }
}

#[cfg(test)]
mod tests;
