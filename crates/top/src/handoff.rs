//! Calls the top hands to a region (issue 13: "a region controls calls
//! for its numbers"; "the region hosts a mixer"). When the match of a
//! two-party call falls on a peerdial region, or every talker of a
//! conference is a number of one region, the top asks the region's
//! controller to run it (`peerdial_control::api`, with the join token they
//! share as a bearer token) and relays: a task long-polls the region's
//! progress and copies each event unchanged into the top's `CallBook`, so
//! the dialer's API (`GET /api/v1/calls/{id}`) reads the same as for a
//! call the top runs; a cancel or a newcomer goes on to the region.
//!
//! A region below a country server is reached through it, as the yellow
//! pages reach it: the top asks the country server's same API with the
//! token the country server joined it with, and the country server
//! ([`routes`], served only to its parent) hands the call to its region
//! with its own join token and relays it back the same way. No token goes
//! beyond the two servers that already share it.
//!
//! It is not the matching (`calls.rs`, `conference.rs`) nor a controller:
//! foreign-server calls, calls across regions and mixed conferences stay
//! on the top's own (`peerdial_control::Controller`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use peerdial_control::api::{Add, After, Start, CALLS_PATH};
use peerdial_net::http_server::{error, json_body};
use peerdial_number::Number;
use serde_json::{json, Value};

use crate::TopShared;

/// How long one progress request to the region waits for news.
const POLL_SECS: u64 = 20;
/// Unanswered progress requests in a row before the dialer is told the
/// call is lost.
const MAX_MISSES: u32 = 5;

/// A call a region runs: where it is, and its id there.
#[derive(Clone)]
pub(crate) struct RegionCall {
    /// The region's digits (`88602`): who may join its conference.
    pub(crate) prefix: String,
    base: String,
    id: u64,
}

/// The calls handed to regions, by the top's call id.
#[derive(Default)]
pub(crate) struct Handed(Mutex<HashMap<u64, RegionCall>>);

impl Handed {
    pub(crate) fn get(&self, id: u64) -> Option<RegionCall> {
        self.0.lock().expect("handed").get(&id).cloned()
    }
}

/// Where a call of `number`'s region is handed: the region's digits
/// (`88602`) and the HTTP URL to ask — the region's own when it joined
/// this node, else the country server's it joined (which passes it on).
pub(crate) fn region_of(shared: &TopShared, number: &str) -> Option<(String, String)> {
    let digits = Number::parse(number).ok().filter(|n| !n.is_none())?.digits();
    let area = digits.get(..5)?.to_string();
    let children = shared.children.lock().expect("children lock");
    children
        .values()
        .find(|c| digits.starts_with(&c.prefix))
        .map(|c| (area, c.http.clone()))
}

