//! The region's key pair and the public key's published forms: a DNS TXT
//! record at the area zone's apex and a JWK served over HTTP.

use std::fmt;
use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use p256::ecdsa::signature::{RandomizedSigner, Verifier as _};
use p256::ecdsa::{Signature, VerifyingKey};
use p256::elliptic_curve::rand_core::CryptoRngCore;
use p256::elliptic_curve::zeroize::Zeroizing;
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{IdentityError, Result};

/// The version tag a key TXT record starts with (`v=pdid1; …`).
pub const TXT_VERSION: &str = "pdid1";

/// A TXT character-string holds at most 255 bytes (RFC 1035 §3.3).
const TXT_STRING_MAX: usize = 255;

/// A region's P-256 signing key. Its `Debug` shows only the key id, so the
/// key cannot reach a log by accident.
#[derive(Clone)]
pub struct SigningKey {
    inner: p256::ecdsa::SigningKey,
    public: PublicKey,
}

impl SigningKey {
    /// A fresh key from a cryptographic RNG (`rand::rngs::OsRng` in servers).
    pub fn generate(rng: &mut impl CryptoRngCore) -> SigningKey {
        SigningKey::from_inner(p256::ecdsa::SigningKey::random(rng))
    }

    fn from_inner(inner: p256::ecdsa::SigningKey) -> SigningKey {
        let public = PublicKey::from_verifying(*inner.verifying_key());
        SigningKey { inner, public }
    }

    /// Reads a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) holding a P-256 key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<SigningKey> {
        p256::ecdsa::SigningKey::from_pkcs8_pem(pem)
            .map(SigningKey::from_inner)
            .map_err(|_| IdentityError::Pem)
    }

    /// The key as PKCS#8 PEM; the string is wiped from memory when dropped.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        // Encoding a valid P-256 key cannot fail; an error here is a bug in p256.
        self.inner.to_pkcs8_pem(LineEnding::LF).expect("a P-256 key encodes as PKCS#8")
    }

    /// Writes the key to `path` as PKCS#8 PEM, readable by the owner only
    /// (0600). Written to a temporary file, synced and renamed, so a crash
    /// leaves either the old key or the new one.
    pub fn save(&self, path: &Path) -> Result<()> {
        let io = |source| IdentityError::Io {
            path: path.display().to_string(),
            source,
        };
        let tmp = path.with_extension("tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(io)?;
        #[cfg(unix)]
        {
            // A leftover temporary file keeps its old mode; tighten it.
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
        file.write_all(self.to_pkcs8_pem().as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(io)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    /// Reads a key written by [`SigningKey::save`] (or any PKCS#8 PEM P-256
    /// key). Warns if the file is readable by others.
    pub fn load(path: &Path) -> Result<SigningKey> {
        let pem = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| IdentityError::Io {
            path: path.display().to_string(),
            source,
        })?);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(path) {
                if meta.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(path = %path.display(), "identity key file is readable by group or others");
                }
            }
        }
        SigningKey::from_pkcs8_pem(&pem)
    }

    /// Loads the key at `path`, or generates and saves one if there is no file.
    pub fn load_or_generate(path: &Path, rng: &mut impl CryptoRngCore) -> Result<SigningKey> {
        if path.exists() {
            return SigningKey::load(path);
        }
        let key = SigningKey::generate(rng);
        key.save(path)?;
        tracing::info!(path = %path.display(), kid = key.public.kid(), "generated identity key");
        Ok(key)
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// ES256 over `msg`: SHA-256, r‖s. The nonce is RFC 6979's with fresh
    /// randomness mixed in, so two tokens with the same claims (a redial to
    /// the same number within the second of `iat`) still differ, and the
    /// callee's replay check does not take the second for a replay.
    pub(crate) fn sign_bytes(&self, msg: &[u8]) -> [u8; 64] {
        let sig: Signature = self.inner.sign_with_rng(&mut rand::rngs::OsRng, msg);
        sig.to_bytes().into()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.public.kid).finish_non_exhaustive()
    }
}

/// A region's public key, with its RFC 7638 thumbprint as key id.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    kid: String,
}

