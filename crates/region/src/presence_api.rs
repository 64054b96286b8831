//! Presence on the HTTP API: a number's state as JSON, a stream of its
//! changes as Server-Sent Events, and the owner's friends-only policy.
//!
//! Reads show what an anonymous watcher sees (a friends-only number is
//! "offline"), unless the request proves its number as another region's
//! watchers do over SIP: `Identity` (a PASSporT from the watcher's region,
//! orig = the watcher, dest = the watched number) with `X-Peerdial-From`
//! naming the watcher; [`ask_remote`] is the asking side, used by the
//! portal's friends page for friends in other regions. The policy is set with the number's SIP credentials (HTTP
//! Basic) and stored before it takes effect. SIP presence is in
//! [`crate::presence`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use peerdial_net::http_server::error;
use peerdial_number::Number;
use peerdial_presence::{Policy, Presence, WatcherAuth};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::{now_ms, Shared};

/// Most friends one policy lists.
const MAX_FRIENDS: usize = 1000;

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/v1/presence/events", get(events_of))
        .route("/api/v1/presence/{number}", get(presence))
        .route("/api/v1/presence/{number}/events", get(events))
        .route("/api/v1/presence/{number}/policy", put(set_policy).get(get_policy))
}

fn json_of(n: Number, p: &Presence) -> serde_json::Value {
    let mut v = json!({ "number": n.to_string(), "state": p.state.as_str(), "since": p.since });
    if let Some(note) = &p.note {
        v["note"] = json!(note);
    }
    v
}

/// The number, if it is one of this region's provisioned numbers.
#[allow(clippy::result_large_err)] // the error is the response itself
fn known(shared: &Shared, number: &str) -> Result<Number, Response> {
    let n = Number::parse(number).map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid number {number:?}: {e}")))?;
    if !shared.presence.read(|s| s.has_number(n)) {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("number {n} is not provisioned in this region"),
        ));
    }
    Ok(n)
}

/// The number, when the request carries its own credentials.
#[allow(clippy::result_large_err)] // the error is the response itself
fn owner(shared: &Shared, number: &str, headers: &HeaderMap, peer: SocketAddr) -> Result<Number, Response> {
    let n = known(shared, number)?;
    crate::auth::number(shared, headers, peer.ip(), Some(n))
}

async fn presence(State(shared): State<Arc<Shared>>, Path(number): Path<String>, headers: HeaderMap) -> Response {
    let n = match known(&shared, &number) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let watcher = match crate::auth::vouched(&shared, &headers, n, "watcher").await {
        Ok(Some(w)) => WatcherAuth::Authenticated(w),
        Ok(None) => WatcherAuth::Anonymous,
        Err(r) => return r,
    };
    match shared.presence.read(|s| s.presence_for(n, watcher)) {
        Some(p) => Json(json_of(n, &p)).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("number {n} is not provisioned in this region")),
    }
}

/// How long the portal waits for another region's answer about a friend.
pub const REMOTE_DEADLINE: Duration = Duration::from_millis(1000);

/// `friend`'s presence (a number of another region) as `watcher` (one of
/// ours) may see it: its region found through DNS (SRV `_peerdial._tcp`),
/// asked with a PASSporT proving `watcher`, within [`REMOTE_DEADLINE`].
/// `None` when there is no way to know.
pub(crate) async fn ask_remote(shared: &Shared, friend: Number, watcher: Number) -> Option<String> {
    let dns = shared.watchers.dns()?;
    let ask = async {
        let api = peerdial_resolve::region_api(dns, friend, &shared.cfg.root_domain).await.ok()??;
        let identity = crate::identity::sign(shared, watcher, friend, now_ms() / 1000).ok()?;
        let from = watcher.to_string();
        let path = format!("/api/v1/presence/{}", friend.digits());
        let headers = [("Identity", identity.as_str()), ("X-Peerdial-From", from.as_str())];
        match peerdial_net::http_client::request_with("GET", &format!("http://{api}"), &path, &headers, None).await {
            Ok((200, body)) => serde_json::from_str::<serde_json::Value>(&body).ok()?["state"]
                .as_str()
                .map(str::to_string),
            Ok((status, body)) => {
                tracing::debug!(%friend, status, %body, "another region did not tell a friend's presence");
                None
            }
            Err(e) => {
                tracing::debug!(%friend, error = %e, "another region did not answer about a friend");
                None
            }
        }
    };
    tokio::time::timeout(REMOTE_DEADLINE, ask).await.ok().flatten()
}

/// The current state first, then one event per change anonymous watchers
/// can see; a client that falls behind gets the current state again.
async fn events(State(shared): State<Arc<Shared>>, Path(number): Path<String>) -> Response {
    match known(&shared, &number) {
        Ok(n) => stream_of(shared, vec![n]),
        Err(r) => r,
    }
}

/// Most numbers one multiplexed stream follows (a page of results).
pub const MAX_STREAMED: usize = 50;

