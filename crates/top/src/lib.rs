//! `peerdial top`: a node of the tree above the regions. At the top it
//! serves the root domain; configured with a country prefix it serves that
//! country's zone (`6.8.8.<root>`) and joins its own parent like a region
//! does. Either way it keeps the children that joined it (regions, or
//! country servers), publishes their delegations (NS and glue) in its
//! zone, and answers "which region holds this number or area" over HTTP.
//!
//! It is never in a call's path: phones and resolvers only read from it.
//! Children re-join periodically (a heartbeat); one that stops is
//! un-delegated only after an operator-set grace period, since its
//! secondaries may still be serving its zone.

pub mod calls;
pub mod channels;
mod commands;
pub mod conference;
pub mod designate;
mod handoff;
pub mod portal;
pub mod push;
pub mod rendezvous;
mod signin;
pub mod talkers;
pub mod users;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use peerdial_dns::{prefix_zone, Transport, TreeZone, TreeZoneConfig};
use peerdial_net::http_server::{error, json_body};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum TopError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("data folder {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("state file {0}")]
    State(String),
    #[error("invalid prefix {0:?}: a country code is 3 digits")]
    Prefix(String),
    #[error(transparent)]
    Dns(#[from] peerdial_dns::DnsError),
    #[error(transparent)]
    Control(#[from] peerdial_control::ControlError),
}

pub use rendezvous::RendezvousSettings;

#[derive(Debug, Clone)]
pub struct TopConfig {
    pub root_domain: String,
    /// "" at the top; a country's 3 digits at a country server.
    pub prefix: String,
    pub data_dir: PathBuf,
    pub dns: SocketAddr,
    pub http: SocketAddr,
    /// What children must present to join.
    pub join_token: String,
    /// How long a silent child stays delegated.
    pub grace: Duration,
    /// A country server's parent (the top) and the token it wants.
    pub parent: Option<String>,
    pub parent_token: Option<String>,
    pub negative_ttl: u32,
    /// The identity rendezvous (issue 14); None: not served.
    pub rendezvous: Option<RendezvousSettings>,
    /// The third-party call controller's SIP socket (UDP; issue 13).
    pub sip: SocketAddr,
    /// A PEM file of extra CAs the push sender trusts besides the webpki
    /// roots (a private push service, tests).
    pub push_ca: Option<PathBuf>,
    /// Credentials for Apple's and Google's push services (None: a device
    /// registered with that provider is refused a wake with a reason).
    pub apns: Option<ApnsSettings>,
    pub fcm: Option<FcmSettings>,
}

/// APNs token-based authentication: the team's `.p8` key and its ids.
#[derive(Debug, Clone)]
pub struct ApnsSettings {
    pub team_id: String,
    pub key_id: String,
    pub key_file: PathBuf,
    /// `https://api.push.apple.com` (or `https://api.sandbox.push.apple.com`).
    pub url: String,
}

/// FCM's HTTP v1 API: the project and a file holding a current OAuth 2
/// access token (read at each push; whatever refreshes it rewrites it).
#[derive(Debug, Clone)]
pub struct FcmSettings {
    pub project: String,
    pub token_file: PathBuf,
    /// `https://fcm.googleapis.com`.
    pub url: String,
}

impl TopConfig {
    pub fn new(data_dir: PathBuf, join_token: String) -> TopConfig {
        TopConfig {
            root_domain: "peerdial.internal.".into(),
            prefix: String::new(),
            data_dir,
            dns: "127.0.0.1:5301".parse().expect("literal"),
            http: "127.0.0.1:8081".parse().expect("literal"),
            join_token,
            grace: Duration::from_secs(24 * 3600),
            parent: None,
            parent_token: None,
            negative_ttl: 30,
            rendezvous: Some(RendezvousSettings::default()),
            sip: "127.0.0.1:0".parse().expect("literal"),
            push_ca: None,
            apns: None,
            fcm: None,
        }
    }
}

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
    fn kind(&self) -> &'static str {
        if self.prefix.len() == 5 {
            "region"
        } else {
            "country"
        }
    }

    fn area(&self) -> String {
        match self.prefix.len() {
            5 => format!("{}-{}", &self.prefix[..3], &self.prefix[3..]),
            _ => self.prefix.clone(),
        }
    }
}

