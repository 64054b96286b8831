//! What a request must satisfy before anything acts on it (RFC 3261 8.2),
//! checked the same way by the registrar and the phone, and the answer to
//! one that does not: 400 with a reason phrase naming the problem, 505 for
//! another SIP version, 416 for a Request-URI scheme other than sip/sips,
//! 420 for a required extension. RFC 4475's invalid messages are the
//! yardstick. Nothing here keeps state.

use std::net::SocketAddr;

use crate::message::{
    canonical, check_params, find_head_end, is_token, response, split_list, top_via, Message, NameAddr, SipUri, StartLine, Via,
};
use crate::SipError;

/// Why a request is refused: the status, its reason phrase, and headers
/// the answer must carry (`Unsupported` on a 420).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    pub reason: String,
    pub headers: Vec<(&'static str, String)>,
}

impl Refusal {
    pub fn new(code: u16, reason: impl Into<String>) -> Refusal {
        Refusal {
            code,
            reason: reason.into(),
            headers: Vec::new(),
        }
    }

    fn bad(reason: impl Into<String>) -> Refusal {
        Refusal::new(400, reason)
    }
}

/// Methods defined by RFC 3261 and the extensions peers commonly send.
/// An element that does not do one of these answers 405; any other
/// method is unknown to it and gets 501 (RFC 3261 21.4.6, 21.5.2).
pub fn is_known_method(method: &str) -> bool {
    matches!(
        method,
        "INVITE"
            | "ACK"
            | "BYE"
            | "CANCEL"
            | "OPTIONS"
            | "REGISTER"
            | "PRACK"
            | "SUBSCRIBE"
            | "NOTIFY"
            | "PUBLISH"
            | "INFO"
            | "REFER"
            | "MESSAGE"
            | "UPDATE"
    )
}

/// Headers that may appear once only (RFC 4475 3.3.8, 3.3.9).
const SINGLE: [&str; 7] = ["From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Length", "Content-Type"];

/// The checks every request must pass before it is acted on: the
/// dialog-identifying headers present once and well formed, every Via
/// readable, a CSeq matching the method, well-formed Contacts, a GMT
/// Date, a sip:/sips: Request-URI without headers, and no required
/// extension outside `supported`.
pub fn validate_request(m: &Message, supported: &[&str]) -> Result<(), Refusal> {
    let StartLine::Request { method, uri } = &m.start else {
        return Err(Refusal::bad("Not a request"));
    };
    for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if m.header(h).is_none_or(|v| v.is_empty()) {
            return Err(Refusal::bad(format!("Missing {h}")));
        }
    }
    for h in SINGLE {
        if m.headers.iter().filter(|(n, _)| n == h).count() > 1 {
            return Err(Refusal::bad(format!("Multiple {h} headers")));
        }
    }
    for (_, v) in m.headers.iter().filter(|(n, _)| n == "Via") {
        let values = split_list(v);
        if values.is_empty() || v.trim_end().ends_with(',') || values.iter().any(|x| x.is_empty()) {
            return Err(Refusal::bad("Bad Via (empty value)"));
        }
        for x in values {
            let ok = Via::parse(x).is_ok() && x.find(';').is_none_or(|i| check_params(&x[i..]).is_ok());
            if !ok {
                return Err(Refusal::bad("Bad Via"));
            }
        }
    }
    // RFC 4475 3.2.1: the magic cookie with no identifier after it.
    if top_via(m).and_then(|v| v.branch) == Some("z9hG4bK") {
        return Err(Refusal::bad("Bad Via branch (z9hG4bK without an identifier)"));
    }
    let cseq = m.header("CSeq").unwrap_or_default();
    let mut parts = cseq.split_whitespace();
    match (parts.next().map(str::parse::<u32>), parts.next(), parts.next()) {
        (Some(Ok(_)), Some(meth), None) if meth == method => {}
        _ => return Err(Refusal::bad("Bad CSeq")),
    }
    NameAddr::parse(m.header("From").unwrap_or_default()).map_err(|_| Refusal::bad("Bad From"))?;
    NameAddr::parse(m.header("To").unwrap_or_default()).map_err(|_| Refusal::bad("Bad To"))?;
    let contacts = m.header_values("Contact");
    for c in &contacts {
        let star = *c == "*" && method == "REGISTER" && contacts.len() == 1;
        if !star && NameAddr::parse(c).is_err() {
            return Err(Refusal::bad("Bad Contact"));
        }
    }
    // RFC 3261 25.1: SIP dates are in GMT only (RFC 4475 3.1.2.11).
    if m.header("Date").is_some_and(|d| !d.trim_end().ends_with(" GMT")) {
        return Err(Refusal::bad("Bad Date (not GMT)"));
    }
    let scheme = uri.split(':').next().unwrap_or_default();
    if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
        return Err(Refusal::new(416, "Unsupported URI Scheme"));
    }
    let parsed = SipUri::parse(uri).map_err(|_| Refusal::bad("Bad Request-URI"))?;
    if parsed.params.contains('?') {
        return Err(Refusal::bad("Bad Request-URI (it carries headers)"));
    }
    if method != "ACK" && method != "CANCEL" {
        let unsupported: Vec<&str> = m
            .header_values("Require")
            .into_iter()
            .filter(|t| !supported.iter().any(|s| s.eq_ignore_ascii_case(t)))
            .collect();
        if !unsupported.is_empty() {
            let mut r = Refusal::new(420, "Bad Extension");
            r.headers.push(("Unsupported", unsupported.join(", ")));
            return Err(r);
        }
    }
    Ok(())
}

