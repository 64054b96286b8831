//! HTTP digest authentication for SIP (RFC 3261 22, RFC 7616, RFC 8760):
//! SHA-256 and MD5, qop=auth, stateless nonces that expire.
//!
//! Only HA1 = H(username:realm:password) is ever stored, one per algorithm,
//! so the plain password never has to be kept.

use md5::Md5;
use sha2::{Digest as _, Sha256};

use crate::message::split_list;
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    pub fn hash(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 => lower_hex(&Md5::digest(data)),
            Algorithm::Sha256 => lower_hex(&Sha256::digest(data)),
        }
    }

    pub fn from_name(s: &str) -> Option<Algorithm> {
        match s.to_ascii_uppercase().as_str() {
            "MD5" => Some(Algorithm::Md5),
            "SHA-256" => Some(Algorithm::Sha256),
            _ => None,
        }
    }
}

/// HA1 for both algorithms, derived once from the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ha1 {
    pub md5: [u8; 16],
    pub sha256: [u8; 32],
}

impl Ha1 {
    pub fn new(username: &str, realm: &str, password: &str) -> Ha1 {
        let input = format!("{username}:{realm}:{password}");
        Ha1 {
            md5: Md5::digest(input.as_bytes()).into(),
            sha256: Sha256::digest(input.as_bytes()).into(),
        }
    }

    fn hex(&self, alg: Algorithm) -> String {
        match alg {
            Algorithm::Md5 => lower_hex(&self.md5),
            Algorithm::Sha256 => lower_hex(&self.sha256),
        }
    }
}

/// The parameters of an `Authorization: Digest …` header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub cnonce: Option<String>,
    pub nc: Option<String>,
    pub qop: Option<String>,
}

impl Credentials {
    pub fn parse(header: &str) -> Option<Credentials> {
        let rest = header.trim();
        let (scheme, rest) = rest.split_once([' ', '\t'])?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let mut c = Credentials::default();
        for item in split_list(rest) {
            let (k, v) = item.split_once('=')?;
            let v = v.trim();
            let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v).to_string();
            match k.trim().to_ascii_lowercase().as_str() {
                "username" => c.username = v,
                "realm" => c.realm = v,
                "nonce" => c.nonce = v,
                "uri" => c.uri = v,
                "response" => c.response = v,
                "algorithm" => c.algorithm = Some(v),
                "cnonce" => c.cnonce = Some(v),
                "nc" => c.nc = Some(v),
                "qop" => c.qop = Some(v),
                _ => {}
            }
        }
        if c.username.is_empty() || c.nonce.is_empty() || c.response.is_empty() || c.uri.is_empty() {
            return None;
        }
        Some(c)
    }

    pub fn algorithm(&self) -> Option<Algorithm> {
        match &self.algorithm {
            None => Some(Algorithm::Md5),
            Some(a) => Algorithm::from_name(a),
        }
    }

    /// Whether `response` is right for this HA1 and request method.
    pub fn verify(&self, ha1: &Ha1, method: &str) -> bool {
        let Some(alg) = self.algorithm() else { return false };
        let ha2 = alg.hash(format!("{}:{}", method, self.uri).as_bytes());
        let ha1 = ha1.hex(alg);
        let expected = match (&self.qop, &self.nc, &self.cnonce) {
            (Some(qop), Some(nc), Some(cnonce)) if qop.eq_ignore_ascii_case("auth") => {
                alg.hash(format!("{ha1}:{}:{nc}:{cnonce}:{qop}:{ha2}", self.nonce).as_bytes())
            }
            (None, _, _) => alg.hash(format!("{ha1}:{}:{ha2}", self.nonce).as_bytes()),
            _ => return false,
        };
        expected.as_bytes().ct_eq(self.response.to_ascii_lowercase().as_bytes()).into()
    }

    /// Computes a response the way a client does (used by tests and the phone).
    pub fn respond(username: &str, realm: &str, password: &str, alg: Algorithm, method: &str, uri: &str, nonce: &str) -> Credentials {
        let ha1 = alg.hash(format!("{username}:{realm}:{password}").as_bytes());
        let ha2 = alg.hash(format!("{method}:{uri}").as_bytes());
        let (nc, cnonce) = ("00000001".to_string(), "0a4f113b".to_string());
        let response = alg.hash(format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}").as_bytes());
        Credentials {
            username: username.into(),
            realm: realm.into(),
            nonce: nonce.into(),
            uri: uri.into(),
            response,
            algorithm: Some(alg.name().into()),
            cnonce: Some(cnonce),
            nc: Some(nc),
            qop: Some("auth".into()),
        }
    }

    pub fn to_header(&self) -> String {
        let mut s = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{}\"",
            self.username, self.realm, self.nonce, self.uri, self.response
        );
        if let Some(a) = &self.algorithm {
            s.push_str(&format!(", algorithm={a}"));
        }
        if let (Some(q), Some(nc), Some(c)) = (&self.qop, &self.nc, &self.cnonce) {
            s.push_str(&format!(", qop={q}, nc={nc}, cnonce=\"{c}\""));
        }
        s
    }
}