pub struct TopShared {
    pub cfg: TopConfig,
    pub zone: RwLock<TreeZone>,
    children: Mutex<BTreeMap<String, Child>>,
    /// Serialises writes of the state file.
    write: tokio::sync::Mutex<()>,
    /// Unix seconds of the last write, so heartbeats reach the file now and then.
    persisted_at: std::sync::atomic::AtomicU64,
    /// The identity rendezvous, when this node serves it.
    pub rendezvous: Option<Arc<rendezvous::RendezvousEdge>>,
    pub store: peerdial_store::Store,
    /// Global channels (the dating channel is for users worldwide).
    pub channels: channels::GlobalChannels,
    /// Talkers' codes, calls and the third-party call controller.
    pub(crate) dialing: calls::Dialing,
    /// Switches, their devices, and per-call designation (issue 15).
    pub(crate) designation: designate::DesignationState,
    /// Push registrations, the cloud's push keys, wake-ups (issue 15).
    pub push: push::PushState,
}

impl TopShared {
    /// Where to ask about `number`'s area: the DNS server of the region
    /// that joined with it, or the country server's directory. `None`: no
    /// child holds it.
    pub(crate) fn dns_for(&self, number: peerdial_number::Number) -> Option<peerdial_resolve::Dns> {
        let digits = number.digits();
        let children = self.children.lock().expect("children lock");
        let c = children.values().find(|c| digits.starts_with(&c.prefix))?;
        Some(match c.kind() {
            "region" => peerdial_resolve::Dns::Resolver(c.dns),
            _ => peerdial_resolve::Dns::Top(c.http.clone()),
        })
    }
}

impl TopShared {
    /// The SIP address of the region that joined with `number`'s area.
    pub(crate) fn region_sip(&self, number: peerdial_number::Number) -> Option<SocketAddr> {
        let digits = number.digits();
        let children = self.children.lock().expect("children lock");
        children.values().find(|c| digits.starts_with(&c.prefix)).and_then(|c| c.sip)
    }
}