impl PublicKey {
    fn from_verifying(key: VerifyingKey) -> PublicKey {
        let point = key.to_encoded_point(false);
        // An uncompressed point on P-256 always has both coordinates.
        let x = URL_SAFE_NO_PAD.encode(point.x().expect("uncompressed point"));
        let y = URL_SAFE_NO_PAD.encode(point.y().expect("uncompressed point"));
        // RFC 7638: required members only, sorted, no whitespace.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        PublicKey { key, kid }
    }

    /// The key id: the RFC 7638 JWK thumbprint (SHA-256, base64url). Tokens
    /// carry it as `kid`, so a verifier can tell "signed by another key" from
    /// "tampered".
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The SubjectPublicKeyInfo in DER (91 bytes for P-256).
    pub fn to_spki_der(&self) -> Vec<u8> {
        self.key.to_public_key_der().expect("a P-256 key encodes as SPKI").into_vec()
    }

    /// Parses a DER SubjectPublicKeyInfo; anything but a P-256 EC key is refused.
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey> {
        VerifyingKey::from_public_key_der(der)
            .map(PublicKey::from_verifying)
            .map_err(|_| IdentityError::BadKey("not a P-256 SubjectPublicKeyInfo"))
    }

    /// The TXT record text: `v=pdid1; k=es256; p=<base64 SPKI DER>` (about
    /// 145 bytes, one character-string).
    pub fn to_txt(&self) -> String {
        format!("v={TXT_VERSION}; k=es256; p={}", STANDARD.encode(self.to_spki_der()))
    }

    /// [`PublicKey::to_txt`] cut into TXT character-strings of at most 255
    /// bytes; a reader concatenates them without separators.
    pub fn txt_chunks(&self) -> Vec<String> {
        let txt = self.to_txt();
        // The text is ASCII, so any byte boundary is a char boundary.
        txt.as_bytes()
            .chunks(TXT_STRING_MAX)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect()
    }

    /// Parses one TXT record given as its character-strings (concatenated,
    /// as RFC 7208 §3.3 does for SPF).
    pub fn from_txt_chunks<S: AsRef<[u8]>>(chunks: &[S]) -> Result<PublicKey> {
        let mut all = Vec::new();
        for c in chunks {
            all.extend_from_slice(c.as_ref());
        }
        let text = std::str::from_utf8(&all).map_err(|_| IdentityError::Txt("not UTF-8".into()))?;
        PublicKey::from_txt(text)
    }

    /// Parses the TXT text strictly: `v=pdid1` first, then `k=es256` and
    /// `p=<base64>` once each, separated by `;` with optional spaces; any
    /// other tag is refused (a new format gets a new version).
    pub fn from_txt(text: &str) -> Result<PublicKey> {
        let bad = |m: String| IdentityError::Txt(m);
        let mut parts = text.split(';').map(|p| p.trim_matches([' ', '\t']));
        let first = parts.next().unwrap_or("");
        match first.split_once('=') {
            Some(("v", v)) if v.trim() == TXT_VERSION => {}
            Some(("v", v)) => return Err(bad(format!("unknown version {:?} (expected {TXT_VERSION})", v.trim()))),
            _ => return Err(bad(format!("must start with v={TXT_VERSION}"))),
        }
        let (mut k, mut p) = (None, None);
        let mut parts = parts.peekable();
        while let Some(part) = parts.next() {
            if part.is_empty() {
                if parts.peek().is_none() {
                    break; // one trailing ';' is allowed
                }
                return Err(bad("empty tag".into()));
            }
            let (tag, value) = part
                .split_once('=')
                .map(|(t, v)| (t.trim_matches([' ', '\t']), v.trim_matches([' ', '\t'])))
                .filter(|(t, _)| !t.is_empty() && t.len() <= 8 && t.bytes().all(|b| b.is_ascii_lowercase()))
                .ok_or_else(|| {
                    let shown: String = part.chars().take(20).collect();
                    bad(format!("expected tag=value, got {shown:?}"))
                })?;
            let slot = match tag {
                "k" => &mut k,
                "p" => &mut p,
                "v" => return Err(bad("v= must appear once, first".into())),
                other => return Err(bad(format!("unknown tag {other:?}"))),
            };
            if slot.replace(value).is_some() {
                return Err(bad(format!("tag {tag} appears twice")));
            }
        }
        match k {
            Some("es256") => {}
            Some(other) => return Err(bad(format!("unsupported key type {other:?} (expected es256)"))),
            None => return Err(bad("missing k=".into())),
        }
        let p = p.ok_or_else(|| bad("missing p=".into()))?;
        let der = STANDARD.decode(p).map_err(|e| bad(format!("p= is not base64: {e}")))?;
        PublicKey::from_spki_der(&der)
    }

