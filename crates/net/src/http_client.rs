//! A minimal HTTP/1.1 client for JSON APIs between our own programs
//! (phone → region, region → top): one request per connection.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::NetError;

/// The host:port of an `http://` URL.
pub fn http_authority(base: &str) -> Result<&str, NetError> {
    let rest = base
        .strip_prefix("http://")
        .ok_or_else(|| NetError::Http(format!("{base:?} is not an http:// URL")))?;
    Ok(rest.split('/').next().unwrap_or(rest))
}

/// One HTTP/1.1 request with an optional JSON body; returns the status and
/// the body. One connection per request.
pub async fn request(method: &str, base: &str, path: &str, body: Option<&str>) -> Result<(u16, String), NetError> {
    request_with(method, base, path, &[], body).await
}

/// [`request`] with extra header fields (names and values are ours, never a
/// user's text: no line breaks are checked for).
pub async fn request_with(
    method: &str,
    base: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<(u16, String), NetError> {
    let authority = http_authority(base)?;
    let err = |e: std::io::Error| NetError::Http(format!("{base}: {e}"));
    let mut s = tokio::time::timeout(std::time::Duration::from_secs(10), TcpStream::connect(authority))
        .await
        .map_err(|_| NetError::Http(format!("{base}: connection timed out")))?
        .map_err(err)?;
    let body = body.unwrap_or("");
    let extra: String = headers.iter().map(|(n, v)| format!("{n}: {v}\r\n")).collect();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.map_err(err)?;
    let mut buf = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(30), s.read_to_end(&mut buf))
        .await
        .map_err(|_| NetError::Http(format!("{base}: no answer")))?
        .map_err(err)?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| NetError::Http(format!("{base}: not an HTTP answer")))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| NetError::Http(format!("{base}: not an HTTP answer")))?;
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.to_ascii_lowercase().contains("chunked"));
    let body = if chunked { dechunk(body) } else { body.to_string() };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies() {
        assert_eq!(dechunk("4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n"), "Wikipedia");
        assert!(http_authority("ftp://x").is_err());
        assert_eq!(http_authority("http://127.0.0.1:80/x").unwrap(), "127.0.0.1:80");
    }
}
