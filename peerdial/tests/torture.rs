//! RFC 4475's torture messages sent over the wire to a running region and
//! a running phone, as a peer would send them, and the EDNS checks DNS
//! operators run against authoritative servers (dig against the region's
//! and the top's DNS).
//!
//! Every IPv4 literal in a message is moved to loopback before it is sent
//! (lengths kept, so Content-Length stays right): the phone must never
//! stream to an address off this machine.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use peerdial_sip::message::{Message as Sip, StartLine};

fn load(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/rfc4475/{name}.dat"));
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let out = to_loopback(&data);
    assert!(
        ipv4_literals(&out).iter().all(|(_, a)| a.starts_with("127.")),
        "{name}: an address off this machine remains"
    );
    out
}

/// IPv4 literals in `data`: (offset, text).
fn ipv4_literals(data: &[u8]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let boundary = i == 0 || !(data[i - 1].is_ascii_digit() || data[i - 1] == b'.');
        if boundary && data[i].is_ascii_digit() {
            let end = data[i..]
                .iter()
                .position(|b| !(b.is_ascii_digit() || *b == b'.'))
                .map_or(data.len(), |n| i + n);
            let text = String::from_utf8_lossy(&data[i..end]).to_string();
            let text = text.trim_end_matches('.').to_string();
            if text.parse::<std::net::Ipv4Addr>().is_ok() {
                out.push((i, text.clone()));
            }
            i += text.len().max(1);
        } else {
            i += 1;
        }
    }
    out
}

/// 192.0.2.15 → 127.0.2.15 (same length); a literal whose first octet is
/// shorter becomes 127.0.0.1, which only happens in the headers.
fn to_loopback(data: &[u8]) -> Vec<u8> {
    let head_end = data.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(data.len());
    let mut out = data.to_vec();
    for (at, text) in ipv4_literals(data).into_iter().rev() {
        if text.starts_with("127.") {
            continue;
        }
        let first = text.split('.').next().unwrap();
        if first.len() == 3 {
            out[at..at + 3].copy_from_slice(b"127");
        } else {
            assert!(at < head_end, "a short address in a body would change its length");
            out.splice(at..at + text.len(), b"127.0.0.1".iter().copied());
        }
    }
    out
}

/// A peer on a loopback UDP socket.
struct Peer {
    sock: UdpSocket,
    sentinel: u32,
}

impl Peer {
    fn new() -> Peer {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        Peer { sock, sentinel: 0 }
    }

