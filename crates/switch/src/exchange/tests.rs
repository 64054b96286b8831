//! The exchange in memory: wire bytes in, simulated time, what it sends
//! and reports out.

use std::net::SocketAddr;

use peerdial_directory::designation::SWITCH_KEY_HEADER;
use peerdial_number::Number;
use peerdial_sip::digest::Ha1;
use peerdial_sip::message::{Message, StartLine};

use super::*;
use crate::devices::{Device, REALM};

const T0: u64 = 1_700_000_000_000;
const DESK: &str = "886-02-99990001";
const PW: &str = "desk-pw";

fn sw() -> SocketAddr {
    "127.0.0.1:5070".parse().unwrap()
}
fn desk_addr() -> SocketAddr {
    "127.0.0.1:6001".parse().unwrap()
}
fn desk() -> Number {
    Number::parse(DESK).unwrap()
}

fn exchange() -> Exchange {
    let d = Device {
        number: desk(),
        ha1: Ha1::new(&desk().digits(), REALM, PW),
        disabled: false,
    };
    Exchange::new(
        ExchangeConfig {
            addr: sw(),
            nonce_key: [7; 32],
            key_lifetime_ms: 30_000,
        },
        vec![d],
    )
}

fn request(method: &str, to: &str, from: &str, src: SocketAddr, cid: &str, cseq: u32, extra: &[(&str, &str)]) -> String {
    let mut m = format!(
        "{method} sip:{to}@{} SIP/2.0\r\nVia: SIP/2.0/UDP {src};branch=z9hG4bK{cid}{cseq}\r\nMax-Forwards: 70\r\n\
From: <sip:{from}@{src}>;tag=t{cid}\r\nTo: <sip:{to}@{}>\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\nContact: <sip:{from}@{src}>\r\n",
        sw(),
        sw()
    );
    for (n, v) in extra {
        m.push_str(&format!("{n}: {v}\r\n"));
    }
    m.push_str("Content-Length: 0\r\n\r\n");
    m
}

fn sent(x: &mut Exchange) -> Vec<(SocketAddr, Message)> {
    std::iter::from_fn(|| x.poll_transmit())
        .map(|t| (t.to, Message::parse(&t.data).unwrap()))
        .collect()
}

fn code(m: &Message) -> u16 {
    match m.start {
        StartLine::Response { code, .. } => code,
        _ => 0,
    }
}

/// A request the device sends with its digest answer to the challenge.
fn authorized(x: &mut Exchange, method: &str, to: &str, cid: &str, extra: &[(&str, &str)]) -> Vec<(SocketAddr, Message)> {
    let first = request(method, to, &desk().digits(), desk_addr(), cid, 1, extra);
    x.handle_datagram(first.as_bytes(), desk_addr(), T0);
    let out = sent(x);
    let challenge = out.iter().map(|(_, m)| m).find(|m| code(m) == 401).expect("a challenge");
    let uri = format!("sip:{to}@{}", sw());
    let (name, value) = peerdial_sip::client::answer_challenge(challenge, 401, &desk().digits(), PW, method, &uri).unwrap();
    let mut headers = extra.to_vec();
    headers.push((name, value.as_str()));
    let second = request(method, to, &desk().digits(), desk_addr(), cid, 2, &headers);
    x.handle_datagram(second.as_bytes(), desk_addr(), T0);
    sent(x)
}