impl peerdial_net::dns_server::Answer for TopShared {
    fn answer(&self, query: &[u8], transport: Transport, _source: SocketAddr) -> Option<Vec<u8>> {
        self.zone.read().expect("zone lock").answer(query, transport)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Endpoints {
    pub dns: SocketAddr,
    pub http: SocketAddr,
    /// The call controller's SIP socket.
    pub sip: SocketAddr,
}

pub struct Top {
    pub shared: Arc<TopShared>,
    pub endpoints: Endpoints,
    stop: watch::Sender<bool>,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

const MAX_BODY: usize = 16 * 1024;

/// Digits of an area (`886-02`) or a country (`886`), separators ignored.
fn parse_prefix(s: &str) -> Option<String> {
    let d: String = s.chars().filter(|c| !matches!(c, '-' | ' ' | '.')).collect();
    (d.bytes().all(|b| b.is_ascii_digit()) && (d.len() == 3 || d.len() == 5) && !d.starts_with("000")).then_some(d)
}

impl Top {
    pub async fn start(cfg: TopConfig) -> Result<Top, TopError> {
        if !(cfg.prefix.is_empty() || cfg.prefix.len() == 3 && cfg.prefix.bytes().all(|b| b.is_ascii_digit())) {
            return Err(TopError::Prefix(cfg.prefix.clone()));
        }
        std::fs::create_dir_all(&cfg.data_dir).map_err(|source| TopError::DataDir {
            path: cfg.data_dir.clone(),
            source,
        })?;
        let (udp, tcp) = peerdial_net::bind_pair(cfg.dns).map_err(|source| TopError::Bind { addr: cfg.dns, source })?;
        let http = peerdial_net::tcp_listener(cfg.http)
            .and_then(tokio::net::TcpListener::from_std)
            .map_err(|source| TopError::Bind { addr: cfg.http, source })?;
        let mut endpoints = Endpoints {
            dns: udp.local_addr().map_err(|source| TopError::Bind { addr: cfg.dns, source })?,
            http: http.local_addr().map_err(|source| TopError::Bind { addr: cfg.http, source })?,
            sip: cfg.sip,
        };
        let children = load(&cfg)?;
        let mut zone = TreeZone::new(TreeZoneConfig {
            root: cfg.root_domain.clone(),
            prefix: cfg.prefix.clone(),
            ns_ip: endpoints.dns.ip(),
            negative_ttl: cfg.negative_ttl,
            // Serials must grow across restarts: start from the clock.
            serial: now_secs() as u32,
        })?;
        for c in children.values() {
            zone.set_delegation(&c.prefix, Some(c.dns.ip()));
        }
        let (stop, stop_rx) = watch::channel(false);
        // The top's database: rendezvous mappings and global channels.
        let url = cfg
            .rendezvous
            .as_ref()
            .and_then(|r| r.database.clone())
            .unwrap_or_else(|| format!("sqlite:{}", cfg.data_dir.join("top.db").display()));
        let store = peerdial_store::Store::open(&url)
            .await
            .map_err(|e| TopError::State(format!("the top's database: {e}")))?;
        let rendezvous = match &cfg.rendezvous {
            Some(r) => Some(rendezvous::RendezvousEdge::start(&cfg.data_dir, r, store.clone(), stop_rx.clone()).await?),
            None => None,
        };
        let channels = channels::GlobalChannels::load(&store, &cfg.root_domain).await?;
        let dialing = calls::Dialing::start(cfg.sip, stop_rx.clone())?;
        endpoints.sip = dialing.sip_addr();
        let designation = designate::DesignationState::load(&cfg.data_dir)?;
        let push = push::PushState::load(&cfg)?;
        let shared = Arc::new(TopShared {
            designation,
            push,
            dialing,
            rendezvous,
            store,
            channels,
            cfg,
            zone: RwLock::new(zone),
            children: Mutex::new(children),
            write: tokio::sync::Mutex::new(()),
            persisted_at: Default::default(),
        });
        peerdial_net::dns_server::spawn(shared.clone(), 1, udp, tcp, stop_rx.clone());
        // People's pages (yellow pages, sign-in) in the top's session layer.
        let pages = peerdial_portal::top::router(
            portal::routes().with_state(shared.clone()),
            shared.store.clone(),
            &url,
            Arc::new(signin::Delegation(shared.clone())),
        )
        .await
        .map_err(|e| TopError::State(format!("the top's sessions: {e}")))?;
        spawn_http(shared.clone(), http, pages, stop_rx.clone());
        tokio::spawn(grace_loop(shared.clone(), stop_rx.clone()));
        tokio::spawn(channels::sweep(shared.clone(), stop_rx.clone()));
        if let (Some(parent), Some(token)) = (shared.cfg.parent.clone(), shared.cfg.parent_token.clone()) {
            let area = shared.cfg.prefix.clone();
            let me = JoinRequest {
                area,
                token,
                dns: endpoints.dns,
                http: format!("http://{}", endpoints.http),
                sip: None,
            };
            tokio::spawn(join_loop(parent, me, stop_rx));
        }
        tracing::info!(zone = %shared.zone.read().expect("zone lock").origin(), dns = %endpoints.dns, http = %endpoints.http, "tree node started");
        Ok(Top { shared, endpoints, stop })
    }

    pub fn children(&self) -> Vec<Child> {
        self.shared.children.lock().expect("children lock").values().cloned().collect()
    }

    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _guard = self.shared.write.lock().await;
    }
}

fn state_path(cfg: &TopConfig) -> PathBuf {
    cfg.data_dir.join("tree.json")
}

fn load(cfg: &TopConfig) -> Result<BTreeMap<String, Child>, TopError> {
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

async fn grace_loop(shared: Arc<TopShared>, mut stop: watch::Receiver<bool>) {
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

fn spawn_http(shared: Arc<TopShared>, listener: tokio::net::TcpListener, pages: Router, mut stop: watch::Receiver<bool>) {
    let app = Router::new()
        .route("/api/v1/join", post(join))
        .route("/api/v1/regions", get(regions))
        .route("/api/v1/lookup/{what}", get(lookup))
        .merge(rendezvous::routes())
        .merge(channels::routes())
        .merge(users::routes())
        .merge(talkers::routes())
        .merge(calls::routes())
        .merge(handoff::routes())
        .merge(designate::routes())
        .merge(push::routes())
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
        .merge(pages);
    tokio::spawn(async move {
        // The peer's address: the rendezvous rate-limits lookups by it.
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stop.changed().await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
}

async fn join(State(shared): State<Arc<TopShared>>, body: Result<Bytes, BytesRejection>) -> Response {
    let req: JoinRequest = match json_body(body, MAX_BODY) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if !peerdial_dns::tsig::constant_time_eq(req.token.as_bytes(), shared.cfg.join_token.as_bytes()) {
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

async fn regions(State(shared): State<Arc<TopShared>>) -> Response {
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
async fn lookup(State(shared): State<Arc<TopShared>>, Path(what): Path<String>) -> Response {
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