    fn me(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    fn options(&self, to: SocketAddr, call_id: &str) -> String {
        format!(
            "OPTIONS sip:x@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{call_id}\r\nFrom: <sip:p@{me}>;tag=1\r\n\
             To: <sip:x@{to}>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            me = self.me()
        )
    }

    /// Sends `data`, then an OPTIONS whose answer marks the end of what
    /// `data` provoked; returns the answers to `data` (none, for a message
    /// that is dropped).
    fn exchange(&mut self, to: SocketAddr, data: &[u8]) -> Vec<Sip> {
        self.sock.send_to(data, to).unwrap();
        self.sentinel += 1;
        let sentinel = format!("sentinel-{}", self.sentinel);
        self.sock.send_to(self.options(to, &sentinel).as_bytes(), to).unwrap();
        let mut got = Vec::new();
        let mut sentinel_seen = false;
        let mut buf = vec![0u8; 65_536];
        let deadline = Instant::now() + Duration::from_secs(5);
        // Two region threads may take the two datagrams in either order:
        // after the sentinel's answer, wait a little longer for a late one.
        let mut drain_until = None;
        loop {
            let now = Instant::now();
            let until = drain_until.unwrap_or(deadline);
            if now >= until {
                break;
            }
            self.sock.set_read_timeout(Some(until - now)).unwrap();
            let Ok((n, _)) = self.sock.recv_from(&mut buf) else { break };
            let m = Sip::parse(&buf[..n]).expect("answers parse");
            if m.header("Call-ID") == Some(sentinel.as_str()) {
                assert_eq!(status(&m), 200, "the sentinel OPTIONS");
                sentinel_seen = true;
                drain_until = Some(Instant::now() + Duration::from_millis(150));
            } else {
                got.push(m);
            }
        }
        assert!(sentinel_seen, "no answer to the sentinel OPTIONS: the peer is gone");
        got
    }

    /// Reads until a response with `code` for `call_id` arrives.
    fn wait_for(&self, call_id: &str, code: u16) -> Sip {
        let mut buf = vec![0u8; 65_536];
        self.sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        loop {
            let (n, _) = self.sock.recv_from(&mut buf).unwrap_or_else(|e| panic!("waiting for {code}: {e}"));
            let m = Sip::parse(&buf[..n]).unwrap();
            if m.header("Call-ID") == Some(call_id) && status(&m) == code {
                return m;
            }
        }
    }
}

fn reason(m: &Sip) -> &str {
    match &m.start {
        StartLine::Response { reason, .. } => reason,
        StartLine::Request { .. } => panic!("a request"),
    }
}

/// The final answer among `answers` (0 when none) and whether a 180 came.
fn outcome(answers: &[Sip]) -> (u16, bool) {
    let fin = answers.iter().map(status).rfind(|c| *c >= 200).unwrap_or(0);
    (fin, answers.iter().any(|m| status(m) == 180))
}

/// Ends a ringing call that a torture INVITE started: CANCEL, then ACK the
/// 487, as the RFC 3261 caller would.
fn cancel(peer: &Peer, to: SocketAddr, invite: &[u8]) {
    let m = Sip::parse(invite).unwrap();
    let StartLine::Request { uri, .. } = &m.start else { panic!() };
    let via = m.header_values("Via")[0];
    let (from, to_h, cid) = (m.header("From").unwrap(), m.header("To").unwrap(), m.header("Call-ID").unwrap());
    let n = m.header("CSeq").unwrap().split_whitespace().next().unwrap();
    let req = |method: &str, to_value: &str| {
        format!(
            "{method} {uri} SIP/2.0\r\nVia: {via}\r\nFrom: {from}\r\nTo: {to_value}\r\nCall-ID: {cid}\r\nCSeq: {n} {method}\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    };
    peer.sock.send_to(req("CANCEL", to_h).as_bytes(), to).unwrap();
    let terminated = peer.wait_for(cid, 487);
    peer.sock
        .send_to(req("ACK", terminated.header("To").unwrap()).as_bytes(), to)
        .unwrap();
}

/// Region and phone answers for each message: (name, region, phone), where
/// 0 is no answer and 180 a call that rings (then cancelled). The region's
/// mailbox takes INVITEs (over UDP and TCP) for its own numbers only: these
/// address other users, so 404.
const EXPECTED: &[(&str, u16, u16)] = &[
    // 3.1.1 valid messages
    ("wsinv", 481, 481), // To-tagged: a dialog neither has
    ("intmeth", 501, 501),
    ("esc01", 404, 180),
    ("escnull", 404, 405),
    ("esc02", 501, 501),
    ("lwsdisp", 200, 200),
    ("longreq", 404, 180),
    ("dblreq", 404, 405),
    ("semiuri", 200, 200),
    ("transports", 200, 200),
    // A MESSAGE with a multipart body: the phone takes text/plain only.
    ("mpart01", 404, 415),
    ("unreason", 0, 0),
    ("noreason", 0, 0),
    // 3.1.2 invalid messages
    ("badinv01", 400, 400),
    ("clerr", 400, 400),
    ("ncl", 400, 400),
    ("scalar02", 400, 400),
    ("scalarlg", 0, 0),
    ("quotbal", 400, 400),
    ("ltgtruri", 400, 400),
    ("lwsruri", 400, 400),
    ("lwsstart", 400, 400),
    ("trws", 400, 400),
    ("escruri", 400, 400),
    ("baddate", 400, 400),
    ("regbadct", 400, 400),
    ("badaspec", 400, 400),
    ("baddn", 400, 400),
    ("badvers", 505, 505),
    ("mismatch01", 400, 400),
    ("mismatch02", 400, 400),
    ("bigcode", 0, 0),
    // 3.2 transaction layer
    ("badbranch", 400, 400),
    // 3.3 application layer
    ("insuf", 400, 400),
    ("unkscm", 416, 416),
    ("novelsc", 416, 416),
    ("unksm2", 400, 405),
    ("bext01", 420, 420),
    ("invut", 404, 415),
    ("regaut01", 404, 405),
    ("multi01", 400, 400),
    ("mcl01", 400, 400),
    ("bcast", 0, 0),
    ("zeromf", 200, 200),
    ("cparam01", 404, 405),
    ("cparam02", 404, 405),
    ("regescrt", 404, 405),
    ("sdp01", 404, 406),
    // 3.4 backward compatibility
    ("inv2543", 404, 180),
];

/// What a peer sees when it sends one message.
fn check(peer: &mut Peer, to: SocketAddr, name: &str, want: u16, who: &str, wrong: &mut Vec<String>) {
    let data = load(name);
    let answers = peer.exchange(to, &data);
    let (fin, rang) = outcome(&answers);
    let got = if rang && fin == 0 { 180 } else { fin };
    if got != want {
        let lines: Vec<String> = answers.iter().map(|m| format!("{} {}", status(m), reason(m))).collect();
        wrong.push(format!("{who} {name}: got {lines:?}, want {want}"));
    }
    for m in &answers {
        match status(m) {
            // A refusal names its problem; the 405s and 501s say what is allowed.
            400 => assert!(!reason(m).is_empty() && reason(m) != "Bad Request", "{who} {name}: a bare 400"),
            405 | 501 => assert!(m.header("Allow").is_some_and(|a| a.contains("OPTIONS")), "{who} {name}: no Allow"),
            420 => assert!(
                m.header("Unsupported").is_some_and(|u| u.contains("nothingSupportsThis")),
                "{who} {name}"
            ),
            // What the method takes: SDP for INVITE, text for MESSAGE.
            415 => assert!(
                matches!(m.header("Accept"), Some("application/sdp" | "text/plain")),
                "{who} {name}: {:?}",
                m.header("Accept")
            ),
            _ => {}
        }
    }
    if got == 180 {
        cancel(peer, to, &data);
    }
}

#[test]
fn every_torture_message_gets_its_answer_from_a_region_and_a_phone() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Region::start(dir.path(), &[]);
    let mut phone = Softphone::start(&r, dir.path(), "02:00:00:00:44:75", r.dns, &[]);
    let serial = soa_serial(r.dns);
    let mut wrong = Vec::new();
    // Each message from a peer of its own: many share a branch and sent-by,
    // and from one source they would be retransmissions of one transaction.
    for (name, region, _) in EXPECTED {
        check(&mut Peer::new(), r.sip, name, *region, "region", &mut wrong);
    }
    for (name, _, ph) in EXPECTED {
        check(&mut Peer::new(), phone.sip, name, *ph, "phone", &mut wrong);
    }
    let mut peer = Peer::new();
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));

