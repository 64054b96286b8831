//! `peerdial switch`: an office or home exchange for a group of devices
//! (design §4, issue 15). It is a registrar for its devices (our phone with
//! `--switch`, standard SIP phones), joins the cloud (the top) with its
//! token and keeps it told which devices it serves, answers the cloud's
//! "will this device take a call from that caller?" with its address, a
//! one-time key and a queue place, admits only INVITEs carrying such a key,
//! bridges them to the device, and keeps a call-waiting queue per device.
//!
//! The SIP work is the sans-I/O [`exchange::Exchange`]; this module is its
//! edge: one UDP socket and one task that owns the exchange, the HTTP API
//! the cloud calls (`POST /api/v1/accept`), and the join loop. It is not a
//! media relay, and it keeps no call state on disk.

pub mod devices;
pub mod exchange;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use peerdial_directory::designation::{AcceptRequest, Accepted, DeviceEntry, SwitchJoin};
use peerdial_net::http_server::{error, json_body};
use peerdial_number::Number;
use serde_json::json;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use exchange::{Designated, Event, Exchange, ExchangeConfig};
use subtle::ConstantTimeEq;

#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("devices: {0}")]
    Devices(String),
    #[error("{0} must name one IP address (callers are told it), not 0.0.0.0")]
    Unspecified(SocketAddr),
}

#[derive(Debug, Clone)]
pub struct SwitchConfig {
    /// The cloud: the top's HTTP URL.
    pub cloud: String,
    /// The token `peerdial top switch add` printed.
    pub token: String,
    pub sip: SocketAddr,
    pub http: SocketAddr,
    pub data: PathBuf,
    /// How long a key the cloud hands out stays good (30 s).
    pub key_lifetime_ms: u64,
    /// How often the switch joins the cloud again.
    pub heartbeat: Duration,
    /// The DNS resolver a device's call to a number with no switch is
    /// looked up with (NAPTR, as a phone does; default: /etc/resolv.conf's);
    /// none: the cloud's directory names the number's region, whose DNS is
    /// then asked (as a phone with `--top` does).
    pub resolver: Option<SocketAddr>,
    /// The root domain numbers' ENUM names are under.
    pub root: String,
}

impl SwitchConfig {
    pub fn new(cloud: String, token: String, data: PathBuf) -> SwitchConfig {
        SwitchConfig {
            cloud,
            token,
            sip: "127.0.0.1:5070".parse().expect("literal"),
            http: "127.0.0.1:8070".parse().expect("literal"),
            data,
            key_lifetime_ms: peerdial_directory::designation::KEY_LIFETIME_MS,
            heartbeat: Duration::from_secs(20),
            resolver: peerdial_resolve::system_resolver().ok(),
            root: "peerdial.internal".into(),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// What the edges ask the exchange's task.
enum Ask {
    Accept {
        caller: Number,
        callee: Number,
        reply: oneshot::Sender<Result<Accepted, String>>,
    },
    Devices(oneshot::Sender<Vec<DeviceEntry>>),
    /// The cloud's route for one of our devices' outgoing calls.
    Designated {
        id: u64,
        answer: Designated,
    },
}

struct Api {
    secret: String,
    ask: mpsc::Sender<Ask>,
}

pub struct Switch {
    pub sip: SocketAddr,
    pub http: SocketAddr,
    stop: watch::Sender<bool>,
}

impl Switch {
    pub async fn start(cfg: SwitchConfig) -> Result<Switch, SwitchError> {
        for a in [cfg.sip, cfg.http] {
            if a.ip().is_unspecified() {
                return Err(SwitchError::Unspecified(a));
            }
        }
        let list = devices::load(&cfg.data)?;
        let udp = UdpSocket::bind(cfg.sip)
            .await
            .map_err(|source| SwitchError::Bind { addr: cfg.sip, source })?;
        let sip = udp.local_addr().map_err(|source| SwitchError::Bind { addr: cfg.sip, source })?;
        let listener = tokio::net::TcpListener::bind(cfg.http)
            .await
            .map_err(|source| SwitchError::Bind { addr: cfg.http, source })?;
        let http = listener
            .local_addr()
            .map_err(|source| SwitchError::Bind { addr: cfg.http, source })?;
        let x = Exchange::new(
            ExchangeConfig {
                addr: sip,
                nonce_key: rand::random(),
                key_lifetime_ms: cfg.key_lifetime_ms,
            },
            list,
        );
        let (stop, stop_rx) = watch::channel(false);
        let (ask, asks) = mpsc::channel(1024);
        let (changed_tx, changed) = mpsc::channel(8);
        let cloud = Cloud {
            url: cfg.cloud.clone(),
            token: cfg.token.clone(),
            ask: ask.clone(),
            resolver: cfg.resolver,
            root: cfg.root.clone(),
            wake_key: Default::default(),
        };
        tokio::spawn(run(x, udp, asks, changed_tx, cloud, cfg.data.clone(), stop_rx.clone()));
        let secret = hex::encode(rand::random::<[u8; 24]>());
        let api = Arc::new(Api {
            secret: secret.clone(),
            ask: ask.clone(),
        });
        let app = Router::new()
            .route("/api/v1/accept", post(accept))
            .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint".into()) })
            .with_state(api);
        let mut s = stop_rx.clone();
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = s.changed().await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "switch HTTP server failed");
            }
        });
        let me = (sip, format!("http://{http}"), secret);
        tokio::spawn(join_loop(cfg, me, ask, changed, stop_rx));
        tracing::info!(%sip, %http, "switch started");
        Ok(Switch { sip, http, stop })
    }

    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }
}

