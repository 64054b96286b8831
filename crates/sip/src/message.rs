//! SIP message codec (RFC 3261 section 7): parse and serialise requests and
//! responses, with header folding, compact header names and Content-Length
//! framing for stream transports.

use std::net::SocketAddr;

use crate::SipError;

/// Messages larger than this are refused (UDP datagrams and TCP frames).
pub const MAX_MESSAGE: usize = 65_535;
/// Most header lines a message may carry.
pub const MAX_HEADERS: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    Request { method: String, uri: String },
    Response { code: u16, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub start: StartLine,
    /// Headers in order, names in their canonical long form.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Long form of a compact header name (RFC 3261 section 7.3.3 and later RFCs).
fn expand_compact(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "i" => "Call-ID",
        "m" => "Contact",
        "e" => "Content-Encoding",
        "l" => "Content-Length",
        "c" => "Content-Type",
        "f" => "From",
        "s" => "Subject",
        "k" => "Supported",
        "t" => "To",
        "v" => "Via",
        "o" => "Event",
        "u" => "Allow-Events",
        "r" => "Refer-To",
        "b" => "Referred-By",
        _ => return None,
    })
}

/// Canonical spelling for the headers this crate looks up, so lookups can
/// compare exactly; other names are kept as sent.
pub(crate) fn canonical(name: &str) -> String {
    if name.len() == 1 {
        if let Some(long) = expand_compact(name) {
            return long.to_string();
        }
    }
    const KNOWN: &[&str] = &[
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Expires",
        "Content-Length",
        "Content-Type",
        "Authorization",
        "WWW-Authenticate",
        "Max-Forwards",
        "User-Agent",
        "Min-Expires",
        "Allow",
        "Supported",
        "Require",
        "Event",
        "Retry-After",
        "Refer-To",
        "Referred-By",
        "Subscription-State",
    ];
    for k in KNOWN {
        if k.eq_ignore_ascii_case(name) {
            return (*k).to_string();
        }
    }
    name.to_string()
}