    // Nothing invalid changed any state: no binding (the zone's serial
    // moves with every binding change), and the only calls the phone saw
    // are the three valid INVITEs that reached it as new calls.
    assert_eq!(soa_serial(r.dns), serial, "a torture message changed a binding");
    let calls = phone.lines().iter().filter(|l| l.starts_with("incoming call from")).count();
    assert_eq!(calls, 3, "{:?}", phone.lines());
    // Both keep running, and the phone is not left busy.
    assert!(r.child.try_wait().unwrap().is_none() && phone.child.try_wait().unwrap().is_none());
    let again = String::from_utf8(load("inv2543")).unwrap().replace("inv2543.1717", "inv2543.again");
    let (fin, rang) = outcome(&peer.exchange(phone.sip, again.as_bytes()));
    assert_eq!((fin, rang), (0, true), "the phone is left busy");
    cancel(&peer, phone.sip, again.as_bytes());
    phone.stop();
}

/// A message over a region's SIP TCP port: the answer, or None when the
/// region closes the connection without one.
fn over_tcp(to: SocketAddr, data: &[u8]) -> Option<Sip> {
    let mut s = TcpStream::connect(to).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(data).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("no answer and no close over TCP: {e}"),
        }
        if let Ok(Some(len)) = peerdial_sip::message::frame_len(&buf) {
            return Some(Sip::parse(&buf[..len]).unwrap());
        }
    }
}

#[test]
fn torture_messages_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    for (name, want) in [
        // INVITEs and MESSAGEs go to the mailbox, over TCP as over UDP: a
        // dialog it does not have, no such number.
        ("wsinv", 481),
        ("intmeth", 501),
        ("longreq", 404),
        ("mpart01", 404),
        ("badvers", 505),
        ("bext01", 420),
    ] {
        let m = over_tcp(r.sip, &load(name)).unwrap_or_else(|| panic!("{name}: no answer over TCP"));
        assert_eq!(status(&m), want, "{name}: {:?}", reason(&m));
    }
    // A negative Content-Length cannot frame a stream: the connection is
    // closed without an answer (RFC 4475 3.1.2.3); so are two that disagree.
    assert!(over_tcp(r.sip, &load("ncl")).is_none());
    assert!(over_tcp(r.sip, &load("mcl01")).is_none());
    // Still serving.
    let mut peer = Peer::new();
    assert!(peer.exchange(r.sip, &load("zeromf")).iter().any(|m| status(m) == 200));
}

// ---- EDNS: the checks of DNS operators' EDNS compliance testers ----

/// dig's answer as text.
fn dig(server: SocketAddr, name: &str, rtype: &str, opts: &[&str]) -> String {
    let out = Command::new(require("dig"))
        .args([
            format!("@{}", server.ip()),
            "-p".into(),
            server.port().to_string(),
            name.into(),
            rtype.into(),
        ])
        .args(["+norecurse", "+time=3", "+tries=1"])
        .args(opts)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("->>HEADER<<-"), "dig {opts:?}: {text}");
    text
}

