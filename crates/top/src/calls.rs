//! Dialing (issue 13): `POST /api/v1/calls` with the dialer's talker (or
//! "any") and the callee (a user or a number) → the directory's match →
//! the controller; `GET /api/v1/calls/{id}?after=N` (waits for news) for
//! progress; `DELETE /api/v1/calls/{id}` cancels. Only the dialer who
//! placed a call sees or cancels it; floods are limited per user.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use peerdial_directory::{match_pair, Account, Callee, Refusal, Wanted};
use peerdial_net::http_server::{error, json_body};
use peerdial_number::Number;
use peerdial_sip::pairing::{Leg, Progress};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::controller::Command;
use crate::talkers::talkers_of;
use crate::users::{now_ms, user};
use crate::TopShared;

/// Calls a user may have being set up or running at once.
pub const MAX_LIVE: usize = 2;
/// New calls a user may place per minute.
pub const MAX_PER_MINUTE: usize = 10;
/// How long a finished call's record stays readable.
const KEEP_MS: u64 = 10 * 60 * 1000;

struct Record {
    owner: Number,
    summary: Value,
    events: Vec<Value>,
    over_at: Option<u64>,
}

/// What `POST /api/v1/calls/{id}/participants` may do with a call.
pub(crate) enum Growable {
    /// Over, or not connected yet.
    No,
    Conference,
    /// Connected: it becomes a conference; the labels of its two talkers.
    TwoParty([String; 2]),
}

/// Every call's progress, for the API; filled by the controller.
#[derive(Default)]
pub(crate) struct CallBook {
    calls: Mutex<HashMap<u64, Record>>,
    placed: Mutex<HashMap<Number, VecDeque<u64>>>,
    changed: Notify,
    next: AtomicU64,
}

impl CallBook {
    pub(crate) fn push(&self, id: u64, p: Progress) {
        let over = matches!(p, Progress::Failed { .. } | Progress::Ended { .. });
        let mut ev = serde_json::to_value(&p).unwrap_or(Value::Null);
        ev["text"] = Value::String(describe(&p));
        self.push_value(id, ev, over);
    }

    /// One event (with its `text`) for call `id`; `over`: the last one.
    pub(crate) fn push_value(&self, id: u64, ev: Value, over: bool) {
        if let Some(r) = self.calls.lock().expect("calls").get_mut(&id) {
            r.events.push(ev);
            if over {
                r.over_at = Some(now_ms());
            }
        }
        self.changed.notify_waiters();
    }

    /// Whether call `id` of `owner` can take one more talker, and how. A
    /// connected two-party call is marked a conference here, so a second
    /// request joins the conference it is becoming.
    pub(crate) fn growable(&self, id: u64, owner: Number) -> Option<Growable> {
        let mut calls = self.calls.lock().expect("calls");
        let r = calls.get_mut(&id).filter(|r| r.owner == owner)?;
        if r.over_at.is_some() {
            return Some(Growable::No);
        }
        if r.summary["conference"] == true {
            return Some(Growable::Conference);
        }
        if !r.events.iter().any(|e| e["event"] == "connected") {
            return Some(Growable::No);
        }
        let text = |k: &str| r.summary[k].as_str().unwrap_or_default().to_string();
        let labels = [text("talker"), format!("{} ({})", text("callee"), text("callee_talker"))];
        r.summary["conference"] = Value::Bool(true);
        Some(Growable::TwoParty(labels))
    }

    /// Admits a new call of `owner`, or says why not (429).
    fn admit(&self, owner: Number, now: u64) -> Result<(), String> {
        let live = self
            .calls
            .lock()
            .expect("calls")
            .values()
            .filter(|r| r.owner == owner && r.over_at.is_none())
            .count();
        if live >= MAX_LIVE {
            return Err(format!("you already have {live} calls being set up or running"));
        }
        self.admit_join(owner, now)
    }

    /// Counts a request against `owner`'s calls a minute (a new call, or
    /// someone added to a conference), or says why not (429).
    pub(crate) fn admit_join(&self, owner: Number, now: u64) -> Result<(), String> {
        let mut placed = self.placed.lock().expect("placed");
        placed.retain(|_, q| {
            while q.front().is_some_and(|t| now.saturating_sub(*t) >= 60_000) {
                q.pop_front();
            }
            !q.is_empty()
        });
        let q = placed.entry(owner).or_default();
        if q.len() >= MAX_PER_MINUTE {
            return Err(format!("at most {MAX_PER_MINUTE} calls a minute: try again shortly"));
        }
        q.push_back(now);
        Ok(())
    }

    pub(crate) fn open(&self, owner: Number, summary: Value) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let now = now_ms();
        let mut calls = self.calls.lock().expect("calls");
        calls.retain(|_, r| r.over_at.is_none_or(|t| now.saturating_sub(t) < KEEP_MS));
        calls.insert(
            id,
            Record {
                owner,
                summary,
                events: Vec::new(),
                over_at: None,
            },
        );
        id
    }

    /// The call's summary and events after `after`, if `owner` placed it.
    fn view(&self, id: u64, owner: Number, after: usize) -> Option<(Value, Vec<Value>, bool)> {
        let calls = self.calls.lock().expect("calls");
        let r = calls.get(&id).filter(|r| r.owner == owner)?;
        Some((
            r.summary.clone(),
            r.events.iter().skip(after).cloned().collect(),
            r.over_at.is_some(),
        ))
    }
}

