//! Dialing (issue 13): `POST /api/v1/calls` with the dialer's talker (or
//! "any") and the callee (a user or a number) → the directory's match →
//! the controller; `GET /api/v1/calls/{id}?after=N` (waits for news) for
//! progress; `DELETE /api/v1/calls/{id}` cancels. Only the dialer who
//! placed a call sees or cancels it; floods are limited per user.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use peerdial_control::api::After;
use peerdial_control::{CallBook, Command, Controller};
use peerdial_directory::{match_pair, Account, Callee, Refusal, Route, Wanted};
use peerdial_net::http_server::{error, json_body};
use peerdial_number::Number;
use peerdial_sip::pairing::Leg;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::talkers::talkers_of;
use crate::users::{now_ms, user};
use crate::TopShared;

pub use peerdial_control::book::{MAX_LIVE, MAX_PER_MINUTE};
pub use peerdial_control::describe;

/// Where a peerdial number's talker is reachable now
/// (`peerdial_control::reach`); its region's own SIP address (the
/// mailbox record) means the phone is offline.
async fn contact(shared: &TopShared, number: &str) -> Result<Leg, String> {
    let n = Number::parse(number).map_err(|e| e.to_string())?;
    let dns = shared.dns_for(n).ok_or("no region of this network holds it")?;
    let leg = peerdial_control::reach::contact(&dns, n, &shared.cfg.root_domain)
        .await
        .map_err(|e| e.to_string())?;
    if shared.region_sip(n) == Some(leg.next_hop) {
        return Err("offline".into());
    }
    Ok(leg)
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
        // A region holds its area: a direct child, or one a country
        // server below names.
        Ok(_) if shared.region_http(callee).await.is_some() => Ok(Callee::Number(callee.to_string())),
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
    // Both numbers of one region that joined here: that region's
    // controller runs the call.
    if let (Route::Region { .. }, Account::Peerdial { number: a }, Account::Peerdial { number: b }) =
        (&pair.route, &pair.caller.account, &pair.callee.account)
    {
        if let Some(region) = crate::handoff::region_of(&shared, a) {
            let req = peerdial_control::api::Start {
                talker: Some(a.clone()),
                callee: Some(b.clone()),
                talkers: None,
            };
            return crate::handoff::start(&shared, me, region, req, summary).await;
        }
    }
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

async fn progress(State(shared): State<Arc<TopShared>>, Path(id): Path<u64>, Query(q): Query<After>, headers: HeaderMap) -> Response {
    let me = match user(&shared, &headers).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let Some(v) = shared.dialing.book.wait(id, me, q.after, q.wait).await else {
        return error(StatusCode::NOT_FOUND, format!("you have no call {id}"));
    };
    let mut body = v.summary;
    body["id"] = json!(id);
    body["next"] = json!(q.after + v.events.len());
    body["events"] = Value::Array(v.events);
    body["over"] = json!(v.over);
    Json(body).into_response()
}

async fn cancel(State(shared): State<Arc<TopShared>>, Path(id): Path<u64>, headers: HeaderMap) -> Response {
    let me = match user(&shared, &headers).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    if shared.dialing.book.view(id, me, usize::MAX).is_none() {
        return error(StatusCode::NOT_FOUND, format!("you have no call {id}"));
    }
    match shared.dialing.handed.get(id) {
        Some(rc) => crate::handoff::cancel(&shared, rc),
        None => shared.dialing.controller.send(Command::Cancel { id }),
    }
    (StatusCode::ACCEPTED, Json(json!({"id": id, "cancelling": true}))).into_response()
}

/// What the top keeps for dialing: the calls, the controller, and the
/// verification codes waiting to be typed back.
pub(crate) struct Dialing {
    pub(crate) book: Arc<CallBook>,
    pub(crate) controller: Controller,
    /// Calls a region's controller runs for the top.
    pub(crate) handed: crate::handoff::Handed,
    pub(crate) codes: Mutex<peerdial_directory::Codes>,
}

impl Dialing {
    pub(crate) fn start(sip: SocketAddr, stop: tokio::sync::watch::Receiver<bool>) -> Result<Dialing, peerdial_control::ControlError> {
        let book = Arc::new(CallBook::default());
        let controller = Controller::start(sip, "peerdial-top", book.clone(), stop)?;
        Ok(Dialing {
            book,
            controller,
            handed: Default::default(),
            codes: Mutex::new(Default::default()),
        })
    }

    /// Where the controller's SIP socket is.
    pub fn sip_addr(&self) -> SocketAddr {
        self.controller.addr()
    }
}
