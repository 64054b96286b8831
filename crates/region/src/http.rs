//! The region's HTTP API: provisioning by MAC address, and status; the
//! web portal's pages are merged in at `/`.
//!
//! Every error is JSON `{"error": "…"}` with a status that says why; a
//! refused request changes nothing.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use peerdial_number::Number;
use peerdial_sip::digest::Ha1;
use peerdial_store::{DeviceRow, Write};
use rand::{Rng, RngCore};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::state::Device;
use crate::{now_ms, Shared};

/// Provisioning bodies are tiny; anything bigger is refused unread.
pub const MAX_BODY: usize = 16 * 1024;
const MAX_SECRET_FAILURES: u32 = 10;
const FAILURE_WINDOW_MS: u64 = 60_000;

pub fn spawn(shared: Arc<Shared>, listener: tokio::net::TcpListener, portal: Router, mut stop: watch::Receiver<bool>) {
    let app = Router::new()
        .route("/api/v1/provision", post(provision))
        .route("/api/v1/numbers/{number}", get(number_status))
        .route("/api/v1/region", get(region_status))
        .route(crate::identity::KEY_PATH, get(crate::identity::key))
        .route("/api/v1/identity/passport", post(crate::identity::passport))
        .merge(crate::greetings::routes())
        .merge(crate::presence_api::routes())
        .merge(crate::account::routes())
        .merge(crate::channels_api::routes())
        .merge(crate::mailbox_api::routes())
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(shared)
        .merge(portal);
    tokio::spawn(async move {
        let serve = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(async move {
            let _ = stop.changed().await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
}

use peerdial_net::http_server::error;

#[derive(Deserialize)]
struct ProvisionRequest {
    mac: String,
    #[serde(default)]
    ip: Option<String>,
    #[serde(default)]
    number: Option<String>,
    #[serde(default)]
    secret: Option<String>,
}

/// Parses a MAC (`02:00:00:00:00:01`, `02-00-…` or 12 hex digits).
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let bad = || format!("invalid MAC address {s:?}: expected six hex octets like 02:00:00:00:00:01");
    let octets: Vec<&str> = if s.len() == 12 {
        (0..6).map(|i| s.get(i * 2..i * 2 + 2).unwrap_or("")).collect()
    } else {
        s.split([':', '-']).collect()
    };
    if octets.len() != 6 || octets.iter().any(|o| o.len() != 2 || !o.bytes().all(|b| b.is_ascii_hexdigit())) {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (b, o) in mac.iter_mut().zip(&octets) {
        *b = u8::from_str_radix(o, 16).map_err(|_| bad())?;
    }
    if mac == [0; 6] || mac == [0xff; 6] {
        return Err(format!(
            "invalid MAC address {s:?}: all-zero and broadcast are not device addresses"
        ));
    }
    if mac[0] & 1 == 1 {
        return Err(format!("invalid MAC address {s:?}: a multicast address is not a device"));
    }
    Ok(mac)
}

/// The number in a request's path: 400 when it does not parse, 404 when
/// it is not provisioned in this region.
#[allow(clippy::result_large_err)] // the error is the response itself
pub(crate) fn provisioned_number(shared: &Shared, number: &str) -> Result<Number, Response> {
    let n = Number::parse(number).map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid number {number:?}: {e}")))?;
    if !shared.provisioned(n) {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("number {n} is not provisioned in this region"),
        ));
    }
    Ok(n)
}

pub(crate) fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

pub(crate) fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..len).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

pub(crate) fn limited(shared: &Shared, ip: IpAddr) -> bool {
    let f = shared.http_failures.lock().expect("failures lock");
    f.get(&ip)
        .is_some_and(|(n, start)| *n >= MAX_SECRET_FAILURES && now_ms().saturating_sub(*start) < FAILURE_WINDOW_MS)
}

pub(crate) fn record_failure(shared: &Shared, ip: IpAddr) {
    let now = now_ms();
    let mut f = shared.http_failures.lock().expect("failures lock");
    if f.len() > 100_000 {
        f.retain(|_, (_, start)| now.saturating_sub(*start) < FAILURE_WINDOW_MS);
    }
    let e = f.entry(ip).or_insert((0, now));
    if now.saturating_sub(e.1) >= FAILURE_WINDOW_MS {
        *e = (0, now);
    }
    e.0 += 1;
}

async fn provision(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let req: ProvisionRequest = match peerdial_net::http_server::json_body(body, MAX_BODY) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let mac = match parse_mac(&req.mac) {
        Ok(m) => m,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let ip: IpAddr = match req.ip.as_deref() {
        None | Some("") => peer.ip(),
        Some(s) => match s.parse() {
            Ok(ip) => ip,
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("invalid ip {s:?}: expected an IPv4 or IPv6 address"),
                )
            }
        },
    };
    let area = shared.cfg.area;
    let wanted = match req.number.as_deref() {
        None | Some("") => Number::NONE,
        Some(s) => match Number::parse(s) {
            Ok(n) if n.is_none() || area.contains(n) => n,
            Ok(n) => return error(StatusCode::BAD_REQUEST, format!("number {n} is not in this region's area {area}")),
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid number {s:?}: {e}")),
        },
    };
    if limited(&shared, peer.ip()) {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many wrong device secrets from this address; try again in a minute".into(),
        );
    }

    let known = shared
        .devices
        .lock()
        .expect("devices lock")
        .by_mac
        .get(&mac)
        .map(|d| (d.number, d.secret_hash));
    if let Some((number, hash)) = known {
        let ok = req
            .secret
            .as_deref()
            .is_some_and(|s| Sha256::digest(s.as_bytes()).as_slice() == hash);
        if !ok {
            record_failure(&shared, peer.ip());
            let why = if req.secret.is_some() {
                "wrong device secret"
            } else {
                "this MAC address is already provisioned; send its device secret"
            };
            return error(StatusCode::FORBIDDEN, why.into());
        }
        if shared.disabled.lock().expect("disabled lock").contains(&number) {
            return error(
                StatusCode::FORBIDDEN,
                format!("number {number} is disabled by the region's operator"),
            );
        }
        let password = random_token(24);
        let ha1 = Ha1::new(&number.digits(), &shared.realm, &password);
        let write = Write::UpdateCredentials {
            mac: mac_text(&mac),
            ha1_md5: hex::encode(ha1.md5),
            ha1_sha256: hex::encode(ha1.sha256),
            ip: ip.to_string(),
            updated_ms: now_ms() as i64,
        };
        if let Err(e) = shared.store.write(write).await {
            return error(StatusCode::SERVICE_UNAVAILABLE, format!("could not store the device: {e}"));
        }
        shared.registrar.lock().expect("registrar lock").set_credential(number, ha1);
        shared.publish(number);
        return answer(&shared, number, &password, req.secret.as_deref().unwrap_or_default());
    }

    // A new device: take the number it asks for if free, else a random one.
    for attempt in 0..8 {
        let number = {
            let mut d = shared.devices.lock().expect("devices lock");
            if d.numbers.len() >= 90_000_000 {
                return error(StatusCode::SERVICE_UNAVAILABLE, format!("area {area} has no free numbers"));
            }
            let want = (attempt == 0 && !wanted.is_none()).then_some(wanted.individual());
            let pick = match want {
                Some(w) if !d.numbers.contains(&w) => w,
                _ => loop {
                    let c = rand::thread_rng().gen_range(0..100_000_000u32);
                    if !d.numbers.contains(&c) {
                        break c;
                    }
                },
            };
            d.numbers.insert(pick);
            Number::new(area, pick)
        };
        let mut secret_bytes = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut secret_bytes);
        let secret = hex::encode(secret_bytes);
        let secret_hash: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let password = random_token(24);
        let ha1 = Ha1::new(&number.digits(), &shared.realm, &password);
        let now = now_ms() as i64;
        let row = DeviceRow {
            mac: mac_text(&mac),
            number: number.as_u64() as i64,
            secret_hash: hex::encode(secret_hash),
            ha1_md5: hex::encode(ha1.md5),
            ha1_sha256: hex::encode(ha1.sha256),
            ip: ip.to_string(),
            created_ms: now,
            updated_ms: now,
        };
        match shared.store.write(Write::InsertDevice(row)).await {
            Ok(1) => {
                shared.registrar.lock().expect("registrar lock").set_credential(number, ha1);
                shared
                    .devices
                    .lock()
                    .expect("devices lock")
                    .by_mac
                    .insert(mac, Device { number, secret_hash });
                shared.presence.add_number(number);
                shared.publish(number);
                tracing::info!(%number, mac = %mac_text(&mac), "provisioned");
                return answer(&shared, number, &password, &secret);
            }
            Ok(_) => {
                // Taken meanwhile (another request, or another region process
                // on the same database): if it was the MAC, say so; else retry.
                if matches!(shared.store.device_by_mac(&mac_text(&mac)).await, Ok(Some(_))) {
                    return error(
                        StatusCode::CONFLICT,
                        "this MAC address was provisioned by a concurrent request; retry with its device secret".into(),
                    );
                }
            }
            Err(e) => {
                shared.devices.lock().expect("devices lock").numbers.remove(&number.individual());
                return error(StatusCode::SERVICE_UNAVAILABLE, format!("could not store the device: {e}"));
            }
        }
    }
    error(StatusCode::SERVICE_UNAVAILABLE, "could not allocate a free number; retry".into())
}

