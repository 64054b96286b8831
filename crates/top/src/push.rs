//! Push wake-up on the top (issue 15, C3): the registry of devices' RFC
//! 8599 push parameters (told by their regions, authenticated with the
//! join token like a join), the cloud's keys (`DIR/push-token-key.pem`
//! signs wake tokens, `DIR/push-vapid-key.pem` is the VAPID key push
//! services see), and [`wake`]: sign the two wake tokens, encrypt the
//! payload for the device, and deliver it with retries and back-off, each
//! dispatch in its own task so a slow push service holds up no other.
//! Pushes go over HTTPS (`peerdial_net::https_client`: webpki roots plus
//! `--push-ca`, HTTP/2 by ALPN); plain `http://` only to loopback.
//!
//! A device holding the cloud's command connection (`commands.rs`) is
//! woken down that connection instead, with the same payload.
//!
//! Not here: deciding *whether* to wake (designation does).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use peerdial_net::http_server::{error, json_body};
use peerdial_net::https_client::HttpsClient;
use peerdial_number::Number;
use peerdial_push::adapter::{Apns, FcmTokenFile, PushAdapter, PushRequest, WebPush};
use peerdial_push::retry::{Delivery, Outcome, RetryPolicy, State as DeliveryState};
use peerdial_push::webpush::VapidKey;
use peerdial_push::{token, Provider, PushParams, WakePayload};
use serde::Deserialize;
use serde_json::json;

use crate::{TopError, TopShared};
use subtle::ConstantTimeEq;

pub(crate) struct WakeRequest {
    pub caller: Number,
    pub callee: Number,
    pub caller_addr: Option<String>,
}

