//! HTTP routes of the channels edge ([`crate::channels`]).
//!
//! - `POST /api/v1/broadcasts` (operator): `{text, every_minutes?, until?}`
//!   (`until` in Unix seconds) → 201 `{id}`; `GET` lists pending ones.
//! - `GET /api/v1/channels`: every channel (with a number's credentials,
//!   whether it subscribes); `POST` (operator) `{name, title, scope}`.
//! - `PUT|DELETE /api/v1/channels/{name}/publishers/{number}` (operator).
//! - `POST /api/v1/channels/{name}/items` (a publisher's credentials, or an
//!   operator's) `{text, expires_in?}` (seconds, default a day) → 201. A
//!   number's post to a global channel is forwarded to the top with this
//!   region's PASSporT for it; the top's answer is the answer.
//! - `PUT|DELETE /api/v1/channels/{name}/subscription` (the number's).
//! - `POST /api/v1/private/{owner}` `{text}`: a friend of `owner` posts,
//!   proving the number with its credentials (same region) or with an
//!   `Identity` header (a PASSporT from its own region, `dest` = owner).
//! - `GET /api/v1/marquee` (the number's): one item, or 204.
//!
//! Every refusal is a JSON error, and nothing is stored for it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use peerdial_channels::marquee::{check_item, check_name};
use peerdial_channels::text::post_text;
use peerdial_channels::{ChannelError, Scope};
use peerdial_net::http_server::{error, json_body};
use peerdial_number::Number;
use serde::Deserialize;
use serde_json::json;

use crate::{now_ms, Shared};

/// Bodies here are a line of text and a few fields.
const MAX_POST: usize = 8 * 1024;

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/v1/broadcasts", post(new_broadcast).get(list_broadcasts))
        .route("/api/v1/channels", get(list_channels).post(new_channel))
        .route(
            "/api/v1/channels/{name}/publishers/{number}",
            put(add_publisher).delete(remove_publisher),
        )
        .route("/api/v1/channels/{name}/items", post(new_item))
        .route("/api/v1/channels/{name}/subscription", put(subscribe).delete(unsubscribe))
        .route("/api/v1/private/{owner}", post(new_private))
        .route("/api/v1/marquee", get(marquee))
}

fn refused(e: ChannelError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    error(status, e.to_string())
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, format!("could not store it: {e}"))
}

type Body = Result<Bytes, BytesRejection>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BroadcastRequest {
    text: String,
    #[serde(default)]
    every_minutes: Option<u64>,
    /// Unix seconds.
    #[serde(default)]
    until: Option<u64>,
}

async fn new_broadcast(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let operator = match crate::auth::operator(&shared, &headers, peer.ip()).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let req: BroadcastRequest = match json_body(body, MAX_POST) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match crate::channels::new_broadcast(&shared, &req.text, req.every_minutes, req.until).await {
        Ok(id) => {
            tracing::info!(%operator, broadcast = id, "broadcast posted");
            (StatusCode::CREATED, Json(json!({ "id": id }))).into_response()
        }
        Err(e) => not_done(e),
    }
}

fn not_done(e: crate::channels::Refused) -> Response {
    match e {
        crate::channels::Refused::Channel(e) => refused(e),
        crate::channels::Refused::Store(e) => unavailable(e),
    }
}

async fn list_broadcasts(State(shared): State<Arc<Shared>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    if let Err(r) = crate::auth::operator(&shared, &headers, peer.ip()).await {
        return r;
    }
    let list: Vec<_> = crate::channels::pending(&shared)
        .into_iter()
        .map(|b| json!({ "id": b.id, "text": b.text, "next": b.next_ms / 1000, "every_minutes": b.every_ms.map(|e| e / 60_000), "until": b.until_ms.map(|u| u / 1000) }))
        .collect();
    Json(json!({ "broadcasts": list })).into_response()
}