#[test]
fn keys_admit_calls_to_a_device_and_its_own_calls_out_are_designated() {
    let mut x = exchange();
    let out = authorized(&mut x, "REGISTER", &desk().digits(), "reg1", &[("Expires", "600")]);
    assert_eq!(code(&out[0].1), 200, "registered with its password");

    // From outside, no key: 403 and nothing goes to the device.
    let caller = "8860312345678";
    let invite = request("INVITE", &desk().digits(), caller, "127.0.0.1:7000".parse().unwrap(), "in1", 1, &[]);
    x.handle_datagram(invite.as_bytes(), "127.0.0.1:7000".parse().unwrap(), T0);
    let out = sent(&mut x);
    assert!(out.iter().all(|(to, _)| *to != desk_addr()), "nothing rings");
    assert_eq!(code(&out[0].1), 403);
    // With the key the cloud was handed for this caller: the device is called.
    let accepted = x.accept(Number::parse(caller).unwrap(), desk(), T0).unwrap();
    let invite = request(
        "INVITE",
        &desk().digits(),
        caller,
        "127.0.0.1:7000".parse().unwrap(),
        "in2",
        1,
        &[(SWITCH_KEY_HEADER, &accepted.key)],
    );
    x.handle_datagram(invite.as_bytes(), "127.0.0.1:7000".parse().unwrap(), T0 + 10);
    let out = sent(&mut x);
    assert!(
        out.iter().any(|(to, m)| *to == desk_addr() && m.method() == Some("INVITE")),
        "the device rings: {out:?}"
    );
    // The same key again: used.
    let again = request(
        "INVITE",
        &desk().digits(),
        caller,
        "127.0.0.1:7000".parse().unwrap(),
        "in3",
        1,
        &[(SWITCH_KEY_HEADER, &accepted.key)],
    );
    x.handle_datagram(again.as_bytes(), "127.0.0.1:7000".parse().unwrap(), T0 + 20);
    assert_eq!(code(&sent(&mut x)[0].1), 403);

    // The desk calls out: challenged, then the cloud is asked.
    let other = "8860299990003";
    let out = authorized(&mut x, "INVITE", other, "out1", &[]);
    assert!(out.iter().all(|(to, _)| *to == desk_addr()), "{out:?}");
    let designate = std::iter::from_fn(|| x.poll_event()).find_map(|e| match e {
        Event::Designate { id, caller, callee } => Some((id, caller, callee)),
        _ => None,
    });
    let (id, c, callee) = designate.expect("the cloud is asked");
    assert_eq!((c, callee.digits()), (desk(), other.to_string()));
    // The cloud names switch B and a key: the INVITE goes there with it.
    let b: SocketAddr = "127.0.0.1:5080".parse().unwrap();
    x.designated(
        id,
        Designated::Switch {
            addr: b,
            key: "k3y".into(),
        },
        T0 + 30,
    );
    let out = sent(&mut x);
    let (_, m) = out.iter().find(|(to, _)| *to == b).expect("an INVITE to switch B");
    assert_eq!((m.method(), m.header(SWITCH_KEY_HEADER)), (Some("INVITE"), Some("k3y")));

    // Another call out the cloud refuses: the desk hears why.
    let out = authorized(&mut x, "INVITE", "8860288887777", "out2", &[]);
    assert!(!out.is_empty());
    let id = std::iter::from_fn(|| x.poll_event())
        .find_map(|e| match e {
            Event::Designate { id, .. } => Some(id),
            _ => None,
        })
        .unwrap();
    x.designated(
        id,
        Designated::Refused {
            code: 404,
            why: "Not Found (invalid call: unknown callee)".into(),
        },
        T0 + 40,
    );
    let out = sent(&mut x);
    assert!(out.iter().any(|(to, m)| *to == desk_addr() && code(m) == 404), "{out:?}");

    // A number with no switch: the edge found its contact; the INVITE goes
    // there, with no key.
    let _ = authorized(&mut x, "INVITE", "8860288886666", "out3", &[]);
    let id = std::iter::from_fn(|| x.poll_event())
        .find_map(|e| match e {
            Event::Designate { id, .. } => Some(id),
            _ => None,
        })
        .unwrap();
    let phone: SocketAddr = "127.0.0.1:5090".parse().unwrap();
    let uri = format!("sip:8860288886666@{phone}");
    x.designated(
        id,
        Designated::Direct {
            uri: uri.clone(),
            addr: phone,
            identity: Some("a.b.c;info=<https://x/k>".into()),
        },
        T0 + 50,
    );
    let out = sent(&mut x);
    let (_, m) = out.iter().find(|(to, _)| *to == phone).expect("an INVITE to the number's contact");
    assert_eq!((m.method(), m.header(SWITCH_KEY_HEADER)), (Some("INVITE"), None));
    assert_eq!(
        m.header("Identity"),
        Some("a.b.c;info=<https://x/k>"),
        "the cloud's PASSporT goes on"
    );
    assert!(matches!(&m.start, StartLine::Request { uri: u, .. } if *u == uri), "{m:?}");

    // A number the cloud woke by push: called at its contact with the
    // cloud's token for this caller (the woken phone refuses a call
    // without it), from the device's own number. Its answer must carry
    // its own token: one that does not is hung up on, and the desk is
    // refused; one that does is connected.
    let cloud = peerdial_identity::SigningKey::generate(&mut rand::rngs::OsRng);
    let sleeper = Number::parse("886-02-88887777").unwrap();
    let woken: SocketAddr = "127.0.0.1:5092".parse().unwrap();
    for (cid, good) in [("out4", false), ("out5", true)] {
        let _ = authorized(&mut x, "INVITE", &sleeper.digits(), cid, &[]);
        let id = std::iter::from_fn(|| x.poll_event())
            .find_map(|e| match e {
                Event::Designate { id, .. } => Some(id),
                _ => None,
            })
            .unwrap();
        let (for_caller, for_callee) = peerdial_push::token::sign_pair(&cloud, desk(), sleeper, T0 / 1000).unwrap();
        x.designated(
            id,
            Designated::Woken {
                uri: format!("sip:{}@{woken}", sleeper.digits()),
                addr: woken,
                token: for_caller.clone(),
                key: cloud.public_key().clone(),
                identity: None,
            },
            T0 + 60,
        );
        let out = sent(&mut x);
        let (_, m) = out.iter().find(|(to, _)| *to == woken).expect("an INVITE to the woken contact");
        assert_eq!(m.method(), Some("INVITE"));
        assert_eq!(m.header(peerdial_push::token::HEADER), Some(for_caller.as_str()));
        assert!(
            m.header("From").is_some_and(|f| f.contains(&format!("sip:{}@", desk().digits()))),
            "{m:?}"
        );
        let token = if good { for_callee } else { for_caller };
        let ok = answer(m, &[(peerdial_push::token::HEADER, &token)]);
        x.handle_datagram(ok.as_bytes(), woken, T0 + 70);
        let out = sent(&mut x);
        let to_desk: Vec<u16> = out.iter().filter(|(to, _)| *to == desk_addr()).map(|(_, m)| code(m)).collect();
        let to_woken: Vec<_> = out.iter().filter(|(to, _)| *to == woken).filter_map(|(_, m)| m.method()).collect();
        if good {
            assert_eq!(to_desk, vec![200], "{out:?}");
            assert_eq!(to_woken, vec!["ACK"]);
        } else {
            assert_eq!(to_desk, vec![403], "the caller's token is not the callee's: {out:?}");
            assert_eq!(to_woken, vec!["ACK", "BYE"]);
            assert!(std::iter::from_fn(|| x.poll_event()).any(|e| matches!(e, Event::WakeTokenRefused { .. })));
        }
    }
}

/// The callee's 200 to `invite`, with an answer and `extra` headers.
fn answer(invite: &Message, extra: &[(&str, &str)]) -> String {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let h = |n: &str| invite.header(n).unwrap_or_default().to_string();
    let mut m = format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=woken\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <sip:callee@127.0.0.1:5092>\r\n",
        h("Via"),
        h("From"),
        h("To"),
        h("Call-ID"),
        h("CSeq")
    );
    for (n, v) in extra {
        m.push_str(&format!("{n}: {v}\r\n"));
    }
    m.push_str(&format!(
        "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    ));
    m
}