#[derive(Debug)]
pub(crate) enum Woken {
    /// The push was delivered to the push service; `token` is the caller's.
    Pushed {
        token: String,
    },
    /// Sent down the device's own command connection.
    Commanded {
        token: String,
    },
    NoPushRegistration,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum WakeError {
    #[error("no {0} push adapter is configured on this cloud")]
    NoAdapter(&'static str),
    #[error("the push could not be built: {0}")]
    Build(String),
    #[error("push delivery failed: {0}")]
    Delivery(String),
}

/// The top's push side.
pub struct PushState {
    registry: Mutex<HashMap<Number, PushParams>>,
    path: PathBuf,
    write: tokio::sync::Mutex<()>,
    key: peerdial_identity::SigningKey,
    webpush: WebPush,
    apns: Option<Apns>,
    fcm: Option<FcmTokenFile>,
    /// The HTTPS client pushes go out on (pooled connections).
    pub client: HttpsClient,
    pub policy: RetryPolicy,
    /// Devices holding the cloud's command connection.
    pub commands: crate::commands::Commands,
}

impl PushState {
    pub(crate) fn load(cfg: &crate::TopConfig) -> Result<PushState, TopError> {
        let (data_dir, root) = (&cfg.data_dir, &cfg.root_domain);
        let apns = match &cfg.apns {
            Some(a) => {
                Some(Apns::from_p8(&a.team_id, &a.key_id, &a.key_file, &a.url).map_err(|e| TopError::State(format!("--apns-key: {e}")))?)
            }
            None => None,
        };
        let fcm = cfg.fcm.as_ref().map(|f| FcmTokenFile {
            project: f.project.clone(),
            token_file: f.token_file.clone(),
            base: f.url.clone(),
        });
        let client = HttpsClient::new(cfg.push_ca.as_deref()).map_err(|e| TopError::State(format!("--push-ca: {e}")))?;
        let key = peerdial_identity::SigningKey::load_or_generate(&data_dir.join("push-token-key.pem"), &mut rand::rngs::OsRng)
            .map_err(|e| TopError::State(format!("push token key: {e}")))?;
        let contact = format!("mailto:push@{}", root.trim_end_matches('.'));
        let vapid =
            VapidKey::load_or_generate(&data_dir.join("push-vapid-key.pem"), &contact).map_err(|e| TopError::State(e.to_string()))?;
        let path = data_dir.join("push.json");
        let registry = match std::fs::read(&path) {
            Ok(b) => {
                let list: Vec<(String, PushParams)> =
                    serde_json::from_slice(&b).map_err(|e| TopError::State(format!("{}: {e}", path.display())))?;
                list.into_iter().filter_map(|(n, p)| Some((Number::parse(&n).ok()?, p))).collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(TopError::State(format!("{}: {e}", path.display()))),
        };
        Ok(PushState {
            registry: Mutex::new(registry),
            path,
            write: tokio::sync::Mutex::new(()),
            key,
            webpush: WebPush {
                vapid,
                ttl: Duration::from_secs(token::LIFETIME_SECS),
            },
            apns,
            fcm,
            client,
            policy: RetryPolicy::default(),
            commands: Default::default(),
        })
    }

    fn adapter(&self, p: Provider) -> Result<&dyn PushAdapter, WakeError> {
        match p {
            Provider::Webpush => Ok(&self.webpush),
            Provider::Apns => self
                .apns
                .as_ref()
                .map(|a| a as &dyn PushAdapter)
                .ok_or(WakeError::NoAdapter("apns")),
            Provider::Fcm => self.fcm.as_ref().map(|f| f as &dyn PushAdapter).ok_or(WakeError::NoAdapter("fcm")),
        }
    }

    /// The cloud's own key: wake tokens, and PASSporTs for switches' devices.
    pub(crate) fn key(&self) -> &peerdial_identity::SigningKey {
        &self.key
    }

    pub fn registered(&self, n: Number) -> bool {
        self.registry.lock().expect("push lock").contains_key(&n)
    }

    /// Writes the registry durably (temp file, fsync, rename).
    async fn persist(&self) -> Result<(), String> {
        let _guard = self.write.lock().await;
        let list: Vec<(String, PushParams)> = self
            .registry
            .lock()
            .expect("push lock")
            .iter()
            .map(|(n, p)| (n.to_string(), p.clone()))
            .collect();
        let bytes = serde_json::to_vec(&list).map_err(|e| e.to_string())?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            let tmp = path.with_extension("json.tmp");
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
    }
}

pub fn routes() -> Router<Arc<TopShared>> {
    Router::new()
        .route("/api/v1/push/registrations", post(register))
        .route("/api/v1/push/key", get(key))
        .merge(crate::commands::routes())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Registration {
    token: String,
    number: String,
    /// None: forget the number's registration.
    push: Option<PushParams>,
}

/// A region tells the top a number's push parameters (or their end).
async fn register(State(shared): State<Arc<TopShared>>, body: Result<Bytes, BytesRejection>) -> Response {
    let r: Registration = match json_body(body, crate::MAX_BODY) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if !bool::from(r.token.as_bytes().ct_eq(shared.cfg.join_token.as_bytes())) {
        return error(StatusCode::UNAUTHORIZED, "wrong join token".into());
    }
    let Ok(n) = Number::parse(&r.number) else {
        return error(StatusCode::BAD_REQUEST, format!("{:?} is not a number", r.number));
    };
    if shared.dns_for(n).is_none() {
        return error(StatusCode::BAD_REQUEST, format!("no region of this tree holds {n}"));
    }
    if let Some(p) = &r.push {
        if let Err(e) = p.check() {
            return error(StatusCode::BAD_REQUEST, e.to_string());
        }
    }
    let p = &shared.push;
    {
        let mut reg = p.registry.lock().expect("push lock");
        match &r.push {
            Some(params) => reg.insert(n, params.clone()),
            None => reg.remove(&n),
        };
    }
    if let Err(e) = p.persist().await {
        return error(StatusCode::SERVICE_UNAVAILABLE, format!("could not store the registration: {e}"));
    }
    tracing::info!(number = %n, registered = r.push.is_some(), "push registration");
    Json(json!({"number": n.to_string(), "registered": r.push.is_some()})).into_response()
}

/// The key wake tokens are signed with (JWK) and the VAPID public key.
async fn key(State(shared): State<Arc<TopShared>>) -> Response {
    let jwk: serde_json::Value = serde_json::from_str(&shared.push.key.public_key().to_jwk()).unwrap_or_default();
    Json(json!({"jwk": jwk, "vapid": shared.push.webpush.vapid.public_b64()})).into_response()
}

/// Wakes `req.callee` for a call from `req.caller`: down its command
/// connection if it holds one, else by push if it registered for it. The
/// payload carries the caller's number and address and both wake tokens;
/// the caller's token comes back for the caller to present.
pub(crate) async fn wake(shared: &TopShared, req: &WakeRequest) -> Result<Woken, WakeError> {
    let params = shared.push.registry.lock().expect("push lock").get(&req.callee).cloned();
    if params.is_none() && !shared.push.commands.holds(req.callee) {
        return Ok(Woken::NoPushRegistration);
    }
    let now = crate::users::now_ms() / 1000;
    let (caller_token, callee_token) =
        token::sign_pair(&shared.push.key, req.caller, req.callee, now).map_err(|e| WakeError::Build(e.to_string()))?;
    let payload = WakePayload {
        kind: "wake".into(),
        caller: req.caller.to_string(),
        callee: req.callee.to_string(),
        caller_addr: req.caller_addr.clone(),
        caller_token: caller_token.clone(),
        callee_token,
    };
    let bytes = payload.to_bytes();
    if shared.push.commands.send(req.callee, String::from_utf8_lossy(&bytes).into_owned()) {
        tracing::info!(caller = %req.caller, callee = %req.callee, "woke a device by cloud command");
        return Ok(Woken::Commanded { token: caller_token });
    }
    let Some(params) = params else {
        return Ok(Woken::NoPushRegistration);
    };
    let request = shared
        .push
        .adapter(params.provider)?
        .request(&params, &bytes)
        .map_err(|e| WakeError::Build(e.to_string()))?;
    // Its own task: the retries go on even if the asker goes away.
    let attempts = tokio::spawn(deliver(shared.push.client.clone(), request, shared.push.policy))
        .await
        .map_err(|e| WakeError::Delivery(e.to_string()))?
        .map_err(WakeError::Delivery)?;
    tracing::info!(caller = %req.caller, callee = %req.callee, attempts, "woke a device by push");
    Ok(Woken::Pushed { token: caller_token })
}

/// Sends `req` on the retry schedule; `Ok(attempts)` once delivered. A
/// failure names the last attempt's error (a refused certificate, say).
pub async fn deliver(client: HttpsClient, req: PushRequest, policy: RetryPolicy) -> Result<u32, String> {
    let start = tokio::time::Instant::now();
    let now = || start.elapsed().as_millis() as u64;
    let mut d = Delivery::new(policy, now());
    let mut last_error: Option<String> = None;
    loop {
        match d.state() {
            DeliveryState::Delivered { attempts } => return Ok(*attempts),
            DeliveryState::Failed { reason, .. } => {
                return Err(match last_error {
                    Some(e) => format!("{reason}; last: {e}"),
                    None => reason.clone(),
                })
            }
            _ => {}
        }
        if d.poll_attempt(now()) {
            let timeout = Duration::from_millis(policy.attempt_timeout_ms);
            let answer = client.send(req.method, &req.url, &req.headers, &req.body, timeout).await;
            let outcome = match &answer {
                Ok(a) => {
                    tracing::debug!(status = a.status, version = %a.version, "push attempt");
                    last_error = None;
                    Outcome::from_status(Some(a.status), a.header("retry-after").and_then(|v| v.parse().ok()))
                }
                Err(e) => {
                    tracing::info!("push attempt: {e}");
                    last_error = Some(e.to_string());
                    Outcome::from_status(None, None)
                }
            };
            d.handle_outcome(now(), outcome);
            continue;
        }
        let due = d.poll_timeout().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(due.saturating_sub(now()))).await;
    }
}
