//! Web Push (RFC 8030) with the payload encrypted per RFC 8291
//! (`Content-Encoding: aes128gcm`) and VAPID (RFC 8292), on top of
//! `web-push-native` (pure RustCrypto).
//!
//! Three parties use it: the top ([`VapidKey`], [`Subscription`],
//! [`build`]), the phone ([`UaKeys`]: its subscription's private key and
//! auth secret, kept in its data folder and never printed) and a push
//! service ([`verify_vapid`]; the test service also decrypts with the
//! subscription's keys). No I/O but the key files.

use std::path::Path;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use serde::{Deserialize, Serialize};
use web_push_native::jwt_simple::prelude::*;

use crate::adapter::PushRequest;
use crate::params::PushParams;
use crate::{PushError, Result};

/// The subscription's endpoint as a URI: `https://` with a host, or
/// `http://` to a loopback host (RFC 8030 §8 wants TLS; a local stand-in
/// may go without).
pub fn endpoint_uri(s: &str) -> Result<http::Uri> {
    let bad = || PushError::Params("pn-prid for webpush is the subscription's https:// endpoint".into());
    let uri: http::Uri = s.parse().map_err(|_| bad())?;
    match (uri.scheme_str(), uri.host()) {
        (Some("https"), Some(h)) if !h.is_empty() => Ok(uri),
        (Some("http"), Some(h)) if peerdial_net::https_client::is_loopback_host(h) => Ok(uri),
        (Some("http"), Some(h)) if !h.is_empty() => Err(PushError::Params(
            "pn-prid for webpush: plain http:// is allowed only for a loopback push service; use https://".into(),
        )),
        _ => Err(bad()),
    }
}

/// Where a push goes and the keys it is encrypted to.
#[derive(Clone)]
pub struct Subscription {
    pub endpoint: String,
    pub p256dh: p256::PublicKey,
    pub auth: [u8; 16],
}

impl Subscription {
    pub fn from_params(p: &PushParams) -> Result<Subscription> {
        endpoint_uri(&p.prid)?;
        let (p256dh, auth) = Subscription::keys_from_param(p.param.as_deref().unwrap_or(""))?;
        Ok(Subscription {
            endpoint: p.prid.clone(),
            p256dh,
            auth,
        })
    }

    /// `<p256dh>.<auth>` (base64url, no padding).
    pub fn keys_from_param(param: &str) -> Result<(p256::PublicKey, [u8; 16])> {
        let bad = |m: &str| PushError::Params(format!("pn-param for webpush is <p256dh>.<auth> in base64url: {m}"));
        let (k, a) = param.split_once('.').ok_or_else(|| bad("no '.'"))?;
        let k = URL_SAFE_NO_PAD.decode(k).map_err(|_| bad("p256dh is not base64url"))?;
        let a = URL_SAFE_NO_PAD.decode(a).map_err(|_| bad("auth is not base64url"))?;
        if k.len() != 65 || k[0] != 4 {
            return Err(bad("p256dh is not an uncompressed P-256 point"));
        }
        let key = p256::PublicKey::from_sec1_bytes(&k).map_err(|_| bad("p256dh is not a P-256 point"))?;
        let auth: [u8; 16] = a.try_into().map_err(|_| bad("auth is not 16 bytes"))?;
        Ok((key, auth))
    }
}

/// The application server's VAPID key (RFC 8292), a P-256 key kept as
/// PKCS#8 PEM in the top's data folder. `Debug` shows the public half only.
pub struct VapidKey {
    pair: ES256KeyPair,
    /// `mailto:` or `https:` contact in the JWT's `sub`.
    pub contact: String,
}

impl std::fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKey")
            .field("public", &self.public_b64())
            .finish_non_exhaustive()
    }
}

fn key_err(path: &Path, why: impl std::fmt::Display) -> PushError {
    PushError::Key {
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

/// Writes `bytes` readable by the owner only (temp file, rename).
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(&tmp).map_err(|e| key_err(path, e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| key_err(path, e))?;
    std::fs::rename(&tmp, path).map_err(|e| key_err(path, e))
}

impl VapidKey {
    pub fn generate(contact: &str) -> VapidKey {
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        VapidKey::from_secret(&secret, contact)
    }

    fn from_secret(secret: &p256::SecretKey, contact: &str) -> VapidKey {
        let pair = ES256KeyPair::from_bytes(&secret.to_bytes()).expect("a P-256 scalar is a key");
        VapidKey {
            pair,
            contact: contact.to_string(),
        }
    }

    /// Loads the key at `path`, or makes and saves one.
    pub fn load_or_generate(path: &Path, contact: &str) -> Result<VapidKey> {
        match std::fs::read_to_string(path) {
            Ok(pem) => {
                let secret = p256::SecretKey::from_pkcs8_pem(&pem).map_err(|_| key_err(path, "not a P-256 PKCS#8 PEM key"))?;
                Ok(VapidKey::from_secret(&secret, contact))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
                let pem = secret.to_pkcs8_pem(LineEnding::LF).map_err(|e| key_err(path, e))?;
                write_private(path, pem.as_bytes())?;
                Ok(VapidKey::from_secret(&secret, contact))
            }
            Err(e) => Err(key_err(path, e)),
        }
    }

    /// The public key as push services see it (`k=` in the header).
    pub fn public_b64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.pair.public_key().public_key().to_bytes_uncompressed())
    }
}

