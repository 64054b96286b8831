//! `peerdial cellular-sim`: a stand-in for the mobile network, for tests
//! and `peerdial up`. It carries what a real network would between mobile
//! phones: a call placed from A to MSISDN B becomes a `ring` event for B,
//! a release reaches both ends, and it is the SMS centre the rendezvous's
//! SMS webhook posts codes to (`POST /sim/v1/sms {"to", "text"}`), handing
//! each SMS to its phone as an `sms` event. Phones long-poll
//! `GET /sim/v1/events/{msisdn}?wait=SECONDS`.
//!
//! It is not a model of a radio network: no voice path, no billing, no
//! authentication — never expose it beyond loopback.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Args;
use peerdial_rendezvous::Msisdn;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::watch;

/// Events kept per phone that has not collected them.
const MAX_QUEUED: usize = 100;

#[derive(Args, Debug)]
pub struct SimArgs {
    /// HTTP address of the simulator's API (and SMS webhook).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8090")]
    http: SocketAddr,
}

#[derive(Default)]
struct SimState {
    queues: HashMap<Msisdn, VecDeque<Value>>,
    /// Calls up: id → (from, to).
    calls: HashMap<String, (Msisdn, Msisdn)>,
    next: u64,
}

struct Sim {
    state: Mutex<SimState>,
    /// Bumped on every event, to wake long polls.
    changed: watch::Sender<u64>,
}

impl Sim {
    fn push(&self, to: &Msisdn, event: Value) {
        let mut st = self.state.lock().expect("sim lock");
        let q = st.queues.entry(to.clone()).or_default();
        if q.len() >= MAX_QUEUED {
            q.pop_front();
        }
        q.push_back(event);
        self.changed.send_modify(|n| *n += 1);
    }
}

fn bad(status: StatusCode, why: String) -> Response {
    (status, Json(json!({ "error": why }))).into_response()
}

/// Binds the simulator on `addr` and serves it until `stop`; its address.
pub async fn start(addr: SocketAddr, mut stop: watch::Receiver<bool>) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cellular-sim cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    let sim = Arc::new(Sim {
        state: Mutex::new(SimState::default()),
        changed: watch::channel(0).0,
    });
    let app = Router::new()
        .route("/sim/v1/calls", post(place))
        .route("/sim/v1/calls/{id}/release", post(release))
        .route("/sim/v1/sms", post(sms))
        .route("/sim/v1/events/{msisdn}", get(events))
        .with_state(sim);
    tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stop.changed().await;
        });
        if let Err(e) = serve.await {
            tracing::error!("cellular-sim failed: {e}");
        }
    });
    Ok(bound)
}

pub async fn run(args: SimArgs) -> Result<()> {
    let (stop, rx) = watch::channel(false);
    let addr = start(args.http, rx).await?;
    println!("peerdial cellular-sim ready: http={addr}");
    println!("  SMS webhook for the top:  --sms-webhook http://{addr}/sim/v1/sms");
    println!("  mobile phones:            peerdial phone --cellular http://{addr} --msisdn +… --imsi … --rendezvous http://TOP");
    crate::wait_for_signal().await;
    let _ = stop.send(true);
    Ok(())
}

#[derive(Deserialize)]
struct Placed {
    from: String,
    to: String,
}

#[allow(clippy::result_large_err)] // the error is the response itself
fn msisdn(s: &str) -> Result<Msisdn, Response> {
    Msisdn::parse(s).map_err(|e| bad(StatusCode::BAD_REQUEST, e.to_string()))
}

async fn place(State(sim): State<Arc<Sim>>, Json(p): Json<Placed>) -> Response {
    let (from, to) = match (msisdn(&p.from), msisdn(&p.to)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let id = {
        let mut st = sim.state.lock().expect("sim lock");
        st.next += 1;
        let id = format!("c{}", st.next);
        st.calls.insert(id.clone(), (from.clone(), to.clone()));
        id
    };
    println!("sim: mobile call {id} from {from} to {to}");
    sim.push(&to, json!({ "kind": "ring", "call": id, "from": from.as_str() }));
    Json(json!({ "call": id })).into_response()
}

async fn release(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Response {
    let Some((from, to)) = sim.state.lock().expect("sim lock").calls.remove(&id) else {
        return bad(StatusCode::NOT_FOUND, format!("no mobile call {id} is up"));
    };
    println!("sim: mobile call {id} released");
    for m in [&from, &to] {
        sim.push(m, json!({ "kind": "released", "call": id }));
    }
    Json(json!({ "status": "released" })).into_response()
}

#[derive(Deserialize)]
struct Sms {
    to: String,
    text: String,
}

async fn sms(State(sim): State<Arc<Sim>>, Json(s): Json<Sms>) -> Response {
    let to = match msisdn(&s.to) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let text: String = s.text.chars().take(480).collect();
    // The simulated handset's screen, for whoever follows along.
    println!("sim: SMS to {to}: {text}");
    sim.push(&to, json!({ "kind": "sms", "text": text }));
    Json(json!({ "status": "delivered" })).into_response()
}

#[derive(Deserialize)]
struct Wait {
    wait: Option<u64>,
}

async fn events(State(sim): State<Arc<Sim>>, Path(m): Path<String>, Query(w): Query<Wait>) -> Response {
    let m = match msisdn(&m) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let mut changed = sim.changed.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(w.wait.unwrap_or(0).min(25));
    loop {
        let drained: Vec<Value> = sim
            .state
            .lock()
            .expect("sim lock")
            .queues
            .get_mut(&m)
            .map(|q| q.drain(..).collect())
            .unwrap_or_default();
        if !drained.is_empty() {
            return Json(json!({ "events": drained })).into_response();
        }
        if tokio::time::timeout_at(deadline, changed.changed()).await.is_err() {
            return Json(json!({ "events": [] })).into_response();
        }
    }
}
