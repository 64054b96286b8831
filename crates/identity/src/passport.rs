//! PASSporT (RFC 8225): the signed claim "this call is from `orig` to
//! `dest`, issued at `iat`, good until `exp`".
//!
//! peerdial issues base PASSporTs (no `ppt`): `orig` and `dest` telephone
//! numbers and `iat` are what RFC 8225 §5 defines; `exp` (a JWT claim, RFC
//! 7519) bounds the token's life to about a minute. The header adds `kid`
//! (RFC 7515) so a verifier can tell a foreign key from a forgery.

use peerdial_number::{Number, NUMBER_DIGITS};
use serde::{Deserialize, Serialize};

use crate::jws::Jws;
use crate::key::SigningKey;
use crate::{IdentityError, Result};

/// The JWS `typ` of a PASSporT.
pub const PASSPORT_TYP: &str = "passport";

/// Longest key URL accepted (it travels in every INVITE).
const MAX_URL: usize = 512;

// Fields in alphabetical order: serde_json then writes the canonical JSON
// RFC 8225 §9 asks for, whatever serde_json features the workspace enables.
#[derive(Serialize, Deserialize)]
struct Claims {
    dest: Dest,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
    iat: u64,
    orig: Orig,
}

#[derive(Serialize, Deserialize)]
struct Orig {
    tn: String,
}

#[derive(Serialize, Deserialize)]
struct Dest {
    tn: Vec<String>,
}

/// A decoded PASSporT (signature checked or not, depending on who made it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passport {
    pub orig: Number,
    pub dest: Vec<Number>,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Expires at, seconds since the Unix epoch (absent in foreign tokens).
    pub exp: Option<u64>,
    /// Where the signer's public key can be fetched (`x5u`).
    pub x5u: String,
    /// The signer's key id, if the token names one.
    pub kid: Option<String>,
}

impl Passport {
    /// Signs a PASSporT for a call from `orig` to `dest`, issued at `iat`
    /// (seconds) and valid for `lifetime` seconds, naming `key_url` as
    /// where its key is published. Returns the compact JWS.
    pub fn sign(key: &SigningKey, orig: Number, dest: &[Number], iat: u64, lifetime: u64, key_url: &str) -> Result<String> {
        if orig.is_none() || dest.iter().any(|d| d.is_none()) {
            return Err(IdentityError::Claims("000-00-00000000 is not a caller or callee".into()));
        }
        if dest.is_empty() {
            return Err(IdentityError::Claims("dest needs at least one number".into()));
        }
        if lifetime == 0 {
            return Err(IdentityError::Claims("lifetime must be positive".into()));
        }
        check_url(key_url)?;
        let claims = Claims {
            dest: Dest {
                tn: dest.iter().map(|d| d.digits()).collect(),
            },
            exp: Some(iat.saturating_add(lifetime)),
            iat,
            orig: Orig { tn: orig.digits() },
        };
        key.sign_jws(PASSPORT_TYP, Some(key_url), &claims)
    }

    /// Reads the PASSporT in a decoded JWS (typ `passport`, no `ppt`, an
    /// `x5u`, well-formed claims). Checks no signature and no time.
    pub fn from_jws(jws: &Jws) -> Result<Passport> {
        let h = jws.header();
        if h.typ != PASSPORT_TYP {
            return Err(IdentityError::Token(format!("typ is {:?}, expected \"passport\"", h.typ)));
        }
        if let Some(ppt) = &h.ppt {
            return Err(IdentityError::Unsupported(format!("PASSporT extension ppt={ppt:?}")));
        }
        let x5u = h.x5u.clone().ok_or_else(|| IdentityError::Token("header has no x5u".into()))?;
        check_url(&x5u)?;
        let claims: Claims = jws.claims()?;
        let orig = tn(&claims.orig.tn, "orig")?;
        if claims.dest.tn.is_empty() {
            return Err(IdentityError::Claims("dest.tn is empty".into()));
        }
        let dest = claims.dest.tn.iter().map(|t| tn(t, "dest")).collect::<Result<Vec<_>>>()?;
        if claims.exp.is_some_and(|exp| exp < claims.iat) {
            return Err(IdentityError::Claims("exp is before iat".into()));
        }
        Ok(Passport {
            orig,
            dest,
            iat: claims.iat,
            exp: claims.exp,
            x5u,
            kid: h.kid.clone(),
        })
    }

    /// Decodes a compact PASSporT without checking its signature.
    pub fn decode(token: &str) -> Result<Passport> {
        Passport::from_jws(&Jws::decode(token)?)
    }
}

/// A `tn` claim: exactly 13 digits, no separators (RFC 8224 §8.3 form).
fn tn(s: &str, claim: &str) -> Result<Number> {
    if s.len() != NUMBER_DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IdentityError::Claims(format!("{claim}.tn must be 13 digits, got {s:?}")));
    }
    match Number::parse(s) {
        Ok(n) if !n.is_none() => Ok(n),
        Ok(_) => Err(IdentityError::Claims(format!("{claim}.tn is the null number"))),
        Err(e) => Err(IdentityError::Claims(format!("{claim}.tn: {e}"))),
    }
}

/// A key URL: http(s), bounded, and free of what would break the
/// `info=<…>` parameter it is copied into.
pub(crate) fn check_url(url: &str) -> Result<()> {
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= MAX_URL
        && url.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"'));
    if ok {
        Ok(())
    } else {
        Err(IdentityError::Token(format!(
            "key URL must be an http(s) URL of at most {MAX_URL} printable characters"
        )))
    }
}