/// An RFC 8030 request to `sub`: `payload` encrypted to its keys, VAPID
/// signed for `ttl`.
pub fn build(sub: &Subscription, vapid: &VapidKey, payload: &[u8], ttl: Duration) -> Result<PushRequest> {
    let uri = endpoint_uri(&sub.endpoint)?;
    let auth = web_push_native::Auth::clone_from_slice(&sub.auth);
    let req = web_push_native::WebPushBuilder::new(uri, sub.p256dh, auth)
        .with_valid_duration(ttl)
        .with_vapid(&vapid.pair, &vapid.contact)
        .build(payload.to_vec())
        .map_err(|e| PushError::Encrypt(e.to_string()))?;
    let headers = req
        .headers()
        .iter()
        .filter(|(n, _)| *n != http::header::CONTENT_LENGTH)
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    Ok(PushRequest {
        method: "POST",
        url: sub.endpoint.clone(),
        headers,
        body: req.into_body(),
    })
}

/// Checks an `Authorization: vapid t=<JWT>, k=<key>` header (RFC 8292 §3)
/// for a push to `endpoint`: the JWT is ES256 under `k`, its `aud` is the
/// endpoint's origin and it has not expired (and expires within 24 h).
/// Returns the application server's key (`k`).
pub fn verify_vapid(authorization: &str, endpoint: &str, now_secs: u64) -> Result<String> {
    let bad = |m: &str| PushError::Vapid(m.to_string());
    let rest = authorization
        .trim()
        .strip_prefix("vapid ")
        .ok_or_else(|| bad("not a vapid authorization"))?;
    let (mut t, mut k) = (None, None);
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.trim()),
            Some(("k", v)) => k = Some(v.trim()),
            _ => return Err(bad("expected t=… and k=…")),
        }
    }
    let (t, k) = t.zip(k).ok_or_else(|| bad("expected t=… and k=…"))?;
    let key_bytes = URL_SAFE_NO_PAD.decode(k).map_err(|_| bad("k is not base64url"))?;
    let key = ES256PublicKey::from_bytes(&key_bytes).map_err(|_| bad("k is not a P-256 key"))?;
    let uri = endpoint_uri(endpoint).map_err(|_| bad("bad endpoint"))?;
    let origin = match uri.port_u16() {
        Some(p) => format!("{}://{}:{p}", uri.scheme_str().unwrap_or("http"), uri.host().unwrap_or("")),
        None => format!("{}://{}", uri.scheme_str().unwrap_or("http"), uri.host().unwrap_or("")),
    };
    let no_port = format!("{}://{}", uri.scheme_str().unwrap_or("http"), uri.host().unwrap_or(""));
    let opts = VerificationOptions {
        allowed_audiences: Some(HashSet::from_iter([origin, no_port])),
        ..Default::default()
    };
    let claims = key
        .verify_token::<NoCustomClaims>(t, Some(opts))
        .map_err(|e| PushError::Vapid(format!("the JWT did not verify: {e}")))?;
    let exp = claims.expires_at.ok_or_else(|| bad("the JWT has no exp"))?.as_secs();
    if exp > now_secs + 24 * 3600 {
        return Err(bad("exp is more than 24 hours ahead"));
    }
    Ok(k.to_string())
}

/// A subscription's user-agent side: the ECDH key pair and auth secret
/// (RFC 8291 §3). Kept in the phone's data folder (owner-only file);
/// `Debug` prints nothing secret.
#[derive(Clone)]
pub struct UaKeys {
    secret: p256::SecretKey,
    auth: [u8; 16],
}

#[derive(Serialize, Deserialize)]
struct UaKeysFile {
    p256dh_private: String,
    auth: String,
}

impl std::fmt::Debug for UaKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UaKeys { .. }")
    }
}