async fn list_channels(State(shared): State<Arc<Shared>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    let who = if crate::auth::has_credentials(&headers) {
        match crate::auth::number(&shared, &headers, peer.ip(), None) {
            Ok(n) => Some(n),
            Err(r) => return r,
        }
    } else {
        None
    };
    let m = shared.channels.marquee.lock().expect("marquee");
    let subscribed = who.map(|n| m.subscriptions(n)).unwrap_or_default();
    let list: Vec<_> = m
        .channels()
        .into_iter()
        .map(|c| {
            let mut v = json!({ "name": c.name, "title": c.title, "scope": c.scope.as_str() });
            if who.is_some() {
                v["subscribed"] = json!(subscribed.contains(&c.name));
            }
            v
        })
        .collect();
    Json(json!({ "channels": list })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelRequest {
    name: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    /// Unix seconds when it stops taking posts.
    #[serde(default)]
    until: Option<u64>,
}

async fn new_channel(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(r) = crate::auth::operator(&shared, &headers, peer.ip()).await {
        return r;
    }
    let req: ChannelRequest = match json_body(body, MAX_POST) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if let Err(e) = check_name(&req.name) {
        return refused(e);
    }
    let scope = match req.scope.as_deref().unwrap_or("local") {
        "local" => Scope::Local,
        // Global channels live on the top; a region relays them.
        "global" => {
            return error(
                StatusCode::BAD_REQUEST,
                "global channels are created on the top, not on a region".into(),
            )
        }
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unknown scope {:?}: local", peerdial_channels::text::clean(other)),
            )
        }
    };
    let title = match req.title.as_deref().map(post_text).transpose() {
        Ok(t) => t.unwrap_or_else(|| req.name.clone()),
        Err(e) => return refused(e),
    };
    if shared.channels.marquee.lock().expect("marquee").channel(&req.name).is_ok() {
        return refused(ChannelError::Exists(req.name));
    }
    let until_ms = req.until.map(|s| s.saturating_mul(1000));
    if until_ms.is_some_and(|u| u <= now_ms()) {
        return refused(ChannelError::BadSchedule("the channel's end time is in the past".into()));
    }
    let stored = shared
        .store
        .add_channel_until(&req.name, &title, scope.as_str(), until_ms.unwrap_or(0) as i64, now_ms() as i64)
        .await;
    let id = match stored {
        Ok(id) => id as u64,
        Err(e) => return unavailable(e),
    };
    let added = shared
        .channels
        .marquee
        .lock()
        .expect("marquee")
        .add_channel(peerdial_channels::Channel {
            id,
            name: req.name.clone(),
            title: title.clone(),
            scope,
            until_ms,
        });
    if let Err(e) = added {
        return refused(e);
    }
    tracing::info!(channel = %req.name, "channel created");
    (
        StatusCode::CREATED,
        Json(json!({ "name": req.name, "title": title, "scope": scope.as_str() })),
    )
        .into_response()
}

async fn set_publisher(shared: Arc<Shared>, peer: SocketAddr, headers: HeaderMap, name: String, number: String, on: bool) -> Response {
    if let Err(r) = crate::auth::operator(&shared, &headers, peer.ip()).await {
        return r;
    }
    let n = match Number::parse(&number) {
        Ok(n) => n,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid number: {e}")),
    };
    let id = match shared.channels.marquee.lock().expect("marquee").channel(&name) {
        Ok(c) => c.id,
        Err(e) => return refused(e),
    };
    if let Err(e) = shared.store.set_publisher(id as i64, n.as_u64() as i64, on).await {
        return unavailable(e);
    }
    let mut m = shared.channels.marquee.lock().expect("marquee");
    if on {
        m.add_publisher(id, n);
    } else {
        m.remove_publisher(id, n);
    }
    let publishers: Vec<String> = m.publishers(id).iter().map(|p| p.to_string()).collect();
    Json(json!({ "channel": name, "publishers": publishers })).into_response()
}

