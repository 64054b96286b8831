use super::*;
use crate::digest::challenge_nonce;

const T0: u64 = 1_700_000_000_000;

fn area() -> Area {
    Area::parse("886-02").unwrap()
}
fn num() -> Number {
    Number::parse("886-02-12345678").unwrap()
}
fn src() -> SocketAddr {
    "192.0.2.7:40000".parse().unwrap()
}

fn registrar() -> Registrar {
    let mut cfg = RegistrarConfig::new(area(), "2.0.6.8.8.peerdial.internal", [1; 32]);
    cfg.algorithms = vec![Algorithm::Md5, Algorithm::Sha256];
    let mut r = Registrar::new(cfg);
    r.set_credential(num(), Ha1::new(&num().digits(), "2.0.6.8.8.peerdial.internal", "secret"));
    r
}

fn register(branch: &str, cseq: u32, expires: u32, auth: Option<String>) -> Vec<u8> {
    let mut s = format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK{branch};rport\r\n\
From: <sip:8860212345678@127.0.0.1>;tag=x\r\nTo: <sip:8860212345678@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: {cseq} REGISTER\r\n\
Contact: <sip:8860212345678@10.0.0.1:5062>\r\nExpires: {expires}\r\n"
    );
    if let Some(a) = auth {
        s.push_str(&format!("Authorization: {a}\r\n"));
    }
    s.push_str("Content-Length: 0\r\n\r\n");
    s.into_bytes()
}

fn status(out: &Output) -> (u16, Message) {
    let bytes = match out {
        Output::Reply(b) | Output::Commit { reply: b, .. } => b,
        Output::Drop => panic!("dropped"),
    };
    let m = Message::parse(bytes).unwrap();
    match &m.start {
        StartLine::Response { code, .. } => (*code, m.clone()),
        _ => panic!("not a response"),
    }
}

fn auth_for(r: &mut Registrar, branch: &str, password: &str, alg: Algorithm, now: u64) -> String {
    let (code, m) = status(&r.handle(&register(branch, 1, 600, None), Transport::Udp, src(), now));
    assert_eq!(code, 401);
    let nonce = challenge_nonce(m.header("WWW-Authenticate").unwrap()).unwrap();
    Credentials::respond(
        &num().digits(),
        "2.0.6.8.8.peerdial.internal",
        password,
        alg,
        "REGISTER",
        "sip:127.0.0.1",
        &nonce,
    )
    .to_header()
}

