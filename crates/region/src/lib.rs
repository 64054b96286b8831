//! The region server of one area: the I/O edge around the protocol cores.
//!
//! It owns the sockets and the clock, and wires the pieces together:
//! - SIP over UDP and TCP feeds the [`peerdial_sip::Registrar`];
//! - every binding change is made durable by [`peerdial_store::Store`]
//!   *before* the 200 OK goes out, then published in the
//!   [`peerdial_dns::Zone`];
//! - DNS over UDP and TCP answers from that zone;
//! - HTTP serves provisioning (`POST /api/v1/provision`) and status,
//!   greeting pictures ([`greetings`]) and caller identity ([`identity`]:
//!   the region's key, also published as a TXT record at the zone apex,
//!   and PASSporTs for its registered phones);
//! - SUBSCRIBE and PUBLISH go to the presence agent ([`presence`]), which
//!   knows who is online from the bindings, UDP keep-alives and TCP
//!   connections, and serves presence over HTTP too (JSON and SSE).
//! - broadcasts, channels, private channels and the marquee ([`channels`]):
//!   SIP MESSAGE to online phones (answers count as liveness) and
//!   `GET /api/v1/marquee`.
//! - the mailbox ([`mailbox`]): every provisioned number's order-20 NAPTR
//!   leads to it; it logs calls, records voice messages and keeps them
//!   (`/api/v1/messages/{number}` for the owner).
//! - the web portal (`peerdial-portal`) at `/` on the same address, its
//!   first password set through [`account`].
//!
//! - the third-party call controller for its own numbers (`control.rs`:
//!   calls and conferences the top hands it, on `--control`).
//!
//! It is not a SIP proxy: direct calls never pass through it.

pub mod account;
pub mod admin;
pub(crate) mod auth;
pub mod channels;
mod channels_api;
mod control;
mod deposit;
pub mod greetings;
mod http;
pub mod identity;
pub mod mailbox;
mod mailbox_api;
mod mailbox_mwi;
mod mailbox_text;
mod mailbox_upload;
mod notify;
mod portal_link;
pub mod presence;
mod presence_api;
mod push;
mod relay;
mod sip_server;
pub mod state;
mod update;
mod vanity;
pub mod watchers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use peerdial_number::Area;
use peerdial_sip::{Binding, Change, Transport};
use peerdial_store::Store;
use tokio::sync::watch;

pub use state::Shared;