/// `POST /api/v1/accept` from the cloud (Bearer: the secret of our join).
async fn accept(State(api): State<Arc<Api>>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    let ok = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t.trim().as_bytes().ct_eq(api.secret.as_bytes()).into());
    if !ok {
        return error(StatusCode::UNAUTHORIZED, "only the cloud asks".into());
    }
    let req: AcceptRequest = match json_body(body, 4096) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let (Ok(caller), Ok(callee)) = (Number::parse(&req.caller), Number::parse(&req.callee)) else {
        return error(StatusCode::BAD_REQUEST, "caller and callee are numbers".into());
    };
    let (reply, answer) = oneshot::channel();
    if api.ask.send(Ask::Accept { caller, callee, reply }).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "stopping".into());
    }
    match answer.await {
        Ok(Ok(a)) => Json(a).into_response(),
        Ok(Err(why)) => (StatusCode::CONFLICT, Json(json!({ "error": why }))).into_response(),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "stopping".into()),
    }
}

fn log(ev: Event) {
    match ev {
        Event::Registered { number, addr } => tracing::info!(%number, %addr, "registered"),
        Event::Refused { callee, code, why } => tracing::info!(%callee, code, %why, "call refused"),
        Event::Queued { caller, callee, place } => tracing::info!(%caller, %callee, place, "caller waits in the queue"),
        Event::Connecting { caller, callee } => tracing::info!(%caller, %callee, "calling the device"),
        Event::Connected { caller, callee } => tracing::info!(%caller, %callee, "connected"),
        Event::Ended { caller, callee } => tracing::info!(%caller, %callee, "call ended"),
        Event::WakeTokenRefused { caller, callee, why } => {
            tracing::warn!(%caller, %callee, %why, "the woken callee's answer has no valid wake token: call ended")
        }
        Event::Designate { caller, callee, .. } => tracing::info!(%caller, %callee, "asking the cloud for the route of an outgoing call"),
    }
}