    /// Picks the peerdial key records out of the TXT records at a zone apex
    /// (other TXT records, such as SPF, are ignored). Two keys may be
    /// published while the region rotates its key. Errors if a `v=pdid1`
    /// record is malformed or if there is none.
    pub fn from_txt_records<S: AsRef<str>>(records: &[S]) -> Result<Vec<PublicKey>> {
        let prefix = format!("v={TXT_VERSION}");
        let keys = records
            .iter()
            .map(|r| r.as_ref())
            .filter(|r| r.trim_start().starts_with(&prefix))
            .map(PublicKey::from_txt)
            .collect::<Result<Vec<_>>>()?;
        if keys.is_empty() {
            return Err(IdentityError::Txt(format!("no v={TXT_VERSION} record")));
        }
        Ok(keys)
    }

    /// The key as a JWK (RFC 7517/7518) for the region's HTTP API.
    pub fn to_jwk(&self) -> String {
        let point = self.key.to_encoded_point(false);
        let x = URL_SAFE_NO_PAD.encode(point.x().expect("uncompressed point"));
        let y = URL_SAFE_NO_PAD.encode(point.y().expect("uncompressed point"));
        serde_json::json!({
            "kty": "EC", "crv": "P-256", "x": x, "y": y,
            "alg": "ES256", "use": "sig", "kid": self.kid,
        })
        .to_string()
    }

    /// Parses a JWK strictly: `kty` EC, `crv` P-256, 32-byte `x` and `y` on
    /// the curve; `alg`, `use` and `kid` must agree if present; a JWK with a
    /// private part (`d`) is refused.
    pub fn from_jwk(json: &str) -> Result<PublicKey> {
        #[derive(Deserialize)]
        struct Jwk<'a> {
            kty: Option<&'a str>,
            crv: Option<&'a str>,
            x: Option<&'a str>,
            y: Option<&'a str>,
            d: Option<serde::de::IgnoredAny>,
            alg: Option<&'a str>,
            #[serde(rename = "use")]
            use_: Option<&'a str>,
            kid: Option<&'a str>,
        }
        let bad = |m: &str| IdentityError::Jwk(m.into());
        let jwk: Jwk = serde_json::from_str(json).map_err(|e| IdentityError::Jwk(e.to_string()))?;
        if jwk.d.is_some() {
            return Err(bad("contains a private key (d); refusing it"));
        }
        if jwk.kty != Some("EC") {
            return Err(bad("kty must be \"EC\""));
        }
        if jwk.crv != Some("P-256") {
            return Err(bad("crv must be \"P-256\""));
        }
        if jwk.alg.is_some_and(|a| a != "ES256") {
            return Err(bad("alg must be \"ES256\""));
        }
        if jwk.use_.is_some_and(|u| u != "sig") {
            return Err(bad("use must be \"sig\""));
        }
        let coord = |c: Option<&str>, name: &str| -> Result<[u8; 32]> {
            let c = c.ok_or_else(|| IdentityError::Jwk(format!("missing {name}")))?;
            let bytes = URL_SAFE_NO_PAD
                .decode(c)
                .map_err(|_| IdentityError::Jwk(format!("{name} is not base64url")))?;
            bytes.try_into().map_err(|_| IdentityError::Jwk(format!("{name} must be 32 bytes")))
        };
        let (x, y) = (coord(jwk.x, "x")?, coord(jwk.y, "y")?);
        let point = p256::EncodedPoint::from_affine_coordinates(&x.into(), &y.into(), false);
        let key = VerifyingKey::from_encoded_point(&point).map_err(|_| bad("x, y is not a point on P-256"))?;
        let key = PublicKey::from_verifying(key);
        if jwk.kid.is_some_and(|k| k != key.kid) {
            return Err(bad("kid is not the key's thumbprint"));
        }
        Ok(key)
    }

    /// Checks an ES256 signature (r‖s) over `msg`.
    pub(crate) fn verify_bytes(&self, msg: &[u8], sig: &Signature) -> bool {
        self.key.verify(msg, sig).is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey").field("kid", &self.kid).finish()
    }
}
