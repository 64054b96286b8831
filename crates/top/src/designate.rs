//! Switch designation at the top (issue 15): the HTTP edge of
//! `peerdial_directory::designation`.
//!
//! - `POST /api/v1/switches/join` (`Authorization: Bearer <switch token>`):
//!   a switch says where it listens and which devices it serves; it repeats
//!   this as a heartbeat and whenever its devices change.
//! - `POST /api/v1/calls/designate`: a device (its region's PASSporT in
//!   `Identity` with `X-Peerdial-From`) or a switch on behalf of one of its
//!   devices (Bearer token, body `caller`) asks how to reach `callee`. The
//!   top asks the callee's switch (`POST {switch}/api/v1/accept`, Bearer the
//!   secret the switch gave at its join, deadline 2 s), or wakes the callee
//!   (`crate::push::wake`), and answers with the route.
//!
//! Switch tokens: `peerdial top switch add NAME --data DIR` makes one and
//! keeps only its SHA-256 in `DIR/switches.json`; the top reads that file
//! again when it meets a token it does not know, so no restart is needed.
//! Not here: keys (the switch makes and checks them), SIP.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use peerdial_directory::designation::{
    self, decide, parse_request, AcceptRequest, Accepted, CalleeIs, Designations, Origin, Outcome, Refusal, Step, SwitchJoin, Switches,
    ACCEPT_DEADLINE_MS,
};
use peerdial_net::http_server::{error, json_body};
use peerdial_number::Number;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::push::{self, WakeRequest, Woken};
use crate::users::{now_ms, vouched};
use crate::{TopError, TopShared};

pub fn routes() -> Router<Arc<TopShared>> {
    Router::new()
        .route("/api/v1/switches/join", post(join))
        .route("/api/v1/calls/designate", post(designate))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRow {
    name: String,
    token_sha256: String,
}

/// The switches' tokens (hashes), their joins, and the designations made.
pub(crate) struct DesignationState {
    file: PathBuf,
    /// SHA-256 hex → switch name.
    tokens: Mutex<HashMap<String, String>>,
    switches: Mutex<Switches>,
    records: Mutex<Designations>,
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn read_tokens(file: &Path) -> Result<Vec<TokenRow>, TopError> {
    match std::fs::read(file) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| TopError::State(format!("{}: {e}", file.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(TopError::State(format!("{}: {e}", file.display()))),
    }
}

/// `peerdial top switch add NAME`: a new token for switch `name` (a new one
/// replaces the old); only its hash is kept.
pub fn add_switch(data_dir: &Path, name: &str) -> Result<String, TopError> {
    let ok = (1..=40).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(TopError::State(format!(
            "switch name {name:?}: 1 to 40 letters, digits, '-' or '_'"
        )));
    }
    std::fs::create_dir_all(data_dir).map_err(|source| TopError::DataDir {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let file = data_dir.join("switches.json");
    let mut rows = read_tokens(&file)?;
    rows.retain(|r| r.name != name);
    let token = hex::encode(rand::random::<[u8; 24]>());
    rows.push(TokenRow {
        name: name.to_string(),
        token_sha256: token_hash(&token),
    });
    let tmp = file.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(&rows).map_err(|e| TopError::State(e.to_string()))?;
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, &file))
        .map_err(|e| TopError::State(format!("{}: {e}", file.display())))?;
    Ok(token)
}

impl DesignationState {
    pub(crate) fn load(data_dir: &Path) -> Result<DesignationState, TopError> {
        let file = data_dir.join("switches.json");
        let tokens = read_tokens(&file)?.into_iter().map(|r| (r.token_sha256, r.name)).collect();
        Ok(DesignationState {
            file,
            tokens: Mutex::new(tokens),
            switches: Mutex::default(),
            records: Mutex::default(),
        })
    }

    /// The switch presenting `Authorization: Bearer TOKEN`; `None` when
    /// there is no Bearer token; `Some(Err)` for a token nobody was given.
    fn switch_of(&self, headers: &HeaderMap) -> Option<Result<String, ()>> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())?
            .strip_prefix("Bearer ")?
            .trim();
        let h = token_hash(token);
        if let Some(n) = self.tokens.lock().expect("tokens").get(&h) {
            return Some(Ok(n.clone()));
        }
        // Added since we last read the file?
        let rows = read_tokens(&self.file).unwrap_or_default();
        let mut tokens = self.tokens.lock().expect("tokens");
        *tokens = rows.into_iter().map(|r| (r.token_sha256, r.name)).collect();
        Some(tokens.get(&h).cloned().ok_or(()))
    }
}

