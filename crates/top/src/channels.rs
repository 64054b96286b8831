//! Global channels on the top (issue 11): channels for everyone, whatever
//! region their phone is in (the dating channel). The top's operator
//! creates them and posts to them (HTTP Basic `top` with the join token);
//! every region relays them to its phones (`GET …/items?after=N`), where
//! users subscribe as to a local channel.
//!
//! Items are stored before they are acknowledged (the top's database) and
//! served from memory. What this is not: the marquee (regions rotate and
//! show items) or a place where numbers post (publishers post to their
//! region's channels).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use peerdial_channels::marquee::{check_item, check_name};
use peerdial_channels::text::post_text;
use peerdial_net::http_server::{error, json_body};
use peerdial_store::{ItemRow, Store};
use serde::Deserialize;
use serde_json::json;

use crate::{TopError, TopShared};

/// Items kept per global channel.
const MAX_ITEMS: usize = 10_000;
/// Items handed out per relay request.
const PAGE: usize = 200;

struct Channel {
    id: i64,
    title: String,
    items: Vec<ItemRow>,
}

#[derive(Default)]
pub struct GlobalChannels {
    by_name: Mutex<BTreeMap<String, Channel>>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl GlobalChannels {
    pub async fn load(store: &Store) -> Result<GlobalChannels, TopError> {
        let db = |e: peerdial_store::StoreError| TopError::State(format!("global channels: {e}"));
        let mut by_name = BTreeMap::new();
        let mut by_id = BTreeMap::new();
        for c in store.channels().await.map_err(db)? {
            if c.scope == "global" {
                by_id.insert(c.id, c.name.clone());
                by_name.insert(
                    c.name,
                    Channel {
                        id: c.id,
                        title: c.title,
                        items: Vec::new(),
                    },
                );
            }
        }
        for i in store.live_items(now_ms() as i64).await.map_err(db)? {
            if let Some(c) = by_id.get(&i.channel).and_then(|n| by_name.get_mut(n)) {
                c.items.push(i);
            }
        }
        Ok(GlobalChannels {
            by_name: Mutex::new(by_name),
        })
    }
}

pub fn routes() -> Router<Arc<TopShared>> {
    Router::new()
        .route("/api/v1/channels", get(list).post(create))
        .route("/api/v1/channels/{name}/items", post(new_item).get(items))
}

/// The top's operator: HTTP Basic `top` and the join token.
#[allow(clippy::result_large_err)] // the error is the response itself
fn operator(shared: &TopShared, headers: &HeaderMap) -> Result<(), Response> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let ok = given
        .as_deref()
        .and_then(|g| g.split_once(':'))
        .is_some_and(|(u, p)| u == "top" && peerdial_dns::tsig::constant_time_eq(p.as_bytes(), shared.cfg.join_token.as_bytes()));
    if ok {
        Ok(())
    } else {
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "the top's operator: HTTP Basic `top` with the join token".into(),
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"peerdial top\""),
        );
        Err(r)
    }
}

async fn list(State(shared): State<Arc<TopShared>>) -> Response {
    let c = shared.channels.by_name.lock().expect("channels");
    let list: Vec<_> = c
        .iter()
        .map(|(name, ch)| json!({ "name": name, "title": ch.title, "scope": "global" }))
        .collect();
    Json(json!({ "channels": list })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelRequest {
    name: String,
    #[serde(default)]
    title: Option<String>,
}

async fn create(State(shared): State<Arc<TopShared>>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    if let Err(r) = operator(&shared, &headers) {
        return r;
    }
    let req: ChannelRequest = match json_body(body, 8 * 1024) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let title = match req.title.as_deref().map(post_text).transpose() {
        Ok(t) => t.unwrap_or_else(|| req.name.clone()),
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if let Err(e) = check_name(&req.name) {
        return error(StatusCode::BAD_REQUEST, e.to_string());
    }
    if shared.channels.by_name.lock().expect("channels").contains_key(&req.name) {
        return error(StatusCode::CONFLICT, format!("a channel named {:?} exists already", req.name));
    }
    let id = match shared.store.add_channel(&req.name, &title, "global", now_ms() as i64).await {
        Ok(id) => id,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, format!("could not store it: {e}")),
    };
    let ch = Channel {
        id,
        title: title.clone(),
        items: Vec::new(),
    };
    shared.channels.by_name.lock().expect("channels").insert(req.name.clone(), ch);
    tracing::info!(channel = %req.name, "global channel created");
    (
        StatusCode::CREATED,
        Json(json!({ "name": req.name, "title": title, "scope": "global" })),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemRequest {
    text: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

async fn new_item(
    State(shared): State<Arc<TopShared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(r) = operator(&shared, &headers) {
        return r;
    }
    let req: ItemRequest = match json_body(body, 8 * 1024) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let (text, expires) = match check_item(&req.text, req.expires_in) {
        Ok(x) => x,
        Err(e @ peerdial_channels::ChannelError::TooLong { .. }) => return error(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let Some(channel) = shared.channels.by_name.lock().expect("channels").get(&name).map(|c| c.id) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no global channel named {:?}", peerdial_channels::text::clean(&name)),
        );
    };
    let now = now_ms();
    let mut row = ItemRow {
        id: 0,
        channel,
        owner: 0,
        poster: 0,
        text,
        posted_ms: now as i64,
        expires_ms: (now + expires) as i64,
        delivered_ms: 0,
        origin: 0,
    };
    row.id = match shared.store.add_item(&row).await {
        Ok(id) => id,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, format!("could not store it: {e}")),
    };
    let id = row.id;
    if let Some(c) = shared.channels.by_name.lock().expect("channels").get_mut(&name) {
        c.items.push(row);
        c.items.retain(|i| i.expires_ms > now as i64);
        if c.items.len() > MAX_ITEMS {
            let over = c.items.len() - MAX_ITEMS;
            c.items.drain(..over);
        }
    }
    (StatusCode::CREATED, Json(json!({ "id": id, "channel": name }))).into_response()
}

#[derive(Deserialize)]
struct After {
    #[serde(default)]
    after: i64,
}

/// Live items after `after` (a top item id), oldest first, a page at most.
async fn items(State(shared): State<Arc<TopShared>>, Path(name): Path<String>, Query(q): Query<After>) -> Response {
    let now = now_ms() as i64;
    let c = shared.channels.by_name.lock().expect("channels");
    let Some(ch) = c.get(&name) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no global channel named {:?}", peerdial_channels::text::clean(&name)),
        );
    };
    let list: Vec<_> = ch
        .items
        .iter()
        .filter(|i| i.id > q.after && i.expires_ms > now)
        .take(PAGE)
        .map(|i| json!({ "id": i.id, "text": i.text, "posted": i.posted_ms / 1000, "expires": i.expires_ms / 1000 }))
        .collect();
    Json(json!({ "channel": name, "items": list })).into_response()
}