/// The exchange's task: the socket, the clock, the cloud's questions, and
/// `devices.json` read again every few seconds.
async fn run(
    mut x: Exchange,
    udp: UdpSocket,
    mut asks: mpsc::Receiver<Ask>,
    changed: mpsc::Sender<()>,
    cloud: Cloud,
    data: PathBuf,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 65_536];
    let mut reload = tokio::time::interval(Duration::from_secs(2));
    loop {
        let wait = x
            .poll_timeout()
            .map_or(Duration::from_secs(1), |t| Duration::from_millis(t.saturating_sub(now_ms())));
        tokio::select! {
            r = udp.recv_from(&mut buf) => match r {
                Ok((n, from)) => x.handle_datagram(&buf[..n], from, now_ms()),
                Err(e) => tracing::debug!(error = %e, "SIP socket"),
            },
            a = asks.recv() => match a {
                Some(Ask::Accept { caller, callee, reply }) => {
                    let _ = reply.send(x.accept(caller, callee, now_ms()));
                }
                Some(Ask::Devices(reply)) => {
                    let _ = reply.send(entries(&x));
                }
                Some(Ask::Designated { id, answer }) => x.designated(id, answer, now_ms()),
                None => return,
            },
            _ = tokio::time::sleep(wait) => x.handle_timeout(now_ms()),
            _ = reload.tick() => {
                if let Ok(list) = devices::load(&data) {
                    let before = entries(&x);
                    x.set_devices(list);
                    if entries(&x) != before {
                        let _ = changed.try_send(());
                    }
                }
            }
            _ = stop.changed() => return,
        }
        while let Some(t) = x.poll_transmit() {
            let _ = udp.send_to(&t.data, t.to).await;
        }
        while let Some(ev) = x.poll_event() {
            if let Event::Designate { id, caller, callee } = ev {
                let cloud = cloud.clone();
                tokio::spawn(async move {
                    let answer = designate(&cloud, caller, callee).await;
                    tracing::info!(%caller, %callee, ?answer, "designated by the cloud");
                    let _ = cloud.ask.send(Ask::Designated { id, answer }).await;
                });
            }
            log(ev);
        }
    }
}

/// What a device's call out needs: the cloud, and DNS for direct routes.
#[derive(Clone)]
struct Cloud {
    url: String,
    token: String,
    ask: mpsc::Sender<Ask>,
    resolver: Option<SocketAddr>,
    root: String,
    /// The cloud's key for wake tokens, once fetched.
    wake_key: peerdial_push::token::CloudKey,
}

/// How long a call waits for a callee the cloud woke by push to register.
const PUSH_WAIT: Duration = Duration::from_secs(15);

/// Looks `callee` up as a phone does (NAPTR): with the switch's resolver,
/// or through the cloud's directory when it has none.
async fn lookup(cloud: &Cloud, callee: Number) -> Option<Result<peerdial_resolve::Lookup, peerdial_resolve::ResolveError>> {
    let lookup = peerdial_resolve::lookup_either(cloud.resolver, Some(&cloud.url), callee, &cloud.root);
    tokio::time::timeout(Duration::from_secs(5), lookup).await.ok()
}

/// The first contact of `callee` (NAPTR order), as a phone calls it.
async fn direct(cloud: &Cloud, callee: Number, identity: Option<String>) -> Designated {
    let refused = |code: u16, why: &str| Designated::Refused { code, why: why.into() };
    match lookup(cloud, callee).await {
        Some(Ok(peerdial_resolve::Lookup::Found { uri, .. })) => match peerdial_sip::call::uri_addr(&uri) {
            Some(addr) => Designated::Direct { uri, addr, identity },
            None => refused(480, "Temporarily Unavailable (the callee's contact has no IP address)"),
        },
        Some(Ok(peerdial_resolve::Lookup::NoSuchNumber)) => refused(404, "Not Found (no such number)"),
        Some(Err(_)) | None => refused(503, "Service Unavailable (the callee's number did not resolve)"),
    }
}