/// `GET /api/v1/presence/events?numbers=N1,N2,…`: the changes of several
/// numbers in one stream, so a page of yellow-pages results needs one
/// connection (browsers allow six per host). Numbers not of this region
/// are left out. Anonymous view only, so any page may read it: it is sent
/// with `Access-Control-Allow-Origin: *` for the top's yellow pages, which
/// show results from every region.
async fn events_of(State(shared): State<Arc<Shared>>, Query(q): Query<std::collections::HashMap<String, String>>) -> Response {
    let listed = q.get("numbers").map(String::as_str).unwrap_or_default();
    let mut numbers = Vec::new();
    for text in listed.split(',').filter(|t| !t.trim().is_empty()) {
        let n = match Number::parse(text.trim()) {
            Ok(n) => n,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid number {text:?}: {e}")),
        };
        if shared.presence.read(|s| s.has_number(n)) && !numbers.contains(&n) {
            numbers.push(n);
        }
    }
    if numbers.len() > MAX_STREAMED {
        return error(StatusCode::BAD_REQUEST, format!("at most {MAX_STREAMED} numbers per stream"));
    }
    let mut r = stream_of(shared, numbers);
    r.headers_mut()
        .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, header::HeaderValue::from_static("*"));
    r
}

/// Server-Sent Events with each number's presence at once and on every
/// change, as an anonymous watcher sees it.
fn stream_of(shared: Arc<Shared>, numbers: Vec<Number>) -> Response {
    let rx = shared.presence.subscribe_events();
    let view = |shared: &Shared, n: Number| shared.presence.read(|s| s.presence_for(n, WatcherAuth::Anonymous));
    // First, every number as it is now; then each change of one of them.
    let due: Vec<Number> = numbers.clone();
    let last: Vec<Option<Presence>> = vec![None; numbers.len()];
    let stream = futures_util::stream::unfold(
        (shared, rx, due, last, numbers),
        move |(shared, mut rx, mut due, mut last, numbers)| async move {
            loop {
                while let Some(n) = due.pop() {
                    let Some(i) = numbers.iter().position(|m| *m == n) else { continue };
                    let Some(p) = view(&shared, n) else { continue };
                    if last[i].as_ref() != Some(&p) {
                        let ev = Event::default().data(json_of(n, &p).to_string());
                        last[i] = Some(p);
                        return Some((Ok::<Event, Infallible>(ev), (shared, rx, due, last, numbers)));
                    }
                }
                match rx.recv().await {
                    Ok(ev) if numbers.contains(&ev.number) => due.push(ev.number),
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => due = numbers.clone(),
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    friends_only: bool,
    #[serde(default)]
    friends: Vec<String>,
}

fn policy_json(n: Number, policy: Option<&Policy>) -> serde_json::Value {
    let (only, mut friends) = match policy {
        Some(Policy::FriendsOnly(f)) => (true, f.iter().map(|n| n.to_string()).collect::<Vec<_>>()),
        _ => (false, Vec::new()),
    };
    friends.sort();
    json!({ "number": n.to_string(), "friends_only": only, "friends": friends })
}

/// The owner's view of the policy (its credentials, like PUT).
async fn get_policy(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(number): Path<String>,
    headers: HeaderMap,
) -> Response {
    let n = match owner(&shared, &number, &headers, peer) {
        Ok(n) => n,
        Err(r) => return r,
    };
    Json(shared.presence.read(|s| policy_json(n, s.policy(n)))).into_response()
}

async fn set_policy(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(number): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let n = match owner(&shared, &number, &headers, peer) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let req: PolicyBody = match peerdial_net::http_server::json_body(body, crate::http::MAX_BODY) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if req.friends.len() > MAX_FRIENDS {
        return error(StatusCode::BAD_REQUEST, format!("too many friends (at most {MAX_FRIENDS})"));
    }
    let mut friends = Vec::with_capacity(req.friends.len());
    for f in &req.friends {
        match Number::parse(f) {
            Ok(f) if !f.is_none() => friends.push(f),
            _ => return error(StatusCode::BAD_REQUEST, format!("invalid friend number {f:?}")),
        }
    }
    friends.sort_by_key(|f| f.as_u64());
    friends.dedup();
    let stored: Vec<i64> = friends.iter().map(|f| f.as_u64() as i64).collect();
    if let Err(e) = shared
        .store
        .put_presence_policy(n.as_u64() as i64, req.friends_only, &stored, now_ms() as i64)
        .await
    {
        return error(StatusCode::SERVICE_UNAVAILABLE, format!("could not store the policy: {e}"));
    }
    let policy = crate::presence::policy(req.friends_only, friends);
    tracing::info!(number = %n, friends_only = req.friends_only, "presence policy set");
    shared.presence.set_policy(n, policy);
    Json(shared.presence.read(|s| policy_json(n, s.policy(n)))).into_response()
}
