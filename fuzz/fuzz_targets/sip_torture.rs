//! The paths a torture message takes through a region and a phone, seeded
//! with RFC 4475's messages (seeds/sip_torture): the registrar never
//! commits a binding without credentials, every answer it or the phone's
//! core gives parses as a response, and the refusal of a message that did
//! not parse is a 400 or 505.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdial_number::Area;
use peerdial_sip::call::{stateless_response, Call, Local};
use peerdial_sip::message::{Message, StartLine};
use peerdial_sip::validate::{reject_unparseable, validate_request};
use peerdial_sip::{Output, Registrar, RegistrarConfig, Transport};

fn response_code(bytes: &[u8]) -> u16 {
    match Message::parse(bytes).expect("our answers parse").start {
        StartLine::Response { code, .. } => code,
        StartLine::Request { .. } => panic!("a request as an answer"),
    }
}

fuzz_target!(|data: &[u8]| {
    let src = "127.0.0.1:40000".parse().unwrap();
    match Message::parse(data) {
        Ok(m) => {
            let _ = validate_request(&m, &[]);
        }
        Err(e) => {
            if let Some(answer) = reject_unparseable(data, &e, src) {
                assert!(matches!(response_code(&answer), 400 | 505));
            }
        }
    }
    let mut r = Registrar::new(RegistrarConfig::new(Area::parse("886-02").unwrap(), "2.0.6.8.8.peerdial.internal", [1; 32]));
    for t in [Transport::Udp, Transport::Tcp] {
        match r.handle(data, t, src, 1_000) {
            Output::Reply(b) => {
                response_code(&b);
            }
            Output::Drop => {}
            Output::Commit { .. } => panic!("a binding without credentials"),
        }
    }
    assert!(r.bindings().next().is_none());
    let local = Local {
        uri: "sip:8860212345678@127.0.0.1:5062".into(),
        addr: "127.0.0.1:5062".parse().unwrap(),
        user_agent: "fuzz".into(),
    };
    match Call::incoming(local, data, src, 0) {
        Ok(mut c) => {
            while let Some(t) = c.poll_transmit() {
                response_code(&t.data);
            }
        }
        Err(Some(t)) => {
            response_code(&t.data);
        }
        Err(None) => {}
    }
    if let Ok(Some(t)) = stateless_response(data, src, 501, "Not Implemented", &[("Allow", "INVITE")]) {
        response_code(&t.data);
    }
});