/// The EDNS line of dig's output (`; EDNS: version: 0, flags: do; udp: …`),
/// or None when the answer has no OPT.
fn edns_line(text: &str) -> Option<&str> {
    text.lines().find(|l| l.starts_with("; EDNS:"))
}

fn rcode(text: &str) -> &str {
    text.split("status: ").nth(1).unwrap().split(',').next().unwrap()
}

/// The checks, against one server and a name it is authoritative for.
fn edns_conformance(server: SocketAddr, name: &str, rtype: &str) {
    let who = format!("{server} {name} {rtype}");
    // No EDNS: no OPT in the answer.
    let t = dig(server, name, rtype, &["+noedns"]);
    assert_eq!(rcode(&t), "NOERROR", "{who}: {t}");
    assert!(edns_line(&t).is_none(), "{who}: OPT without EDNS in the query: {t}");
    assert!(t.contains(" aa"), "{who}: not authoritative: {t}");
    // EDNS 0: an OPT of version 0, no DO.
    let t = dig(server, name, rtype, &["+edns=0"]);
    assert_eq!(rcode(&t), "NOERROR", "{who}: {t}");
    let e = edns_line(&t).expect("OPT");
    assert!(e.contains("version: 0") && !e.contains("do"), "{who}: {e}");
    // EDNS 1: BADVERS, with an OPT of version 0 (RFC 6891 6.1.3).
    let t = dig(server, name, rtype, &["+edns=1", "+noednsneg"]);
    assert_eq!(rcode(&t), "BADVERS", "{who}: {t}");
    assert!(edns_line(&t).is_some_and(|e| e.contains("version: 0")), "{who}: {t}");
    // An unknown option is ignored, and not echoed.
    let t = dig(server, name, rtype, &["+edns=0", "+ednsopt=65001:0102"]);
    assert_eq!(rcode(&t), "NOERROR", "{who}: {t}");
    assert!(!t.contains("; OPT=65001"), "{who}: unknown option echoed: {t}");
    // An unknown EDNS flag is ignored, and not echoed.
    let t = dig(server, name, rtype, &["+edns=0", "+ednsflags=0x40"]);
    assert_eq!(rcode(&t), "NOERROR", "{who}: {t}");
    let e = edns_line(&t).expect("OPT");
    assert!(!e.contains("MBZ"), "{who}: unknown flag echoed: {e}");
    // Several options at once (NSID, cookie, an unknown one).
    let t = dig(server, name, rtype, &["+edns=0", "+nsid", "+cookie", "+ednsopt=65002"]);
    assert_eq!(rcode(&t), "NOERROR", "{who}: {t}");
    // DO is copied from the query (RFC 3225).
    let t = dig(server, name, rtype, &["+dnssec"]);
    assert_eq!(rcode(&t), "NOERROR", "{who}: {t}");
    assert!(edns_line(&t).is_some_and(|e| e.contains("flags: do")), "{who}: DO not copied: {t}");
    // And all of it over TCP too.
    let t = dig(server, name, rtype, &["+tcp", "+dnssec"]);
    assert_eq!(rcode(&t), "NOERROR", "{who}: {t}");
    assert!(edns_line(&t).is_some_and(|e| e.contains("flags: do")), "{who}: {t}");
    let t = dig(server, name, rtype, &["+tcp", "+edns=1", "+noednsneg"]);
    assert_eq!(rcode(&t), "BADVERS", "{who}: {t}");
    let t = dig(server, name, rtype, &["+tcp", "+noedns"]);
    assert!(rcode(&t) == "NOERROR" && edns_line(&t).is_none(), "{who}: {t}");
}

#[test]
fn region_and_top_dns_pass_the_edns_conformance_checks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("region")).unwrap();
    std::fs::create_dir_all(dir.path().join("top")).unwrap();
    let r = Region::start(&dir.path().join("region"), &[]);
    let phone = provision(r.http, "02:00:00:00:44:76");
    let mut p = common::Phone::udp(r.sip);
    let (code, _) = p.register(&phone, &phone.password, peerdial_sip::digest::Algorithm::Md5, 600);
    assert_eq!(code, 200);
    // The zone apex (general path) and a registered number's NAPTR (the
    // region's fast path) answer the same way.
    edns_conformance(r.dns, ZONE, "SOA");
    edns_conformance(r.dns, &enum_name(&phone.number.replace('-', "")), "NAPTR");
    let top = common::top::start(&dir.path().join("top"));
    edns_conformance(top.dns, "peerdial.internal.", "SOA");
}
