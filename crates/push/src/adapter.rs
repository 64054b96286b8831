//! One interface over the push providers: [`PushAdapter::request`] turns a
//! device's parameters and a payload into the HTTP request its provider
//! wants. The edge (the top) sends it and feeds the answer to
//! [`crate::retry`].
//!
//! Web Push is what the suite runs against (a local push service, over
//! HTTPS with a test CA). APNs (HTTP/2, token-based auth) and FCM (HTTP v1
//! API with an OAuth 2 access token the operator supplies) are built to
//! their documented requests and unit-tested for shape and signature
//! only: they have not been run against Apple or Google. The top takes
//! their credentials by flag (`--apns-key` and friends, `--fcm-project`
//! with `--fcm-token-file`).
//! The sender they need is there: the top sends every [`PushRequest`] with
//! `peerdial_net::https_client` (rustls, webpki roots plus `--push-ca`,
//! HTTP/2 when the provider offers it by ALPN, as APNs requires), and
//! plain `http://` only to a loopback host.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;
use web_push_native::jwt_simple::prelude::*;

use crate::params::{Provider, PushParams};
use crate::webpush::{Subscription, VapidKey};
use crate::{PushError, Result};

/// An HTTP request to a push provider. `Debug` leaves out headers and body.
#[derive(Clone)]
pub struct PushRequest {
    pub method: &'static str,
    pub url: String,
    /// Lower-case names; no Host or Content-Length (the sender adds them).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for PushRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushRequest")
            .field("method", &self.method)
            .field("bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

pub trait PushAdapter: Send + Sync {
    fn provider(&self) -> Provider;
    /// The request that delivers `payload` to the device `params` name.
    fn request(&self, params: &PushParams, payload: &[u8]) -> Result<PushRequest>;
}

/// Web Push: RFC 8030 + RFC 8291 + RFC 8292.
pub struct WebPush {
    pub vapid: VapidKey,
    /// How long the push service may hold the message (`TTL`).
    pub ttl: Duration,
}

impl PushAdapter for WebPush {
    fn provider(&self) -> Provider {
        Provider::Webpush
    }

    fn request(&self, params: &PushParams, payload: &[u8]) -> Result<PushRequest> {
        let sub = Subscription::from_params(params)?;
        crate::webpush::build(&sub, &self.vapid, payload, self.ttl)
    }
}

/// Apple Push Notification service, VoIP pushes with a provider token
/// (an ES256 JWT under the team's `.p8` key).
pub struct Apns {
    pub team_id: String,
    pub key_id: String,
    /// The `.p8` key's raw P-256 scalar (32 bytes).
    pub key: Vec<u8>,
    /// `https://api.push.apple.com` (or the sandbox).
    pub base: String,
}

impl PushAdapter for Apns {
    fn provider(&self) -> Provider {
        Provider::Apns
    }

    fn request(&self, params: &PushParams, payload: &[u8]) -> Result<PushRequest> {
        params.check()?;
        let topic = params
            .param
            .as_deref()
            .and_then(|p| p.split_once('.'))
            .map(|(_, t)| t)
            .ok_or_else(|| PushError::Params("pn-param for apns is <team id>.<topic>".into()))?;
        let claims = Claims::create(web_push_native::jwt_simple::prelude::Duration::from_mins(30)).with_issuer(&self.team_id);
        let jwt = ES256KeyPair::from_bytes(&self.key)
            .map_err(|e| PushError::Encrypt(e.to_string()))?
            .with_key_id(&self.key_id)
            .sign(claims)
            .map_err(|e| PushError::Encrypt(e.to_string()))?;
        let body = json!({"aps": {}, "peerdial": STANDARD.encode(payload)}).to_string().into_bytes();
        Ok(PushRequest {
            method: "POST",
            url: format!("{}/3/device/{}", self.base.trim_end_matches('/'), params.prid),
            headers: vec![
                ("authorization".into(), format!("bearer {jwt}")),
                ("apns-topic".into(), topic.to_string()),
                ("apns-push-type".into(), "voip".into()),
                ("apns-priority".into(), "10".into()),
                ("apns-expiration".into(), "0".into()),
                ("content-type".into(), "application/json".into()),
            ],
            body,
        })
    }
}

impl Apns {
    /// From the team's `.p8` file as Apple hands it out (a PKCS#8 PEM
    /// P-256 key). A file that is not one is refused here, at start, not
    /// at the first call.
    pub fn from_p8(team_id: &str, key_id: &str, p8: &Path, base: &str) -> Result<Apns> {
        let key_err = |why: String| PushError::Key {
            path: p8.display().to_string(),
            why,
        };
        for (what, id) in [("team id", team_id), ("key id", key_id)] {
            if id.len() != 10 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(PushError::Params(format!("an APNs {what} is 10 letters or digits")));
            }
        }
        let pem = std::fs::read_to_string(p8).map_err(|e| key_err(e.to_string()))?;
        let key = ES256KeyPair::from_pem(&pem)
            .map_err(|_| key_err("not a PKCS#8 P-256 key (an APNs .p8 file)".into()))?
            .to_bytes();
        Ok(Apns {
            team_id: team_id.into(),
            key_id: key_id.into(),
            key,
            base: base.into(),
        })
    }
}

/// Firebase Cloud Messaging, HTTP v1 API: a data message with high priority.
pub struct Fcm {
    /// Project id when the device names none in `pn-param`.
    pub project: String,
    /// An OAuth 2 access token for the project's service account.
    pub access_token: String,
    /// `https://fcm.googleapis.com`.
    pub base: String,
}

impl PushAdapter for Fcm {
    fn provider(&self) -> Provider {
        Provider::Fcm
    }

