//! The web portal's first password: the owner of a number sets (or
//! changes) it by proving the number's SIP credentials (HTTP Basic, as
//! for greetings), so a phone or a script can do it without the portal.
//! The password is kept only as an Argon2id hash; setting it ends every
//! portal session of the number.
//!
//! The phone also asks here for a one-time pairing code
//! (`POST /api/v1/account/pairing-code`, same credentials): six digits,
//! valid five minutes, single use, stored hashed ([`peerdial_portal::pairing`]).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use peerdial_net::http_server::error;
use serde::Deserialize;
use serde_json::json;

use crate::{now_ms, Shared};

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/v1/account/password", post(set_password))
        .route("/api/v1/account/pairing-code", post(pairing_code))
}

/// A fresh pairing code for the number whose credentials the request carries.
async fn pairing_code(State(shared): State<Arc<Shared>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    let n = match crate::auth::number(&shared, &headers, peer.ip(), None) {
        Ok(n) => n,
        Err(resp) => return resp,
    };
    let now = now_ms() as i64;
    match peerdial_portal::pairing::issue(&shared.store, n.as_u64() as i64, now).await {
        Ok((code, expires)) => {
            tracing::info!(number = %n, "pairing code issued");
            Json(json!({
                "number": n.to_string(),
                "code": code,
                "expires_in": (expires - now) / 1000,
                "portal": format!("http://{}/signin", shared.endpoints.http),
            }))
            .into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, format!("could not store the code: {e}")),
    }
}

#[derive(Deserialize)]
struct PasswordRequest {
    password: String,
}

async fn set_password(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let n = match crate::auth::number(&shared, &headers, peer.ip(), None) {
        Ok(n) => n,
        Err(resp) => return resp,
    };
    let req: PasswordRequest = match peerdial_net::http_server::json_body(body, crate::http::MAX_BODY) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let hash = match peerdial_portal::hash_password(&req.password).await {
        Ok(h) => h,
        Err(e @ peerdial_portal::PortalError::PasswordLength) => return error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    if let Err(e) = shared.store.set_password_hash(n.as_u64() as i64, &hash, now_ms() as i64).await {
        return error(StatusCode::SERVICE_UNAVAILABLE, format!("could not store the password: {e}"));
    }
    // A new password ends every portal session of the number.
    let ended = match shared.store.end_number_sessions(n.as_u64() as i64, None).await {
        Ok(k) => k,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, format!("could not end the sessions: {e}")),
    };
    tracing::info!(number = %n, sessions_ended = ended, "portal password set");
    Json(json!({ "number": n.to_string(), "password_set": true, "portal": format!("http://{}/", shared.endpoints.http) })).into_response()
}
