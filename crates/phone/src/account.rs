//! The phone's side of the web portal's account: a one-time pairing code
//! for signing in (the `pair` command), and learning a new number or new
//! credentials from the region.
//!
//! A number moved to a vanity number (or credentials changed on the
//! region) shows up as a 403 to our REGISTER. The phone then provisions
//! again with its device secret: the region answers with the device's
//! current number and fresh SIP credentials, which the phone stores in its
//! identity file before registering again. At most one such attempt per
//! [`RECLAIM_EVERY_MS`], so a refused device does not hammer the region.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use peerdial_sip::client::{RegisterClient, RegisterConfig};

use crate::provision::{self, Identity};
use crate::PhoneError;

/// Least time between two re-provisionings after refused REGISTERs.
pub const RECLAIM_EVERY_MS: u64 = 60_000;

/// Whether a registration failure is the registrar refusing our
/// credentials (not a timeout or a server error).
pub fn credentials_refused(reason: &str) -> bool {
    reason.starts_with("403")
}

/// A request to our own region's HTTP API with our SIP credentials (HTTP
/// Basic), with a JSON body if given.
pub async fn to_region(
    id: &Identity,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
    timeout: Duration,
) -> Result<crate::http::Response, PhoneError> {
    let authority = peerdial_net::http_client::http_authority(&id.region_http).map_err(|e| PhoneError::Http(e.to_string()))?;
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", id.sip_username, id.sip_password));
    let auth = format!("Basic {creds}");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    crate::http::request(
        authority,
        method,
        path,
        &[("Authorization", &auth), ("Content-Type", "application/json")],
        body.as_bytes(),
        timeout,
    )
    .await
}

/// Asks the region for a pairing code; the line to show.
pub async fn pairing_code(id: &Identity) -> Result<String, PhoneError> {
    let r = to_region(id, "POST", "/api/v1/account/pairing-code", None, Duration::from_secs(5)).await?;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    if r.status != 200 {
        let why = v["error"].as_str().unwrap_or("no reason given");
        return Err(PhoneError::Http(format!(
            "the region answered {} for a pairing code: {why}",
            r.status
        )));
    }
    let code = v["code"]
        .as_str()
        .filter(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| PhoneError::Http("pairing code answer without a code".into()))?;
    let minutes = v["expires_in"].as_u64().unwrap_or(300) / 60;
    let portal = v["portal"].as_str().unwrap_or_default();
    Ok(format!(
        "pairing code {code} for {}: valid {minutes} minutes, once; sign in at {portal}",
        id.number
    ))
}

/// Provisions again with the device secret and stores the answer: the
/// identity with the device's current number and fresh credentials.
pub async fn reclaim(data: &Path, id: &Identity, local_ip: IpAddr) -> Result<Identity, PhoneError> {
    let fresh = provision::provision(&id.region_http, &id.mac, &local_ip.to_string(), Some(id)).await?;
    provision::save(data, &fresh)?;
    Ok(fresh)
}

/// A registration client for an identity (as at start-up).
pub fn register_client(id: &Identity, local: SocketAddr) -> RegisterClient {
    RegisterClient::new(
        RegisterConfig {
            registrar: id.registrar,
            user: id.sip_username.clone(),
            domain: id.sip_realm.clone(),
            password: id.sip_password.clone(),
            expires: id.register_expires.unwrap_or(600).min(3600),
            user_agent: format!("peerdial-phone/{}", env!("CARGO_PKG_VERSION")),
        },
        local,
    )
}