fn refused(r: Refusal) -> Response {
    let (code, body) = designation::answer(Origin::Device, &Outcome::Refused(r));
    (StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST), Json(body)).into_response()
}

async fn join(State(shared): State<Arc<TopShared>>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    let d = &shared.designation;
    let name = match d.switch_of(&headers) {
        Some(Ok(n)) => n,
        _ => return refused(Refusal::Unauthenticated),
    };
    let req: SwitchJoin = match json_body(body, crate::MAX_BODY * 64) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if peerdial_net::http_client::http_authority(&req.http).is_err() {
        return error(StatusCode::BAD_REQUEST, "http: want http://host:port".into());
    }
    let count = req.devices.len();
    match d.switches.lock().expect("switches").join(&name, req, now_ms()) {
        Ok(()) => {
            tracing::debug!(switch = %name, devices = count, "switch joined");
            Json(json!({"name": name, "devices": count})).into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// What the top knows of `callee` (B): a live switch's device, or a number
/// some region of this tree holds.
async fn callee_is(shared: &TopShared, callee: Number) -> Result<CalleeIs, String> {
    if let Some((name, _, disabled)) = shared.designation.switches.lock().expect("switches").serving(callee, now_ms()) {
        return Ok(if disabled {
            CalleeIs::Disabled
        } else {
            CalleeIs::BehindSwitch { switch: name.to_string() }
        });
    }
    let Some(dns) = shared.dns_for(callee) else {
        return Ok(CalleeIs::Unknown);
    };
    let server = dns.server_for(callee).await.map_err(|e| e.to_string())?;
    match peerdial_resolve::lookup(server, callee, &shared.cfg.root_domain).await {
        Ok(peerdial_resolve::Lookup::Found { .. }) => Ok(CalleeIs::NoSwitch),
        Ok(peerdial_resolve::Lookup::NoSuchNumber) => Ok(CalleeIs::Unknown),
        Err(e) => Err(e.to_string()),
    }
}

/// C2: asks switch `name` to accept a call from `caller` to `callee`.
async fn ask_switch(shared: &TopShared, name: &str, caller: Number, callee: Number) -> Outcome {
    let Some((http, secret)) = shared
        .designation
        .switches
        .lock()
        .expect("switches")
        .serving(callee, now_ms())
        .filter(|(n, _, _)| *n == name)
        .map(|(_, e, _)| (e.http.clone(), e.secret.clone()))
    else {
        return Outcome::Refused(Refusal::SwitchRefused("it left".into()));
    };
    let body = serde_json::to_string(&AcceptRequest {
        caller: caller.digits(),
        callee: callee.digits(),
    })
    .unwrap_or_default();
    let auth = format!("Bearer {secret}");
    let headers = [("Authorization", auth.as_str())];
    let ask = peerdial_net::http_client::request_with("POST", &http, "/api/v1/accept", &headers, Some(&body));
    match tokio::time::timeout(Duration::from_millis(ACCEPT_DEADLINE_MS), ask).await {
        Err(_) => Outcome::Refused(Refusal::SwitchTimeout),
        Ok(Err(e)) => Outcome::Refused(Refusal::SwitchRefused(format!("unreachable: {e}"))),
        Ok(Ok((200, text))) => match serde_json::from_str::<Accepted>(&text) {
            Ok(a) => Outcome::Switch(a),
            Err(e) => Outcome::Refused(Refusal::SwitchRefused(format!("an answer we cannot read: {e}"))),
        },
        Ok(Ok((code, text))) => {
            let why = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_else(|| format!("HTTP {code}"));
            Outcome::Refused(Refusal::SwitchRefused(why))
        }
    }
}

async fn designate(
    State(shared): State<Arc<TopShared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // A: who asks.
    let (origin, switch) = match shared.designation.switch_of(&headers) {
        Some(Ok(name)) => (Origin::Switch, Some(name)),
        Some(Err(())) => return refused(Refusal::Unauthenticated),
        None => (Origin::Device, None),
    };
    let device = match switch {
        Some(_) => None,
        None => match vouched(&shared, &headers).await {
            Ok(Some(n)) => Some(n),
            Ok(None) => return refused(Refusal::Unauthenticated),
            Err(r) => return r,
        },
    };
    let body = match peerdial_net::http_server::raw_body(body, crate::MAX_BODY) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let req = match parse_request(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let caller = match (&switch, device) {
        (Some(name), _) => match req.caller {
            Some(c) if shared.designation.switches.lock().expect("switches").serves(name, c) => c,
            Some(_) => return refused(Refusal::NotYourDevice),
            None => return error(StatusCode::BAD_REQUEST, "a switch names the caller: \"caller\"".into()),
        },
        (None, Some(n)) => match req.caller {
            Some(c) if c != n => return refused(Refusal::NotYourDevice),
            _ => n,
        },
        (None, None) => return refused(Refusal::Unauthenticated),
    };
    // B, then C.
    let known = match callee_is(&shared, req.callee).await {
        Ok(k) => k,
        Err(e) => return error(StatusCode::BAD_GATEWAY, format!("cannot look the callee up: {e}")),
    };
    let outcome = match decide(&known) {
        Step::Refuse(r) => Outcome::Refused(r),
        Step::AskSwitch { switch } => ask_switch(&shared, &switch, caller, req.callee).await,
        Step::Wake => {
            let wake = WakeRequest {
                caller,
                callee: req.callee,
                caller_addr: Some(peer.ip().to_string()),
            };
            match push::wake(&shared, &wake).await {
                Ok(Woken::Pushed { token } | Woken::Commanded { token }) => Outcome::Push { token },
                Ok(Woken::NoPushRegistration) => Outcome::Direct,
                Err(e) => Outcome::Refused(Refusal::PushFailed(e.to_string())),
            }
        }
    };
    let id = shared
        .designation
        .records
        .lock()
        .expect("records")
        .record(origin, caller, req.callee, &outcome, now_ms());
    tracing::debug!(id, from = origin.as_str(), %caller, callee = %req.callee, ?known, "designated");
    let (code, mut body) = designation::answer(origin, &outcome);
    if origin == Origin::Switch && matches!(outcome, Outcome::Direct | Outcome::Push { .. }) {
        if let Some(identity) = vouch(&shared, caller, req.callee) {
            body["identity"] = identity.into();
        }
    }
    (StatusCode::from_u16(code).unwrap_or(StatusCode::OK), Json(body)).into_response()
}

/// A switch's device has no region to sign for it: the cloud vouches that
/// `caller` (a device of the asking switch, checked above) calls `callee`,
/// with a PASSporT under its own key (`push-token-key.pem`, published at
/// `GET /api/v1/push/key`), which the switch puts in its direct INVITE.
fn vouch(shared: &TopShared, caller: Number, callee: Number) -> Option<String> {
    let url = format!("https://{}/api/v1/push/key", shared.cfg.root_domain.trim_end_matches('.'));
    let iat = now_ms() / 1000;
    match peerdial_identity::Passport::sign(shared.push.key(), caller, &[callee], iat, VOUCH_LIFETIME, &url) {
        Ok(t) => Some(peerdial_identity::IdentityHeader::new(t, url).to_string()),
        Err(e) => {
            tracing::warn!("vouching for a switch's device: {e}");
            None
        }
    }
}

/// Seconds a vouching PASSporT is good for (a region's are 60).
const VOUCH_LIFETIME: u64 = 60;
