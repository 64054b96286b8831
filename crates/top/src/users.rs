//! Who a request at the top is. A user is a peerdial number; the top keeps
//! no passwords (design §9): the number's region vouches for it with a
//! PASSporT (`Identity`, orig = dest = the number, from `POST
//! /api/v1/identity/passport` with the device's credentials), which the
//! top checks with the key it finds in DNS. `POST /api/v1/session` turns
//! that into a bearer token for dialers (the command line, a page);
//! only the token's hash is stored.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use peerdial_identity::{HttpClaim, FROM_HEADER};
use peerdial_net::http_server::error;
use peerdial_number::Number;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::TopShared;

/// How long a dialer's token lasts.
pub const TOKEN_LIFETIME_MS: u64 = 12 * 3600 * 1000;

pub fn routes() -> Router<Arc<TopShared>> {
    Router::new().route("/api/v1/session", post(session))
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The number a region vouched for in this request's `Identity` (with
/// `X-Peerdial-From` naming it); `None` when there is no `Identity`.
#[allow(clippy::result_large_err)] // the error is the response itself
pub(crate) async fn vouched(shared: &TopShared, headers: &HeaderMap) -> Result<Option<Number>, Response> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (identity, claimed) = match HttpClaim::read(text("identity"), text(FROM_HEADER)) {
        HttpClaim::Absent => return Ok(None),
        HttpClaim::MissingFrom => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("an Identity header needs {FROM_HEADER}: the vouched number"),
            ))
        }
        HttpClaim::Vouched { identity, from } => (identity, from),
    };
    check_identity(shared, claimed, identity).await.map_err(|why| {
        tracing::debug!(number = %claimed, %why, "an identity did not verify");
        error(StatusCode::UNAUTHORIZED, format!("the identity of {claimed} did not verify"))
    })?;
    Ok(Some(claimed))
}

/// The number a region vouched for, or 401 naming what is missing.
#[allow(clippy::result_large_err)] // the error is the response itself
pub(crate) async fn vouched_number(shared: &TopShared, headers: &HeaderMap) -> Result<Number, Response> {
    vouched(shared, headers).await?.ok_or_else(|| {
        error(
            StatusCode::UNAUTHORIZED,
            "sign in with a PASSporT from your region: Identity and X-Peerdial-From".into(),
        )
    })
}

/// Whether `identity` (an `Identity` header value) is `number`'s region
/// vouching for it (orig = dest = `number`), with the key found in DNS.
pub(crate) async fn check_identity(shared: &TopShared, number: Number, identity: &str) -> Result<(), String> {
    let Some(dns) = shared.dns_for(number) else {
        return Err("no region of this tree holds the number".into());
    };
    shared.channels.tokens.check(&dns, number, number, identity, now_ms()).await
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The signed-in user of a request: `Authorization: Bearer TOKEN`.
#[allow(clippy::result_large_err)]
pub(crate) async fn user(shared: &TopShared, headers: &HeaderMap) -> Result<Number, Response> {
    let unauthorized = || {
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "sign in: Authorization: Bearer TOKEN (from POST /api/v1/session)".into(),
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        r
    };
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return Err(unauthorized());
    };
    match shared.store.user_token(&token_hash(token.trim()), now_ms() as i64).await {
        Ok(Some(n)) => Number::from_u64(n as u64).map_err(|_| unauthorized()),
        Ok(None) => Err(unauthorized()),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, format!("the top's database: {e}"))),
    }
}

/// A new bearer token for `number` (only its hash is stored) and when it
/// expires.
pub(crate) async fn mint(shared: &TopShared, number: Number) -> Result<(String, u64), peerdial_store::StoreError> {
    let token = hex::encode(rand::random::<[u8; 24]>());
    let now = now_ms();
    let expires = now + TOKEN_LIFETIME_MS;
    shared
        .store
        .put_user_token(&token_hash(&token), number.as_u64() as i64, expires as i64, now as i64)
        .await?;
    Ok((token, expires))
}

/// `POST /api/v1/session` with `Identity` and `X-Peerdial-From`: a bearer
/// token for that number.
async fn session(State(shared): State<Arc<TopShared>>, headers: HeaderMap) -> Response {
    let number = match vouched_number(&shared, &headers).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let (token, expires) = match mint(&shared, number).await {
        Ok(t) => t,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("the top's database: {e}")),
    };
    (
        StatusCode::CREATED,
        Json(json!({"token": token, "number": number.to_string(), "expires_ms": expires})),
    )
        .into_response()
}
