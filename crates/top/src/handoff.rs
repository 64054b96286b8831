//! Calls the top hands to a region (issue 13: "a region controls calls
//! for its numbers"; "the region hosts a mixer"). When the match of a
//! two-party call falls on a peerdial region, or every talker of a
//! conference is a number of one region, and that region joined this
//! node directly, the top asks the region's controller to run it
//! (`peerdial_control::api`, with the join token they share as a bearer
//! token) and relays: a task long-polls the region's progress and copies
//! each event unchanged into the top's `CallBook`, so the dialer's API
//! (`GET /api/v1/calls/{id}`) reads the same as for a call the top runs;
//! a cancel or a newcomer goes on to the region.
//!
//! It is not the matching (`calls.rs`, `conference.rs`) nor a controller:
//! foreign-server calls, calls across regions and mixed conferences stay
//! on the top's own (`peerdial_control::Controller`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use peerdial_control::api::{Add, Start, CALLS_PATH};
use peerdial_net::http_server::error;
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

/// The region (a direct child of this node) holding `number`: its digits
/// and HTTP URL. A country server's areas are not asked.
pub(crate) fn region_of(shared: &TopShared, number: &str) -> Option<(String, String)> {
    let digits = Number::parse(number).ok()?.digits();
    let children = shared.children.lock().expect("children lock");
    children
        .values()
        .find(|c| c.kind() == "region" && digits.starts_with(&c.prefix))
        .map(|c| (c.prefix.clone(), c.http.clone()))
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