/// A header line has no control characters (but HTAB) outside a
/// quoted-pair of a quoted string.
pub(crate) fn clean_header_line(line: &str) -> bool {
    let (mut quoted, mut escaped) = (false, false);
    for b in line.bytes() {
        let control = (b < 0x20 && b != b'\t') || b == 0x7f;
        if escaped {
            escaped = false;
            if b == b'\r' || b == b'\n' {
                return false;
            }
            continue;
        }
        if control {
            return false;
        }
        match b {
            b'"' => quoted = !quoted,
            b'\\' if quoted => escaped = true,
            _ => {}
        }
    }
    true
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

impl Message {
    /// Parses one whole message (a UDP datagram, or a frame cut by [`frame_len`]).
    pub fn parse(data: &[u8]) -> Result<Message, SipError> {
        if data.len() > MAX_MESSAGE {
            return Err(SipError::TooLarge(data.len()));
        }
        // RFC 3261 7.5: ignore CRLFs before the start line (keep-alives).
        let start_at = data.iter().position(|&b| b != b'\r' && b != b'\n').ok_or(SipError::Empty)?;
        let data = &data[start_at..];
        // A datagram is a whole message: one whose headers end without the
        // blank line (RFC 4475's baddn) is read as having no body.
        let (head_end, body_start) = match find_head_end(data) {
            Some(ends) => ends,
            None if data.ends_with(b"\n") => (data.len() - 1, data.len()),
            None => return Err(SipError::Incomplete),
        };
        let head = std::str::from_utf8(&data[..head_end]).map_err(|_| SipError::Malformed("header section is not UTF-8".into()))?;
        let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let first = lines.next().ok_or(SipError::Empty)?;
        let start = parse_start_line(first)?;

        // Most requests carry 8–16 headers: one allocation, not five regrowths.
        let mut headers: Vec<(String, String)> = Vec::with_capacity(16);
        for line in lines {
            // RFC 3261 25.1: header text has no control characters but HTAB,
            // except escaped inside a quoted string (RFC 4475 3.1.1.2).
            if !clean_header_line(line) {
                return Err(SipError::Malformed("control character in a header line".into()));
            }
            if line.starts_with([' ', '\t']) {
                // Folded continuation of the previous header.
                let last = headers
                    .last_mut()
                    .ok_or_else(|| SipError::Malformed("continuation line before any header".into()))?;
                let more = line.trim();
                if !more.is_empty() {
                    if !last.1.is_empty() {
                        last.1.push(' ');
                    }
                    last.1.push_str(more);
                }
                continue;
            }
            if line.is_empty() {
                continue;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| SipError::Malformed(format!("header line without ':': {:.40}", line)))?;
            let name = name.trim();
            if !is_token(name) {
                return Err(SipError::Malformed(format!("invalid header name {:.40}", name)));
            }
            if headers.len() >= MAX_HEADERS {
                return Err(SipError::Malformed("too many headers".into()));
            }
            headers.push((canonical(name), value.trim().to_string()));
        }

        let rest = &data[body_start..];
        let mut msg = Message {
            start,
            headers,
            body: Vec::new(),
        };
        let body_len = match msg.header("Content-Length") {
            Some(v) => v
                .trim()
                .parse::<usize>()
                .map_err(|_| SipError::Malformed("Bad Content-Length".into()))?,
            None => rest.len(),
        };
        if body_len > rest.len() {
            return Err(SipError::Malformed("Content-Length exceeds the body".into()));
        }
        msg.body = rest[..body_len].to_vec();
        Ok(msg)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// All values of a header, splitting comma-separated lists for headers
    /// that allow them (Via, Contact), respecting quotes and angle brackets.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        let mut out = Vec::new();
        for (n, v) in &self.headers {
            if n == name {
                out.extend(split_list(v));
            }
        }
        out
    }

    pub fn method(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.headers.push((name.to_string(), value.into()));
    }

    /// Serialises the message; Content-Length is always written from the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(512);
        match &self.start {
            StartLine::Request { method, uri } => {
                out.push_str(method);
                out.push(' ');
                out.push_str(uri);
                out.push_str(" SIP/2.0\r\n");
            }
            StartLine::Response { code, reason } => {
                out.push_str("SIP/2.0 ");
                out.push_str(&code.to_string());
                out.push(' ');
                out.push_str(reason);
                out.push_str("\r\n");
            }
        }
        for (n, v) in &self.headers {
            if n == "Content-Length" {
                continue;
            }
            out.push_str(n);
            out.push_str(": ");
            out.push_str(v);
            out.push_str("\r\n");
        }
        out.push_str("Content-Length: ");
        out.push_str(&self.body.len().to_string());
        out.push_str("\r\n\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

fn parse_start_line(line: &str) -> Result<StartLine, SipError> {
    if let Some(rest) = line.strip_prefix("SIP/2.0 ") {
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let code: u16 = code.parse().map_err(|_| SipError::Malformed("invalid status code".into()))?;
        if !(100..700).contains(&code) {
            return Err(SipError::Malformed("status code out of range".into()));
        }
        return Ok(StartLine::Response {
            code,
            reason: reason.to_string(),
        });
    }
    // Exactly one SP between the three parts (RFC 4475 3.1.2.7-9: LWS in
    // the URI, extra or trailing spaces are refused).
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(SipError::Malformed("Bad Request-Line".into()));
    };
    if !is_token(method) {
        return Err(SipError::Malformed("Bad Method".into()));
    }
    if !valid_uri(uri) {
        return Err(SipError::Malformed("Bad Request-URI".into()));
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        let looks_like = version.len() > 4 && version[..4].eq_ignore_ascii_case("SIP/");
        return Err(if looks_like {
            SipError::Version
        } else {
            SipError::Malformed("Bad SIP-Version".into())
        });
    }
    Ok(StartLine::Request {
        method: method.to_string(),
        uri: uri.to_string(),
    })
}

/// An absolute URI as a Request-URI or inside `<>`: a scheme (RFC 3986
/// 3.1), a colon, and no spaces, quotes or angle brackets.
pub(crate) fn valid_uri(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else { return false };
    let mut sc = scheme.bytes();
    sc.next().is_some_and(|b| b.is_ascii_alphabetic())
        && sc.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        && !rest.is_empty()
        && rest.bytes().all(|b| b > 0x20 && b != 0x7f && !b"<>\"".contains(&b))
}

/// Finds the blank line that ends the header section: returns (end of
/// headers, start of body). Accepts bare LF line ends from lenient senders.
pub(crate) fn find_head_end(data: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'\n' {
            if data.get(i + 1) == Some(&b'\n') {
                return Some((i, i + 2));
            }
            if data.get(i + 1) == Some(&b'\r') && data.get(i + 2) == Some(&b'\n') {
                return Some((i, i + 3));
            }
        }
        i += 1;
    }
    None
}

/// For stream transports: the length of the first complete message in
/// `buf`, `Ok(None)` if more bytes are needed, or an error if the stream
/// cannot be framed (then the connection must be closed). Leading CRLF
/// keep-alives count as part of the frame.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, SipError> {
    let Some((head_end, body_start)) = find_head_end(buf) else {
        if buf.len() > MAX_MESSAGE {
            return Err(SipError::TooLarge(buf.len()));
        }
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let mut len = None;
    for line in head.split('\n') {
        if let Some((n, v)) = line.split_once(':') {
            let n = n.trim();
            if n.eq_ignore_ascii_case("Content-Length") || n.eq_ignore_ascii_case("l") {
                let v = v
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| SipError::Malformed("Bad Content-Length".into()))?;
                // Two lengths that disagree cannot frame the stream (RFC 4475 3.3.9).
                if len.is_some_and(|l| l != v) {
                    return Err(SipError::Malformed("Multiple Content-Length".into()));
                }
                len = Some(v);
            }
        }
    }
    // RFC 3261 18.3: on stream transports Content-Length is mandatory.
    let len = len.ok_or_else(|| SipError::Malformed("missing Content-Length on a stream transport".into()))?;
    let total = body_start.saturating_add(len);
    if total > MAX_MESSAGE {
        return Err(SipError::TooLarge(total));
    }
    Ok(if buf.len() >= total { Some(total) } else { None })
}

