//! The callee's side: is this INVITE really from the number in its From?

use std::fmt;

use peerdial_number::Number;

use crate::header::IdentityHeader;
use crate::jws::Jws;
use crate::key::PublicKey;
use crate::passport::Passport;
use crate::replay::ReplayCache;

/// How strict a [`Verifier`] is. Times in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifierConfig {
    /// Clock difference tolerated between the signing region and us, both
    /// ways (an `iat` this far in the future, an `exp` this far past).
    pub skew: u64,
    /// Lifetime assumed for a token without `exp` (RFC 8224 §6.2.3
    /// suggests 60 s of freshness).
    pub default_lifetime: u64,
    /// Longest lifetime honoured: a later `exp` is cut to `iat` plus this,
    /// so a token cannot outlive the replay cache's purpose.
    pub max_lifetime: u64,
    /// Tokens remembered for replay detection.
    pub replay_capacity: usize,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        VerifierConfig {
            skew: 10,
            default_lifetime: 60,
            max_lifetime: 300,
            replay_capacity: 10_000,
        }
    }
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The caller: equal to the From number.
    pub orig: Number,
    /// The callee: the To number, which the token's `dest` lists.
    pub dest: Number,
    /// Issued at (seconds since the Unix epoch).
    pub iat: u64,
    /// The key URL the token named.
    pub key_url: String,
}

/// Why a call is shown as unverified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The INVITE had no Identity header.
    NoHeader,
    /// The header or its token could not be read (or uses something we
    /// do not support); the text says what.
    Malformed(String),
    /// Signed by the key we were given, but the signature does not match
    /// the content: tampered, or forged.
    BadSignature,
    /// Signed by a key that is not the caller region's (its `kid` names
    /// another key).
    WrongKey { kid: String },
    /// The token is for another caller.
    OrigMismatch { orig: Number, from: Number },
    /// The token is for another callee.
    DestMismatch { dest: Vec<Number>, to: Number },
    /// Past its expiry (plus skew). Seconds.
    Expired { exp: u64, now: u64 },
    /// Issued further in the future than the skew allows. Seconds.
    FromFuture { iat: u64, now: u64 },
    /// This very token was already accepted.
    Replayed,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NoHeader => write!(f, "no Identity header"),
            Reason::Malformed(m) => write!(f, "malformed Identity: {m}"),
            Reason::BadSignature => write!(f, "signature does not match"),
            Reason::WrongKey { .. } => write!(f, "not signed by the caller's region"),
            Reason::OrigMismatch { orig, from } => write!(f, "token is for caller {orig}, not {from}"),
            Reason::DestMismatch { to, .. } => write!(f, "token is not for callee {to}"),
            Reason::Expired { exp, now } => write!(f, "token expired {}s ago", now.saturating_sub(*exp)),
            Reason::FromFuture { iat, now } => {
                write!(f, "token issued {}s in the future", iat.saturating_sub(*now))
            }
            Reason::Replayed => write!(f, "token was already used"),
        }
    }
}

/// The outcome for one INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Verified(Verified),
    Unverified(Reason),
}

impl Verdict {
    pub fn is_verified(&self) -> bool {
        matches!(self, Verdict::Verified(_))
    }
}

/// Checks Identity headers against From, To and the caller region's key,
/// and remembers accepted tokens to refuse replays. No I/O and no clock:
/// `now` (ms since the Unix epoch) is passed in.
#[derive(Debug, Clone)]
pub struct Verifier {
    config: VerifierConfig,
    replay: ReplayCache,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier::new(VerifierConfig::default())
    }
}

impl Verifier {
    pub fn new(config: VerifierConfig) -> Verifier {
        Verifier {
            replay: ReplayCache::new(config.replay_capacity),
            config,
        }
    }

    /// Verifies `identity` (the Identity header value, `None` if absent)
    /// for a call from `from` to `to` with the caller region's `key`.
    pub fn verify(&mut self, identity: Option<&str>, from: Number, to: Number, key: &PublicKey, now: u64) -> Verdict {
        self.verify_any(identity, from, to, std::slice::from_ref(key), now)
    }

