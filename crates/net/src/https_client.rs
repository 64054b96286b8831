//! An HTTP client for other parties' servers — push services, APNs, FCM
//! (issue 15): HTTPS on rustls (`tls.rs`: webpki roots plus an optional
//! extra CA), HTTP/2 when the server offers it by ALPN (APNs requires it),
//! else HTTP/1.1; connections are pooled and reused. Plain `http://` is
//! refused except to a loopback host ([`check_url`]), so a push never
//! leaves the machine unencrypted; local stand-ins (`peerdial up`, tests)
//! may still use it.
//!
//! Not here: our own JSON APIs between our programs (`http_client.rs`).

use std::path::Path;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::NetError;

/// Largest answer body read.
const MAX_ANSWER: usize = 64 * 1024;

/// An answer: status, header fields (names lower-cased), body, and the
/// HTTP version it came over.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// "HTTP/2.0" or "HTTP/1.1".
    pub version: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Whether `host` (a URI's host, IPv6 in brackets or not) is loopback.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `https://` anywhere, `http://` to a loopback host only; the error says so.
pub fn check_url(url: &str) -> Result<hyper::Uri, NetError> {
    let uri: hyper::Uri = url.parse().map_err(|_| NetError::Http(format!("{url:?} is not a URL")))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("https"), Some(_)) => Ok(uri),
        (Some("http"), Some(h)) if is_loopback_host(h) => Ok(uri),
        (Some("http"), Some(_)) => Err(NetError::Http(format!(
            "{url}: plain http:// is allowed only to a loopback host (127.0.0.0/8, [::1], localhost); use https://"
        ))),
        _ => Err(NetError::Http(format!("{url:?} is not an https:// URL"))),
    }
}

/// The pooled client; cheap to clone.
#[derive(Clone)]
pub struct HttpsClient {
    inner: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl HttpsClient {
    /// Trusting the webpki roots and, if given, the CA certificates in the
    /// PEM file `extra_ca`.
    pub fn new(extra_ca: Option<&Path>) -> Result<HttpsClient, NetError> {
        let tls = crate::tls::client_config(extra_ca)?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .build();
        Ok(HttpsClient {
            inner: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(60))
                .build(https),
        })
    }

    /// One request to a full URL, given up after `timeout` (connect, TLS,
    /// send and read together); the answer's body is read up to 64 KiB.
    /// Header names and values are ours or a provider's adapter's.
    pub async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
        timeout: Duration,
    ) -> Result<Answer, NetError> {
        let uri = check_url(url)?;
        let host = uri.authority().map(|a| a.to_string()).unwrap_or_default();
        let mut req = hyper::Request::builder().method(method).uri(uri);
        for (n, v) in headers {
            req = req.header(n.as_str(), v.as_str());
        }
        let req = req
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|e| NetError::Http(format!("{host}: {e}")))?;
        let run = async {
            let resp = self.inner.request(req).await.map_err(|e| failure(&host, &e))?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| NetError::Http(format!("{host}: reading the answer: {e}")))?
                .to_bytes();
            Ok(Answer {
                status: parts.status.as_u16(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                    .collect(),
                body: body.to_vec(),
                version: format!("{:?}", parts.version),
            })
        };
        tokio::time::timeout(timeout, run)
            .await
            .map_err(|_| NetError::Http(format!("{host}: no answer in time")))?
    }
}

/// The most telling cause in an error chain: a TLS error (a refused
/// certificate, say) is named as one, else the innermost cause.
fn failure(host: &str, e: &(dyn std::error::Error + 'static)) -> NetError {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut last = e.to_string();
    while let Some(x) = cur {
        if let Some(t) = x.downcast_ref::<rustls::Error>() {
            return NetError::Tls(format!("{host}: {t}"));
        }
        last = x.to_string();
        // An io::Error hands out what it wraps by get_ref (its source()
        // skips a level).
        cur = match x.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => x.source(),
        };
    }
    NetError::Http(format!("{host}: {last}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "https://push.example.net/x",
            "http://127.0.0.1:9/up/a",
            "http://[::1]:9/",
            "http://localhost/x",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        let e = check_url("http://push.example.net/x").unwrap_err().to_string();
        assert!(e.contains("only to a loopback host"), "{e}");
        assert!(check_url("ftp://x/y").is_err());
        assert!(check_url("http://10.0.0.1/y").is_err());
    }
}