/// One request to a region's controller API; its status and JSON body.
async fn ask(shared: &TopShared, base: &str, method: &str, path: &str, body: Option<String>) -> Result<(u16, Value), String> {
    let auth = format!("Bearer {}", shared.cfg.join_token);
    let (status, text) = peerdial_net::http_client::request_with(method, base, path, &[("Authorization", &auth)], body.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// The region's refusal, passed on to the dialer with its status.
fn passed_on(status: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let why = body["error"].as_str().unwrap_or("the region refused the call");
    error(status, why.to_string())
}

/// Asks the region at `base` to run `req`; on success opens the call in
/// the book for `me` with `summary` and relays its progress.
pub(crate) async fn start(shared: &Arc<TopShared>, me: Number, (prefix, base): (String, String), req: Start, summary: Value) -> Response {
    let body = serde_json::to_string(&req).expect("a start request serialises");
    let rid = match ask(shared, &base, "POST", CALLS_PATH, Some(body)).await {
        Ok((201, v)) => match v["id"].as_u64() {
            Some(id) => id,
            None => return error(StatusCode::BAD_GATEWAY, "the region's controller gave no call id".into()),
        },
        Ok((status, v)) => return passed_on(status, &v),
        Err(e) => {
            return error(
                StatusCode::BAD_GATEWAY,
                format!("the region controlling this call is unreachable: {e}"),
            )
        }
    };
    let id = shared.dialing.book.open(me, summary.clone());
    tracing::info!(call = id, region = %prefix, region_call = rid, "handed to the region's controller");
    shared
        .dialing
        .handed
        .0
        .lock()
        .expect("handed")
        .insert(id, RegionCall { prefix, base, id: rid });
    tokio::spawn(relay(shared.clone(), id));
    crate::calls::created(id, summary)
}

/// Cancels the region's call (the dialer hung up).
pub(crate) fn cancel(shared: &Arc<TopShared>, rc: RegionCall) {
    let shared = shared.clone();
    tokio::spawn(async move {
        let path = format!("{CALLS_PATH}/{}", rc.id);
        if let Err(e) = ask(&shared, &rc.base, "DELETE", &path, None).await {
            tracing::warn!(region = %rc.prefix, "cannot cancel a call the region runs: {e}");
        }
    });
}

/// One more talker (a number of the region) into the region's call `id`.
pub(crate) async fn add(shared: &TopShared, id: u64, rc: &RegionCall, req: Add) -> Response {
    let path = format!("{CALLS_PATH}/{}/participants", rc.id);
    let who = req.who.clone();
    let body = serde_json::to_string(&req).expect("an add request serialises");
    match ask(shared, &rc.base, "POST", &path, Some(body)).await {
        Ok((202, _)) => (StatusCode::ACCEPTED, Json(json!({"id": id, "calling": who}))).into_response(),
        Ok((status, v)) => passed_on(status, &v),
        Err(e) => error(StatusCode::BAD_GATEWAY, format!("the region running this call is unreachable: {e}")),
    }
}

/// Copies the region's events for call `id` into the book until it is
/// over (or the region stops answering: then the dialer is told).
async fn relay(shared: Arc<TopShared>, id: u64) {
    let Some(rc) = shared.dialing.handed.get(id) else { return };
    let book = &shared.dialing.book;
    let (mut after, mut misses) = (0usize, 0u32);
    loop {
        let path = format!("{CALLS_PATH}/{}?after={after}&wait={POLL_SECS}", rc.id);
        match ask(&shared, &rc.base, "GET", &path, None).await {
            Ok((200, v)) => {
                misses = 0;
                let events = v["events"].as_array().cloned().unwrap_or_default();
                let over = v["over"] == true;
                let last = events.len().saturating_sub(1);
                after += events.len();
                for (i, ev) in events.into_iter().enumerate() {
                    book.push_value(id, ev, over && i == last);
                }
                if over {
                    break;
                }
            }
            Ok((status, v)) => {
                lost(
                    book,
                    id,
                    &format!("the region answered {status}: {}", v["error"].as_str().unwrap_or("")),
                );
                break;
            }
            Err(e) => {
                misses += 1;
                if misses >= MAX_MISSES {
                    lost(book, id, &format!("the region running the call is unreachable: {e}"));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    shared.dialing.handed.0.lock().expect("handed").remove(&id);
}

/// Ends the dialer's view of a call the top lost track of.
fn lost(book: &peerdial_control::CallBook, id: u64, reason: &str) {
    tracing::warn!(call = id, "{reason}");
    let ev = json!({"event": "failed", "reason": reason, "text": format!("failed: {reason}")});
    book.push_value(id, ev, true);
}

// At a country server: the calls its parent hands to one of its regions.

/// The parent's calls in this node's book all have one owner.
const PARENT: Number = Number::NONE;

/// The region controller API (`peerdial_control::api`) as a country
/// server serves it to its parent: each call handed on to the region
/// holding its numbers ([`start`]) and relayed back.
pub(crate) fn routes() -> Router<Arc<TopShared>> {
    Router::new()
        .route(CALLS_PATH, post(pass_start))
        .route(&format!("{CALLS_PATH}/{{id}}"), get(pass_progress).delete(pass_cancel))
        .route(&format!("{CALLS_PATH}/{{id}}/participants"), post(pass_add))
}

/// Only this node's parent: the token this node joined it with. A node
/// that joined no parent (the top) takes no control requests.
#[allow(clippy::result_large_err)] // the error is the response itself
fn the_parent(shared: &TopShared, headers: &HeaderMap) -> Result<(), Response> {
    let given = headers.get("authorization").and_then(|v| v.to_str().ok());
    peerdial_control::api::from_above(given, shared.cfg.parent_token.as_deref(), "parent")
        .map_err(|why| error(StatusCode::UNAUTHORIZED, why))
}

/// The parent's call `id`, while this node still relays it.
#[allow(clippy::result_large_err)] // the error is the response itself
fn passed(shared: &TopShared, id: u64) -> Result<RegionCall, Response> {
    let running = shared.dialing.book.view(id, PARENT, usize::MAX).is_some_and(|v| !v.over);
    shared
        .dialing
        .handed
        .get(id)
        .filter(|_| running)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no running call {id}")))
}

async fn pass_start(State(shared): State<Arc<TopShared>>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    if let Err(r) = the_parent(&shared, &headers) {
        return r;
    }
    let req: Start = match json_body(body, crate::MAX_BODY) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let numbers: Vec<&String> = req
        .talker
        .iter()
        .chain(&req.callee)
        .chain(req.talkers.iter().flatten().map(|m| &m.number))
        .collect();
    if numbers.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "give \"talker\" and \"callee\" (a call) or \"talkers\" (a conference)".into(),
        );
    }
    // One region of this node's holds them all; it checks the rest.
    let regions: Vec<_> = numbers.iter().map(|n| region_of(&shared, n)).collect();
    let Some(region) = regions[0].clone().filter(|_| regions.windows(2).all(|w| w[0] == w[1])) else {
        return error(
            StatusCode::FORBIDDEN,
            "not every talker is a number of one region below this server".into(),
        );
    };
    start(&shared, PARENT, region, req, json!({})).await
}

async fn pass_progress(State(shared): State<Arc<TopShared>>, Path(id): Path<u64>, Query(q): Query<After>, headers: HeaderMap) -> Response {
    if let Err(r) = the_parent(&shared, &headers) {
        return r;
    }
    match shared.dialing.book.wait(id, PARENT, q.after, q.wait).await {
        Some(v) => Json(peerdial_control::api::progress(q.after, v)).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no call {id}")),
    }
}

async fn pass_cancel(State(shared): State<Arc<TopShared>>, Path(id): Path<u64>, headers: HeaderMap) -> Response {
    if let Err(r) = the_parent(&shared, &headers) {
        return r;
    }
    match passed(&shared, id) {
        Ok(rc) => {
            cancel(&shared, rc);
            (StatusCode::ACCEPTED, Json(json!({"id": id, "cancelling": true}))).into_response()
        }
        Err(r) => r,
    }
}

async fn pass_add(
    State(shared): State<Arc<TopShared>>,
    Path(id): Path<u64>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(r) = the_parent(&shared, &headers) {
        return r;
    }
    let req: Add = match json_body(body, crate::MAX_BODY) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match passed(&shared, id) {
        Ok(rc) => add(&shared, id, &rc, req).await,
        Err(r) => r,
    }
}