fn answer(shared: &Shared, number: Number, password: &str, secret: &str) -> Response {
    let e = shared.endpoints;
    Json(json!({
        "number": number.to_string(),
        "sip_username": number.digits(),
        "sip_password": password,
        "sip_realm": shared.realm,
        "device_secret": secret,
        "area": shared.cfg.area.to_string(),
        "zone": shared.zone.read().expect("zone lock").origin(),
        "registrar": { "udp": e.sip.to_string(), "tcp": e.sip.to_string(), "uri": format!("sip:{}", e.sip) },
        "dns": e.dns.to_string(),
        "http": format!("http://{}", e.http),
        "register_expires": shared.cfg.max_expires,
    }))
    .into_response()
}

async fn number_status(State(shared): State<Arc<Shared>>, Path(number): Path<String>) -> Response {
    let n = match Number::parse(&number) {
        Ok(n) => n,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid number {number:?}: {e}")),
    };
    if !shared.cfg.area.contains(n) {
        return error(
            StatusCode::NOT_FOUND,
            format!("number {n} is not in this region's area {}", shared.cfg.area),
        );
    }
    let provisioned = shared.registrar.lock().expect("registrar lock").has_credential(n);
    let uri = shared.zone.read().expect("zone lock").lookup(n).map(str::to_string);
    if !provisioned {
        return error(StatusCode::NOT_FOUND, format!("number {n} is not provisioned"));
    }
    // The last recorded state (the patent's user_property), if any; its
    // address stays in the database.
    let last = shared.store.number_state(n.as_u64() as i64).await.ok().flatten();
    let last = last.map(|s| json!({ "online": s.online, "since_ms": s.changed_ms }));
    Json(json!({ "number": n.to_string(), "registered": uri.is_some(), "uri": uri, "last_state": last })).into_response()
}

async fn region_status(State(shared): State<Arc<Shared>>) -> Response {
    let (serial, registered, origin) = {
        let z = shared.zone.read().expect("zone lock");
        (z.serial(), z.contact_count(), z.origin().to_string())
    };
    let provisioned = shared.registrar.lock().expect("registrar lock").credential_count();
    let e = shared.endpoints;
    Json(json!({
        "area": shared.cfg.area.to_string(),
        "zone": origin,
        "serial": serial,
        "provisioned": provisioned,
        "registered": registered,
        "sip": e.sip.to_string(),
        "dns": e.dns.to_string(),
        "http": format!("http://{}", e.http),
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::parse_mac;

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:00:00:00:00:01").unwrap(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(parse_mac("02-00-00-00-00-0A").unwrap(), [2, 0, 0, 0, 0, 10]);
        assert_eq!(parse_mac("020000000001").unwrap(), [2, 0, 0, 0, 0, 1]);
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:0g",
            "00:00:00:00:00:00",
            "ff:ff:ff:ff:ff:ff",
            "01:00:5e:00:00:01",
            "02:00:00:00:0:001",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }
}