/// A response to `req` (RFC 3261 8.2.6): its Vias, the top one stamped with
/// received and rport, From, To with `to_tag` added when it has none,
/// Call-ID and CSeq.
pub fn response(req: &Message, via: &Via, source: SocketAddr, code: u16, reason: &str, to_tag: &str) -> Message {
    let mut resp = Message {
        start: StartLine::Response {
            code,
            reason: reason.into(),
        },
        headers: Vec::with_capacity(10),
        body: Vec::new(),
    };
    for (i, v) in req.header_values("Via").into_iter().enumerate() {
        resp.push("Via", if i == 0 { stamp_via(v, via, source) } else { v.to_string() });
    }
    for h in ["From", "Call-ID", "CSeq"] {
        if let Some(v) = req.header(h) {
            resp.push(h, v);
        }
    }
    if let Some(to) = req.header("To") {
        let tagged = NameAddr::parse(to).ok().is_some_and(|t| t.param("tag").is_some());
        if tagged || code == 100 {
            resp.push("To", to);
        } else {
            resp.push("To", format!("{to};tag={to_tag}"));
        }
    }
    resp
}

/// Adds `received` and fills `rport` on the top Via (RFC 3261 18.2.1, RFC 3581).
fn stamp_via(raw: &str, via: &Via, source: SocketAddr) -> String {
    let mut out = String::with_capacity(raw.len() + 32);
    let mut parts = raw.split(';');
    out.push_str(parts.next().unwrap_or_default().trim_end());
    for p in parts {
        let name = p.split('=').next().unwrap_or_default().trim();
        if name.eq_ignore_ascii_case("rport") || name.eq_ignore_ascii_case("received") {
            continue;
        }
        out.push(';');
        out.push_str(p.trim());
    }
    let ip = source.ip().to_string();
    let host = via.host.trim_start_matches('[').trim_end_matches(']');
    if host != ip || via.rport {
        out.push_str(";received=");
        out.push_str(&ip);
    }
    if via.rport {
        out.push_str(";rport=");
        out.push_str(&source.port().to_string());
    }
    out
}