#[test]
fn challenge_then_register_binds_source_address() {
    for alg in [Algorithm::Sha256, Algorithm::Md5] {
        let mut r = registrar();
        let auth = auth_for(&mut r, "a", "secret", alg, T0);
        let out = r.handle(&register("b", 2, 600, Some(auth)), Transport::Udp, src(), T0);
        let (code, m) = status(&out);
        assert_eq!(code, 200);
        assert!(m.header("Contact").unwrap().contains("expires=600"));
        let via = m.header("Via").unwrap();
        assert!(via.contains("received=192.0.2.7") && via.contains("rport=40000"), "{via}");
        match out {
            Output::Commit {
                change: Change::Upsert(n, b),
                previous: None,
                ..
            } => {
                assert_eq!(n, num());
                assert_eq!(b.uri, "sip:8860212345678@192.0.2.7:40000");
                assert_eq!(b.expires_at_ms, T0 + 600_000);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn other_requests_are_authenticated_with_the_same_nonces_and_limits() {
    let mut r = registrar();
    let publish = |auth: Option<&str>| {
        let mut s = "PUBLISH sip:8860212345678@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKp\r\n\
From: <sip:8860212345678@127.0.0.1>;tag=x\r\nTo: <sip:8860212345678@127.0.0.1>\r\nCall-ID: p1\r\nCSeq: 1 PUBLISH\r\n"
            .to_string();
        if let Some(a) = auth {
            s.push_str(&format!("Authorization: {a}\r\n"));
        }
        s.push_str("Content-Length: 0\r\n\r\n");
        Message::parse(s.as_bytes()).unwrap()
    };
    let code = |b: &[u8]| status(&Output::Reply(b.to_vec())).0;
    let err = r.authenticate(&publish(None), src(), Transport::Udp, T0).unwrap_err();
    assert_eq!(code(&err), 401);
    let nonce = challenge_nonce(Message::parse(&err).unwrap().header("WWW-Authenticate").unwrap()).unwrap();
    let cred = |user: &str, password: &str| {
        Credentials::respond(
            user,
            "2.0.6.8.8.peerdial.internal",
            password,
            Algorithm::Md5,
            "PUBLISH",
            "sip:8860212345678@127.0.0.1",
            &nonce,
        )
        .to_header()
    };
    let ok = r.authenticate(&publish(Some(&cred("8860212345678", "secret"))), src(), Transport::Udp, T0);
    assert_eq!(ok, Ok(num()));
    let wrong = r.authenticate(&publish(Some(&cred("8860212345678", "nope"))), src(), Transport::Udp, T0);
    assert_eq!(code(&wrong.unwrap_err()), 403);
    let stranger = r.authenticate(&publish(Some(&cred("8860299999999", "secret"))), src(), Transport::Udp, T0);
    assert_eq!(code(&stranger.unwrap_err()), 403);
}

fn www_authenticate(m: &Message) -> Vec<&str> {
    m.headers
        .iter()
        .filter(|(n, _)| n == "WWW-Authenticate")
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn only_offered_algorithms_are_accepted_in_offered_order() {
    let mut r = registrar();
    r.cfg.algorithms = vec![Algorithm::Sha256];
    let (_, m) = status(&r.handle(&register("a", 1, 600, None), Transport::Udp, src(), T0));
    let offered = www_authenticate(&m);
    assert_eq!(offered.len(), 1);
    assert!(offered[0].contains("algorithm=SHA-256"));
    let auth = auth_for(&mut r, "b", "secret", Algorithm::Md5, T0);
    assert_eq!(
        status(&r.handle(&register("c", 2, 600, Some(auth)), Transport::Udp, src(), T0)).0,
        403
    );
    let mut r = registrar();
    r.cfg.algorithms = vec![Algorithm::Sha256, Algorithm::Md5];
    let (_, m) = status(&r.handle(&register("d", 1, 600, None), Transport::Udp, src(), T0));
    let offered = www_authenticate(&m);
    assert!(
        offered[0].contains("algorithm=SHA-256") && offered[1].contains("algorithm=MD5"),
        "{offered:?}"
    );
}

#[test]
fn wrong_password_is_refused_then_rate_limited() {
    let mut r = registrar();
    for i in 0..5 {
        let auth = auth_for(&mut r, &format!("a{i}"), "wrong", Algorithm::Sha256, T0);
        let out = r.handle(&register(&format!("b{i}"), 2, 600, Some(auth)), Transport::Udp, src(), T0);
        assert_eq!(status(&out).0, 403);
        assert!(matches!(out, Output::Reply(_)));
    }
    // Even the right password (with a nonce issued before) is refused
    // while the limit holds...
    let (_, m) = status(&r.handle(&register("c", 1, 600, None), Transport::Udp, src(), T0));
    assert_eq!(m.header("Retry-After"), Some("60"));
    let nonce = r.nonces.issue(T0);
    let auth = Credentials::respond(
        &num().digits(),
        "2.0.6.8.8.peerdial.internal",
        "secret",
        Algorithm::Sha256,
        "REGISTER",
        "sip:127.0.0.1",
        &nonce,
    )
    .to_header();
    let (code, m) = status(&r.handle(&register("d", 2, 600, Some(auth)), Transport::Udp, src(), T0));
    assert_eq!(code, 403);
    assert!(m.header("Retry-After").is_some());
    assert!(r.binding(num()).is_none());
    // ...and accepted once the window has passed.
    let later = T0 + 61_000;
    let auth = auth_for(&mut r, "e", "secret", Algorithm::Sha256, later);
    assert_eq!(
        status(&r.handle(&register("f", 3, 600, Some(auth)), Transport::Udp, src(), later)).0,
        200
    );
}

#[test]
fn retransmission_gets_the_same_answer_without_a_second_commit() {
    let mut r = registrar();
    let auth = auth_for(&mut r, "a", "secret", Algorithm::Md5, T0);
    let req = register("b", 2, 600, Some(auth));
    let first = r.handle(&req, Transport::Udp, src(), T0);
    let again = r.handle(&req, Transport::Udp, src(), T0 + 500);
    match (first, again) {
        (Output::Commit { reply, .. }, Output::Reply(same)) => assert_eq!(reply, same),
        other => panic!("{other:?}"),
    }
}

#[test]
fn expiry_unregister_and_interval() {
    let mut r = registrar();
    let auth = auth_for(&mut r, "a", "secret", Algorithm::Sha256, T0);
    assert_eq!(
        status(&r.handle(&register("b", 2, 10, Some(auth)), Transport::Udp, src(), T0)).0,
        423
    );
    let auth = auth_for(&mut r, "c", "secret", Algorithm::Sha256, T0);
    assert_eq!(
        status(&r.handle(&register("d", 3, 60, Some(auth)), Transport::Udp, src(), T0)).0,
        200
    );
    assert_eq!(r.poll_timeout(), Some(T0 + 32_000));
    assert!(r.handle_timeout(T0 + 59_000).is_empty());
    assert_eq!(r.handle_timeout(T0 + 60_000), vec![Change::Remove(num())]);
    assert!(r.binding(num()).is_none());
    // Register again, then unregister with Expires: 0.
    let auth = auth_for(&mut r, "e", "secret", Algorithm::Sha256, T0);
    r.handle(&register("f", 4, 60, Some(auth)), Transport::Udp, src(), T0);
    let auth = auth_for(&mut r, "g", "secret", Algorithm::Sha256, T0);
    let out = r.handle(&register("h", 5, 0, Some(auth)), Transport::Udp, src(), T0);
    assert!(matches!(
        out,
        Output::Commit {
            change: Change::Remove(_),
            ..
        }
    ));
    assert!(r.binding(num()).is_none());
}

#[test]
fn bad_requests() {
    let mut r = registrar();
    let no_cseq = b"REGISTER sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>\r\nTo: <sip:a@b>\r\nCall-ID: 1\r\nContent-Length: 0\r\n\r\n";
    let (code, m) = status(&r.handle(no_cseq, Transport::Udp, src(), T0));
    assert_eq!(code, 400);
    assert!(matches!(m.start, StartLine::Response { ref reason, .. } if reason.contains("CSeq")));
    let no_via = b"REGISTER sip:x SIP/2.0\r\nCall-ID: 1\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(r.handle(no_via, Transport::Udp, src(), T0), Output::Drop);
    assert_eq!(r.handle(b"\x00\xffgarbage", Transport::Udp, src(), T0), Output::Drop);
    let foreign = String::from_utf8(register("z", 1, 600, None))
        .unwrap()
        .replace("sip:8860212345678@127.0.0.1>\r\nCall", "sip:8860312345678@127.0.0.1>\r\nCall");
    assert_eq!(status(&r.handle(foreign.as_bytes(), Transport::Udp, src(), T0)).0, 404);
    // Digest credentials nobody can read: 400 saying so, not another challenge.
    let (code, m) = status(&r.handle(&register("u", 1, 600, Some("Digest username".into())), Transport::Udp, src(), T0));
    assert_eq!(code, 400);
    assert!(matches!(m.start, StartLine::Response { ref reason, .. } if reason.contains("Authorization")));
    // A scheme we do not know is ignored: challenged (RFC 4475 3.3.7).
    let (code, _) = status(&r.handle(
        &register("u2", 1, 600, Some("Basic Zm9vOmJhcg==".into())),
        Transport::Udp,
        src(),
        T0,
    ));
    assert_eq!(code, 401);
    // Readable credentials for another realm: challenged for ours.
    let other = r#"Digest username="8860212345678", realm="elsewhere", nonce="n", uri="sip:127.0.0.1", response="00""#;
    let (code, m) = status(&r.handle(&register("o", 1, 600, Some(other.into())), Transport::Udp, src(), T0));
    assert_eq!(code, 401, "{m:?}");
    let options = b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK2\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: 1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(status(&r.handle(options, Transport::Udp, src(), T0)).0, 200);
    assert!(r.bindings().next().is_none());
}

proptest::proptest! {
    /// Arbitrary bytes, and mutations of a valid REGISTER, never panic
    /// the registrar and never create a binding without credentials.
    #[test]
    fn garbage_never_binds(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600), cut in 0usize..400, byte in proptest::prelude::any::<u8>()) {
        let mut r = registrar();
        let out = r.handle(&data, Transport::Udp, src(), T0);
        proptest::prop_assert!(!matches!(out, Output::Commit { .. }), "committed without credentials");
        let mut valid = register("p", 1, 600, None);
        let i = cut.min(valid.len() - 1);
        valid[i] = byte;
        let out = r.handle(&valid, Transport::Tcp, src(), T0);
        proptest::prop_assert!(!matches!(out, Output::Commit { .. }), "committed without credentials");
        proptest::prop_assert!(r.bindings().next().is_none());
    }
}