/// Issues and checks stateless nonces: `<time ms hex>.<mac>`, where the mac
/// is a keyed hash of the time, so any region process sharing the key can
/// check them and no per-nonce state is kept.
#[derive(Clone)]
pub struct NonceKey {
    key: [u8; 32],
    lifetime_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    Valid,
    Stale,
    Invalid,
}

impl NonceKey {
    pub fn new(key: [u8; 32], lifetime_ms: u64) -> NonceKey {
        NonceKey { key, lifetime_ms }
    }

    fn mac(&self, ts: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(ts.as_bytes());
        lower_hex(&h.finalize()[..16])
    }

    pub fn issue(&self, now_ms: u64) -> String {
        let ts = format!("{now_ms:x}");
        let mac = self.mac(&ts);
        format!("{ts}.{mac}")
    }

    pub fn check(&self, nonce: &str, now_ms: u64) -> NonceCheck {
        let Some((ts, mac)) = nonce.split_once('.') else {
            return NonceCheck::Invalid;
        };
        if !bool::from(self.mac(ts).as_bytes().ct_eq(mac.as_bytes())) {
            return NonceCheck::Invalid;
        }
        let Ok(t) = u64::from_str_radix(ts, 16) else {
            return NonceCheck::Invalid;
        };
        if t > now_ms + 1000 {
            return NonceCheck::Invalid;
        }
        if now_ms - t.min(now_ms) > self.lifetime_ms {
            NonceCheck::Stale
        } else {
            NonceCheck::Valid
        }
    }
}

/// The `WWW-Authenticate` values for a challenge, one per algorithm in
/// order of preference (RFC 8760 section 2.4: a client answers the first
/// one it supports).
pub fn challenges(realm: &str, nonce: &str, stale: bool, algorithms: &[Algorithm]) -> Vec<String> {
    algorithms
        .iter()
        .map(|a| {
            format!(
                "Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{}",
                a.name(),
                if stale { ", stale=true" } else { "" }
            )
        })
        .collect()
}

/// Extracts the nonce from a challenge header (used by clients and tests).
pub fn challenge_nonce(header: &str) -> Option<String> {
    let (_, rest) = header.trim().split_once(' ')?;
    split_list(rest).into_iter().find_map(|item| {
        let (k, v) = item.split_once('=')?;
        (k.trim().eq_ignore_ascii_case("nonce")).then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Lower-case hex by table (a digest is hexed several times per
/// registration; `hex::encode`'s per-char iterator showed in profiles).
pub fn lower_hex(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    hex::encode_to_slice(bytes, &mut out).expect("twice the input length");
    String::from_utf8(out).expect("hex is ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_md5_example() {
        // The worked example of RFC 2617 section 3.5 (qop=auth).
        let c = Credentials {
            username: "Mufasa".into(),
            realm: "testrealm@host.com".into(),
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
            uri: "/dir/index.html".into(),
            response: "6629fae49393a05397450978507c4ef1".into(),
            algorithm: None,
            cnonce: Some("0a4f113b".into()),
            nc: Some("00000001".into()),
            qop: Some("auth".into()),
        };
        let ha1 = Ha1::new("Mufasa", "testrealm@host.com", "Circle Of Life");
        assert!(c.verify(&ha1, "GET"));
        assert!(!c.verify(&Ha1::new("Mufasa", "testrealm@host.com", "wrong"), "GET"));
        assert!(!c.verify(&ha1, "POST"));
    }

    #[test]
    fn sha256_roundtrip_through_header() {
        let c = Credentials::respond("u", "r", "pw", Algorithm::Sha256, "REGISTER", "sip:r", "n1");
        let parsed = Credentials::parse(&c.to_header()).unwrap();
        assert_eq!(parsed, c);
        assert!(parsed.verify(&Ha1::new("u", "r", "pw"), "REGISTER"));
        assert!(!parsed.verify(&Ha1::new("u", "r", "px"), "REGISTER"));
    }

    #[test]
    fn nonces_expire_and_resist_forgery() {
        let k = NonceKey::new([7; 32], 60_000);
        let n = k.issue(1_000_000);
        assert_eq!(k.check(&n, 1_000_500), NonceCheck::Valid);
        assert_eq!(k.check(&n, 1_070_000), NonceCheck::Stale);
        assert_eq!(k.check(&n.replace('.', "0."), 1_000_500), NonceCheck::Invalid);
        assert_eq!(NonceKey::new([8; 32], 60_000).check(&n, 1_000_500), NonceCheck::Invalid);
        assert_eq!(k.check("garbage", 1), NonceCheck::Invalid);
        assert_eq!(challenge_nonce(&challenges("r", &n, false, &[Algorithm::Md5])[0]).unwrap(), n);
    }
}