/// A callee the cloud woke by push: waits (at most [`PUSH_WAIT`]) until
/// its own contact is back in DNS ahead of its mailbox, then calls it
/// there with the cloud's token for the caller, as a phone does.
async fn woken(cloud: &Cloud, callee: Number, token: String, identity: Option<String>) -> Designated {
    let key = match cloud.wake_key.get(&cloud.url).await {
        Ok(k) => k,
        Err(why) => {
            tracing::warn!(%why, "the cloud's key for wake tokens");
            return Designated::Refused {
                code: 503,
                why: "Service Unavailable (the cloud's key for wake tokens is unknown)".into(),
            };
        }
    };
    let deadline = tokio::time::Instant::now() + PUSH_WAIT;
    loop {
        if let Some(Ok(peerdial_resolve::Lookup::Found { uri, then })) = lookup(cloud, callee).await {
            // `then` holds the mailbox once the phone's own contact leads.
            if let (false, Some(addr)) = (then.is_empty(), peerdial_sip::call::uri_addr(&uri)) {
                tracing::info!(%callee, "registered after its push");
                return Designated::Woken {
                    uri,
                    addr,
                    token,
                    key,
                    identity,
                };
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Designated::Refused {
                code: 480,
                why: "Temporarily Unavailable (the callee did not register after its push)".into(),
            };
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Asks the cloud, as this switch, how `caller` (one of our devices)
/// reaches `callee`: another switch (with its key), or directly by DNS.
async fn designate(cloud: &Cloud, caller: Number, callee: Number) -> Designated {
    let (url, token) = (cloud.url.as_str(), cloud.token.as_str());
    let auth = format!("Bearer {token}");
    let body = json!({"callee": callee.digits(), "caller": caller.digits()}).to_string();
    let headers = [("Authorization", auth.as_str())];
    let asked = tokio::time::timeout(
        Duration::from_secs(5),
        peerdial_net::http_client::request_with("POST", url, "/api/v1/calls/designate", &headers, Some(&body)),
    )
    .await;
    let refused = |code: u16, why: &str| Designated::Refused { code, why: why.into() };
    let (status, text) = match asked {
        Err(_) => return refused(408, "Request Timeout (the cloud did not answer)"),
        Ok(Err(_)) => return refused(503, "Service Unavailable (cannot reach the cloud)"),
        Ok(Ok(r)) => r,
    };
    // The cloud's PASSporT for our device, for the direct INVITE.
    let identity = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["identity"].as_str().map(str::to_string))
        .filter(|s| s.len() <= peerdial_identity::MAX_HEADER && !s.contains(['\r', '\n']));
    match status {
        200 => match serde_json::from_str::<peerdial_directory::designation::Route>(&text) {
            Ok(peerdial_directory::designation::Route::Switch { switch, key, .. }) => Designated::Switch { addr: switch, key },
            Ok(peerdial_directory::designation::Route::Direct) => direct(cloud, callee, identity).await,
            Ok(peerdial_directory::designation::Route::Push { token }) => {
                tracing::info!(%callee, "the cloud woke the callee by push; waiting for it to register");
                woken(cloud, callee, token, identity).await
            }
            Err(_) => refused(503, "Service Unavailable (an answer from the cloud we cannot read)"),
        },
        404 => refused(404, "Not Found (invalid call: unknown callee)"),
        403 => refused(403, "Forbidden (the cloud refused the call)"),
        409 => refused(480, "Temporarily Unavailable (the callee's switch refused)"),
        504 => refused(408, "Request Timeout (the callee's switch did not answer)"),
        _ => refused(503, "Service Unavailable (designation failed)"),
    }
}

fn entries(x: &Exchange) -> Vec<DeviceEntry> {
    x.devices()
        .map(|d| DeviceEntry {
            number: d.number.digits(),
            disabled: d.disabled,
        })
        .collect()
}

/// Joins the cloud at start, on every device change, and as a heartbeat.
async fn join_loop(
    cfg: SwitchConfig,
    (sip, http, secret): (SocketAddr, String, String),
    ask: mpsc::Sender<Ask>,
    mut changed: mpsc::Receiver<()>,
    mut stop: watch::Receiver<bool>,
) {
    let auth = format!("Bearer {}", cfg.token);
    let mut told_ok = false;
    loop {
        let (reply, devices) = oneshot::channel();
        if ask.send(Ask::Devices(reply)).await.is_err() {
            return;
        }
        let Ok(devices) = devices.await else { return };
        let body = SwitchJoin {
            sip,
            http: http.clone(),
            secret: secret.clone(),
            devices,
        };
        let body = serde_json::to_string(&body).unwrap_or_default();
        let headers = [("Authorization", auth.as_str())];
        let r = peerdial_net::http_client::request_with("POST", &cfg.cloud, "/api/v1/switches/join", &headers, Some(&body)).await;
        let retry = match r {
            Ok((200, _)) => {
                if !told_ok {
                    tracing::info!(cloud = %cfg.cloud, "joined the cloud");
                    told_ok = true;
                }
                cfg.heartbeat
            }
            Ok((code, text)) => {
                tracing::warn!(cloud = %cfg.cloud, code, answer = %text.chars().take(200).collect::<String>(), "the cloud refused our join");
                told_ok = false;
                Duration::from_secs(2).min(cfg.heartbeat)
            }
            Err(e) => {
                tracing::warn!(cloud = %cfg.cloud, error = %e, "cannot reach the cloud");
                told_ok = false;
                Duration::from_secs(2).min(cfg.heartbeat)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(retry) => {}
            c = changed.recv() => if c.is_none() { return },
            _ = stop.changed() => return,
        }
    }
}