impl UaKeys {
    pub fn generate() -> UaKeys {
        let mut auth = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut auth);
        UaKeys {
            secret: p256::SecretKey::random(&mut rand::rngs::OsRng),
            auth,
        }
    }

    pub fn load(path: &Path) -> Result<UaKeys> {
        let text = std::fs::read_to_string(path).map_err(|e| key_err(path, e))?;
        let f: UaKeysFile = serde_json::from_str(&text).map_err(|_| key_err(path, "not a push key file"))?;
        let s = URL_SAFE_NO_PAD.decode(&f.p256dh_private).map_err(|_| key_err(path, "bad key"))?;
        let secret = p256::SecretKey::from_slice(&s).map_err(|_| key_err(path, "bad key"))?;
        let a = URL_SAFE_NO_PAD.decode(&f.auth).map_err(|_| key_err(path, "bad auth"))?;
        let auth = a.try_into().map_err(|_| key_err(path, "bad auth"))?;
        Ok(UaKeys { secret, auth })
    }

    /// Loads the keys at `path`, or makes and saves new ones.
    pub fn load_or_generate(path: &Path) -> Result<UaKeys> {
        if path.exists() {
            return UaKeys::load(path);
        }
        let k = UaKeys::generate();
        let f = UaKeysFile {
            p256dh_private: URL_SAFE_NO_PAD.encode(k.secret.to_bytes()),
            auth: URL_SAFE_NO_PAD.encode(k.auth),
        };
        write_private(path, serde_json::to_string(&f).expect("serialises").as_bytes())?;
        Ok(k)
    }

    /// The uncompressed public key (`p256dh`).
    pub fn p256dh(&self) -> Vec<u8> {
        self.secret.public_key().to_encoded_point(false).as_bytes().to_vec()
    }

    pub fn auth(&self) -> [u8; 16] {
        self.auth
    }

    /// `pn-param` for a Web Push registration.
    pub fn pn_param(&self) -> String {
        PushParams::webpush_param(&self.p256dh(), &self.auth)
    }

    pub fn subscription(&self, endpoint: &str) -> Subscription {
        Subscription {
            endpoint: endpoint.to_string(),
            p256dh: self.secret.public_key(),
            auth: self.auth,
        }
    }

    /// Decrypts an `aes128gcm` push body (RFC 8291); anything encrypted to
    /// other keys is [`PushError::Decrypt`].
    pub fn decrypt(&self, body: &[u8]) -> Result<Vec<u8>> {
        let auth = web_push_native::Auth::clone_from_slice(&self.auth);
        web_push_native::decrypt(body.to_vec(), &self.secret, &auth).map_err(|_| PushError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypt_sign_verify_decrypt() {
        let dir = tempfile::tempdir().unwrap();
        let ua = UaKeys::load_or_generate(&dir.path().join("push.json")).unwrap();
        let again = UaKeys::load_or_generate(&dir.path().join("push.json")).unwrap();
        assert_eq!(ua.p256dh(), again.p256dh());
        let vapid = VapidKey::load_or_generate(&dir.path().join("vapid.pem"), "mailto:ops@example.net").unwrap();
        let vapid2 = VapidKey::load_or_generate(&dir.path().join("vapid.pem"), "mailto:ops@example.net").unwrap();
        assert_eq!(vapid.public_b64(), vapid2.public_b64());
        let endpoint = "http://127.0.0.1:8999/up/abc";
        let sub = ua.subscription(endpoint);
        let req = build(&sub, &vapid, b"hello", Duration::from_secs(60)).unwrap();
        let header = |n: &str| req.headers.iter().find(|(h, _)| h.eq_ignore_ascii_case(n)).map(|(_, v)| v.clone());
        assert_eq!(header("content-encoding").as_deref(), Some("aes128gcm"));
        assert_eq!(header("ttl").as_deref(), Some("60"));
        let k = verify_vapid(&header("authorization").unwrap(), endpoint, unix()).unwrap();
        assert_eq!(k, vapid.public_b64());
        assert!(verify_vapid(&header("authorization").unwrap(), "http://other:1/x", unix()).is_err());
        assert_eq!(ua.decrypt(&req.body).unwrap(), b"hello");
        // Encrypted to someone else's keys: refused.
        let other = UaKeys::generate();
        let wrong = build(&other.subscription(endpoint), &vapid, b"hello", Duration::from_secs(60)).unwrap();
        assert!(matches!(ua.decrypt(&wrong.body), Err(PushError::Decrypt)));
        assert!(!format!("{ua:?}").contains(&URL_SAFE_NO_PAD.encode(ua.auth())));
    }

    fn unix() -> u64 {
        crate::unix_ms() / 1000
    }
}
