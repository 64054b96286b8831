//! A stub DNS client for the network's own lookups (design §9: "finding
//! any number's region from DNS alone"). Number → SIP URI through an
//! ordinary DNS resolver: a NAPTR query for the ENUM name (RFC 6116), over
//! UDP, again over TCP when the answer is truncated; the same queries find
//! a number's region: the TXT key record at its area zone's apex
//! ([`keys`]), SRV `_peerdial._tcp` for its HTTP API. Without a resolver,
//! the tree's directory (the top) names the region's DNS server ([`Dns`]).
//!
//! What this is not: a recursive resolver or a cache of DNS answers (the
//! resolver asked does the walking and the caching), nor the authoritative
//! zone (`peerdial-dns`). Used by the phone and by servers that must check
//! another region's signatures.

pub mod keys;

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use peerdial_number::Number;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// What a lookup can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The resolver or directory could not be asked, or answered an error.
    #[error("{0}")]
    Lookup(String),
}

/// The first `nameserver` of /etc/resolv.conf, the system's resolver.
pub fn system_resolver() -> Result<SocketAddr, ResolveError> {
    let conf = std::fs::read_to_string("/etc/resolv.conf").map_err(|e| ResolveError::Lookup(format!("/etc/resolv.conf: {e}")))?;
    conf.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .find_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .ok_or_else(|| ResolveError::Lookup("no nameserver in /etc/resolv.conf".into()))
}

/// What the DNS says about a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The SIP URI to call first (the phone's contact while it is online,
    /// else its region's mailbox), and the ones to try after it, in NAPTR
    /// order (design §9: order 10 the phone, order 20 the mailbox).
    Found { uri: String, then: Vec<String> },
    /// NXDOMAIN, or a name with no E2U+sip NAPTR: nobody has this number now.
    NoSuchNumber,
}

impl Lookup {
    /// The last target: the number's mailbox (order 20) whether or not
    /// its phone is online.
    pub fn mailbox(&self) -> Option<&str> {
        match self {
            Lookup::Found { uri, then } => Some(then.last().unwrap_or(uri)),
            Lookup::NoSuchNumber => None,
        }
    }
}

/// Looks `number` up through `resolver` when there is one, else through
/// the tree's directory at `top` (`peerdial up` on high ports, where no
/// recursive resolver knows the tree): what a phone and a switch both do.
pub async fn lookup_either(resolver: Option<SocketAddr>, top: Option<&str>, number: Number, root: &str) -> Result<Lookup, ResolveError> {
    match (resolver, top) {
        (Some(r), _) => lookup(r, number, root).await,
        (None, Some(t)) => lookup_via_top(t, number, root).await,
        (None, None) => Err(ResolveError::Lookup("no resolver".into())),
    }
}

pub async fn lookup(resolver: SocketAddr, number: Number, root: &str) -> Result<Lookup, ResolveError> {
    let answer = query(resolver, &number.enum_name(root), RecordType::NAPTR).await?;
    match answer.response_code() {
        ResponseCode::NXDomain => return Ok(Lookup::NoSuchNumber),
        ResponseCode::NoError => {}
        rc => return Err(ResolveError::Lookup(format!("the resolver at {resolver} answered {rc}"))),
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
    let mut uris = naptrs
        .iter()
        .filter_map(|n| apply_regexp(&String::from_utf8_lossy(n.regexp()), &number.digits()));
    Ok(match uris.next() {
        Some(uri) => Lookup::Found { uri, then: uris.collect() },
        None => Lookup::NoSuchNumber,
    })
}

/// One query (recursion desired) for `name`/`rtype`, over UDP, again over
/// TCP when the answer is truncated.
pub async fn query(server: SocketAddr, name: &str, rtype: RecordType) -> Result<Message, ResolveError> {
    let name = Name::from_ascii(name).map_err(|e| ResolveError::Lookup(e.to_string()))?;
    let mut q = Message::new();
    let id: u16 = rand::random();
    q.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true);
    q.add_query(Query::query(name, rtype));
    let wire = q.to_vec().map_err(|e| ResolveError::Lookup(e.to_string()))?;
    let answer = query_udp(server, &wire, id).await?;
    if answer.truncated() {
        return query_tcp(server, &wire, id).await;
    }
    Ok(answer)
}

/// Where to ask about a number's area: a resolver, or (without one) the
/// region's own DNS server that the tree's directory names.
#[derive(Debug, Clone)]
pub enum Dns {
    Resolver(SocketAddr),
    Top(String),
}

impl Dns {
    /// The server to ask about `number`'s area.
    pub async fn server_for(&self, number: Number) -> Result<SocketAddr, ResolveError> {
        match self {
            Dns::Resolver(r) => Ok(*r),
            Dns::Top(t) => region_dns_via_top(t, number)
                .await?
                .ok_or_else(|| ResolveError::Lookup(format!("no region holds {number}"))),
        }
    }
}

/// The TXT records at `name` (each record's strings joined) and the
/// smallest TTL among them.
pub async fn txt(server: SocketAddr, name: &str) -> Result<(Vec<String>, u32), ResolveError> {
    let answer = query(server, name, RecordType::TXT).await?;
    if answer.response_code() != ResponseCode::NoError {
        return Err(ResolveError::Lookup(format!("TXT {name}: {}", answer.response_code())));
    }
    let mut ttl = u32::MAX;
    let records = answer
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::TXT(t) => {
                ttl = ttl.min(r.ttl());
                Some(
                    t.txt_data()
                        .iter()
                        .map(|c| String::from_utf8_lossy(c).into_owned())
                        .collect::<String>(),
                )
            }
            _ => None,
        })
        .collect::<Vec<_>>();
    Ok((records, if ttl == u32::MAX { 0 } else { ttl }))
}