    fn request(&self, params: &PushParams, payload: &[u8]) -> Result<PushRequest> {
        params.check()?;
        let project = params.param.as_deref().unwrap_or(&self.project);
        let body = json!({"message": {
            "token": params.prid,
            "data": {"peerdial": STANDARD.encode(payload)},
            "android": {"priority": "high", "ttl": "30s"},
        }})
        .to_string()
        .into_bytes();
        Ok(PushRequest {
            method: "POST",
            url: format!("{}/v1/projects/{project}/messages:send", self.base.trim_end_matches('/')),
            headers: vec![
                ("authorization".into(), format!("Bearer {}", self.access_token)),
                ("content-type".into(), "application/json".into()),
            ],
            body,
        })
    }
}

/// FCM with its access token read from a file at each push: OAuth 2
/// access tokens last an hour, and whatever refreshes them (`gcloud auth
/// print-access-token`, a sidecar) rewrites the file; the top is not
/// restarted for it.
pub struct FcmTokenFile {
    pub project: String,
    pub token_file: PathBuf,
    pub base: String,
}

impl PushAdapter for FcmTokenFile {
    fn provider(&self) -> Provider {
        Provider::Fcm
    }

    fn request(&self, params: &PushParams, payload: &[u8]) -> Result<PushRequest> {
        let key_err = |why: String| PushError::Key {
            path: self.token_file.display().to_string(),
            why,
        };
        let token = std::fs::read_to_string(&self.token_file).map_err(|e| key_err(e.to_string()))?;
        let token = token.trim();
        if token.is_empty() || token.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(key_err("no access token in it (one line, no spaces)".into()));
        }
        Fcm {
            project: self.project.clone(),
            access_token: token.to_string(),
            base: self.base.clone(),
        }
        .request(params, payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_adapter_builds_its_request() {
        let ua = crate::webpush::UaKeys::generate();
        let wp = WebPush {
            vapid: VapidKey::generate("mailto:x@example.net"),
            ttl: Duration::from_secs(30),
        };
        let p = PushParams {
            provider: Provider::Webpush,
            prid: "http://127.0.0.1:1/up/t".into(),
            param: Some(ua.pn_param()),
        };
        let r = wp.request(&p, b"x").unwrap();
        assert_eq!(ua.decrypt(&r.body).unwrap(), b"x");
        assert!(!format!("{r:?}").contains("vapid"));

        let apns = Apns {
            team_id: "DEF123GHIJ".into(),
            key_id: "ABC123DEFG".into(),
            key: ES256KeyPair::generate().to_bytes(),
            base: "https://api.sandbox.push.apple.com".into(),
        };
        let p = PushParams {
            provider: Provider::Apns,
            prid: "00fc13adff785122b4ad28809a3420982341241421348097878e577c991de8f0".into(),
            param: Some("DEF123GHIJ.com.example.app.voip".into()),
        };
        let r = apns.request(&p, b"x").unwrap();
        assert!(r
            .url
            .ends_with("/3/device/00fc13adff785122b4ad28809a3420982341241421348097878e577c991de8f0"));
        assert!(r.headers.iter().any(|(n, v)| n == "apns-topic" && v == "com.example.app.voip"));

        let fcm = Fcm {
            project: "default-project".into(),
            access_token: "ya29.x".into(),
            base: "https://fcm.googleapis.com".into(),
        };
        let p = PushParams {
            provider: Provider::Fcm,
            prid: "tok:123".into(),
            param: None,
        };
        let r = fcm.request(&p, b"x").unwrap();
        assert!(r.url.contains("/projects/default-project/messages:send"));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["message"]["token"], "tok:123");
    }

