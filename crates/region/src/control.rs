//! The region as controller for its own numbers (issue 13: "a region
//! controls calls for its numbers"; "the region hosts a mixer: it calls
//! each talker"). The top matches a dialer's call; when both talkers (or
//! every talker of a conference) are numbers of this region it hands the
//! call here, and this region's `peerdial_control::Controller` — on its
//! own UDP address, `--control` — sends the INVITEs and hosts the mixer.
//! The HTTP API (`peerdial_control::api`) is for the top only: it must
//! carry the join token this region shares with the top it joined.
//! Talkers are found from the registrar's bindings and presence's
//! liveness, as the zone publishes them (order-10 NAPTR); a newcomer of
//! another region added to a running call is found through DNS like any
//! peerdial number (`peerdial_control::reach`). The top may sit above a
//! country server, which passes its requests on with its own join token.
//!
//! It is not the matching, the dialer's API or its limits (the top's).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use peerdial_control::api::{Add, After, Start, CALLS_PATH};
use peerdial_control::{CallBook, Command, ControlError, Controller};
use peerdial_net::http_server::{error, json_body};
use peerdial_number::Number;
use peerdial_sip::pairing::Leg;
use serde_json::json;
use tokio::sync::watch;

use crate::Shared;

/// Talkers in one conference this region hosts.
const MAX_TALKERS: usize = 8;
/// The book's calls all belong to the top; one owner stands for it.
const TOP: Number = Number::NONE;

pub(crate) struct Control {
    shared: Arc<Shared>,
    book: Arc<CallBook>,
    controller: Controller,
}

impl Control {
    /// Starts the controller on its bound UDP socket (`--control`).
    pub(crate) fn start(
        shared: Arc<Shared>,
        socket: std::net::UdpSocket,
        stop: watch::Receiver<bool>,
    ) -> Result<Arc<Control>, ControlError> {
        let book = Arc::new(CallBook::default());
        let controller = Controller::start_on(socket, "peerdial-region", book.clone(), stop)?;
        tracing::info!(control = %controller.addr(), "third-party call controller");
        Ok(Arc::new(Control { shared, book, controller }))
    }

    /// Where `text`'s phone is now, if it is a number of this region and
    /// online; the status and reason otherwise.
    #[allow(clippy::result_large_err)] // the error is the response itself
    fn leg(&self, text: &str) -> Result<Leg, Response> {
        let n = Number::parse(text)
            .ok()
            .filter(|n| !n.is_none())
            .ok_or_else(|| error(StatusCode::BAD_REQUEST, format!("invalid number {text:?}")))?;
        let area = self.shared.cfg.area;
        if !area.contains(n) {
            return Err(error(
                StatusCode::FORBIDDEN,
                format!("{n} is not a number of this region ({area}): its own region or the top controls its calls"),
            ));
        }
        let reachable = self.shared.presence.is_reachable(n);
        let reg = self.shared.registrar.lock().expect("registrar lock");
        if !reg.has_credential(n) {
            return Err(error(StatusCode::NOT_FOUND, format!("no such number {n}")));
        }
        let offline = || error(StatusCode::CONFLICT, format!("{n}: offline"));
        let uri = reg.binding(n).filter(|_| reachable).ok_or_else(offline)?.uri.clone();
        let next_hop = peerdial_sip::call::uri_addr(&uri).ok_or_else(offline)?;
        Ok(Leg { uri, next_hop })
    }

    /// A newcomer to a call this region runs: one of its own numbers
    /// ([`Control::leg`]), or any other peerdial number, called where its
    /// region publishes it (design §9: the region's controller calls any
    /// peerdial number it resolves through DNS — its `--resolver`, or the
    /// tree's directory through `--top`).
    #[allow(clippy::result_large_err)] // the error is the response itself
    async fn newcomer(&self, text: &str) -> Result<Leg, Response> {
        let n = match Number::parse(text) {
            Ok(n) if !self.shared.cfg.area.contains(n) && !n.is_none() => n,
            _ => return self.leg(text),
        };
        let Some(dns) = self.shared.watchers.dns() else {
            return Err(error(
                StatusCode::CONFLICT,
                format!("{n} is a number of another region, and this region has no --resolver or --top to find it"),
            ));
        };
        peerdial_control::reach::contact(dns, n, &self.shared.cfg.root_domain)
            .await
            .map_err(|e| match e {
                ControlError::NoSuchNumber => error(StatusCode::NOT_FOUND, format!("no such number {n}")),
                ControlError::Offline => error(StatusCode::CONFLICT, format!("{n}: offline")),
                e => error(StatusCode::BAD_GATEWAY, format!("{n}: its contact cannot be found: {e}")),
            })
    }
}

