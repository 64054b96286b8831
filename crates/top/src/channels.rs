//! Global channels on the top (issue 11): channels for everyone, whatever
//! region their phone is in (the dating channel). The top's operator
//! creates them, grants publishers and posts to them (HTTP Basic `top`
//! with the join token); every region relays them to its phones
//! (`GET …/items?after=N`), where users subscribe as to a local channel.
//!
//! A publisher is a number of any region. The top holds no credentials of
//! numbers, so a publisher's post carries an `Identity` header (a PASSporT
//! its own region signed, `orig` = `dest` = the poster) and
//! `X-Peerdial-From`; the top finds that region's key in the DNS of the
//! child that holds the number and checks the token once (replays are
//! refused). Phones post through their region, which signs and forwards.
//!
//! Items are stored before they are acknowledged (the top's database),
//! served from memory, and swept from the database once expired. What this
//! is not: the marquee (regions rotate and show items).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine;
use peerdial_channels::limit::RateLimit;
use peerdial_channels::marquee::{check_item, check_name};
use peerdial_channels::text::post_text;
use peerdial_channels::ChannelError;
use peerdial_net::http_server::{error, json_body};
use peerdial_number::Number;
use peerdial_resolve::keys::Tokens;
use peerdial_store::{ItemRow, Store};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;

use crate::{TopError, TopShared};

/// Items kept per global channel.
const MAX_ITEMS: usize = 10_000;
/// Items handed out per relay request.
const PAGE: usize = 200;
/// Posts a minute per publisher, as on a region.
const POSTS_PER_MINUTE: usize = 10;
/// How often expired items leave the database.
const SWEEP: std::time::Duration = std::time::Duration::from_secs(60);

struct Channel {
    id: i64,
    title: String,
    publishers: BTreeSet<Number>,
    items: Vec<ItemRow>,
}

pub struct GlobalChannels {
    by_name: Mutex<BTreeMap<String, Channel>>,
    pub(crate) tokens: Tokens,
    rate: Mutex<RateLimit>,
}

use crate::users::now_ms;
use subtle::ConstantTimeEq;

impl GlobalChannels {
    /// The global channels in `store`; `root`: the tree's root domain, under
    /// which publishers' area zones carry their regions' keys.
    pub async fn load(store: &Store, root: &str) -> Result<GlobalChannels, TopError> {
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
                        publishers: BTreeSet::new(),
                        items: Vec::new(),
                    },
                );
            }
        }
        for (channel, number) in store.publishers().await.map_err(db)? {
            let n = Number::from_u64(number as u64).ok();
            if let (Some(c), Some(n)) = (by_id.get(&channel).and_then(|name| by_name.get_mut(name)), n) {
                c.publishers.insert(n);
            }
        }
        for i in store.live_items(now_ms() as i64).await.map_err(db)? {
            if let Some(c) = by_id.get(&i.channel).and_then(|n| by_name.get_mut(n)) {
                c.items.push(i);
            }
        }
        Ok(GlobalChannels {
            by_name: Mutex::new(by_name),
            tokens: Tokens::new(root),
            rate: Mutex::new(RateLimit::new(POSTS_PER_MINUTE)),
        })
    }
}

/// Deletes expired items from the database now and then (memory drops
/// them as it goes).
pub async fn sweep(shared: Arc<TopShared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(SWEEP);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                match shared.store.delete_expired_items(now_ms() as i64).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(items = n, "expired global items deleted"),
                    Err(e) => tracing::warn!(error = %e, "could not delete expired global items"),
                }
            }
            _ = stop.changed() => return,
        }
    }
}

pub fn routes() -> Router<Arc<TopShared>> {
    Router::new()
        .route("/api/v1/channels", get(list).post(create))
        .route("/api/v1/channels/{name}/items", post(new_item).get(items))
        .route(
            "/api/v1/channels/{name}/publishers/{number}",
            put(add_publisher).delete(remove_publisher),
        )
}

fn refused(e: ChannelError) -> Response {
    error(
        StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
        e.to_string(),
    )
}

