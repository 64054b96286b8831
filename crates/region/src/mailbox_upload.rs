//! `POST /api/v1/messages/{number}`: a picture, WAV audio, MP4/WebM video
//! or text left in a number's mailbox by any phone of any region
//! (issue 12), as `multipart/form-data` (a `file` part and an optional
//! `text` part, see [`peerdial_mailbox::intake`]).
//!
//! The sender proves who it is with a PASSporT its own region signed for
//! this callee (`Identity` header, as for a call) and names itself in
//! `X-Peerdial-From`; the token is checked against the sender's region's
//! key found through DNS, and each token is taken once. The body is read
//! only after that, and only up to the largest message and its framing.
//! Answers: 201 once
//! committed; 400 malformed; 401 identity; 404 not a number of this
//! region; 413 too large; 415 a type not taken; 422 a file that is not
//! what its type says; 507 mailbox full. Nothing is stored on an error.
//!
//! Not here: the owner's routes ([`crate::mailbox_api`]).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use peerdial_mailbox::intake::{intake, IntakeLimits};
use peerdial_mailbox::MailboxError;
use peerdial_net::http_server::error;
use peerdial_number::Number;
use peerdial_store::MessageRow;
use serde_json::json;

use peerdial_identity::{HttpClaim, FROM_HEADER};

use crate::{now_ms, Shared};

/// Room for the multipart framing (boundaries, part headers, a caption).
const FRAMING: u64 = 64 << 10;

/// What a post may be, within the mailbox's largest message.
pub fn limits(shared: &Shared) -> IntakeLimits {
    let max_message = shared.mailbox.book.lock().expect("book lock").limits().max_message;
    IntakeLimits {
        // Room for the multipart framing around the largest message.
        max_body: max_message + FRAMING,
        ..Default::default()
    }
}

/// A body that could not be read: over the limit (413, naming the
/// mailbox's largest message), or cut off (400).
fn too_large_or_cut(e: axum::Error, limits: &IntakeLimits) -> Response {
    let e = e.into_inner();
    if e.is::<http_body_util::LengthLimitError>() {
        let max = limits.max_body.saturating_sub(FRAMING);
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the post is too large: at most {max} bytes in one message (and {FRAMING} of multipart framing)"),
        )
    } else {
        error(StatusCode::BAD_REQUEST, format!("the body could not be read: {e}"))
    }
}

fn refused(e: &MailboxError) -> Response {
    let status = match e {
        MailboxError::Malformed(_) | MailboxError::Empty => StatusCode::BAD_REQUEST,
        MailboxError::UnsupportedType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        MailboxError::NotWhatItClaims { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        MailboxError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        MailboxError::TooManyMessages { .. } | MailboxError::TooManyBytes { .. } => StatusCode::INSUFFICIENT_STORAGE,
        _ => StatusCode::BAD_REQUEST,
    };
    error(status, e.to_string())
}

/// The sender, if its `Identity` verifies for `callee`.
async fn sender(shared: &Shared, headers: &HeaderMap, callee: Number) -> Result<Number, Response> {
    let unauthorized = |why: &str| error(StatusCode::UNAUTHORIZED, why.to_string());
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (token, from) = match HttpClaim::read(text("identity"), text(FROM_HEADER)) {
        HttpClaim::Vouched { identity, from } => (identity, from),
        HttpClaim::Absent | HttpClaim::MissingFrom => {
            return Err(unauthorized(
                "X-Peerdial-From (the sender's number) and an Identity header (a PASSporT from the sender's region) are required",
            ))
        }
    };
    shared
        .watchers
        .verify_token(from, callee, token, now_ms())
        .await
        .ok_or_else(|| unauthorized("the Identity does not verify for this sender and callee (forged, expired or used before)"))
}

pub async fn upload(State(shared): State<Arc<Shared>>, Path(number): Path<String>, headers: HeaderMap, body: Body) -> Response {
    let limits = limits(&shared);
    let callee = match crate::http::provisioned_number(&shared, &number) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let from = match sender(&shared, &headers, callee).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    // Read only now, for a sender who proved who it is, and only up to
    // this region's largest message and its framing.
    let body = match axum::body::to_bytes(body, limits.max_body as usize).await {
        Ok(b) => b,
        Err(e) => return too_large_or_cut(e, &limits),
    };
    let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    // Decoding a picture is CPU work: off the runtime's threads.
    let ctype = ctype.to_string();
    let checked = tokio::task::spawn_blocking(move || intake(&body, &ctype, &limits)).await;
    let message = match checked {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => {
            tracing::info!(%callee, %from, error = %e, "posted message refused");
            return refused(&e);
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("intake failed: {e}")),
    };
    let at = now_ms() as i64;
    // Room for every item at once, under one lock: all or none.
    let sizes: Vec<u64> = message.items().map(|i| i.body.len() as u64).collect();
    let reserved = shared.mailbox.book.lock().expect("book lock").reserve_all(callee, &sizes);
    let rooms = match reserved {
        Ok(rooms) => rooms,
        Err(e) => return refused(&e),
    };
    let mut rows = Vec::new();
    for item in message.items() {
        rows.push(MessageRow {
            id: 0,
            number: callee.as_u64() as i64,
            kind: item.kind.as_str().into(),
            content_type: item.content_type.clone(),
            sender: from.digits(),
            verified: true,
            at_ms: at,
            size: item.body.len() as i64,
            read_ms: 0,
            body: item.body.clone(),
            path: String::new(),
        });
    }
    match crate::deposit::keep_all(&shared, rooms, &rows).await {
        Ok(ids) => {
            if message.items().any(|i| i.kind == peerdial_mailbox::Kind::Text) {
                crate::mailbox_text::deliver(&shared, callee);
            }
            let stored: Vec<_> = ids
                .iter()
                .zip(&rows)
                .map(|(id, r)| json!({ "id": id, "kind": r.kind, "content_type": r.content_type, "size": r.size }))
                .collect();
            (
                StatusCode::CREATED,
                Json(json!({ "number": callee.to_string(), "sender": from.digits(), "stored": stored })),
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(%callee, error = %e, "posted message not stored");
            error(StatusCode::SERVICE_UNAVAILABLE, format!("storage: {e}"))
        }
    }
}
