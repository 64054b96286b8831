//! RFC 4475's torture messages (extracted bit-exact from the RFC's archive
//! into peerdial/tests/rfc4475/) through the codec, the registrar and the
//! callee side of a call: each gets the answer class the RFC asks for, and
//! none creates a binding or a call.

use std::net::SocketAddr;
use std::path::PathBuf;

use peerdial_number::Area;
use peerdial_sip::call::{stateless_response, Call, Local};
use peerdial_sip::message::StartLine;
use peerdial_sip::{Message, Output, Registrar, RegistrarConfig, Transport};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../peerdial/tests/rfc4475")
}

fn load(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(format!("{name}.dat"))).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn src() -> SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}

/// The status line of an answer, or None for no answer.
fn answer_of(bytes: Option<&[u8]>) -> Option<(u16, String)> {
    let m = Message::parse(bytes?).expect("our answers parse");
    match m.start {
        StartLine::Response { code, reason } => Some((code, reason)),
        StartLine::Request { .. } => panic!("a request as an answer"),
    }
}

fn registrar(name: &str) -> (Option<(u16, String)>, Registrar) {
    let mut r = Registrar::new(RegistrarConfig::new(
        Area::parse("886-02").unwrap(),
        "2.0.6.8.8.peerdial.internal",
        [1; 32],
    ));
    let out = r.handle(&load(name), Transport::Udp, src(), 1_000);
    let a = match &out {
        Output::Reply(b) => answer_of(Some(b)),
        Output::Drop => None,
        Output::Commit { .. } => panic!("{name}: committed a binding"),
    };
    assert!(r.bindings().next().is_none(), "{name}: created a binding");
    (a, r)
}

/// What the callee side of the phone's SIP core answers: a new call for an
/// INVITE (its first answer is 100 Trying), a stateless answer otherwise.
fn phone(name: &str) -> Option<(u16, String)> {
    let data = load(name);
    let local = Local {
        uri: "sip:8860212345678@127.0.0.1:5062".into(),
        addr: "127.0.0.1:5062".parse().unwrap(),
        user_agent: "test".into(),
    };
    let is_invite = Message::parse(&data).ok().is_some_and(|m| m.method() == Some("INVITE"));
    if is_invite {
        return match Call::incoming(local, &data, src(), 0) {
            Ok(mut c) => answer_of(c.poll_transmit().as_ref().map(|t| &t.data[..])),
            Err(t) => answer_of(t.as_ref().map(|t| &t.data[..])),
        };
    }
    let t = stateless_response(&data, src(), 299, "Stand-in", &[]).unwrap_or(None);
    answer_of(t.as_ref().map(|t| &t.data[..]))
}

/// (message, the registrar's answer, the phone core's answer); 0 = none.
/// 299 is the stand-in for "valid: the phone's dispatcher decides".
const EXPECTED: &[(&str, u16, u16)] = &[
    // 3.1.1 valid messages
    ("wsinv", 405, 100),
    ("intmeth", 501, 299),
    ("esc01", 405, 100),
    ("escnull", 404, 299),
    ("esc02", 501, 299),
    ("lwsdisp", 200, 299),
    ("longreq", 405, 100),
    ("dblreq", 404, 299),
    ("semiuri", 200, 299),
    ("transports", 200, 299),
    ("mpart01", 405, 299),
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
    ("unksm2", 400, 299),
    ("bext01", 420, 420),
    ("invut", 405, 415),
    ("regaut01", 404, 299),
    ("multi01", 400, 400),
    ("mcl01", 400, 400),
    ("bcast", 0, 0),
    ("zeromf", 200, 299),
    ("cparam01", 404, 299),
    ("cparam02", 404, 299),
    ("regescrt", 404, 299),
    ("sdp01", 405, 406),
    // 3.4 backward compatibility
    ("inv2543", 405, 100),
];

#[test]
fn every_message_of_the_rfc_is_covered() {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_string_lossy().strip_suffix(".dat").map(str::to_string))
        .collect();
    names.sort();
    let mut listed: Vec<&str> = EXPECTED.iter().map(|(n, _, _)| *n).collect();
    listed.sort();
    assert_eq!(names, listed);
    assert_eq!(names.len(), 49);
}

