//! Number → SIP URI through an ordinary DNS resolver: a NAPTR query for the
//! ENUM name (RFC 6116), over UDP, again over TCP when the answer is
//! truncated. The resolver does the walking and the caching.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use peerdial_number::Number;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::PhoneError;

/// The first `nameserver` of /etc/resolv.conf, the system's resolver.
pub fn system_resolver() -> Result<SocketAddr, PhoneError> {
    let conf = std::fs::read_to_string("/etc/resolv.conf").map_err(|e| PhoneError::Resolve(format!("/etc/resolv.conf: {e}")))?;
    conf.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .find_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .ok_or_else(|| PhoneError::Resolve("no nameserver in /etc/resolv.conf".into()))
}

/// What the DNS says about a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The SIP URI of its current contact.
    Found(String),
    /// NXDOMAIN, or a name with no E2U+sip NAPTR: nobody has this number now.
    NoSuchNumber,
}

pub async fn lookup(resolver: SocketAddr, number: Number, root: &str) -> Result<Lookup, PhoneError> {
    let name = Name::from_ascii(number.enum_name(root)).map_err(|e| PhoneError::Resolve(e.to_string()))?;
    let mut q = Message::new();
    let id: u16 = rand::random();
    q.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true);
    q.add_query(Query::query(name, RecordType::NAPTR));
    let wire = q.to_vec().map_err(|e| PhoneError::Resolve(e.to_string()))?;
    let mut answer = query_udp(resolver, &wire, id).await?;
    if answer.truncated() {
        answer = query_tcp(resolver, &wire, id).await?;
    }
    match answer.response_code() {
        ResponseCode::NXDomain => return Ok(Lookup::NoSuchNumber),
        ResponseCode::NoError => {}
        rc => return Err(PhoneError::Resolve(format!("the resolver at {resolver} answered {rc}"))),
    }
    let mut naptrs: Vec<_> = answer
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::NAPTR(n) if String::from_utf8_lossy(n.services()).eq_ignore_ascii_case("E2U+sip") => Some(n.clone()),
            _ => None,
        })
        .collect();
    naptrs.sort_by_key(|n| (n.order(), n.preference()));
    Ok(naptrs
        .iter()
        .find_map(|n| apply_regexp(&String::from_utf8_lossy(n.regexp()), &number.digits()))
        .map(Lookup::Found)
        .unwrap_or(Lookup::NoSuchNumber))
}

/// Without a recursive resolver: ask the tree's directory (the top, then a
/// country server if the top points to one) which region holds the
/// number, and ask that region's DNS directly.
pub async fn lookup_via_top(top: &str, number: Number, root: &str) -> Result<Lookup, PhoneError> {
    let mut base = top.trim_end_matches('/').to_string();
    for _ in 0..4 {
        let path = format!("/api/v1/lookup/{}", number.digits());
        let (status, body) = peerdial_net::http_client::request("GET", &base, &path, None)
            .await
            .map_err(|e| PhoneError::Resolve(format!("directory {base}: {e}")))?;
        if status == 404 {
            return Ok(Lookup::NoSuchNumber);
        }
        if status != 200 {
            return Err(PhoneError::Resolve(format!("directory {base} answered {status}: {body}")));
        }
        let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| PhoneError::Resolve(format!("directory {base}: {e}")))?;
        if v["kind"] == "country" {
            base = v["http"].as_str().unwrap_or_default().to_string();
            continue;
        }
        let dns: SocketAddr = v["dns"]
            .as_str()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| PhoneError::Resolve(format!("directory {base}: no DNS address for the region")))?;
        return lookup(dns, number, root).await;
    }
    Err(PhoneError::Resolve("the directory refers too deep".into()))
}

/// Applies an ENUM NAPTR regexp (`!^.*$!sip:…!`) to the number. Only the
/// match-all form is supported, which is what regions publish; a `\1`
/// back-reference gets the whole number.
pub fn apply_regexp(re: &str, digits: &str) -> Option<String> {
    let delim = re.chars().next()?;
    let parts: Vec<&str> = re[delim.len_utf8()..].split(delim).collect();
    if parts.len() < 2 {
        return None;
    }
    let (pattern, replacement) = (parts[0], parts[1]);
    if pattern != "^.*$" && pattern != "^(.*)$" {
        return None;
    }
    let uri = replacement.replace("\\1", &format!("+{digits}"));
    uri.starts_with("sip:").then_some(uri)
}

async fn query_udp(server: SocketAddr, wire: &[u8], id: u16) -> Result<Message, PhoneError> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().unwrap()
    } else {
        "[::]:0".parse().unwrap()
    };
    let sock = UdpSocket::bind(bind).await.map_err(|e| PhoneError::Resolve(e.to_string()))?;
    sock.connect(server)
        .await
        .map_err(|e| PhoneError::Resolve(format!("{server}: {e}")))?;
    let mut buf = vec![0u8; 4096];
    // Three tries: 1 s, 2 s, 2 s.
    for wait in [1000u64, 2000, 2000] {
        sock.send(wire).await.map_err(|e| PhoneError::Resolve(format!("{server}: {e}")))?;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait);
        loop {
            match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
                Err(_) => break,
                Ok(Err(e)) => return Err(PhoneError::Resolve(format!("the resolver at {server} is unreachable: {e}"))),
                Ok(Ok(n)) => {
                    if let Ok(m) = Message::from_vec(&buf[..n]) {
                        if m.id() == id && m.message_type() == MessageType::Response {
                            return Ok(m);
                        }
                    }
                }
            }
        }
    }
    Err(PhoneError::Resolve(format!("the resolver at {server} did not answer")))
}

async fn query_tcp(server: SocketAddr, wire: &[u8], id: u16) -> Result<Message, PhoneError> {
    let io = |e: std::io::Error| PhoneError::Resolve(format!("{server} (TCP): {e}"));
    let run = async {
        let mut s = TcpStream::connect(server).await.map_err(io)?;
        let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(wire);
        s.write_all(&framed).await.map_err(io)?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len).await.map_err(io)?;
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut buf).await.map_err(io)?;
        let m = Message::from_vec(&buf).map_err(|e| PhoneError::Resolve(e.to_string()))?;
        if m.id() != id {
            return Err(PhoneError::Resolve(format!("{server} (TCP): answer to another query")));
        }
        Ok(m)
    };
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .map_err(|_| PhoneError::Resolve(format!("the resolver at {server} did not answer over TCP")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexps() {
        assert_eq!(
            apply_regexp("!^.*$!sip:886021@127.0.0.1:5070!", "886021"),
            Some("sip:886021@127.0.0.1:5070".into())
        );
        assert_eq!(
            apply_regexp("!^(.*)$!sip:\\1@example.net!", "886021"),
            Some("sip:+886021@example.net".into())
        );
        assert_eq!(apply_regexp("!^.*$!mailto:x@y!", "1"), None);
        assert_eq!(apply_regexp("!^\\+886(.*)$!sip:\\1@x!", "1"), None);
        assert_eq!(apply_regexp("", "1"), None);
    }
}
