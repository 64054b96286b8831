use super::*;

const REG: &str = "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
v: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK-1;rport\r\n\
Max-Forwards: 70\r\n\
f: <sip:8860212345678@127.0.0.1>;tag=a\r\n\
t: \"Alice, A\" <sip:8860212345678@127.0.0.1>\r\n\
i: abc@10.0.0.1\r\n\
CSeq: 1 REGISTER\r\n\
Contact: <sip:8860212345678@10.0.0.1:5062;transport=udp>;expires=600, <sip:x@y>\r\n\
Subject: folded\r\n  continued\r\n\
l: 0\r\n\r\n";

#[test]
fn parses_request_with_compact_and_folded_headers() {
    let m = Message::parse(REG.as_bytes()).unwrap();
    assert_eq!(m.method(), Some("REGISTER"));
    assert_eq!(m.header("Call-ID"), Some("abc@10.0.0.1"));
    assert_eq!(m.header("Subject"), Some("folded continued"));
    assert_eq!(m.header_values("Contact").len(), 2);
    let to = NameAddr::parse(m.header("To").unwrap()).unwrap();
    assert_eq!(to.uri, "sip:8860212345678@127.0.0.1");
    let via = Via::parse(m.header("Via").unwrap()).unwrap();
    assert_eq!(
        (via.transport, via.host, via.port, via.branch, via.rport),
        ("UDP", "10.0.0.1", Some(5062), Some("z9hG4bK-1"), true)
    );
    let back = Message::parse(&m.to_bytes()).unwrap();
    assert_eq!(back.headers, m.headers);
    // A message whose only "body" follows a bare start line gains a
    // Content-Length on the way out, and keeps its body.
    let odd = Message::parse(b"\nSIP/2.0 667\r\n\n\nx").unwrap();
    let again = Message::parse(&odd.to_bytes()).unwrap();
    assert_eq!((again.header("Content-Length"), again.body.clone()), (Some("2"), odd.body.clone()));
}

#[test]
fn uris() {
    let u = SipUri::parse("sip:8860212345678@[::1]:5070;transport=tcp").unwrap();
    assert_eq!(
        (u.user, u.host, u.port, u.params),
        (Some("8860212345678"), "[::1]", Some(5070), ";transport=tcp")
    );
    let u = SipUri::parse("sip:example.com").unwrap();
    assert_eq!((u.user, u.host, u.port), (None, "example.com", None));
    assert!(SipUri::parse("tel:+123").is_err());
    assert!(SipUri::parse("sip:a@b:99999").is_err());
}

#[test]
fn rejects_malformed() {
    assert!(Message::parse(b"").is_err());
    assert!(Message::parse(b"REGISTER sip:x SIP/2.0").is_err());
    // A datagram without the blank line after its headers is whole.
    let m = Message::parse(b"OPTIONS sip:x SIP/2.0\r\nl: 0\r\n").unwrap();
    assert_eq!((m.header("Content-Length"), m.body.len()), (Some("0"), 0));
    assert!(Message::parse(b"REGISTER sip:x SIP/3.0\r\n\r\n").is_err());
    assert!(Message::parse(b"GARBAGE\r\n\r\n").is_err());
    assert!(Message::parse(b"REGISTER sip:x SIP/2.0\r\nNoColon\r\n\r\n").is_err());
    assert!(Message::parse(b"REGISTER sip:x SIP/2.0\r\nContent-Length: 10\r\n\r\nabc").is_err());
    assert!(Message::parse(&vec![b'A'; MAX_MESSAGE + 1]).is_err());
    assert!(Message::parse(b"OPTIONS sip:x SIP/2.0\r\nTo: a\x00b\r\n\r\n").is_err());
    let folded = Message::parse(b"OPTIONS sip:x SIP/2.0\r\nSubject: a\r\n   \r\n b\r\n\r\n").unwrap();
    assert_eq!(folded.header("Subject"), Some("a b"));
}

#[test]
fn frames_streams() {
    let one = REG.as_bytes();
    let mut two = one.to_vec();
    two.extend_from_slice(one);
    assert_eq!(frame_len(&two).unwrap(), Some(one.len()));
    assert_eq!(frame_len(&one[..20]).unwrap(), None);
    assert!(frame_len(b"OPTIONS sip:x SIP/2.0\r\n\r\n").is_err());
    // A Content-Length near usize::MAX is refused, not wrapped around.
    let huge = format!("OPTIONS sip:x SIP/2.0\r\nContent-Length: {}\r\n\r\n", usize::MAX);
    assert!(matches!(frame_len(huge.as_bytes()), Err(SipError::TooLarge(_))));
}

proptest::proptest! {
    /// What parses, re-serialises to the same headers; nothing panics.
    #[test]
    fn parse_roundtrip_or_error(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..800)) {
        let _ = frame_len(&data);
        if let Ok(m) = Message::parse(&data).map_err(|_| ()).and_then(|m| if m.headers.len() < MAX_HEADERS { Ok(m) } else { Err(()) }) {
            let again = Message::parse(&m.to_bytes()).unwrap();
            // Content-Length is always rewritten from the body, at the end.
            let strip = |h: &[(String, String)]| h.iter().filter(|(n, _)| n != "Content-Length").cloned().collect::<Vec<_>>();
            proptest::prop_assert_eq!(strip(&again.headers), strip(&m.headers));
            proptest::prop_assert_eq!(again.body, m.body);
        }
    }
}
