//! Signed caller identity for peerdial (design §7, §9).
//!
//! A region holds one P-256 [`SigningKey`]. For each call a registered phone
//! asks for, the region signs a short-lived PASSporT (RFC 8225, ES256) naming
//! the caller (`orig`), the dialed number (`dest`), when it was issued (`iat`)
//! and when it expires (`exp`, about a minute later). The phone sends it on
//! its INVITE in an `Identity` header (RFC 8224, [`IdentityHeader`]). The
//! callee looks up the caller region's [`PublicKey`] — a TXT record at the
//! area zone's apex ([`PublicKey::to_txt`]) or a JWK at the URL the header
//! names ([`PublicKey::to_jwk`]) — and hands header, From, To and key to a
//! [`Verifier`], which answers [`Verdict::Verified`] or
//! [`Verdict::Unverified`] with a [`Reason`].
//!
//! The same key signs other short-lived assertions (the portal's sign-in
//! delegation): [`SigningKey::sign_jws`] and [`PublicKey::verify_jws`] take
//! any serde claims.
//!
//! What this crate is not: it does no network I/O, keeps no clock (every
//! time is passed in), and does not decide which key belongs to which region
//! — the caller must fetch the key for the area of the `From` number (from
//! DNS, or from a URL on that region's own host) and must not fetch a key
//! URL that points elsewhere. The only I/O is reading and writing the key
//! file ([`SigningKey::save`], [`SigningKey::load`]).

mod header;
mod http;
mod jws;
mod key;
mod passport;
mod replay;
mod verify;

pub use header::{key_url, IdentityHeader, MAX_HEADER};
pub use http::{HttpClaim, FROM_HEADER};
pub use jws::{Jws, JwsHeader, MAX_TOKEN};
pub use key::{PublicKey, SigningKey, TXT_VERSION};
pub use passport::{Passport, PASSPORT_TYP};
pub use replay::{ReplayCache, TokenId};
pub use verify::{Reason, Verdict, Verified, Verifier, VerifierConfig};

/// Everything that can go wrong in this crate. Parsing errors say what was
/// expected; none of them carries key material.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("key file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("not a P-256 PKCS#8 private key in PEM form")]
    Pem,
    #[error("not a P-256 public key: {0}")]
    BadKey(&'static str),
    #[error("key record: {0}")]
    Txt(String),
    #[error("JWK: {0}")]
    Jwk(String),
    #[error("Identity header: {0}")]
    Header(String),
    #[error("token: {0}")]
    Token(String),
    #[error("PASSporT claims: {0}")]
    Claims(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("signature does not verify")]
    Signature,
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

pub type Result<T, E = IdentityError> = std::result::Result<T, E>;
