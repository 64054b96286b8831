//! A small HTTP/1.1 client for the phone's own requests to regions
//! (PASSporTs, greeting pictures): one request per connection, any header,
//! binary bodies, and a cap on what it reads. It is not a general client:
//! no TLS, no redirects, no chunked uploads.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::PhoneError;

/// Largest answer read (a greeting PNG is far smaller).
pub const MAX_RESPONSE: usize = 2 * 1024 * 1024;

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

fn err(authority: &str, what: impl std::fmt::Display) -> PhoneError {
    PhoneError::Http(format!("{authority}: {what}"))
}

/// One request to `authority` (`host:port`); gives up after `timeout`.
pub async fn request(
    authority: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<Response, PhoneError> {
    let run = async {
        let mut s = TcpStream::connect(authority).await.map_err(|e| err(authority, e))?;
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        s.write_all(head.as_bytes()).await.map_err(|e| err(authority, e))?;
        s.write_all(body).await.map_err(|e| err(authority, e))?;
        let mut buf = Vec::new();
        (&mut s)
            .take(MAX_RESPONSE as u64 + 16 * 1024)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| err(authority, e))?;
        parse(&buf).ok_or_else(|| err(authority, "not an HTTP answer"))
    };
    tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| err(authority, "no answer in time"))?
}

/// Parses a whole response read until the connection closed.
pub fn parse(buf: &[u8]) -> Option<Response> {
    let at = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..at]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = buf[at + 4..].to_vec();
    let value = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    if value("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body)?;
    } else if let Some(len) = value("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if body.len() < len {
            return None;
        }
        body.truncate(len);
    }
    if body.len() > MAX_RESPONSE {
        return None;
    }
    Some(Response { status, headers, body })
}

fn dechunk(mut s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let at = s.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&s[..at]).ok()?;
        let n = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if n == 0 {
            return Some(out);
        }
        let rest = &s[at + 2..];
        out.extend_from_slice(rest.get(..n)?);
        s = rest.get(n..)?.strip_prefix(b"\r\n")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_parsed_and_bounded() {
        let r = parse(b"HTTP/1.1 200 OK\r\nETag: \"x\"\r\nContent-Length: 3\r\n\r\nabcdef").unwrap();
        assert_eq!((r.status, r.header("etag"), r.body.as_slice()), (200, Some("\"x\""), &b"abc"[..]));
        let r = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n").unwrap();
        assert_eq!(r.body, b"abcd");
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc").is_none());
        assert!(parse(b"garbage").is_none());
        assert!(parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_none());
    }
}
