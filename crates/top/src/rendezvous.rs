//! The identity rendezvous's HTTP edge on the top (issue 14): routes under
//! `/api/v1/rendezvous/`, the SMS gateway (an HTTP webhook, or lines on
//! stdout when none is set), the store of mappings, and the clock that
//! drives the pairing window. The rules live in `peerdial-rendezvous`;
//! this wires them to sockets, time and the database.
//!
//! A call or ring submission is a long poll: the request waits until its
//! other half arrives or the window passes. Every mapping is stored before
//! it is applied, so an acknowledged registration survives a restart. No
//! IMSI reaches a response or a log line: requests are parsed into types
//! that never print one.

// Handlers build their error response once and return it as the Err.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use peerdial_net::http_server::{error, raw_body};
use peerdial_rendezvous::{wire, Change, ImsiHash, Msisdn, Outcome, Rendezvous, RendezvousError, Requested, Ticket};
use peerdial_store::Store;
use rand::SeedableRng;
use serde_json::json;
use tokio::sync::{oneshot, watch, Notify};

use crate::{TopError, TopShared};

/// How the top runs its rendezvous.
#[derive(Debug, Clone)]
pub struct RendezvousSettings {
    /// Database URL (default: sqlite:DIR/top.db).
    pub database: Option<String>,
    /// Where codes are POSTed as `{"to": MSISDN, "text": …}`; None: printed.
    pub sms_webhook: Option<String>,
    /// How long a submission waits for its other half.
    pub window: Duration,
}

impl Default for RendezvousSettings {
    fn default() -> Self {
        RendezvousSettings {
            database: None,
            sms_webhook: None,
            window: Duration::from_secs(30),
        }
    }
}

/// What one waiting submission is told.
#[derive(Debug)]
enum Told {
    Paired {
        peer: Msisdn,
        contact: String,
        key: String,
        expires_in_ms: u64,
    },
    NoMatch,
}

pub struct RendezvousEdge {
    core: Mutex<Core>,
    wake: Notify,
    store: Store,
    sms: Option<String>,
    clock: Instant,
}

struct Core {
    rdv: Rendezvous,
    waiters: HashMap<Ticket, oneshot::Sender<Told>>,
}

impl Core {
    /// Hands every outcome to the request waiting for it.
    fn dispatch(&mut self, now: u64) {
        while let Some(o) = self.rdv.poll_event() {
            match o {
                Outcome::Paired(p) => {
                    tracing::info!(caller = %p.caller, callee = %p.callee, "rendezvous: paired");
                    let left = p.expires.saturating_sub(now);
                    if let Some(tx) = self.waiters.remove(&p.caller_ticket) {
                        let _ = tx.send(Told::Paired {
                            peer: p.callee.clone(),
                            contact: p.callee_contact.clone(),
                            key: p.key.clone(),
                            expires_in_ms: left,
                        });
                    }
                    if let Some(tx) = self.waiters.remove(&p.callee_ticket) {
                        let _ = tx.send(Told::Paired {
                            peer: p.caller,
                            contact: p.caller_contact,
                            key: p.key,
                            expires_in_ms: left,
                        });
                    }
                }
                Outcome::NoMatch { ticket } => {
                    if let Some(tx) = self.waiters.remove(&ticket) {
                        let _ = tx.send(Told::NoMatch);
                    }
                }
            }
        }
    }
}

