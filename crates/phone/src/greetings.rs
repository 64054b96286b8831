//! Greeting pictures at the phone (design §9): the `Call-Info` URLs our
//! calls carry, the check that decides whether a URL from the other side may
//! be fetched at all, fetching with `If-None-Match` through the bounded disk
//! cache (`<data>/greetings`), and the poll that keeps our own greetings
//! current.
//!
//! A URL is fetched only if it is the other number's own greeting on that
//! number's own region, whose HTTP API is found through DNS alone (SRV
//! `_peerdial._tcp` at its area zone): a phone must not be made to request
//! arbitrary hosts. What this is not: uploads (the region's API and web
//! page do that), or drawing (the display module does).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use peerdial_greetings::{DiskCache, Kind};
use peerdial_number::Number;

use crate::display::UiEvent;
use crate::resolve::{self, Dns};
use crate::{Command, Phone};

/// The disk cache's bound.
pub const CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// A greeting picture as fetched (or revalidated).
#[derive(Debug, Clone)]
pub struct Picture {
    pub url: String,
    pub etag: String,
    pub png: Vec<u8>,
}

pub type SharedCache = Arc<Mutex<Option<DiskCache>>>;

/// The URL of `number`'s `kind` greeting on the region at `region_http`.
pub fn url(region_http: &str, number: Number, kind: Kind) -> String {
    format!(
        "{}/api/v1/greetings/{}/{}",
        region_http.trim_end_matches('/'),
        number,
        kind.as_str()
    )
}

/// A `Call-Info` header value naming that greeting as an icon.
pub fn call_info(region_http: &str, number: Number, kind: Kind) -> String {
    format!("<{}>;purpose=icon", url(region_http, number, kind))
}

/// The URL of the first `purpose=icon` entry of a `Call-Info` value.
pub fn icon_url(header: &str) -> Option<String> {
    let mut rest = header;
    while let Some(open) = rest.find('<') {
        let close = open + rest[open..].find('>')?;
        let uri = &rest[open + 1..close];
        let after = &rest[close + 1..];
        let params = &after[..after.find(',').unwrap_or(after.len())];
        let icon = params.split(';').any(|p| {
            p.split_once('=')
                .is_some_and(|(k, v)| k.trim().eq_ignore_ascii_case("purpose") && v.trim().trim_matches('"').eq_ignore_ascii_case("icon"))
        });
        if icon {
            return Some(uri.trim().to_string());
        }
        rest = after;
    }
    None
}

/// Whether `url` is exactly `number`'s `kind` greeting on the HTTP API at
/// `api` (the address DNS gives for that number's region): `http://`, the
/// same IP and port, the greeting path, nothing else.
pub fn allowed(url: &str, api: SocketAddr, number: Number, kind: Kind) -> bool {
    let Some(rest) = url.strip_prefix("http://") else { return false };
    let Some((authority, path)) = rest.split_once('/') else {
        return false;
    };
    let host_ok = authority.parse::<SocketAddr>().is_ok_and(|a| a == api)
        || (api.port() == 80 && authority.parse::<std::net::IpAddr>().is_ok_and(|ip| ip == api.ip()));
    if !host_ok {
        return false;
    }
    let parts: Vec<&str> = path.split('/').collect();
    matches!(parts.as_slice(), ["api", "v1", "greetings", n, k]
        if *k == kind.as_str()
            && n.bytes().all(|b| b.is_ascii_digit() || b == b'-')
            && Number::parse(n).is_ok_and(|p| p == number))
}

/// GETs `url` (an already allowed one), revalidating a cached copy.
pub async fn fetch(url: &str, cache: SharedCache) -> Result<Picture, String> {
    let rest = url.strip_prefix("http://").ok_or("not an http:// URL")?;
    let (authority, path) = rest.split_once('/').ok_or("no path")?;
    let path = format!("/{path}");
    let cached = cache.lock().expect("greeting cache").as_mut().and_then(|c| c.get(url));
    let inm = cached.as_ref().map(|(etag, _)| etag.clone());
    let mut headers = vec![("Accept", "image/png")];
    if let Some(e) = &inm {
        headers.push(("If-None-Match", e));
    }
    let r = crate::http::request(authority, "GET", &path, &headers, b"", Duration::from_secs(5))
        .await
        .map_err(|e| e.to_string())?;
    match (r.status, cached) {
        (304, Some((etag, png))) => Ok(Picture {
            url: url.into(),
            etag,
            png,
        }),
        (200, _) => {
            let etag = r.header("etag").ok_or("no ETag")?.to_string();
            if let Some(c) = cache.lock().expect("greeting cache").as_mut() {
                if let Err(e) = c.put(url, &etag, &r.body) {
                    tracing::debug!("greeting cache: {e}");
                }
            }
            Ok(Picture {
                url: url.into(),
                etag,
                png: r.body,
            })
        }
        (404, _) => Err("no greeting (404)".into()),
        (s, _) => Err(format!("the region answered {s}")),
    }
}

/// Checks `call_info` against `number`'s region (found through DNS), then
/// fetches the picture.
pub async fn fetch_checked(
    dns: Dns,
    root: String,
    number: Number,
    kind: Kind,
    call_info: String,
    cache: SharedCache,
) -> Result<Picture, String> {
    let url = icon_url(&call_info).ok_or("no purpose=icon URL in Call-Info")?;
    let api = resolve::region_api(&dns, number, &root)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no _peerdial._tcp record for {number}'s area"))?;
    if !allowed(&url, api, number, kind) {
        return Err(format!("{url} is not {number}'s {kind} greeting on its region {api}"));
    }
    fetch(&url, cache).await
}

