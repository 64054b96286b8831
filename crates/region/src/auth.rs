//! Who is asking, on the HTTP API: a number proves itself with its SIP
//! credentials (HTTP Basic: the 13 digits and the SIP password), checked
//! against the registrar's HA1, so the region keeps no second password.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine;
use peerdial_identity::{HttpClaim, FROM_HEADER};
use peerdial_net::http_server::error;
use peerdial_number::Number;
use peerdial_sip::digest::Ha1;

use crate::Shared;
use subtle::ConstantTimeEq;

/// The number another region vouches for in this request about `dest`:
/// `Identity` (a PASSporT, orig = that number, dest = `dest`) with
/// `X-Peerdial-From` naming it. `None` without `Identity`; 400 when the
/// number beside it is missing, 401 when it does not verify. `who` names
/// the asker in the refusal ("watcher", "poster").
pub async fn vouched(shared: &Shared, headers: &HeaderMap, dest: Number, who: &str) -> Result<Option<Number>, Response> {
    let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or_default());
    match HttpClaim::read(text("identity"), text(FROM_HEADER)) {
        HttpClaim::Absent => Ok(None),
        HttpClaim::MissingFrom => Err(error(
            StatusCode::BAD_REQUEST,
            format!("an Identity header needs {FROM_HEADER}: the {who}'s number"),
        )),
        HttpClaim::Vouched { identity, from } => match shared.watchers.verify_token(from, dest, identity, crate::now_ms()).await {
            Some(n) => Ok(Some(n)),
            None => Err(error(StatusCode::UNAUTHORIZED, format!("the identity of {from} did not verify"))),
        },
    }
}

/// The number whose credentials the request carries; `expected` (when
/// given) must be that number. Wrong or missing credentials → 401 with a
/// challenge, counted against the client's address like wrong device
/// secrets; credentials of another number → 403.
#[allow(clippy::result_large_err)] // the error is the response itself
pub fn number(shared: &Shared, headers: &HeaderMap, peer: std::net::IpAddr, expected: Option<Number>) -> Result<Number, Response> {
    too_many(shared, peer)?;
    let challenge = |why: &str| unauthorized(&shared.realm, why);
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(challenge(
            "credentials needed: HTTP Basic with the number's SIP username and password",
        ));
    };
    let Some((user, password)) = basic(value) else {
        return Err(challenge("unreadable credentials: expected HTTP Basic"));
    };
    let (user, password) = (user.as_str(), password.as_str());
    let ok = Number::parse(user).ok().filter(|n| {
        let ha1 = Ha1::new(&n.digits(), &shared.realm, password);
        shared
            .registrar
            .lock()
            .expect("registrar lock")
            .credential(*n)
            .is_some_and(|known| bool::from(known.sha256.ct_eq(&ha1.sha256)))
    });
    let Some(n) = ok else {
        crate::http::record_failure(shared, peer);
        return Err(challenge("wrong number or password"));
    };
    match expected {
        Some(e) if e != n => Err(peerdial_net::http_server::error(
            StatusCode::FORBIDDEN,
            format!("these are the credentials of {n}, not of {e}"),
        )),
        _ => Ok(n),
    }
}

/// The user and password of an HTTP Basic `Authorization` value.
fn basic(value: &axum::http::HeaderValue) -> Option<(String, String)> {
    let decoded = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())?;
    let (u, p) = decoded.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Whether the request carries credentials at all.
pub fn has_credentials(headers: &HeaderMap) -> bool {
    headers.contains_key(header::AUTHORIZATION)
}

/// The operator whose credentials (HTTP Basic: the name given to
/// `peerdial region operator add` and its password) the request carries.
/// Wrong ones → 401, counted against the address like wrong device secrets.
pub async fn operator(shared: &Shared, headers: &HeaderMap, peer: std::net::IpAddr) -> Result<String, Response> {
    too_many(shared, peer)?;
    let refuse = |why: &str| unauthorized("peerdial operator", why);
    let Some((name, password)) = headers.get(header::AUTHORIZATION).and_then(basic) else {
        return Err(refuse(
            "operator credentials needed: HTTP Basic with the operator's name and password",
        ));
    };
    let stored = shared
        .store
        .operator_hash(&name)
        .await
        .map_err(|e| peerdial_net::http_server::error(StatusCode::SERVICE_UNAVAILABLE, format!("could not read operators: {e}")))?;
    // A missing operator costs the same Argon2 work as a wrong password.
    let phc = stored.clone().unwrap_or_else(|| DUMMY_PHC.to_string());
    if peerdial_portal::verify_password(password, phc).await && stored.is_some() {
        Ok(name)
    } else {
        crate::http::record_failure(shared, peer);
        Err(refuse("wrong operator name or password"))
    }
}

/// An Argon2id hash of a random password nobody knows.
const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3YlLz3W7r1dNq9wC2y6Kx3H0T3Vj1sFq0pZ0bqGZyUQ";

/// The user name of HTTP Basic credentials, if any (to tell a number's
/// credentials from an operator's).
pub fn basic_user(headers: &HeaderMap) -> Option<String> {
    headers.get(header::AUTHORIZATION).and_then(basic).map(|(u, _)| u)
}

/// 429 while the address has had too many wrong credentials.
#[allow(clippy::result_large_err)] // the error is the response itself
fn too_many(shared: &Shared, peer: std::net::IpAddr) -> Result<(), Response> {
    if crate::http::limited(shared, peer) {
        return Err(peerdial_net::http_server::error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many wrong credentials from this address; try again in a minute".into(),
        ));
    }
    Ok(())
}

/// 401 with a Basic challenge for `realm`.
fn unauthorized(realm: &str, why: &str) -> Response {
    let mut r = peerdial_net::http_server::error(StatusCode::UNAUTHORIZED, why.into());
    if let Ok(v) = format!("Basic realm=\"{realm}\", charset=\"UTF-8\"").parse() {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}
