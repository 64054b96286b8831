//! The mailbox on the region's HTTP API, for the number's owner (HTTP
//! Basic with its SIP credentials, as the other owner APIs):
//! - `GET /api/v1/messages/{number}`: missed calls, messages (no bodies)
//!   and the message-summary counts;
//! - `GET /api/v1/messages/{number}/{id}`: one message's body;
//! - `POST /api/v1/messages/{number}/{id}/read`, `DELETE …/{id}`;
//! - `PUT /api/v1/mailbox/{number}/prompt`: the owner's prompt (a WAV).
//!
//! Not here: deposits (SIP, [`crate::mailbox`]; HTTP posts,
//! [`crate::mailbox_upload`]).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use peerdial_net::http_server::error;
use peerdial_number::Number;
use serde_json::json;

use crate::{now_ms, Shared};

/// The largest prompt upload (a minute of 16-bit 16 kHz mono is ~1.9 MB).
pub const MAX_PROMPT_BYTES: usize = 2 << 20;

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/api/v1/messages/{number}",
            // The post reads its own body, to the mailbox's limit, once
            // its sender is known (`mailbox_upload`).
            get(list).post(crate::mailbox_upload::upload),
        )
        .route("/api/v1/messages/{number}/{id}", get(body).delete(remove))
        .route("/api/v1/messages/{number}/{id}/read", post(read))
        .route(
            "/api/v1/mailbox/{number}/prompt",
            put(prompt).layer(DefaultBodyLimit::max(MAX_PROMPT_BYTES + 1)),
        )
}

/// The number in the path, provisioned here, with its owner's credentials.
#[allow(clippy::result_large_err)] // the error is the response itself
fn owner(shared: &Shared, number: &str, headers: &HeaderMap, peer: SocketAddr) -> Result<Number, Response> {
    let n = crate::http::provisioned_number(shared, number)?;
    crate::auth::number(shared, headers, peer.ip(), Some(n))
}

fn db(e: peerdial_store::StoreError) -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, format!("storage: {e}"))
}

async fn list(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(number): Path<String>,
    headers: HeaderMap,
) -> Response {
    let n = match owner(&shared, &number, &headers, peer) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let key = n.as_u64() as i64;
    let calls = match shared.store.calls(key).await {
        Ok(c) => c,
        Err(e) => return db(e),
    };
    let ids = shared.mailbox.book.lock().expect("book lock").ids(n);
    let mut messages = Vec::new();
    for id in ids {
        // The index is in memory; the row's details come from the store.
        match shared.store.message(key, id).await {
            Ok(Some(m)) => messages.push(json!({
                "id": m.id, "kind": m.kind, "content_type": m.content_type, "sender": m.sender,
                "verified": m.verified, "at_ms": m.at_ms, "size": m.size, "read": m.read_ms != 0,
            })),
            Ok(None) => {}
            Err(e) => return db(e),
        }
    }
    let summary = shared.mailbox.book.lock().expect("book lock").summary(n, None);
    let counts: serde_json::Map<String, serde_json::Value> = summary
        .counts
        .iter()
        .map(|(c, k)| (c.header().to_string(), json!({ "new": k.new, "old": k.old })))
        .collect();
    Json(json!({
        "number": n.to_string(),
        "calls": calls.iter().map(|c| json!({ "id": c.id, "caller": c.caller, "verified": c.verified, "at_ms": c.at_ms })).collect::<Vec<_>>(),
        "messages": messages,
        "waiting": summary.waiting,
        "counts": counts,
    }))
    .into_response()
}

/// [`owner`], and the message id in the path.
#[allow(clippy::result_large_err)] // the error is the response itself
fn owned_message(shared: &Shared, number: &str, id: &str, headers: &HeaderMap, peer: SocketAddr) -> Result<(Number, i64), Response> {
    let n = owner(shared, number, headers, peer)?;
    let id = id
        .parse()
        .map_err(|_| error(StatusCode::BAD_REQUEST, format!("invalid message id {id:?}")))?;
    Ok((n, id))
}

async fn body(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((number, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let (n, id) = match owned_message(&shared, &number, &id, &headers, peer) {
        Ok(x) => x,
        Err(r) => return r,
    };
    match shared.store.message(n.as_u64() as i64, id).await {
        Ok(Some(m)) if m.path.is_empty() => ([(header::CONTENT_TYPE, m.content_type)], m.body).into_response(),
        Ok(Some(m)) => match tokio::fs::read(&m.path).await {
            Ok(b) => ([(header::CONTENT_TYPE, m.content_type)], b).into_response(),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, format!("message file: {e}")),
        },
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no message {id} for {n}")),
        Err(e) => db(e),
    }
}

async fn read(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((number, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    change(&shared, &number, &id, &headers, peer, false).await
}

async fn remove(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((number, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    change(&shared, &number, &id, &headers, peer, true).await
}

/// Marks a message read or deletes it: in the store first, then in the
/// book; MWI subscribers (every device of the number) hear of it.
async fn change(shared: &Shared, number: &str, id: &str, headers: &HeaderMap, peer: SocketAddr, delete: bool) -> Response {
    let (n, id) = match owned_message(shared, number, id, headers, peer) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let key = n.as_u64() as i64;
    let done = if delete {
        shared.store.delete_message(key, id).await
    } else {
        shared.store.mark_message_read(key, id, now_ms() as i64).await
    };
    match done {
        Ok(true) => {
            {
                let mut book = shared.mailbox.book.lock().expect("book lock");
                let _ = if delete {
                    book.remove(n, id)
                } else {
                    book.mark_read(n, id).map(|_| ())
                };
            }
            crate::mailbox_mwi::changed(shared, n);
            if delete {
                StatusCode::NO_CONTENT.into_response()
            } else {
                Json(json!({ "id": id, "read": true })).into_response()
            }
        }
        Ok(false) => error(StatusCode::NOT_FOUND, format!("no message {id} for {n}")),
        Err(e) => db(e),
    }
}

/// `PUT /api/v1/mailbox/{number}/prompt`: a WAV the mailbox can play.
async fn prompt(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(number): Path<String>,
    headers: HeaderMap,
    wav: Bytes,
) -> Response {
    let n = match owner(&shared, &number, &headers, peer) {
        Ok(n) => n,
        Err(r) => return r,
    };
    if wav.len() > MAX_PROMPT_BYTES {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a prompt is at most {MAX_PROMPT_BYTES} bytes"),
        );
    }
    match crate::deposit::decode_wav(&wav, 8000) {
        Some(pcm) if !pcm.is_empty() => {}
        _ => {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the prompt must be a WAV file with audio".into(),
            )
        }
    }
    match shared.store.put_prompt(n.as_u64() as i64, &wav, now_ms() as i64).await {
        Ok(()) => Json(json!({ "number": n.to_string(), "prompt": wav.len() })).into_response(),
        Err(e) => db(e),
    }
}