/// The top Via of a message, parsed.
pub fn top_via(m: &Message) -> Option<Via<'_>> {
    m.header("Via")
        .and_then(|v| split_list(v).first().copied())
        .and_then(|v| Via::parse(v).ok())
}

/// Splits a header value on top-level commas (not inside quotes or <>).
pub fn split_list(v: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut start) = (false, false, 0);
    let bytes = v.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'<' if !quoted => angle = true,
            b'>' if !quoted => angle = false,
            b',' if !quoted && !angle => {
                out.push(v[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    let last = v[start.min(v.len())..].trim();
    if !last.is_empty() {
        out.push(last);
    }
    out
}

/// Header parameters (`;name[=value]…`) each have a name (RFC 4475 3.1.2.1).
pub(crate) fn check_params(params: &str) -> Result<(), SipError> {
    let params = params.trim();
    if params.is_empty() {
        return Ok(());
    }
    if !params.starts_with(';')
        || params
            .split(';')
            .skip(1)
            .any(|p| p.split('=').next().unwrap_or("").trim().is_empty())
    {
        return Err(SipError::Malformed("empty or stray parameter".into()));
    }
    Ok(())
}

/// Parameters after the first `;` of a header value or URI, as (name, value).
pub fn params(s: &str) -> Vec<(&str, Option<&str>)> {
    s.split(';')
        .skip(1)
        .map(|p| match p.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (p.trim(), None),
        })
        .collect()
}

pub fn param<'a>(s: &'a str, name: &str) -> Option<Option<&'a str>> {
    params(s).into_iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

/// A name-addr or addr-spec (From, To, Contact): the URI and what follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr<'a> {
    pub uri: &'a str,
    /// Header parameters after the URI (`;tag=…;expires=…`), with leading ';'.
    pub params: &'a str,
}

impl<'a> NameAddr<'a> {
    /// Parses `display-name <uri> ;params` or `uri ;params` (RFC 3261
    /// 20.10): a quoted display name must be closed, an unquoted one is
    /// tokens (or UTF-8), the URI inside `<>` has no spaces, and a bare URI
    /// has no `,`, `?` or `;` of its own (RFC 4475 3.1.2.5, .12-.14).
    pub fn parse(v: &'a str) -> Result<NameAddr<'a>, SipError> {
        let bad = |why: &str| SipError::Malformed(why.into());
        let v = v.trim();
        let bytes = v.as_bytes();
        let mut i;
        if v.starts_with('"') {
            i = 1;
            loop {
                match bytes.get(i) {
                    None => return Err(bad("unterminated quoted display name")),
                    Some(b'\\') => i += 2,
                    Some(b'"') => break,
                    Some(_) => i += 1,
                }
            }
            i += 1;
            while bytes.get(i).is_some_and(|b| *b == b' ' || *b == b'\t') {
                i += 1;
            }
            if bytes.get(i) != Some(&b'<') {
                return Err(bad("quoted display name without <URI>"));
            }
        } else if let Some(open) = v.find('<') {
            let name = &v[..open];
            if !name.split_whitespace().all(|w| w.bytes().all(|b| b >= 0x80) || is_token(w)) {
                return Err(bad("display name with separators must be quoted"));
            }
            i = open;
        } else {
            // addr-spec: parameters after ';' belong to the header.
            let (uri, params) = match v.find(';') {
                Some(i) => (v[..i].trim_end(), &v[i..]),
                None => (v, ""),
            };
            if !valid_uri(uri) || uri.contains([',', '?']) {
                return Err(bad("bad address (a URI with ',', '?' or ';' needs <>)"));
            }
            check_params(params)?;
            return Ok(NameAddr { uri, params });
        }
        // bytes[i] == '<'
        let close = v[i..].find('>').ok_or_else(|| bad("unclosed '<' in address"))? + i;
        let uri = &v[i + 1..close];
        if !valid_uri(uri) {
            return Err(bad("bad URI in <>"));
        }
        let params = &v[close + 1..];
        check_params(params)?;
        Ok(NameAddr { uri, params })
    }

    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        param(self.params, name)
    }
}