/// Where a peerdial number's talker is reachable now: the contact its
/// region publishes (the NAPTR of order 10). The mailbox record (the
/// region's own SIP address) means the phone is offline.
async fn contact(shared: &TopShared, number: &str) -> Result<Leg, String> {
    let n = Number::parse(number).map_err(|e| e.to_string())?;
    let dns = shared.dns_for(n).ok_or("no region of this network holds it")?;
    let server = dns.server_for(n).await.map_err(|e| e.to_string())?;
    let found = peerdial_resolve::lookup(server, n, &shared.cfg.root_domain)
        .await
        .map_err(|e| e.to_string())?;
    let uri = match found {
        // Only the mailbox (order 20) left: the phone is not online.
        peerdial_resolve::Lookup::Found { then, .. } if then.is_empty() => return Err("offline".into()),
        peerdial_resolve::Lookup::Found { uri, .. } => uri,
        peerdial_resolve::Lookup::NoSuchNumber => return Err("no such number".into()),
    };
    let addr = peerdial_sip::call::uri_addr(&uri).ok_or("its contact is not an address")?;
    if shared.region_sip(n) == Some(addr) {
        return Err("offline".into());
    }
    Ok(Leg { uri, next_hop: addr })
}

/// One progress line as a dialer shows it.
pub fn describe(p: &Progress) -> String {
    match p {
        Progress::CallingTalker => "calling your talker".into(),
        Progress::TalkerAnswered => "your talker answered".into(),
        Progress::CallingCallee => "calling the callee".into(),
        Progress::Ringing => "ringing".into(),
        Progress::Connected => "connected".into(),
        Progress::Ended { by } => match by {
            Some(peerdial_sip::pairing::Side::Talker) => "ended: your talker hung up".into(),
            Some(peerdial_sip::pairing::Side::Callee) => "ended: the callee hung up".into(),
            None => "ended: hung up by the dialer".into(),
        },
        Progress::Failed { reason, .. } => format!("failed: {reason}"),
    }
}

pub fn routes() -> Router<Arc<TopShared>> {
    Router::new()
        .route("/api/v1/calls", post(place))
        .route("/api/v1/calls/{id}", get(progress).delete(cancel))
        .route("/api/v1/calls/{id}/participants", post(crate::conference::join))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallRequest {
    /// A talker's name, or "any".
    talker: String,
    /// A user's or a peerdial number.
    #[serde(default)]
    callee: Option<String>,
    /// Two or more: a conference (see `conference`).
    #[serde(default)]
    callees: Option<Vec<String>>,
}

/// The callee `text` names: a user (their talkers) or a number some
/// region holds; 400 or 404 otherwise.
pub(crate) async fn callee_of(shared: &TopShared, text: &str) -> Result<Callee, Response> {
    let callee = match Number::parse(text) {
        Ok(n) if !n.is_none() => n,
        _ => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("invalid callee {text:?}: a user's or a peerdial number"),
            ))
        }
    };
    match talkers_of(shared, callee).await {
        Ok(t) if !t.is_empty() => Ok(Callee::User(t)),
        Ok(_) if shared.dns_for(callee).is_some() => Ok(Callee::Number(callee.to_string())),
        Ok(_) => Err(error(
            StatusCode::NOT_FOUND,
            format!("{callee} is no user or number of this network"),
        )),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, format!("the top's database: {e}"))),
    }
}

/// Where to send the INVITE for one talker's account: a foreign
/// account through its server to its address of record; a peerdial
/// number at its contact.
pub(crate) async fn leg_of(shared: &TopShared, account: &Account) -> Result<Leg, String> {
    match account {
        Account::Sip { aor, server } => match server.parse::<SocketAddr>() {
            Ok(hop) => Ok(Leg {
                uri: aor.clone(),
                next_hop: hop,
            }),
            Err(_) => Err(format!("its server {server:?} is not an address")),
        },
        Account::Peerdial { number } => contact(shared, number).await,
    }
}

pub(crate) fn refusal(r: &Refusal) -> Response {
    let status = match r {
        Refusal::NotOwned(_) | Refusal::Unverified(_) => StatusCode::FORBIDDEN,
        Refusal::NoTalker | Refusal::CalleeUnreachable | Refusal::NoRoute => StatusCode::CONFLICT,
    };
    error(status, r.to_string())
}

/// The signed-in dialer, counted against its limits by `admit` (every
/// request counts, refused or not: a flood is a flood), and its request.
pub(crate) async fn admitted<T: serde::de::DeserializeOwned>(
    shared: &TopShared,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    admit: fn(&CallBook, Number, u64) -> Result<(), String>,
) -> Result<(Number, T), Response> {
    let me = user(shared, headers).await?;
    admit(&shared.dialing.book, me, now_ms()).map_err(|why| error(StatusCode::TOO_MANY_REQUESTS, why))?;
    Ok((me, json_body(body, crate::MAX_BODY)?))
}

