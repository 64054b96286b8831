//! Greeting pictures on the region's HTTP API (design §9): two per number,
//! as caller and as callee. Uploads are normalised by `peerdial-greetings`
//! (decoded under limits, scaled, re-encoded as PNG without metadata),
//! stored in the database, and served publicly with their update code as
//! the ETag, so phones revalidate with `If-None-Match` and get 304.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use peerdial_greetings::{
    if_none_match, normalize, render_card, Card, Colour, GreetingError, Kind, Layout, UploadLimits, MAX_UPLOAD_BYTES,
};
use peerdial_net::http_server::error;
use peerdial_number::Number;
use serde::Deserialize;
use serde_json::json;

use crate::{now_ms, RegionError, Shared};

/// Pictures kept in memory for fast serving; the rest are read from the
/// database when asked for.
const MEMORY_BYTES: usize = 64 * 1024 * 1024;

/// How long a cache may use a picture before asking again (with its ETag).
const CACHE_CONTROL: &str = "public, max-age=60";

struct Stored {
    etag: String,
    /// The `ETag` header, built once: every GET sends it.
    header: HeaderValue,
    png: Option<Bytes>,
}

impl Stored {
    fn new(etag: String, png: Option<Bytes>) -> Stored {
        // An update code is hex in quotes; one that is not a header value
        // (never written by us) is sent as nothing rather than panicking.
        let header = HeaderValue::from_str(&etag).unwrap_or_else(|_| HeaderValue::from_static("\"\""));
        Stored { etag, header, png }
    }
}

/// Every number's update codes, and the pictures that fit in memory.
#[derive(Default)]
pub struct Greetings {
    index: RwLock<HashMap<(Number, Kind), Stored>>,
    bytes_in_memory: Mutex<usize>,
}

impl Greetings {
    pub async fn load(store: &peerdial_store::Store) -> Result<Greetings, RegionError> {
        let g = Greetings::default();
        let rows = store.greeting_etags().await?;
        {
            let mut index = g.index.write().expect("greetings lock");
            for (n, kind, etag) in rows {
                let bad = || RegionError::BadRow(format!("greeting {n}/{kind}"));
                let n = Number::from_u64(n as u64).map_err(|_| bad())?;
                let kind = Kind::parse(&kind).ok_or_else(bad)?;
                index.insert((n, kind), Stored::new(etag, None));
            }
        }
        Ok(g)
    }

    /// The update code of a number's greeting, if it has one.
    pub fn etag(&self, n: Number, kind: Kind) -> Option<String> {
        self.index.read().expect("greetings lock").get(&(n, kind)).map(|s| s.etag.clone())
    }

    fn remember(&self, n: Number, kind: Kind, etag: String, png: Option<Bytes>) {
        let mut index = self.index.write().expect("greetings lock");
        let mut used = self.bytes_in_memory.lock().expect("greetings lock");
        let add = png.as_ref().map_or(0, Bytes::len);
        if *used + add > MEMORY_BYTES {
            // Over budget: forget every cached picture (they stay on disk).
            for s in index.values_mut() {
                s.png = None;
            }
            *used = 0;
        }
        *used += add;
        if let Some(old) = index.insert((n, kind), Stored::new(etag, png)) {
            *used = used.saturating_sub(old.png.map_or(0, |b| b.len()));
        }
    }

    /// A number moved (vanity): its pictures follow it.
    pub(crate) fn rename(&self, old: Number, new: Number) {
        let mut index = self.index.write().expect("greetings lock");
        for kind in [Kind::Caller, Kind::Callee] {
            if let Some(s) = index.remove(&(old, kind)) {
                index.insert((new, kind), s);
            }
        }
    }

    fn forget(&self, n: Number, kind: Kind) {
        if let Some(old) = self.index.write().expect("greetings lock").remove(&(n, kind)) {
            let mut used = self.bytes_in_memory.lock().expect("greetings lock");
            *used = used.saturating_sub(old.png.map_or(0, |b| b.len()));
        }
    }
}

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/v1/greetings/{number}", get(summary))
        .route(
            "/api/v1/greetings/{number}/{kind}",
            get(fetch)
                .put(upload)
                .delete(remove)
                .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES + 1)),
        )
        .route("/api/v1/greetings/{number}/{kind}/card", post(card))
}

/// The public URL of a number's greeting.
pub fn url(shared: &Shared, n: Number, kind: Kind) -> String {
    format!("http://{}/api/v1/greetings/{}/{}", shared.endpoints.http, n, kind.as_str())
}