async fn add_publisher(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((name, number)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    set_publisher(shared, peer, headers, name, number, true).await
}

async fn remove_publisher(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((name, number)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    set_publisher(shared, peer, headers, name, number, false).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemRequest {
    text: String,
    /// Seconds.
    #[serde(default)]
    expires_in: Option<u64>,
}

async fn new_item(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // A number's credentials make it a publisher to check; a name that is
    // not a number is an operator's.
    let poster = match crate::auth::basic_user(&headers) {
        Some(u) if Number::parse(&u).is_ok() => match crate::auth::number(&shared, &headers, peer.ip(), None) {
            Ok(n) => Some(n),
            Err(r) => return r,
        },
        _ => match crate::auth::operator(&shared, &headers, peer.ip()).await {
            Ok(_) => None,
            Err(r) => return r,
        },
    };
    let req: ItemRequest = match json_body(body, MAX_POST) {
        Ok(r) => r,
        Err(r) => return r,
    };
    // A number's post to a global channel is the top's to judge.
    let global = shared
        .channels
        .marquee
        .lock()
        .expect("marquee")
        .channel(&name)
        .is_ok_and(|c| c.scope == Scope::Global);
    if let (true, Some(p), Some(top)) = (global, poster, shared.cfg.top.as_deref()) {
        return crate::relay::forward(&shared, top, &name, p, &req.text, req.expires_in).await;
    }
    let checked = (|| {
        let (text, expires) = check_item(&req.text, req.expires_in)?;
        let channel = shared
            .channels
            .marquee
            .lock()
            .expect("marquee")
            .may_post(&name, poster, now_ms())?
            .clone();
        if let Some(p) = poster {
            shared.channels.rate(p)?;
        }
        Ok::<_, ChannelError>((text, expires, channel))
    })();
    let (text, expires, channel) = match checked {
        Ok(x) => x,
        Err(e) => return refused(e),
    };
    match crate::channels::post(&shared, &channel, poster, text, expires).await {
        Ok(item) => (
            StatusCode::CREATED,
            Json(json!({ "id": item.id, "channel": channel.name, "expires": item.expires_ms / 1000 })),
        )
            .into_response(),
        Err(e) => unavailable(e),
    }
}

async fn set_subscription(shared: Arc<Shared>, peer: SocketAddr, headers: HeaderMap, name: String, on: bool) -> Response {
    let n = match crate::auth::number(&shared, &headers, peer.ip(), None) {
        Ok(n) => n,
        Err(r) => return r,
    };
    match crate::channels::set_subscription(&shared, n, &name, on).await {
        Ok(subs) => Json(json!({ "number": n.to_string(), "subscriptions": subs })).into_response(),
        Err(e) => not_done(e),
    }
}

async fn subscribe(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    set_subscription(shared, peer, headers, name, true).await
}

async fn unsubscribe(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    set_subscription(shared, peer, headers, name, false).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrivateRequest {
    text: String,
}

async fn new_private(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(owner): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let owner = match Number::parse(&owner) {
        Ok(n) if shared.provisioned(n) => n,
        Ok(n) => return error(StatusCode::NOT_FOUND, format!("{n} is not a number of this region")),
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid number: {e}")),
    };
    let poster = match crate::auth::vouched(&shared, &headers, owner, "poster").await {
        Ok(Some(n)) => n,
        Ok(None) => match crate::auth::number(&shared, &headers, peer.ip(), None) {
            Ok(n) => n,
            Err(r) => return r,
        },
        Err(r) => return r,
    };
    let req: PrivateRequest = match json_body(body, MAX_POST) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let text = match post_text(&req.text) {
        Ok(t) => t,
        Err(e) => return refused(e),
    };
    // Only the owner's friends may post; checked here, on the owner's region.
    match shared.store.friends(owner.as_u64() as i64).await {
        Ok(f) if f.contains(&(poster.as_u64() as i64)) => {}
        Ok(_) => return error(StatusCode::FORBIDDEN, format!("{poster} is not on {owner}'s friends list")),
        Err(e) => return unavailable(e),
    }
    if let Err(e) = shared.channels.rate(poster) {
        return refused(e);
    }
    match crate::channels::post_private(&shared, owner, poster, text).await {
        Ok((item, sent)) => (
            StatusCode::CREATED,
            Json(json!({ "id": item.id, "owner": owner.to_string(), "sent_now": sent })),
        )
            .into_response(),
        Err(e) => unavailable(e),
    }
}

async fn marquee(State(shared): State<Arc<Shared>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    let n = match crate::auth::number(&shared, &headers, peer.ip(), None) {
        Ok(n) => n,
        Err(r) => return r,
    };
    match shared.channels.next(&shared, n) {
        Some(p) => Json(json!({
            "id": p.item.id,
            "channel": p.channel,
            "private": p.channel.is_none(),
            "poster": p.item.poster.map(|n| n.to_string()),
            "text": p.item.text,
            "posted": p.item.posted_ms / 1000,
        }))
        .into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}
