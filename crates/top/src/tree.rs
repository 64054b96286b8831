//! The tree's children: regions and country servers that joined this
//! node, their durable list (`tree.json`), the join and lookup endpoints,
//! the grace loop that un-delegates a silent child, and the join loop a
//! child runs towards its parent.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use peerdial_dns::prefix_zone;
use peerdial_net::http_server::{error, json_body};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;

use crate::{now_secs, TopConfig, TopError, TopShared, MAX_BODY};
use subtle::ConstantTimeEq;

/// A child that joined: a region (5 digits) or a country server (3).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Child {
    pub prefix: String,
    pub dns: SocketAddr,
    pub http: String,
    #[serde(default)]
    pub sip: Option<SocketAddr>,
    /// Unix seconds of the last join (heartbeat).
    pub last_seen: u64,
}

impl Child {
    pub(crate) fn kind(&self) -> &'static str {
        if self.prefix.len() == 5 {
            "region"
        } else {
            "country"
        }
    }

    pub(crate) fn area(&self) -> String {
        match self.prefix.len() {
            5 => format!("{}-{}", &self.prefix[..3], &self.prefix[3..]),
            _ => self.prefix.clone(),
        }
    }
}

/// Digits of an area (`886-02`) or a country (`886`), separators ignored.
fn parse_prefix(s: &str) -> Option<String> {
    let d: String = s.chars().filter(|c| !matches!(c, '-' | ' ' | '.')).collect();
    (d.bytes().all(|b| b.is_ascii_digit()) && (d.len() == 3 || d.len() == 5) && !d.starts_with("000")).then_some(d)
}

fn state_path(cfg: &TopConfig) -> PathBuf {
    cfg.data_dir.join("tree.json")
}

pub(crate) fn load(cfg: &TopConfig) -> Result<BTreeMap<String, Child>, TopError> {
    let p = state_path(cfg);
    match std::fs::read(&p) {
        Ok(b) => {
            let list: Vec<Child> = serde_json::from_slice(&b).map_err(|e| TopError::State(format!("{}: {e}", p.display())))?;
            Ok(list.into_iter().map(|c| (c.prefix.clone(), c)).collect())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(TopError::State(format!("{}: {e}", p.display()))),
    }
}

/// Writes the children durably (temp file, fsync, rename, fsync dir)
/// before a join is acknowledged.
async fn persist(shared: &TopShared) -> Result<(), String> {
    let list: Vec<Child> = shared.children.lock().expect("children lock").values().cloned().collect();
    persist_list(shared, list).await
}

async fn persist_list(shared: &TopShared, list: Vec<Child>) -> Result<(), String> {
    let _guard = shared.write.lock().await;
    shared.persisted_at.store(now_secs(), std::sync::atomic::Ordering::Relaxed);
    let bytes = serde_json::to_vec_pretty(&list).map_err(|e| e.to_string())?;
    let (path, dir) = (state_path(&shared.cfg), shared.cfg.data_dir.clone());
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::Write;
        let tmp = path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&dir)?.sync_all()
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

pub(crate) async fn grace_loop(shared: Arc<TopShared>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.changed() => return,
        }
        let now = now_secs();
        let grace = shared.cfg.grace.as_secs();
        let gone: Vec<Child> = {
            let mut children = shared.children.lock().expect("children lock");
            let stale: Vec<String> = children
                .values()
                .filter(|c| now.saturating_sub(c.last_seen) > grace)
                .map(|c| c.prefix.clone())
                .collect();
            stale.iter().filter_map(|p| children.remove(p)).collect()
        };
        if gone.is_empty() {
            continue;
        }
        {
            let mut zone = shared.zone.write().expect("zone lock");
            for c in &gone {
                zone.set_delegation(&c.prefix, None);
                tracing::warn!(area = %c.area(), "silent for longer than the grace period: no longer delegated");
            }
        }
        if let Err(e) = persist(&shared).await {
            tracing::error!("cannot write the tree state: {e}");
        }
    }
}

/// What a child sends to join (and, periodically, to say it is alive).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    /// `CCC-AA` for a region, `CCC` for a country server.
    pub area: String,
    pub token: String,
    pub dns: SocketAddr,
    pub http: String,
    #[serde(default)]
    pub sip: Option<SocketAddr>,
}