/// Our own greetings whose update codes differ from the cached ones,
/// fetched (`GET /api/v1/greetings/{own}` first).
pub async fn own_changed(region_http: String, own: Number, cache: SharedCache) -> Result<Vec<(Kind, Picture)>, String> {
    let authority = peerdial_net::http_client::http_authority(&region_http).map_err(|e| e.to_string())?;
    let r = crate::http::request(
        authority,
        "GET",
        &format!("/api/v1/greetings/{own}"),
        &[],
        b"",
        Duration::from_secs(5),
    )
    .await
    .map_err(|e| e.to_string())?;
    if r.status != 200 {
        return Err(format!("the region answered {}", r.status));
    }
    let v: serde_json::Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for kind in Kind::ALL {
        let Some(etag) = v[kind.as_str()]["etag"].as_str() else { continue };
        let u = url(&region_http, own, kind);
        let known = cache
            .lock()
            .expect("greeting cache")
            .as_mut()
            .and_then(|c| c.get(&u))
            .map(|(e, _)| e);
        if known.as_deref() != Some(etag) {
            out.push((kind, fetch(&u, cache.clone()).await?));
        }
    }
    Ok(out)
}

impl Phone {
    /// Fetches the other side's picture for a call if its URL passes the check.
    pub(crate) fn fetch_greeting(&mut self, cid: &str, number: Number, kind: Kind, call_info: &str) {
        let Some(dns) = self.dns.clone() else { return };
        let (root, cache, tx, cid, info) = (
            self.root.clone(),
            self.pictures.clone(),
            self.cmd_tx.clone(),
            cid.to_string(),
            call_info.to_string(),
        );
        tokio::spawn(async move {
            let result = fetch_checked(dns, root, number, kind, info, cache).await;
            let _ = tx
                .send(Command::Greeting {
                    call_id: cid,
                    number,
                    result,
                })
                .await;
        });
    }

    pub(crate) fn on_greeting(&mut self, cid: &str, number: Number, result: Result<Picture, String>) {
        match result {
            Ok(p) => {
                if self.calls.contains_key(cid) {
                    if let Some(c) = self.view_mut(cid) {
                        c.picture = peerdial_greetings::decode_picture(&p.png)
                            .map_err(|e| tracing::debug!("greeting of {number} not drawn: {e}"))
                            .ok()
                            .map(std::sync::Arc::new);
                    }
                }
                self.emit(UiEvent::Greeting { url: p.url, etag: p.etag });
            }
            Err(reason) => self.emit(UiEvent::GreetingNotFetched {
                number: number.to_string(),
                reason,
            }),
        }
    }

    /// Asks our region whether our greetings changed (at start and every
    /// `greeting_poll_ms`).
    pub(crate) fn poll_own_greetings(&mut self) {
        if self.cfg.switch.is_some() {
            return; // a switch's device has no region to keep greetings
        }
        let (region, own, cache, tx) = (self.id.region_http.clone(), self.own, self.pictures.clone(), self.cmd_tx.clone());
        tokio::spawn(async move {
            match own_changed(region, own, cache).await {
                Ok(changed) => {
                    for (kind, picture) in changed {
                        let _ = tx.send(Command::OwnGreeting { kind, picture }).await;
                    }
                }
                Err(e) => tracing::debug!("own greetings: {e}"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n() -> Number {
        Number::parse("886-02-12345678").unwrap()
    }

    #[test]
    fn only_the_numbers_own_greeting_on_its_region_is_allowed() {
        let api: SocketAddr = "127.0.0.2:8080".parse().unwrap();
        let good = "http://127.0.0.2:8080/api/v1/greetings/886-02-12345678/caller";
        assert!(allowed(good, api, n(), Kind::Caller));
        assert!(allowed(
            "http://127.0.0.2:8080/api/v1/greetings/8860212345678/caller",
            api,
            n(),
            Kind::Caller
        ));
        for bad in [
            "http://127.0.0.3:8080/api/v1/greetings/886-02-12345678/caller",
            "http://127.0.0.2:8081/api/v1/greetings/886-02-12345678/caller",
            "http://127.0.0.2/api/v1/greetings/886-02-12345678/caller",
            "https://127.0.0.2:8080/api/v1/greetings/886-02-12345678/caller",
            "http://127.0.0.2:8080/api/v1/greetings/886-02-12345679/caller",
            "http://127.0.0.2:8080/api/v1/greetings/886-02-12345678/callee",
            "http://127.0.0.2:8080/api/v1/greetings/886-02-12345678/caller?x=1",
            "http://127.0.0.2:8080/api/v1/greetings/886-02-12345678/caller/../../admin",
            "http://127.0.0.2:8080/api/v1/provision",
            "http://evil.example:8080/api/v1/greetings/886-02-12345678/caller",
            "http://user@127.0.0.2:8080/api/v1/greetings/886-02-12345678/caller",
            "",
        ] {
            assert!(!allowed(bad, api, n(), Kind::Caller), "{bad}");
        }
        assert!(!allowed(good, api, n(), Kind::Callee));
    }

    #[test]
    fn call_info_icons() {
        let info = call_info("http://127.0.0.1:80/", n(), Kind::Callee);
        assert_eq!(info, "<http://127.0.0.1:80/api/v1/greetings/886-02-12345678/callee>;purpose=icon");
        assert_eq!(
            icon_url(&info).as_deref(),
            Some("http://127.0.0.1:80/api/v1/greetings/886-02-12345678/callee")
        );
        assert_eq!(
            icon_url("<http://a/x>;purpose=info, <http://b/y> ; Purpose=\"ICON\"").as_deref(),
            Some("http://b/y")
        );
        assert_eq!(icon_url("<http://a/x>;purpose=card"), None);
        assert_eq!(icon_url("<http://a/x"), None);
        assert_eq!(icon_url("garbage"), None);
    }
}