#[test]
fn registrar_and_phone_core_answer_each_message_as_the_rfc_says() {
    let mut wrong = Vec::new();
    for (name, reg, ph) in EXPECTED {
        let (r, _) = registrar(name);
        let p = phone(name);
        let code = |a: &Option<(u16, String)>| a.as_ref().map_or(0, |(c, _)| *c);
        if code(&r) != *reg || code(&p) != *ph {
            wrong.push(format!("{name}: registrar {r:?} (want {reg}), phone {p:?} (want {ph})"));
        }
        // A refusal names its problem.
        for (c, reason) in [r, p].into_iter().flatten() {
            if c == 400 {
                assert!(reason != "Bad Request" && !reason.is_empty(), "{name}: a 400 that names nothing");
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn valid_messages_read_as_the_rfc_describes() {
    let wsinv = Message::parse(&load("wsinv")).unwrap();
    let via = peerdial_sip::message::top_via(&wsinv).unwrap();
    assert_eq!((via.transport, via.host, via.branch), ("UDP", "192.0.2.2", Some("390skdjuw")));
    assert_eq!(wsinv.header("CSeq"), Some("0009 INVITE"));
    assert_eq!(wsinv.header("Max-Forwards"), Some("0068"));
    assert_eq!(wsinv.header_values("Via").len(), 3);
    assert_eq!(wsinv.body.len(), 150);
    // The userinfo holds ';' and an escaped '@': one user, one host.
    let semi = Message::parse(&load("semiuri")).unwrap();
    let StartLine::Request { uri, .. } = &semi.start else { panic!() };
    let u = peerdial_sip::message::SipUri::parse(uri).unwrap();
    assert_eq!((u.user, u.host), (Some("user;par=u%40example.net"), "example.com"));
    // Extra octets after a datagram's Content-Length are not a second request.
    let dbl = Message::parse(&load("dblreq")).unwrap();
    assert_eq!((dbl.method(), dbl.body.len()), (Some("REGISTER"), 0));
    // The binary body with NULs is framed by Content-Length.
    let mp = Message::parse(&load("mpart01")).unwrap();
    assert_eq!(mp.body.len(), 553);
    // esc02's header name "C%6Fntact" is not Contact.
    let esc02 = Message::parse(&load("esc02")).unwrap();
    assert_eq!(esc02.header_values("Contact").len(), 2);
}

#[test]
fn a_second_registration_attempt_after_torture_still_works() {
    // The registrar keeps no state from any of the messages: the same
    // instance still challenges a well-formed REGISTER.
    let (_, mut r) = registrar("wsinv");
    for (name, _, _) in EXPECTED {
        let _ = r.handle(&load(name), Transport::Tcp, src(), 2_000);
    }
    assert!(r.bindings().next().is_none());
    let reg = b"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-ok\r\nFrom: <sip:8860212345678@127.0.0.1>;tag=a\r\nTo: <sip:8860212345678@127.0.0.1>\r\nCall-ID: ok\r\nCSeq: 1 REGISTER\r\nContact: <sip:8860212345678@127.0.0.1:5062>\r\nContent-Length: 0\r\n\r\n";
    let Output::Reply(b) = r.handle(reg, Transport::Udp, src(), 3_000) else {
        panic!()
    };
    assert_eq!(answer_of(Some(&b)).unwrap().0, 401);
}

/// Found by the sip_torture fuzz target: a Via with NUL bytes was copied
/// into the 400, which then did not parse. Such a request gets no answer.
#[test]
fn control_characters_are_never_echoed_into_a_refusal() {
    let mut data = b"OPTIONS sip:user@example.com SIP/2.0\r\nTo: sip:user@example.com\r\nFrom: <sip:c@example.com>;tag=3\r\nCall-ID: x\r\nCSeq: 60 OPTIONS\r\nVia: SIP/2.0/UDP h.example.com;branch=z9hG4bKk".to_vec();
    data.extend_from_slice(&[0u8; 8]);
    data.extend_from_slice(b"d\r\nl: 0\r\n\r\n");
    let err = peerdial_sip::Message::parse(&data).unwrap_err();
    let src = "127.0.0.1:40000".parse().unwrap();
    if let Some(answer) = peerdial_sip::validate::reject_unparseable(&data, &err, src) {
        peerdial_sip::Message::parse(&answer).expect("our answers parse");
    }
    assert!(peerdial_sip::validate::reject_unparseable(&data, &err, src).is_none());
}