pub(crate) async fn join(State(shared): State<Arc<TopShared>>, body: Result<Bytes, BytesRejection>) -> Response {
    let req: JoinRequest = match json_body(body, MAX_BODY) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if !bool::from(req.token.as_bytes().ct_eq(shared.cfg.join_token.as_bytes())) {
        return error(StatusCode::UNAUTHORIZED, "wrong join token".into());
    }
    let Some(prefix) = parse_prefix(&req.area) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("invalid area {:?}: use CCC-AA for a region or CCC for a country server", req.area),
        );
    };
    let own = &shared.cfg.prefix;
    let fits = prefix.starts_with(own.as_str()) && prefix.len() > own.len() && (own.is_empty() || prefix.len() == 5);
    if !fits {
        let range = if own.is_empty() {
            "the root".to_string()
        } else {
            format!("country {own}")
        };
        return error(
            StatusCode::BAD_REQUEST,
            format!("area {} is outside the range of this server ({range})", req.area),
        );
    }
    if !req.http.starts_with("http://") {
        return error(StatusCode::BAD_REQUEST, format!("http {:?} is not an http:// URL", req.http));
    }
    let now = now_secs();
    let grace = shared.cfg.grace.as_secs();
    let (changed, child, list) = {
        let children = shared.children.lock().expect("children lock");
        // A country server and one of its areas cannot both hang here.
        if let Some(c) = children
            .values()
            .find(|c| c.prefix != prefix && (c.prefix.starts_with(&prefix) || prefix.starts_with(&c.prefix)))
        {
            return error(
                StatusCode::CONFLICT,
                format!(
                    "{} {} is already delegated here (to {}); a country and its areas cannot both be",
                    c.kind(),
                    c.area(),
                    c.dns
                ),
            );
        }
        if let Some(c) = children.get(&prefix) {
            if c.dns != req.dns && now.saturating_sub(c.last_seen) <= grace {
                return error(
                    StatusCode::CONFLICT,
                    format!(
                        "area {} is already held by the server at {} (seen {} s ago)",
                        c.area(),
                        c.dns,
                        now.saturating_sub(c.last_seen)
                    ),
                );
            }
        }
        let child = Child {
            prefix: prefix.clone(),
            dns: req.dns,
            http: req.http.clone(),
            sip: req.sip,
            last_seen: now,
        };
        let changed = children.get(&prefix).map(|c| (c.dns, &c.http, c.sip)) != Some((child.dns, &child.http, child.sip));
        let mut list: Vec<Child> = children.values().filter(|c| c.prefix != prefix).cloned().collect();
        list.push(child.clone());
        (changed, child, list)
    };
    // Durable first, then visible. Heartbeats only move last_seen: the file
    // is written for real changes and now and then.
    let stale_file = now.saturating_sub(shared.persisted_at.load(std::sync::atomic::Ordering::Relaxed)) >= 60;
    if changed || stale_file {
        if let Err(e) = persist_list(&shared, list).await {
            return error(StatusCode::SERVICE_UNAVAILABLE, format!("could not store the join: {e}"));
        }
    }
    {
        let mut zone = shared.zone.write().expect("zone lock");
        if changed {
            zone.set_delegation(&prefix, Some(req.dns.ip()));
        }
        shared.children.lock().expect("children lock").insert(prefix.clone(), child);
    }
    if changed {
        tracing::info!(area = %req.area, dns = %req.dns, "joined: delegated");
    }
    if req.dns.port() != 53 {
        tracing::warn!(area = %req.area, dns = %req.dns, "NS records carry no port: resolvers will ask port 53 of {}", req.dns.ip());
    }
    let zone = prefix_zone(&prefix, &shared.cfg.root_domain);
    // Children heartbeat well within the grace period.
    let heartbeat = (grace / 3).clamp(1, 30);
    Json(json!({ "zone": zone, "delegated": true, "heartbeat": heartbeat, "serial": shared.zone.read().expect("zone lock").serial() }))
        .into_response()
}

fn child_json(shared: &TopShared, c: &Child) -> serde_json::Value {
    json!({
        "area": c.area(),
        "kind": c.kind(),
        "zone": prefix_zone(&c.prefix, &shared.cfg.root_domain),
        "dns": c.dns.to_string(),
        "http": c.http,
        "sip": c.sip.map(|s| s.to_string()),
        "seen_secs_ago": now_secs().saturating_sub(c.last_seen),
    })
}

pub(crate) async fn regions(State(shared): State<Arc<TopShared>>) -> Response {
    let list: Vec<serde_json::Value> = shared
        .children
        .lock()
        .expect("children lock")
        .values()
        .map(|c| child_json(&shared, c))
        .collect();
    Json(json!({ "zone": shared.zone.read().expect("zone lock").origin(), "regions": list })).into_response()
}

/// Which child holds a number (13 digits) or an area (5) or country (3).
/// A country server asked about another country's number refers to its
/// parent (`"kind": "parent"`), so a region or phone that knows only the
/// country server still finds every number of the tree.
pub(crate) async fn lookup(State(shared): State<Arc<TopShared>>, Path(what): Path<String>) -> Response {
    let digits: String = what.chars().filter(|c| !matches!(c, '-' | ' ' | '.' | '+')).collect();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || ![3, 5, 13].contains(&digits.len()) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{what:?} is not a number (13 digits), an area (CCC-AA) or a country (CCC)"),
        );
    }
    let children = shared.children.lock().expect("children lock");
    match (children.values().find(|c| digits.starts_with(&c.prefix)), &shared.cfg.parent) {
        (Some(c), _) => Json(child_json(&shared, c)).into_response(),
        (None, Some(parent)) if !digits.starts_with(&shared.cfg.prefix) => Json(json!({"kind": "parent", "http": parent})).into_response(),
        (None, _) => error(StatusCode::NOT_FOUND, format!("no region holds {what}")),
    }
}

/// Joins `parent` and keeps joining at the interval it asks for. Used by
/// regions and by country servers.
pub async fn join_loop(parent: String, req: JoinRequest, mut stop: watch::Receiver<bool>) {
    let body = serde_json::to_string(&req).expect("join request serialises");
    let mut joined = false;
    loop {
        let wait = match peerdial_net::http_client::request("POST", &parent, "/api/v1/join", Some(&body)).await {
            Ok((200, text)) => {
                if !joined {
                    tracing::info!(parent = %parent, area = %req.area, "joined the tree");
                    joined = true;
                }
                serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["heartbeat"].as_u64())
                    .unwrap_or(30)
            }
            Ok((status, text)) => {
                tracing::error!(parent = %parent, %status, "the parent refused to delegate us: {text}");
                joined = false;
                30
            }
            Err(e) => {
                tracing::warn!(parent = %parent, "cannot reach the parent: {e}");
                5
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(wait)) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_prefix;

    #[test]
    fn prefixes() {
        assert_eq!(parse_prefix("886-02").as_deref(), Some("88602"));
        assert_eq!(parse_prefix("886").as_deref(), Some("886"));
        assert_eq!(parse_prefix("000-01"), None);
        assert_eq!(parse_prefix("88"), None);
        assert_eq!(parse_prefix("886-0x"), None);
    }
}
