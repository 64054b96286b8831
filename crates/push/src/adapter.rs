//! One interface over the push providers: [`PushAdapter::request`] turns a
//! device's parameters and a payload into the HTTP request its provider
//! wants. The edge (the top) sends it and feeds the answer to
//! [`crate::retry`].
//!
//! Web Push is what the suite runs against (a local push service, over
//! HTTPS with a test CA). APNs (HTTP/2, token-based auth) and FCM (HTTP v1
//! API with an OAuth 2 access token the operator supplies) are built to
//! their documented requests and unit-tested for shape only: they have not
//! been run against Apple or Google, nor wired to credentials on the top.
//! The sender they need is there: the top sends every [`PushRequest`] with
//! `peerdial_net::https_client` (rustls, webpki roots plus `--push-ca`,
//! HTTP/2 when the provider offers it by ALPN, as APNs requires), and
//! plain `http://` only to a loopback host.

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
}