fn unknown(name: &str) -> Response {
    refused(ChannelError::UnknownChannel(peerdial_channels::text::clean(name)))
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
        .is_some_and(|(u, p)| u == "top" && bool::from(p.as_bytes().ct_eq(shared.cfg.join_token.as_bytes())));
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
        return refused(e);
    }
    if shared.channels.by_name.lock().expect("channels").contains_key(&req.name) {
        return refused(ChannelError::Exists(req.name));
    }
    let id = match shared.store.add_channel(&req.name, &title, "global", now_ms() as i64).await {
        Ok(id) => id,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, format!("could not store it: {e}")),
    };
    let ch = Channel {
        id,
        title: title.clone(),
        publishers: BTreeSet::new(),
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

async fn set_publisher(shared: Arc<TopShared>, headers: HeaderMap, name: String, number: String, on: bool) -> Response {
    if let Err(r) = operator(&shared, &headers) {
        return r;
    }
    let n = match Number::parse(&number) {
        Ok(n) if !n.is_none() => n,
        _ => return error(StatusCode::BAD_REQUEST, "a publisher is a number of 13 digits".into()),
    };
    let Some(id) = shared.channels.by_name.lock().expect("channels").get(&name).map(|c| c.id) else {
        return unknown(&name);
    };
    if let Err(e) = shared.store.set_publisher(id, n.as_u64() as i64, on).await {
        return error(StatusCode::SERVICE_UNAVAILABLE, format!("could not store it: {e}"));
    }
    let mut c = shared.channels.by_name.lock().expect("channels");
    let Some(ch) = c.get_mut(&name) else { return unknown(&name) };
    if on {
        ch.publishers.insert(n);
    } else {
        ch.publishers.remove(&n);
    }
    tracing::info!(channel = %name, publisher = %n, on, "global channel publisher");
    let publishers: Vec<String> = ch.publishers.iter().map(|p| p.to_string()).collect();
    Json(json!({ "channel": name, "publishers": publishers })).into_response()
}

async fn add_publisher(State(shared): State<Arc<TopShared>>, Path((name, number)): Path<(String, String)>, headers: HeaderMap) -> Response {
    set_publisher(shared, headers, name, number, true).await
}

async fn remove_publisher(
    State(shared): State<Arc<TopShared>>,
    Path((name, number)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    set_publisher(shared, headers, name, number, false).await
}

/// Who posts: the operator (`None`), or a number whose region vouched for
/// it with a PASSporT (`orig` = `dest` = the poster).
#[allow(clippy::result_large_err)] // the error is the response itself
async fn poster(shared: &TopShared, headers: &HeaderMap) -> Result<Option<Number>, Response> {
    match crate::users::vouched(shared, headers).await? {
        Some(n) => Ok(Some(n)),
        None => operator(shared, headers).map(|()| None),
    }
}

async fn new_item(
    State(shared): State<Arc<TopShared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let poster = match poster(&shared, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let req: ItemRequest = match json_body(body, 8 * 1024) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let now = now_ms();
    let checked = (|| {
        let (text, expires) = check_item(&req.text, req.expires_in)?;
        let c = shared.channels.by_name.lock().expect("channels");
        let ch = c
            .get(&name)
            .ok_or_else(|| ChannelError::UnknownChannel(peerdial_channels::text::clean(&name)))?;
        if let Some(p) = poster {
            if !ch.publishers.contains(&p) {
                return Err(ChannelError::NotPublisher(p, name.clone()));
            }
            shared.channels.rate.lock().expect("rate").check(p.as_u64(), now)?;
        }
        Ok((text, expires, ch.id))
    })();
    let (text, expires, channel) = match checked {
        Ok(x) => x,
        Err(e) => return refused(e),
    };
    let mut row = ItemRow {
        id: 0,
        channel,
        owner: 0,
        poster: poster.map_or(0, |p| p.as_u64() as i64),
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
    let (id, expires_s) = (row.id, row.expires_ms / 1000);
    if let Some(c) = shared.channels.by_name.lock().expect("channels").get_mut(&name) {
        c.items.push(row);
        c.items.retain(|i| i.expires_ms > now as i64);
        if c.items.len() > MAX_ITEMS {
            let over = c.items.len() - MAX_ITEMS;
            c.items.drain(..over);
        }
    }
    (
        StatusCode::CREATED,
        Json(json!({ "id": id, "channel": name, "expires": expires_s })),
    )
        .into_response()
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
    let Some(ch) = c.get(&name) else { return unknown(&name) };
    let list: Vec<_> = ch
        .items
        .iter()
        .filter(|i| i.id > q.after && i.expires_ms > now)
        .take(PAGE)
        .map(|i| {
            let poster = Number::from_u64(i.poster as u64).ok().filter(|_| i.poster != 0);
            json!({
                "id": i.id,
                "text": i.text,
                "poster": poster.map(|p| p.to_string()),
                "posted": i.posted_ms / 1000,
                "expires": i.expires_ms / 1000,
            })
        })
        .collect();
    Json(json!({ "channel": name, "items": list })).into_response()
}
