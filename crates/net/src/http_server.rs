//! What every JSON API of ours answers alike: errors as `{"error": "…"}`
//! with a status that says why, and request bodies parsed with a clear
//! reason when they are too large or not the JSON expected.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;

pub fn error(status: StatusCode, reason: String) -> Response {
    (status, Json(serde_json::json!({ "error": reason }))).into_response()
}

/// The body's bytes, or the error response to send (413 over `max` bytes).
#[allow(clippy::result_large_err)] // the error is the response itself, built once
pub fn raw_body(body: Result<Bytes, BytesRejection>, max: usize) -> Result<Bytes, Response> {
    body.map_err(|rej| {
        let status = rej.status();
        let reason = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!("request body too large (at most {max} bytes)")
        } else {
            rej.body_text()
        };
        error(status, reason)
    })
}

/// The body as `T`, or the error response to send (413 over `max` bytes,
/// 400 for anything that is not the expected JSON).
#[allow(clippy::result_large_err)] // the error is the response itself, built once
pub fn json_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>, max: usize) -> Result<T, Response> {
    let body = raw_body(body, max)?;
    serde_json::from_slice(&body).map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}