    #[test]
    fn apns_takes_its_key_from_a_p8_file_and_signs_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let pair = ES256KeyPair::generate();
        let p8 = dir.path().join("AuthKey.p8");
        std::fs::write(&p8, pair.to_pem().unwrap()).unwrap();
        let apns = Apns::from_p8("DEF123GHIJ", "ABC123DEFG", &p8, "https://api.push.apple.com").unwrap();
        let p = PushParams {
            provider: Provider::Apns,
            prid: "00fc13adff785122b4ad28809a3420982341241421348097878e577c991de8f0".into(),
            param: Some("DEF123GHIJ.com.example.app.voip".into()),
        };
        let r = apns.request(&p, b"x").unwrap();
        let auth = r.headers.iter().find(|(n, _)| n == "authorization").unwrap();
        let jwt = auth.1.strip_prefix("bearer ").unwrap();
        let claims = pair.public_key().verify_token::<NoCustomClaims>(jwt, None).unwrap();
        assert_eq!(claims.issuer.as_deref(), Some("DEF123GHIJ"));
        // Bad input: not a key, a missing file, a malformed id.
        std::fs::write(&p8, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap();
        let e = Apns::from_p8("DEF123GHIJ", "ABC123DEFG", &p8, "x").err().unwrap().to_string();
        assert!(e.contains("not a PKCS#8 P-256 key"), "{e}");
        assert!(Apns::from_p8("DEF123GHIJ", "ABC123DEFG", &dir.path().join("none"), "x").is_err());
        let e = Apns::from_p8("DEF", "ABC123DEFG", &p8, "x").err().unwrap().to_string();
        assert!(e.contains("team id"), "{e}");
    }

    #[test]
    fn fcm_reads_its_access_token_at_each_push() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("fcm-token");
        let fcm = FcmTokenFile {
            project: "proj".into(),
            token_file: file.clone(),
            base: "https://fcm.googleapis.com".into(),
        };
        let p = PushParams {
            provider: Provider::Fcm,
            prid: "tok:123".into(),
            param: None,
        };
        let bearer = |r: PushRequest| r.headers.into_iter().find(|(n, _)| n == "authorization").unwrap().1;
        assert!(fcm.request(&p, b"x").is_err(), "no file yet");
        std::fs::write(&file, "ya29.first\n").unwrap();
        assert_eq!(bearer(fcm.request(&p, b"x").unwrap()), "Bearer ya29.first");
        std::fs::write(&file, "ya29.second\n").unwrap();
        assert_eq!(bearer(fcm.request(&p, b"x").unwrap()), "Bearer ya29.second");
        std::fs::write(&file, "two words\n").unwrap();
        let e = fcm.request(&p, b"x").err().unwrap().to_string();
        assert!(e.contains("no access token"), "{e}");
        assert!(!e.contains("two words"), "the file's text is not echoed: {e}");
    }
}