#[derive(Debug, thiserror::Error)]
pub enum RegionError {
    #[error("storage: {0}")]
    Store(#[from] peerdial_store::StoreError),
    #[error("DNS zone: {0}")]
    Dns(#[from] peerdial_dns::DnsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("data folder {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("stored row is invalid: {0}")]
    BadRow(String),
    #[error("the region data folder {0} is in use by a running region; stop that region first")]
    InUse(PathBuf),
    #[error("{0}")]
    Refused(String),
    #[error("caller identity: {0}")]
    Identity(#[from] peerdial_identity::IdentityError),
    #[error("web portal: {0}")]
    Portal(#[from] peerdial_portal::PortalError),
    #[error("call controller: {0}")]
    Control(#[from] peerdial_control::ControlError),
}

/// Everything a region needs to start; every listening address settable.
#[derive(Debug, Clone)]
pub struct RegionConfig {
    pub area: Area,
    pub root_domain: String,
    pub data_dir: PathBuf,
    /// `sqlite:PATH` or `postgres://…`.
    pub database: String,
    pub sip: SocketAddr,
    pub dns: SocketAddr,
    pub http: SocketAddr,
    /// TTL of the published NAPTR records.
    pub ttl: u32,
    /// SOA minimum: how long resolvers cache "no such number".
    pub negative_ttl: u32,
    pub min_expires: u32,
    pub max_expires: u32,
    /// Threads answering DNS over UDP.
    pub dns_threads: usize,
    /// Seconds between presence keep-alives to phones registered over UDP
    /// (`--keepalive`).
    pub keepalive: u32,
    /// Digest algorithms offered to phones, most preferred first.
    pub digest: Vec<peerdial_sip::digest::Algorithm>,
    /// TSIG keys for zone transfers and NOTIFY (the first signs NOTIFYs).
    pub tsig_keys: Vec<peerdial_dns::TsigKey>,
    /// Secondaries to NOTIFY after each change (and, without keys, the
    /// only addresses allowed to transfer the zone).
    pub secondaries: Vec<SocketAddr>,
    /// An external primary to publish to by RFC 2136 UPDATE (with the
    /// first TSIG key), e.g. BIND or Knot.
    pub update_primary: Option<SocketAddr>,
    /// The tree node to join (its HTTP URL) and the token it wants.
    pub top: Option<String>,
    pub join_token: Option<String>,
    /// A DNS resolver for other areas' records (watchers' keys); without
    /// one, the tree node named by `top` says where each area's DNS is.
    pub resolver: Option<SocketAddr>,
    /// The longest voice message the mailbox records (`--voice-max`).
    pub voice_max_secs: u32,
    /// Days a retired number stays out of the pool (`--quarantine-days`).
    pub quarantine_days: u32,
    /// Quotas per mailbox and the retention period.
    pub mailbox_limits: peerdial_mailbox::Limits,
    /// The third-party call controller's UDP address (`--control`; None:
    /// the SIP address's IP, a free port).
    pub control: Option<SocketAddr>,
}

impl RegionConfig {
    /// The start of the quarantine window: numbers retired since are out.
    pub fn quarantined_since(&self, now_ms: u64) -> i64 {
        now_ms.saturating_sub(self.quarantine_days as u64 * 86_400_000) as i64
    }

    pub fn new(area: Area, data_dir: PathBuf) -> RegionConfig {
        let database = format!("sqlite:{}", data_dir.join("region.db").display());
        RegionConfig {
            area,
            root_domain: "peerdial.internal.".into(),
            data_dir,
            database,
            sip: "127.0.0.1:5060".parse().expect("literal"),
            dns: "127.0.0.1:5300".parse().expect("literal"),
            http: "127.0.0.1:8080".parse().expect("literal"),
            ttl: 60,
            negative_ttl: 30,
            min_expires: 30,
            max_expires: 3600,
            dns_threads: 2,
            keepalive: 30,
            digest: vec![peerdial_sip::digest::Algorithm::Md5],
            tsig_keys: Vec::new(),
            secondaries: Vec::new(),
            update_primary: None,
            top: None,
            join_token: None,
            resolver: None,
            voice_max_secs: 120,
            quarantine_days: crate::admin::QUARANTINE_DAYS,
            mailbox_limits: peerdial_mailbox::Limits::default(),
            control: None,
        }
    }
}

/// The addresses a started region really listens on (port 0 resolved).
#[derive(Debug, Clone, Copy)]
pub struct Endpoints {
    pub sip: SocketAddr,
    pub dns: SocketAddr,
    pub http: SocketAddr,
    /// The third-party call controller's SIP socket (UDP).
    pub control: SocketAddr,
}

pub struct Region {
    pub shared: Arc<Shared>,
    pub endpoints: Endpoints,
    stop: watch::Sender<bool>,
    _lock: admin::DataLock,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Region {
    /// Opens the database, binds every socket, loads state and starts serving.
    pub async fn start(cfg: RegionConfig) -> Result<Region, RegionError> {
        std::fs::create_dir_all(&cfg.data_dir).map_err(|source| RegionError::DataDir {
            path: cfg.data_dir.clone(),
            source,
        })?;
        let lock = admin::DataLock::acquire(&cfg.data_dir)?;
        let store = Store::open(&cfg.database).await?;
        let (sip_udp, sip_tcp) = sip_server::bind(cfg.sip)?;
        let (dns_udp, dns_tcp) = peerdial_net::bind_pair(cfg.dns).map_err(|source| RegionError::Bind { addr: cfg.dns, source })?;
        let http = peerdial_net::tcp_listener(cfg.http)
            .and_then(tokio::net::TcpListener::from_std)
            .map_err(|source| RegionError::Bind { addr: cfg.http, source })?;
        let sip = sip_udp.local_addr().map_err(|source| RegionError::Bind { addr: cfg.sip, source })?;
        let control_at = cfg.control.unwrap_or(SocketAddr::new(sip.ip(), 0));
        let bind_control = |source| RegionError::Bind { addr: control_at, source };
        let control = std::net::UdpSocket::bind(control_at).map_err(bind_control)?;
        let endpoints = Endpoints {
            sip,
            dns: dns_udp.local_addr().map_err(|source| RegionError::Bind { addr: cfg.dns, source })?,
            http: http.local_addr().map_err(|source| RegionError::Bind { addr: cfg.http, source })?,
            control: control.local_addr().map_err(bind_control)?,
        };
        let database = cfg.database.clone();
        let shared = Arc::new(Shared::load(cfg, endpoints, store.clone()).await?);
        let portal = peerdial_portal::router(peerdial_portal::PortalConfig {
            store,
            database,
            area: shared.cfg.area,
            link: Arc::new(portal_link::Link(shared.clone())),
        })
        .await?;
        let (stop, stop_rx) = watch::channel(false);
        let control = control::Control::start(shared.clone(), control, stop_rx.clone())?;
        let portal = portal.merge(control::routes(control));

        sip_server::spawn(shared.clone(), sip_udp, sip_tcp, stop_rx.clone());
        peerdial_net::dns_server::spawn(shared.clone(), shared.cfg.dns_threads, dns_udp, dns_tcp, stop_rx.clone());
        http::spawn(shared.clone(), http, portal, stop_rx.clone());
        if let (Some(top), Some(token)) = (shared.cfg.top.clone(), shared.cfg.join_token.clone()) {
            let req = peerdial_top::JoinRequest {
                area: shared.cfg.area.to_string(),
                token,
                dns: endpoints.dns,
                http: format!("http://{}", endpoints.http),
                sip: Some(endpoints.sip),
            };
            tokio::spawn(relay::run(shared.clone(), top.clone(), stop_rx.clone()));
            tokio::spawn(push::run(shared.clone(), top.clone(), req.token.clone(), stop_rx.clone()));
            tokio::spawn(peerdial_top::join_loop(top, req, stop_rx.clone()));
        }
        if let (Some(primary), Some(rx)) = (shared.cfg.update_primary, shared.take_updates()) {
            tokio::spawn(update::update_loop(shared.clone(), primary, rx, stop_rx.clone()));
        }
        if !shared.cfg.secondaries.is_empty() {
            tokio::spawn(notify::notify_loop(shared.clone(), stop_rx.clone()));
        }
        tokio::spawn(presence::timer_loop(shared.clone(), stop_rx.clone()));
        tokio::spawn(channels::run(shared.clone(), stop_rx.clone()));
        tokio::spawn(mailbox::record_states(shared.clone(), stop_rx.clone()));
        tokio::spawn(mailbox::retention_loop(shared.clone(), stop_rx.clone()));
        tokio::spawn(mailbox_mwi::retransmit_loop(shared.clone(), stop_rx.clone()));
        tokio::spawn(expiry_loop(shared.clone(), stop_rx));
        tracing::info!(area = %shared.cfg.area, sip = %endpoints.sip, dns = %endpoints.dns, http = %endpoints.http, control = %endpoints.control, "region started");
        Ok(Region {
            shared,
            endpoints,
            stop,
            _lock: lock,
        })
    }

    /// Stops serving and waits until every acknowledged write is on disk.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        // Give in-flight commits a moment to reach the writer queue.
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.shared.store.clone().close().await;
    }
}

/// Expires stale bindings once a second: durable first, then out of DNS.
async fn expiry_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let removed = shared.registrar.lock().expect("registrar lock").handle_timeout(now_ms());
        for change in removed {
            shared.presence.binding(change.number(), None);
            shared.push.on_change(&change);
            let shared = shared.clone();
            tokio::spawn(async move {
                if let Err(e) = shared.persist(&change).await {
                    tracing::error!(error = %e, "could not persist an expiry; it will be retried at start-up");
                }
                shared.publish(change.number());
            });
        }
    }
}

pub(crate) fn binding_to_row(n: peerdial_number::Number, b: &Binding) -> peerdial_store::BindingRow {
    peerdial_store::BindingRow {
        number: n.as_u64() as i64,
        uri: b.uri.clone(),
        contact: b.contact.clone(),
        transport: b.transport.as_str().into(),
        addr: b.addr.to_string(),
        expires_ms: b.expires_at_ms as i64,
        call_id: b.call_id.clone(),
        cseq: b.cseq as i64,
    }
}

pub(crate) fn row_to_binding(r: &peerdial_store::BindingRow) -> Result<(peerdial_number::Number, Binding), RegionError> {
    let bad = |what: &str| RegionError::BadRow(format!("binding {}: bad {what}", r.number));
    let n = peerdial_number::Number::from_u64(r.number as u64).map_err(|_| bad("number"))?;
    Ok((
        n,
        Binding {
            uri: r.uri.clone(),
            contact: r.contact.clone(),
            transport: Transport::parse(&r.transport).ok_or_else(|| bad("transport"))?,
            addr: r.addr.parse().map_err(|_| bad("addr"))?,
            expires_at_ms: r.expires_ms as u64,
            call_id: r.call_id.clone(),
            cseq: r.cseq as u32,
        },
    ))
}

pub(crate) fn change_to_write(c: &Change) -> peerdial_store::Write {
    match c {
        Change::Upsert(n, b) => peerdial_store::Write::UpsertBinding(binding_to_row(*n, b)),
        Change::Remove(n) => peerdial_store::Write::DeleteBinding(n.as_u64() as i64),
    }
}
