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
mod tree;
pub mod users;

use tree::{grace_loop, join, load, lookup, regions};
pub use tree::{join_loop, Child, JoinRequest};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use peerdial_dns::{Transport, TreeZone, TreeZoneConfig};
use peerdial_net::http_server::error;
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

pub(crate) const MAX_BODY: usize = 16 * 1024;

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