/// The server's IMSI-hash key: made once (32 random bytes), kept in DIR.
fn secret(dir: &Path) -> Result<Vec<u8>, TopError> {
    let p = dir.join("rendezvous-secret");
    let fail = |e: std::io::Error| TopError::State(format!("{}: {e}", p.display()));
    match std::fs::read_to_string(&p) {
        Ok(t) => hex::decode(t.trim()).map_err(|e| TopError::State(format!("{}: {e}", p.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let s: [u8; 32] = rand::random();
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&p)
                .map_err(fail)?;
            f.write_all(hex::encode(s).as_bytes()).and_then(|_| f.sync_all()).map_err(fail)?;
            Ok(s.to_vec())
        }
        Err(e) => Err(fail(e)),
    }
}

impl RendezvousEdge {
    /// Opens the store, loads the mappings, starts the window clock.
    pub async fn start(
        dir: &Path,
        settings: &RendezvousSettings,
        store: Store,
        stop: watch::Receiver<bool>,
    ) -> Result<Arc<RendezvousEdge>, TopError> {
        let mut cfg = peerdial_rendezvous::Config::default();
        cfg.pairing.window_ms = settings.window.as_millis() as u64;
        let mut rdv = Rendezvous::new(&secret(dir)?, cfg, rand::rngs::StdRng::from_entropy());
        let rows = store
            .rendezvous_devices()
            .await
            .map_err(|e| TopError::State(format!("rendezvous store: {e}")))?;
        for (m, h) in rows {
            match (Msisdn::parse(&m), ImsiHash::from_hex(&h)) {
                (Ok(msisdn), Some(imsi)) => rdv.apply(&Change::Put { msisdn, imsi }),
                _ => tracing::warn!(msisdn = %m, "rendezvous: skipping an unreadable stored mapping"),
            }
        }
        let edge = Arc::new(RendezvousEdge {
            core: Mutex::new(Core {
                rdv,
                waiters: HashMap::new(),
            }),
            wake: Notify::new(),
            store,
            sms: settings.sms_webhook.clone(),
            clock: Instant::now(),
        });
        tokio::spawn(clock(edge.clone(), stop));
        Ok(edge)
    }

    fn now(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    /// Sends a code: to the webhook, or (no gateway set) as a line on stdout
    /// for whoever runs the top by hand. Never to the log.
    async fn send_sms(&self, to: &Msisdn, code: &str) -> Result<(), String> {
        let text = format!("Your peerdial rendezvous code is {code}");
        let Some(url) = &self.sms else {
            println!("SMS to {to}: {text}");
            return Ok(());
        };
        let rest = url.strip_prefix("http://").ok_or("the SMS webhook is not an http:// URL")?;
        let (host, path) = rest
            .split_once('/')
            .map(|(h, p)| (h, format!("/{p}")))
            .unwrap_or((rest, "/".into()));
        let body = json!({ "to": to.as_str(), "text": text }).to_string();
        match peerdial_net::http_client::request("POST", &format!("http://{host}"), &path, Some(&body)).await {
            Ok((s, _)) if (200..300).contains(&s) => Ok(()),
            Ok((s, _)) => Err(format!("the SMS gateway answered {s}")),
            Err(e) => Err(format!("the SMS gateway is unreachable: {e}")),
        }
    }

    /// Registers a submission's waiter, then waits for what it is told.
    async fn wait(&self, submit: impl FnOnce(&mut Rendezvous, u64) -> Result<Ticket, RendezvousError>) -> Response {
        let now = self.now();
        let (rx, window) = {
            let mut core = self.core.lock().expect("rendezvous lock");
            let ticket = match submit(&mut core.rdv, now) {
                Ok(t) => t,
                Err(e) => return refuse(&e),
            };
            let (tx, rx) = oneshot::channel();
            core.waiters.insert(ticket, tx);
            core.dispatch(now);
            (rx, core.rdv.window_ms())
        };
        self.wake.notify_one();
        match tokio::time::timeout(Duration::from_millis(window + 5_000), rx).await {
            Ok(Ok(Told::Paired {
                peer,
                contact,
                key,
                expires_in_ms,
            })) => {
                Json(json!({ "status": "paired", "peer": peer.as_str(), "contact": contact, "key": key, "expires_in_ms": expires_in_ms }))
                    .into_response()
            }
            _ => Json(json!({ "status": "no-match" })).into_response(),
        }
    }

    /// Stores a change, then makes it visible.
    async fn commit(&self, change: Change) -> Result<(), Response> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let stored = match &change {
            Change::Put { msisdn, imsi } => self.store.put_rendezvous_device(msisdn.as_str(), &imsi.to_hex(), now_ms).await,
            Change::Remove { msisdn } => self.store.delete_rendezvous_device(msisdn.as_str()).await.map(|_| ()),
        };
        if let Err(e) = stored {
            tracing::error!("rendezvous: cannot store a mapping: {e}");
            return Err(error(StatusCode::SERVICE_UNAVAILABLE, "could not store the change".into()));
        }
        self.core.lock().expect("rendezvous lock").rdv.apply(&change);
        Ok(())
    }
}

/// Ends windows as they pass.
async fn clock(edge: Arc<RendezvousEdge>, mut stop: watch::Receiver<bool>) {
    loop {
        let next = edge.core.lock().expect("rendezvous lock").rdv.poll_timeout();
        let sleep = next.map(|t| t.saturating_sub(edge.now())).unwrap_or(60_000);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(sleep)) => {}
            _ = edge.wake.notified() => {}
            _ = stop.changed() => return,
        }
        let now = edge.now();
        let mut core = edge.core.lock().expect("rendezvous lock");
        core.rdv.handle_timeout(now);
        core.dispatch(now);
    }
}

fn refuse(e: &RendezvousError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    error(status, e.to_string())
}

fn edge(shared: &TopShared) -> Result<&Arc<RendezvousEdge>, Response> {
    shared
        .rendezvous
        .as_ref()
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "this tree node runs no rendezvous".into()))
}