async fn place(State(shared): State<Arc<TopShared>>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    let (me, req): (Number, CallRequest) = match admitted(&shared, &headers, body, CallBook::admit).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let wanted = match req.talker.trim() {
        "any" | "" => Wanted::Any,
        name => Wanted::Named(name.to_string()),
    };
    let callee_text = match (req.callee, req.callees) {
        (None, Some(list)) => return crate::conference::place(&shared, me, &wanted, &list).await,
        (Some(c), None) => c,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "give either \"callee\" (a call) or \"callees\" (a conference)".into(),
            )
        }
    };
    let theirs = match callee_of(&shared, &callee_text).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let callee = Number::parse(&callee_text).expect("checked by callee_of");
    let mine = match talkers_of(&shared, me).await {
        Ok(t) => t,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("the top's database: {e}")),
    };
    let pair = match match_pair(&mine, &wanted, &theirs) {
        Ok(p) => p,
        Err(r) => return refusal(&r),
    };
    let legs = match (&pair.caller.account, &pair.callee.account) {
        (Account::Sip { server: a, .. }, Account::Sip { server: b, .. }) if a != b => {
            Err("the matched accounts are on different servers".to_string())
        }
        (Account::Sip { .. }, Account::Sip { .. }) | (Account::Peerdial { .. }, Account::Peerdial { .. }) => {
            match (
                leg_of(&shared, &pair.caller.account).await,
                leg_of(&shared, &pair.callee.account).await,
            ) {
                (Ok(a), Ok(b)) => Ok((a, b)),
                (Err(e), _) => Err(format!("your talker {:?}: {e}", pair.caller.name)),
                (_, Err(e)) => Err(format!("the callee's talker {:?}: {e}", pair.callee.name)),
            }
        }
        _ => Err("the matched accounts are on different kinds of server".into()),
    };
    let (talker, callee_leg) = match legs {
        Ok(l) => l,
        Err(e) => return error(StatusCode::CONFLICT, e),
    };
    let summary = json!({
        "talker": pair.caller.name,
        "callee": callee.to_string(),
        "callee_talker": pair.callee.name,
        "route": pair.route,
        "why": pair.why,
        "reason": pair.why.text(),
    });
    let id = shared.dialing.book.open(me, summary.clone());
    shared.dialing.controller.send(Command::Start {
        id,
        talker,
        callee: callee_leg,
    });
    created(id, summary)
}

/// The 201 for a call or conference opened in the book: its summary, its
/// id and where its progress is.
pub(crate) fn created(id: u64, mut body: serde_json::Value) -> Response {
    body["id"] = json!(id);
    body["progress"] = json!(format!("/api/v1/calls/{id}"));
    (StatusCode::CREATED, Json(body)).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct After {
    #[serde(default)]
    after: usize,
    /// Seconds to wait for news (at most 25).
    #[serde(default)]
    wait: u64,
}

async fn progress(State(shared): State<Arc<TopShared>>, Path(id): Path<u64>, Query(q): Query<After>, headers: HeaderMap) -> Response {
    let me = match user(&shared, &headers).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let book = &shared.dialing.book;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(q.wait.min(25));
    loop {
        let changed = book.changed.notified();
        let Some((summary, events, over)) = book.view(id, me, q.after) else {
            return error(StatusCode::NOT_FOUND, format!("you have no call {id}"));
        };
        if !events.is_empty() || over || tokio::time::Instant::now() >= deadline {
            let mut body = summary;
            body["id"] = json!(id);
            body["next"] = json!(q.after + events.len());
            body["events"] = Value::Array(events);
            body["over"] = json!(over);
            return Json(body).into_response();
        }
        let _ = tokio::time::timeout_at(deadline, changed).await;
    }
}

async fn cancel(State(shared): State<Arc<TopShared>>, Path(id): Path<u64>, headers: HeaderMap) -> Response {
    let me = match user(&shared, &headers).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    if shared.dialing.book.view(id, me, usize::MAX).is_none() {
        return error(StatusCode::NOT_FOUND, format!("you have no call {id}"));
    }
    shared.dialing.controller.send(Command::Cancel { id });
    (StatusCode::ACCEPTED, Json(json!({"id": id, "cancelling": true}))).into_response()
}

/// What the top keeps for dialing: the calls, the controller, and the
/// verification codes waiting to be typed back.
pub(crate) struct Dialing {
    pub(crate) book: Arc<CallBook>,
    pub(crate) controller: crate::controller::Controller,
    pub(crate) codes: Mutex<peerdial_directory::Codes>,
}

impl Dialing {
    pub(crate) fn start(sip: SocketAddr, stop: tokio::sync::watch::Receiver<bool>) -> std::io::Result<Dialing> {
        let book = Arc::new(CallBook::default());
        let controller = crate::controller::Controller::start(sip, book.clone(), stop)?;
        Ok(Dialing {
            book,
            controller,
            codes: Mutex::new(Default::default()),
        })
    }

    /// Where the controller's SIP socket is.
    pub fn sip_addr(&self) -> SocketAddr {
        self.controller.local.addr
    }
}