/// The parts of a `sip:` or `sips:` URI that a registrar needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri<'a> {
    pub user: Option<&'a str>,
    pub host: &'a str,
    pub port: Option<u16>,
    pub params: &'a str,
}

impl<'a> SipUri<'a> {
    pub fn parse(uri: &'a str) -> Result<SipUri<'a>, SipError> {
        let rest = uri
            .strip_prefix("sip:")
            .or_else(|| uri.strip_prefix("sips:"))
            .ok_or_else(|| SipError::Malformed(format!("not a sip: URI: {:.60}", uri)))?;
        // The userinfo ends at the first '@' (it may hold ';' and '?',
        // RFC 4475 3.1.1.2 and 3.1.1.9); parameters follow the host.
        let (user, rest) = match rest.find('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let (hostport, params) = match rest.find([';', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let user = user.map(|u| u.split(':').next().unwrap_or(u));
        let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
            let end = h.find(']').ok_or_else(|| SipError::Malformed("unclosed IPv6 reference".into()))?;
            let port = h[end + 1..].strip_prefix(':');
            (&hostport[..end + 2], port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(SipError::Malformed("URI without a host".into()));
        }
        let port = match port {
            Some(p) => Some(p.parse::<u16>().map_err(|_| SipError::Malformed("invalid port in URI".into()))?),
            None => None,
        };
        Ok(SipUri { user, host, port, params })
    }
}

/// The top Via of a request: what the response must echo and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via<'a> {
    pub transport: &'a str,
    pub host: &'a str,
    pub port: Option<u16>,
    pub branch: Option<&'a str>,
    pub rport: bool,
}

impl<'a> Via<'a> {
    /// Parses one Via value; LWS may surround the `/`s of the protocol and
    /// the `:` of the port (RFC 3261 25.1 SLASH, COLON; RFC 4475 3.1.1.1).
    /// Lenient about its parameters, so that a request with broken ones can
    /// still be answered; [`crate::validate::validate_request`] refuses them.
    pub fn parse(v: &'a str) -> Result<Via<'a>, SipError> {
        let bad = || SipError::Malformed("Bad Via".into());
        let mut p = v.trim().splitn(3, '/');
        let (Some(name), Some(ver), Some(rest)) = (p.next(), p.next(), p.next()) else {
            return Err(bad());
        };
        if !name.trim().eq_ignore_ascii_case("SIP") || !is_token(ver.trim()) {
            return Err(bad());
        }
        let rest = rest.trim_start();
        let end = rest.find([' ', '\t']).ok_or_else(bad)?;
        let transport = &rest[..end];
        if !is_token(transport) {
            return Err(bad());
        }
        let rest = rest[end..].trim();
        let (sent_by, params) = match rest.find(';') {
            Some(i) => (rest[..i].trim(), &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = if sent_by.starts_with('[') {
            let end = sent_by.find(']').ok_or_else(bad)?;
            (&sent_by[..=end], sent_by[end + 1..].trim().strip_prefix(':'))
        } else {
            match sent_by.split_once(':') {
                Some((h, p)) => (h.trim(), Some(p)),
                None => (sent_by, None),
            }
        };
        if host.is_empty() || host.contains([' ', '\t', ',']) {
            return Err(bad());
        }
        let port = match port {
            Some(p) => Some(p.trim().parse().map_err(|_| bad())?),
            None => None,
        };
        let branch = param(params, "branch").flatten();
        let rport = param(params, "rport").is_some();
        Ok(Via {
            transport,
            host,
            port,
            branch,
            rport,
        })
    }
}

#[cfg(test)]
mod tests;