/// The answer to a message that did not parse, when one can be routed:
/// a request whose top Via can be read gets 400 (505 for another SIP
/// version) naming the problem, echoing whichever of From, To, Call-ID and
/// CSeq could be read. Responses, and requests without a readable Via,
/// get nothing (RFC 4475 3.1.2).
pub fn reject_unparseable(data: &[u8], err: &SipError, source: SocketAddr) -> Option<Vec<u8>> {
    let (code, reason) = match err {
        SipError::Version => (505, "Version Not Supported".to_string()),
        SipError::Malformed(why) => (400, phrase(why)),
        SipError::Empty | SipError::Incomplete | SipError::TooLarge(_) => return None,
    };
    let start = data.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let data = &data[start..];
    let end = find_head_end(data).map_or(data.len(), |(e, _)| e);
    let head = String::from_utf8_lossy(&data[..end]);
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let method = lines.next()?.split(' ').next()?;
    if !is_token(method) || method.starts_with("SIP/") || method == "ACK" {
        return None;
    }
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut keep = false;
    for line in lines {
        if line.starts_with([' ', '\t']) {
            if keep && !crate::message::clean_header_line(line) {
                // The folded header has control characters: not copied.
                headers.pop();
                keep = false;
            }
            if let (true, Some(last)) = (keep, headers.last_mut()) {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
            continue;
        }
        // A line with control characters is not copied into the answer
        // (our own parser would refuse it); without its Via, no answer.
        let Some((name, value)) = line.split_once(':').filter(|_| crate::message::clean_header_line(line)) else {
            keep = false;
            continue;
        };
        let name = canonical(name.trim());
        keep = ["Via", "From", "To", "Call-ID", "CSeq"].contains(&name.as_str()) && headers.len() < 64;
        if keep {
            headers.push((name, value.trim().to_string()));
        }
    }
    let req = Message {
        start: StartLine::Request {
            method: method.to_string(),
            uri: "sip:invalid".into(),
        },
        headers,
        body: Vec::new(),
    };
    let via = top_via(&req)?;
    Some(response(&req, &via, source, code, &reason, &stable_tag(&req)).to_bytes())
}

/// A reason phrase from an error text: printable, one line, short.
fn phrase(why: &str) -> String {
    let clean: String = why
        .chars()
        .map(|c| if c.is_control() || c == '\u{7f}' { '?' } else { c })
        .take(80)
        .collect();
    if clean.trim().is_empty() {
        "Bad Request".into()
    } else {
        clean
    }
}

/// A To tag that is the same for every retransmission of a request (FNV-1a
/// of its Call-ID): stateless answers must agree.
pub fn stable_tag(m: &Message) -> String {
    let h = m
        .header("Call-ID")
        .unwrap_or_default()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
    format!("{:010x}", h & 0xff_ffff_ffff)
}