#[allow(clippy::result_large_err)] // the error is the response itself
fn target(shared: &Shared, number: &str, kind: &str) -> Result<(Number, Kind), Response> {
    let n = Number::parse(number).map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid number {number:?}: {e}")))?;
    let kind = Kind::parse(kind).ok_or_else(|| error(StatusCode::NOT_FOUND, "no such greeting: use caller or callee".into()))?;
    if !shared.provisioned(n) {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("number {n} is not provisioned in this region"),
        ));
    }
    Ok((n, kind))
}

/// A greeting its owner acts on: the number's own credentials are needed.
#[allow(clippy::result_large_err)] // the error is the response itself
fn owned(shared: &Shared, number: &str, kind: &str, headers: &HeaderMap, peer: SocketAddr) -> Result<(Number, Kind), Response> {
    let (n, kind) = target(shared, number, kind)?;
    crate::auth::number(shared, headers, peer.ip(), Some(n))?;
    Ok((n, kind))
}

/// `GET /api/v1/greetings/{number}`: both update codes and URLs (what a
/// phone polls to learn that its greetings changed).
async fn summary(State(shared): State<Arc<Shared>>, Path(number): Path<String>) -> Response {
    let n = match target(&shared, &number, "caller") {
        Ok((n, _)) => n,
        Err(r) => return r,
    };
    let entry = |kind: Kind| {
        shared
            .greetings
            .etag(n, kind)
            .map(|etag| json!({ "etag": etag, "url": url(&shared, n, kind) }))
    };
    Json(json!({ "number": n.to_string(), "caller": entry(Kind::Caller), "callee": entry(Kind::Callee) })).into_response()
}

/// `GET /api/v1/greetings/{number}/{caller|callee}`: public, with ETag.
async fn fetch(State(shared): State<Arc<Shared>>, Path((number, kind)): Path<(String, String)>, headers: HeaderMap) -> Response {
    let (n, kind) = match target(&shared, &number, &kind) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let asked = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok());
    // One look under the lock: the update code, whether the asker has it,
    // and the picture when it is in memory.
    let cached = shared
        .greetings
        .index
        .read()
        .expect("greetings lock")
        .get(&(n, kind))
        .map(|s| (s.header.clone(), asked.is_some_and(|v| if_none_match(v, &s.etag)), s.png.clone()));
    let Some((etag, unchanged, png)) = cached else {
        return error(StatusCode::NOT_FOUND, format!("{n} has no {} greeting", kind.as_str()));
    };
    let cache_control = HeaderValue::from_static(CACHE_CONTROL);
    if unchanged {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache_control)],
        )
            .into_response();
    }
    let png = match png {
        Some(p) => p,
        None => match shared.store.greeting(n.as_u64() as i64, kind.as_str()).await {
            Ok(Some((etag_now, png))) => {
                let png = Bytes::from(png);
                shared.greetings.remember(n, kind, etag_now, Some(png.clone()));
                png
            }
            Ok(None) => return error(StatusCode::NOT_FOUND, format!("{n} has no {} greeting", kind.as_str())),
            Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, format!("could not read the greeting: {e}")),
        },
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/png")),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache_control),
        ],
        png,
    )
        .into_response()
}