/// The request's bytes parsed by `parse`, or the response to send.
fn parsed<T>(body: Result<Bytes, BytesRejection>, parse: fn(&[u8]) -> Result<T, RendezvousError>) -> Result<T, Response> {
    let b = raw_body(body, wire::MAX_BODY)?;
    parse(&b).map_err(|e| refuse(&e))
}

pub(crate) fn routes() -> Router<Arc<TopShared>> {
    Router::new()
        .route("/api/v1/rendezvous/devices", post(register))
        .route("/api/v1/rendezvous/devices/verify", post(verify))
        .route("/api/v1/rendezvous/devices/remove", post(remove))
        .route("/api/v1/rendezvous/call", post(call))
        .route("/api/v1/rendezvous/ring", post(ring))
}

type Peer = ConnectInfo<SocketAddr>;

async fn register(State(s): State<Arc<TopShared>>, ConnectInfo(peer): Peer, body: Result<Bytes, BytesRejection>) -> Response {
    let run = async {
        let edge = edge(&s)?;
        let req = parsed(body, wire::parse_device)?;
        let asked = edge
            .core
            .lock()
            .expect("rendezvous lock")
            .rdv
            .register(&req, &peer.ip().to_string(), edge.now());
        match asked.map_err(|e| refuse(&e))? {
            Requested::AlreadyRegistered => Ok(Json(json!({ "status": "registered", "msisdn": req.msisdn.as_str() })).into_response()),
            Requested::SendCode { msisdn, code } => {
                edge.send_sms(&msisdn, &code).await.map_err(|e| {
                    tracing::warn!(%msisdn, "rendezvous: code not sent: {e}");
                    error(StatusCode::BAD_GATEWAY, format!("the code could not be sent: {e}"))
                })?;
                tracing::info!(%msisdn, "rendezvous: code sent");
                Ok((
                    StatusCode::ACCEPTED,
                    Json(json!({ "status": "code-sent", "msisdn": msisdn.as_str() })),
                )
                    .into_response())
            }
        }
    };
    run.await.unwrap_or_else(|r: Response| r)
}

async fn verify(State(s): State<Arc<TopShared>>, body: Result<Bytes, BytesRejection>) -> Response {
    let run = async {
        let edge = edge(&s)?;
        let req = parsed(body, wire::parse_verify)?;
        let change = edge.core.lock().expect("rendezvous lock").rdv.verify(&req, edge.now());
        edge.commit(change.map_err(|e| refuse(&e))?).await?;
        tracing::info!(msisdn = %req.msisdn, "rendezvous: device registered");
        Ok(Json(json!({ "status": "registered", "msisdn": req.msisdn.as_str() })).into_response())
    };
    run.await.unwrap_or_else(|r: Response| r)
}

async fn remove(State(s): State<Arc<TopShared>>, body: Result<Bytes, BytesRejection>) -> Response {
    let run = async {
        let edge = edge(&s)?;
        let req = parsed(body, wire::parse_device)?;
        let change = edge.core.lock().expect("rendezvous lock").rdv.remove(&req);
        edge.commit(change.map_err(|e| refuse(&e))?).await?;
        tracing::info!(msisdn = %req.msisdn, "rendezvous: device removed");
        Ok(Json(json!({ "status": "removed", "msisdn": req.msisdn.as_str() })).into_response())
    };
    run.await.unwrap_or_else(|r: Response| r)
}

async fn call(State(s): State<Arc<TopShared>>, ConnectInfo(peer): Peer, body: Result<Bytes, BytesRejection>) -> Response {
    submission(&s, peer, body, wire::parse_call, |rdv, req, source, now| {
        rdv.submit_call(req, source, now)
    })
    .await
}

async fn ring(State(s): State<Arc<TopShared>>, ConnectInfo(peer): Peer, body: Result<Bytes, BytesRejection>) -> Response {
    submission(&s, peer, body, wire::parse_ring, |rdv, req, source, now| {
        rdv.submit_ring(req, source, now)
    })
    .await
}

type Submit<T> = fn(&mut Rendezvous, &T, &str, u64) -> Result<Ticket, RendezvousError>;

/// A call or ring submission: parsed, submitted, answered when told.
async fn submission<T>(
    s: &TopShared,
    peer: SocketAddr,
    body: Result<Bytes, BytesRejection>,
    parse: fn(&[u8]) -> Result<T, RendezvousError>,
    submit: Submit<T>,
) -> Response {
    let edge = match edge(s) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let req = match parsed(body, parse) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let source = peer.ip().to_string();
    edge.wait(|rdv, now| submit(rdv, &req, &source, now)).await
}