/// The address an SRV name points at (its port, and the target's address
/// from the additional section or an A/AAAA query). `None` when there is
/// no such record.
pub async fn srv_addr(server: SocketAddr, name: &str) -> Result<Option<SocketAddr>, ResolveError> {
    let answer = query(server, name, RecordType::SRV).await?;
    let Some(srv) = answer.answers().iter().find_map(|r| match r.data() {
        RData::SRV(s) => Some(s.clone()),
        _ => None,
    }) else {
        return Ok(None);
    };
    let target = srv.target().clone();
    let ip_of = |m: &Message| {
        m.answers()
            .iter()
            .chain(m.additionals())
            .filter(|r| r.name() == &target)
            .find_map(|r| match r.data() {
                RData::A(a) => Some(std::net::IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(std::net::IpAddr::V6(a.0)),
                _ => None,
            })
    };
    let ip = match ip_of(&answer) {
        Some(ip) => Some(ip),
        None => ip_of(&query(server, &target.to_ascii(), RecordType::A).await?),
    };
    Ok(ip.map(|ip| SocketAddr::new(ip, srv.port())))
}

/// A region's HTTP API address from DNS alone: SRV `_peerdial._tcp` at the
/// area zone of `number`.
pub async fn region_api(dns: &Dns, number: Number, root: &str) -> Result<Option<SocketAddr>, ResolveError> {
    let server = dns.server_for(number).await?;
    srv_addr(server, &format!("_peerdial._tcp.{}", number.area().zone_name(root))).await
}

/// Without a recursive resolver: ask the tree's directory (the top, then a
/// country server if the top points to one) which region holds the
/// number, and ask that region's DNS directly.
pub async fn lookup_via_top(top: &str, number: Number, root: &str) -> Result<Lookup, ResolveError> {
    match region_dns_via_top(top, number).await? {
        Some(dns) => lookup(dns, number, root).await,
        None => Ok(Lookup::NoSuchNumber),
    }
}

/// The DNS server of the region holding `number`, as the directory says
/// (`None`: no region holds it).
pub async fn region_dns_via_top(top: &str, number: Number) -> Result<Option<SocketAddr>, ResolveError> {
    let mut base = top.trim_end_matches('/').to_string();
    for _ in 0..4 {
        let path = format!("/api/v1/lookup/{}", number.digits());
        let (status, body) = peerdial_net::http_client::request("GET", &base, &path, None)
            .await
            .map_err(|e| ResolveError::Lookup(format!("directory {base}: {e}")))?;
        if status == 404 {
            return Ok(None);
        }
        if status != 200 {
            return Err(ResolveError::Lookup(format!("directory {base} answered {status}: {body}")));
        }
        let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| ResolveError::Lookup(format!("directory {base}: {e}")))?;
        // A country server below, or (asked about another country's
        // number) the parent above.
        if v["kind"] == "country" || v["kind"] == "parent" {
            base = v["http"].as_str().unwrap_or_default().to_string();
            continue;
        }
        let dns: SocketAddr = v["dns"]
            .as_str()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| ResolveError::Lookup(format!("directory {base}: no DNS address for the region")))?;
        return Ok(Some(dns));
    }
    Err(ResolveError::Lookup("the directory refers too deep".into()))
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

async fn query_udp(server: SocketAddr, wire: &[u8], id: u16) -> Result<Message, ResolveError> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().unwrap()
    } else {
        "[::]:0".parse().unwrap()
    };
    let sock = UdpSocket::bind(bind).await.map_err(|e| ResolveError::Lookup(e.to_string()))?;
    sock.connect(server)
        .await
        .map_err(|e| ResolveError::Lookup(format!("{server}: {e}")))?;
    let mut buf = vec![0u8; 4096];
    // Three tries: 1 s, 2 s, 2 s.
    for wait in [1000u64, 2000, 2000] {
        sock.send(wire).await.map_err(|e| ResolveError::Lookup(format!("{server}: {e}")))?;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait);
        loop {
            match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
                Err(_) => break,
                Ok(Err(e)) => return Err(ResolveError::Lookup(format!("the resolver at {server} is unreachable: {e}"))),
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
    Err(ResolveError::Lookup(format!("the resolver at {server} did not answer")))
}

async fn query_tcp(server: SocketAddr, wire: &[u8], id: u16) -> Result<Message, ResolveError> {
    let io = |e: std::io::Error| ResolveError::Lookup(format!("{server} (TCP): {e}"));
    let run = async {
        let mut s = TcpStream::connect(server).await.map_err(io)?;
        let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(wire);
        s.write_all(&framed).await.map_err(io)?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len).await.map_err(io)?;
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut buf).await.map_err(io)?;
        let m = Message::from_vec(&buf).map_err(|e| ResolveError::Lookup(e.to_string()))?;
        if m.id() != id {
            return Err(ResolveError::Lookup(format!("{server} (TCP): answer to another query")));
        }
        Ok(m)
    };
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .map_err(|_| ResolveError::Lookup(format!("the resolver at {server} did not answer over TCP")))?
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