    /// As [`Verifier::verify`], with every key the caller's region
    /// publishes (two while it rotates its key).
    pub fn verify_any(&mut self, identity: Option<&str>, from: Number, to: Number, keys: &[PublicKey], now: u64) -> Verdict {
        let (verified, id, until) = match self.check_inner(identity, from, to, keys, now) {
            Ok(ok) => ok,
            Err(reason) => return unverified(reason),
        };
        if !self.replay.insert(id, until, now) {
            return unverified(Reason::Replayed);
        }
        Verdict::Verified(verified)
    }

    /// Everything [`Verifier::verify_any`] checks except replay, without
    /// remembering the token (for a region checking its own tokens, or a
    /// benchmark looping over one token).
    pub fn check(&self, identity: Option<&str>, from: Number, to: Number, keys: &[PublicKey], now: u64) -> Verdict {
        match self.check_inner(identity, from, to, keys, now) {
            Ok((v, _, _)) => Verdict::Verified(v),
            Err(reason) => unverified(reason),
        }
    }

    /// Forgets remembered tokens that have expired by `now`.
    pub fn handle_timeout(&mut self, now: u64) {
        self.replay.handle_timeout(now);
    }

    /// When a remembered token next expires.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.replay.poll_timeout()
    }

    pub fn replay_cache(&self) -> &ReplayCache {
        &self.replay
    }

    /// The checks, in order: readable, signed by one of `keys`, for From
    /// and To, within its time. Returns the token's replay id and until
    /// when (ms) it must be remembered.
    fn check_inner(
        &self,
        identity: Option<&str>,
        from: Number,
        to: Number,
        keys: &[PublicKey],
        now: u64,
    ) -> Result<(Verified, [u8; 64], u64), Reason> {
        let malformed = |e: crate::IdentityError| Reason::Malformed(e.to_string());
        let value = identity.ok_or(Reason::NoHeader)?;
        let header = IdentityHeader::parse(value).map_err(malformed)?;
        let jws = Jws::decode(&header.token).map_err(malformed)?;
        let passport = Passport::from_jws(&jws).map_err(malformed)?;
        if let Some(ppt) = &header.ppt {
            return Err(Reason::Malformed(format!("unsupported PASSporT extension ppt={ppt}")));
        }
        if passport.x5u != header.info {
            return Err(Reason::Malformed("info and the token's x5u differ".into()));
        }

        let signed = match &passport.kid {
            Some(kid) => {
                let key = keys
                    .iter()
                    .find(|k| k.kid() == kid)
                    .ok_or_else(|| Reason::WrongKey { kid: kid.clone() })?;
                jws.verify(key).is_ok()
            }
            None if keys.is_empty() => return Err(Reason::WrongKey { kid: String::new() }),
            None => keys.iter().any(|k| jws.verify(k).is_ok()),
        };
        if !signed {
            return Err(Reason::BadSignature);
        }

        if passport.orig != from {
            return Err(Reason::OrigMismatch { orig: passport.orig, from });
        }
        if !passport.dest.contains(&to) {
            return Err(Reason::DestMismatch { dest: passport.dest, to });
        }

        let c = &self.config;
        let now_s = now / 1000;
        let iat = passport.iat;
        if iat > now_s.saturating_add(c.skew) {
            return Err(Reason::FromFuture { iat, now: now_s });
        }
        let exp = passport
            .exp
            .unwrap_or(iat.saturating_add(c.default_lifetime))
            .min(iat.saturating_add(c.max_lifetime));
        // RFC 7519: not accepted on or after exp.
        let until = exp.saturating_add(c.skew).saturating_mul(1000);
        if now >= until {
            return Err(Reason::Expired { exp, now: now_s });
        }

        let verified = Verified {
            orig: passport.orig,
            dest: to,
            iat,
            key_url: header.info,
        };
        Ok((verified, jws.signature_id(), until))
    }
}

fn unverified(reason: Reason) -> Verdict {
    tracing::debug!(%reason, "caller identity unverified");
    Verdict::Unverified(reason)
}
