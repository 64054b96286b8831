//! Caller identity on the region's side (design §9): the region's signing
//! key, published as a TXT record at the area zone's apex and as a JWK on
//! the HTTP API, and the endpoint where a registered phone gets a
//! short-lived PASSporT for the number it dials.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use peerdial_identity::{IdentityHeader, Passport, SigningKey};
use peerdial_net::http_server::error;
use peerdial_number::Number;
use serde::Deserialize;
use serde_json::json;

use crate::{now_ms, RegionError, Shared};

/// How long a PASSporT is good for: long enough to place the call, short
/// enough that a copied one is useless soon (RFC 8224 §6.2.3: 60 s).
pub const PASSPORT_LIFETIME: u64 = 60;

/// Where the key lives on the API (the `x5u`/`info` every token names).
pub const KEY_PATH: &str = "/api/v1/identity/key";

/// The region's key: made on first start and kept in DIR/identity-key.pem
/// (mode 0600), so tokens and the published key survive restarts.
pub fn load_key(data_dir: &Path) -> Result<SigningKey, RegionError> {
    Ok(SigningKey::load_or_generate(
        &data_dir.join("identity-key.pem"),
        &mut rand::rngs::OsRng,
    )?)
}

pub fn key_url(http: SocketAddr) -> String {
    format!("http://{http}{KEY_PATH}")
}

/// An `Identity` header value: this region vouches that `orig` (one of its
/// numbers) speaks to `dest`, from `iat` (Unix seconds) for
/// [`PASSPORT_LIFETIME`].
pub fn sign(shared: &Shared, orig: Number, dest: Number, iat: u64) -> Result<String, RegionError> {
    let url = key_url(shared.endpoints.http);
    let token = Passport::sign(&shared.identity, orig, &[dest], iat, PASSPORT_LIFETIME, &url)?;
    Ok(IdentityHeader::new(token, url).to_string())
}

/// `GET /api/v1/identity/key`: the public key as a JWK.
pub async fn key(State(shared): State<Arc<Shared>>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/jwk+json"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        shared.identity.public_key().to_jwk(),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PassportRequest {
    dest: String,
}

/// `POST /api/v1/identity/passport {"dest": NUMBER}`, with the caller's
/// own credentials: the `Identity` header value for a call to `dest`.
pub async fn passport(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let orig = match crate::auth::number(&shared, &headers, peer.ip(), None) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let req: PassportRequest = match peerdial_net::http_server::json_body(body, crate::http::MAX_BODY) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let dest = match Number::parse(&req.dest) {
        Ok(n) if !n.is_none() => n,
        Ok(_) => return error(StatusCode::BAD_REQUEST, "000-00-00000000 cannot be called".into()),
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid dest {:?}: {e}", req.dest)),
    };
    let iat = now_ms() / 1000;
    match sign(&shared, orig, dest, iat) {
        Ok(identity) => Json(json!({
            "identity": identity,
            "orig": orig.to_string(),
            "dest": dest.to_string(),
            "iat": iat,
            "exp": iat + PASSPORT_LIFETIME,
        }))
        .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("could not sign: {e}")),
    }
}