pub(crate) fn routes(control: Arc<Control>) -> Router {
    Router::new()
        .route(CALLS_PATH, post(start))
        .route(&format!("{CALLS_PATH}/{{id}}"), get(progress).delete(cancel))
        .route(&format!("{CALLS_PATH}/{{id}}/participants"), post(add))
        .layer(DefaultBodyLimit::max(crate::http::MAX_BODY))
        .with_state(control)
}

/// Only the top this region joined: the join token they share, as a
/// bearer token. A region that joined no top takes no control requests.
#[allow(clippy::result_large_err)] // the error is the response itself
fn the_top(c: &Control, headers: &HeaderMap) -> Result<(), Response> {
    let given = headers.get("authorization").and_then(|v| v.to_str().ok());
    peerdial_control::api::from_above(given, c.shared.cfg.join_token.as_deref(), "top").map_err(|why| error(StatusCode::UNAUTHORIZED, why))
}

enum Plan {
    Pair(Leg, Leg),
    Conference(Vec<(String, Leg)>),
}

async fn start(State(c): State<Arc<Control>>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    if let Err(r) = the_top(&c, &headers) {
        return r;
    }
    let req: Start = match json_body(body, crate::http::MAX_BODY) {
        Ok(r) => r,
        Err(r) => return r,
    };
    // Every talker found before anything starts.
    let plan = match (req.talker, req.callee, req.talkers) {
        (Some(t), Some(e), None) => match (c.leg(&t), c.leg(&e)) {
            (Ok(talker), Ok(callee)) => Plan::Pair(talker, callee),
            (Err(r), _) | (_, Err(r)) => return r,
        },
        (None, None, Some(list)) if (3..=MAX_TALKERS).contains(&list.len()) => {
            let mut legs = Vec::new();
            for m in list {
                match c.leg(&m.number) {
                    Ok(l) => legs.push((m.who, l)),
                    Err(r) => return r,
                }
            }
            Plan::Conference(legs)
        }
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("give \"talker\" and \"callee\" (a call) or 3 to {MAX_TALKERS} \"talkers\" (a conference)"),
            )
        }
    };
    let id = c.book.open(TOP, json!({}));
    c.controller.send(match plan {
        Plan::Pair(talker, callee) => Command::Start { id, talker, callee },
        Plan::Conference(legs) => Command::Conference { id, legs },
    });
    (StatusCode::CREATED, Json(json!({"id": id}))).into_response()
}

async fn progress(State(c): State<Arc<Control>>, Path(id): Path<u64>, Query(q): Query<After>, headers: HeaderMap) -> Response {
    if let Err(r) = the_top(&c, &headers) {
        return r;
    }
    match c.book.wait(id, TOP, q.after, q.wait).await {
        Some(v) => Json(peerdial_control::api::progress(q.after, v)).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no call {id}")),
    }
}

async fn cancel(State(c): State<Arc<Control>>, Path(id): Path<u64>, headers: HeaderMap) -> Response {
    if let Err(r) = the_top(&c, &headers) {
        return r;
    }
    if c.book.view(id, TOP, usize::MAX).is_none() {
        return error(StatusCode::NOT_FOUND, format!("no call {id}"));
    }
    c.controller.send(Command::Cancel { id });
    (StatusCode::ACCEPTED, Json(json!({"id": id, "cancelling": true}))).into_response()
}

async fn add(State(c): State<Arc<Control>>, Path(id): Path<u64>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    if let Err(r) = the_top(&c, &headers) {
        return r;
    }
    let req: Add = match json_body(body, crate::http::MAX_BODY) {
        Ok(r) => r,
        Err(r) => return r,
    };
    // A foreign account the top verified: checked as the top checks
    // talkers' accounts, before anything else, and called through its server.
    let foreign = match &req.via {
        Some(v) => match peerdial_directory::Account::sip(&v.aor, &v.server.to_string()) {
            Ok(_) => Some(Leg {
                uri: v.aor.clone(),
                next_hop: v.server,
            }),
            Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
        },
        None => None,
    };
    if c.book.view(id, TOP, usize::MAX).is_none_or(|v| v.over) {
        return error(StatusCode::NOT_FOUND, format!("no running call {id}"));
    }
    let leg = match foreign {
        Some(leg) => leg,
        None => match c.newcomer(&req.number).await {
            Ok(l) => l,
            Err(r) => return r,
        },
    };
    c.controller.send(match req.grow {
        Some(labels) => Command::Grow {
            id,
            labels,
            who: req.who.clone(),
            leg,
        },
        None => Command::Join {
            id,
            who: req.who.clone(),
            leg,
        },
    });
    (StatusCode::ACCEPTED, Json(json!({"id": id, "calling": req.who}))).into_response()
}
