//! Who is asking, on the HTTP API: a number proves itself with its SIP
//! credentials (HTTP Basic: the 13 digits and the SIP password), checked
//! against the registrar's HA1, so the region keeps no second password.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine;
use peerdial_number::Number;
use peerdial_sip::digest::Ha1;

use crate::Shared;

/// The number whose credentials the request carries; `expected` (when
/// given) must be that number. Wrong or missing credentials → 401 with a
/// challenge, counted against the client's address like wrong device
/// secrets; credentials of another number → 403.
#[allow(clippy::result_large_err)] // the error is the response itself
pub fn number(shared: &Shared, headers: &HeaderMap, peer: std::net::IpAddr, expected: Option<Number>) -> Result<Number, Response> {
    if crate::http::limited(shared, peer) {
        return Err(peerdial_net::http_server::error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many wrong credentials from this address; try again in a minute".into(),
        ));
    }
    let challenge = |why: &str| {
        let mut r = peerdial_net::http_server::error(StatusCode::UNAUTHORIZED, why.into());
        let realm = format!("Basic realm=\"{}\", charset=\"UTF-8\"", shared.realm);
        if let Ok(v) = realm.parse() {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        r
    };
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(challenge(
            "credentials needed: HTTP Basic with the number's SIP username and password",
        ));
    };
    let decoded = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let Some((user, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
        return Err(challenge("unreadable credentials: expected HTTP Basic"));
    };
    let ok = Number::parse(user).ok().filter(|n| {
        let ha1 = Ha1::new(&n.digits(), &shared.realm, password);
        shared
            .registrar
            .lock()
            .expect("registrar lock")
            .credential(*n)
            .is_some_and(|known| peerdial_dns::tsig::constant_time_eq(&known.sha256, &ha1.sha256))
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