/// Why a greeting was not stored or drawn: the picture itself (what the
/// portal words in the page's language), or the server.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    #[error(transparent)]
    Picture(#[from] GreetingError),
    #[error("could not store the greeting: {0}")]
    Store(String),
    #[error("{0}")]
    Internal(&'static str),
}

impl Refused {
    fn status(&self) -> StatusCode {
        match self {
            Refused::Picture(GreetingError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            Refused::Picture(GreetingError::NotAnImage | GreetingError::Unsupported(_)) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Refused::Picture(_) => StatusCode::BAD_REQUEST,
            Refused::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            Refused::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A refusal as the API's JSON error.
fn as_error(e: Refused) -> Response {
    error(e.status(), e.to_string())
}

/// Stores a normalised greeting (durable first, then in memory).
async fn keep(shared: &Shared, n: Number, kind: Kind, g: peerdial_greetings::Greeting) -> Result<peerdial_greetings::Greeting, Refused> {
    if let Err(e) = shared
        .store
        .put_greeting(n.as_u64() as i64, kind.as_str(), &g.png, &g.etag, now_ms() as i64)
        .await
    {
        return Err(Refused::Store(e.to_string()));
    }
    shared.greetings.remember(n, kind, g.etag.clone(), Some(Bytes::from(g.png.clone())));
    tracing::info!(number = %n, kind = kind.as_str(), etag = %g.etag, "greeting stored");
    Ok(g)
}

/// The answer to a stored greeting: its update code.
fn stored(shared: &Shared, n: Number, kind: Kind, g: peerdial_greetings::Greeting) -> Response {
    (
        [(header::ETAG, g.etag.clone())],
        Json(json!({ "etag": g.etag, "width": g.width, "height": g.height, "url": url(shared, n, kind) })),
    )
        .into_response()
}

/// Normalises an uploaded picture (under the API's limits) and stores it:
/// what `PUT …/{kind}` and the portal's upload form both do.
pub(crate) async fn store_upload(shared: &Shared, n: Number, kind: Kind, body: Bytes) -> Result<peerdial_greetings::Greeting, Refused> {
    // The size limit is normalize's own. Decoding is CPU work: keep it off the async workers.
    match tokio::task::spawn_blocking(move || normalize(&body, &UploadLimits::default())).await {
        Ok(Ok(g)) => keep(shared, n, kind, g).await,
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(Refused::Internal("the picture could not be processed")),
    }
}

/// Draws a greeting card (not stored: the portal's preview, and
/// [`store_card`]).
pub(crate) async fn draw_card(
    text: String,
    foreground: Option<String>,
    background: Option<String>,
    layout: Option<String>,
) -> Result<peerdial_greetings::Greeting, Refused> {
    let layout = match layout.as_deref() {
        None => Layout::Centered,
        Some(l) => Layout::parse(l).ok_or(GreetingError::UnknownLayout)?,
    };
    let colour = |c: Option<String>, default: &str, field: &'static str| {
        let c = c.unwrap_or_else(|| default.to_string());
        Colour::parse(&c).map(|_| c).ok_or(GreetingError::BadColour { field })
    };
    let foreground = colour(foreground, "#ffffff", "foreground")?;
    let background = colour(background, "#1f4e79", "background")?;
    let card = Card {
        text,
        foreground,
        background,
        layout,
    };
    match tokio::task::spawn_blocking(move || render_card(&card)).await {
        Ok(Ok(g)) => Ok(g),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(Refused::Internal("the card could not be drawn")),
    }
}

/// Draws a greeting card and stores it: what `POST …/card` and the
/// portal's card form both do.
pub(crate) async fn store_card(
    shared: &Shared,
    n: Number,
    kind: Kind,
    text: String,
    foreground: Option<String>,
    background: Option<String>,
    layout: Option<String>,
) -> Result<peerdial_greetings::Greeting, Refused> {
    let g = draw_card(text, foreground, background, layout).await?;
    keep(shared, n, kind, g).await
}

/// `PUT …/{caller|callee}`: a PNG, JPEG, GIF or WebP, with the number's own credentials.
async fn upload(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((number, kind)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (n, kind) = match owned(&shared, &number, &kind, &headers, peer) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let body = match peerdial_net::http_server::raw_body(body, MAX_UPLOAD_BYTES) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match store_upload(&shared, n, kind, body).await {
        Ok(g) => stored(&shared, n, kind, g),
        Err(e) => as_error(e),
    }
}

/// `DELETE …/{caller|callee}`.
async fn remove(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((number, kind)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let (n, kind) = match owned(&shared, &number, &kind, &headers, peer) {
        Ok(t) => t,
        Err(r) => return r,
    };
    match shared.store.delete_greeting(n.as_u64() as i64, kind.as_str()).await {
        Ok(true) => {
            shared.greetings.forget(n, kind);
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => error(StatusCode::NOT_FOUND, format!("{n} has no {} greeting", kind.as_str())),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, format!("could not remove the greeting: {e}")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CardRequest {
    text: String,
    #[serde(default)]
    foreground: Option<String>,
    #[serde(default)]
    background: Option<String>,
    #[serde(default)]
    layout: Option<String>,
}

/// `POST …/{caller|callee}/card {"text", "foreground"?, "background"?, "layout"?}`:
/// a greeting card drawn on the server, for users with no picture at hand.
async fn card(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((number, kind)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (n, kind) = match owned(&shared, &number, &kind, &headers, peer) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let req: CardRequest = match peerdial_net::http_server::json_body(body, crate::http::MAX_BODY) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match store_card(&shared, n, kind, req.text, req.foreground, req.background, req.layout).await {
        Ok(g) => stored(&shared, n, kind, g),
        Err(e) => as_error(e),
    }
}
