//! Compact JWS (RFC 7515) with ES256 only: what PASSporT is built on, and
//! what the portal's sign-in assertions will use with the same key.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::Signature;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};

use crate::key::{PublicKey, SigningKey};
use crate::{IdentityError, Result};

/// Longest token accepted; a PASSporT is under 600 bytes. Bounds the work
/// an attacker can ask of a verifier.
pub const MAX_TOKEN: usize = 4096;

/// The only algorithm: ECDSA P-256 with SHA-256.
pub const ALG: &str = "ES256";

/// A JWS protected header. Fields are declared in alphabetical order so
/// the serialized JSON is canonical (sorted keys, no whitespace), as RFC
/// 8225 §9 asks of PASSporT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JwsHeader {
    pub alg: String,
    /// The signing key's RFC 7638 thumbprint ([`PublicKey::kid`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// PASSporT extension; peerdial issues base PASSporTs, without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ppt: Option<String>,
    pub typ: String,
    /// Where the public key can be fetched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x5u: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
    ppt: Option<String>,
    typ: Option<String>,
    x5u: Option<String>,
    crit: Option<IgnoredAny>,
}

/// A decoded compact JWS whose signature has not been checked yet.
#[derive(Debug, Clone)]
pub struct Jws {
    header: JwsHeader,
    payload: Vec<u8>,
    signing_input: String,
    signature: Signature,
}

impl SigningKey {
    /// Signs `claims` as a compact JWS with header `{alg: ES256, kid, typ,
    /// x5u?}`. The claims are serialized as given; a struct with fields in
    /// alphabetical order (or a `serde_json::Value` without serde_json's
    /// `preserve_order`) gives canonical JSON.
    pub fn sign_jws<T: Serialize + ?Sized>(&self, typ: &str, x5u: Option<&str>, claims: &T) -> Result<String> {
        let header = JwsHeader {
            alg: ALG.into(),
            kid: Some(self.public_key().kid().into()),
            ppt: None,
            typ: typ.into(),
            x5u: x5u.map(Into::into),
        };
        self.sign_with_header(&header, claims)
    }

    /// Signs `claims` under an explicit header (its `alg` must be ES256).
    pub fn sign_with_header<T: Serialize + ?Sized>(&self, header: &JwsHeader, claims: &T) -> Result<String> {
        if header.alg != ALG {
            return Err(IdentityError::Unsupported(format!("alg {:?}", header.alg)));
        }
        let h = serde_json::to_vec(header)?;
        let p = serde_json::to_vec(claims)?;
        let mut out = String::with_capacity((h.len() + p.len() + 64) * 4 / 3 + 8);
        URL_SAFE_NO_PAD.encode_string(&h, &mut out);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&p, &mut out);
        let sig = self.sign_bytes(out.as_bytes());
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(sig, &mut out);
        Ok(out)
    }
}

impl PublicKey {
    /// Decodes `token`, checks its `typ` and its signature with this key,
    /// and returns the header and claims.
    pub fn verify_jws<T: DeserializeOwned>(&self, token: &str, typ: &str) -> Result<(JwsHeader, T)> {
        let jws = Jws::decode(token)?;
        if jws.header.typ != typ {
            return Err(IdentityError::Token(format!("typ is {:?}, expected {typ:?}", jws.header.typ)));
        }
        jws.verify(self)?;
        let claims = jws.claims()?;
        Ok((jws.header, claims))
    }
}

impl Jws {
    /// Splits and decodes a compact JWS: three base64url parts (no padding,
    /// canonical), a JSON header with `alg` ES256 and a `typ`, no `crit`,
    /// and a 64-byte r‖s signature. Checks no signature.
    pub fn decode(token: &str) -> Result<Jws> {
        let bad = |m: &str| IdentityError::Token(m.into());
        if token.len() > MAX_TOKEN {
            return Err(IdentityError::Token(format!("longer than {MAX_TOKEN} bytes")));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected three dot-separated parts"));
        };
        if h.is_empty() || p.is_empty() {
            return Err(IdentityError::Unsupported("compact-form PASSporT (empty header or payload)".into()));
        }
        let decode = |part: &str, name: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| IdentityError::Token(format!("{name} is not base64url")))
        };
        let header_bytes = decode(h, "header")?;
        let payload = decode(p, "payload")?;
        let sig_bytes = decode(s, "signature")?;
        let raw: RawHeader = serde_json::from_slice(&header_bytes).map_err(|e| IdentityError::Token(format!("header: {e}")))?;
        if raw.crit.is_some() {
            return Err(IdentityError::Unsupported("crit header parameter".into()));
        }
        let alg = raw.alg.ok_or_else(|| bad("header has no alg"))?;
        if alg != ALG {
            return Err(IdentityError::Unsupported(format!("alg {alg:?} (only ES256)")));
        }
        let typ = raw.typ.ok_or_else(|| bad("header has no typ"))?;
        let signature = Signature::from_slice(&sig_bytes).map_err(|_| bad("signature is not 64 bytes of r‖s"))?;
        Ok(Jws {
            header: JwsHeader {
                alg,
                kid: raw.kid,
                ppt: raw.ppt,
                typ,
                x5u: raw.x5u,
            },
            payload,
            signing_input: token[..h.len() + 1 + p.len()].to_owned(),
            signature,
        })
    }

    pub fn header(&self) -> &JwsHeader {
        &self.header
    }

    /// The payload bytes (JSON), not yet trusted.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Parses the payload as `T`. Call [`Jws::verify`] first to trust it.
    pub fn claims<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.payload).map_err(|e| IdentityError::Claims(e.to_string()))
    }

    /// Checks the signature over `header.payload` with `key`.
    pub fn verify(&self, key: &PublicKey) -> Result<()> {
        if key.verify_bytes(self.signing_input.as_bytes(), &self.signature) {
            Ok(())
        } else {
            Err(IdentityError::Signature)
        }
    }

    /// The signature in low-S form: the same for a signature and its
    /// malleated twin (r, n−s), which also verifies. Replay detection keys
    /// on this.
    pub fn signature_id(&self) -> [u8; 64] {
        let sig = self.signature.normalize_s().unwrap_or(self.signature);
        sig.to_bytes().into()
    }
}
