//! The identity rendezvous as users see it (issue 14): two mobile phones
//! register (the code comes by SMS through the simulated mobile network),
//! a mobile call from one to the other becomes an internet call with
//! audio, a call to a number without the app stays a mobile call, forged,
//! misbound and reused session keys get 403, and no IMSI appears in any
//! answer or output line.

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

use common::server::Server;
use common::*;
use peerdial_media::audio::{tone, write_wav};
use peerdial_sip::message::{Message as Sip, StartLine};

const A: &str = "+886912000001";
const B: &str = "+886912000002";
const C: &str = "+886912000003";
const IMSI_A: &str = "466920000000001";
const IMSI_B: &str = "466920000000002";
const IMSI_C: &str = "466920000000003";

fn body(v: serde_json::Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

/// A bare SIP caller that sends INVITEs with a rendezvous key.
struct RawCaller {
    sock: UdpSocket,
    n: u32,
}

impl RawCaller {
    /// An INVITE from `from_digits` to `to`; the status codes until a final
    /// one, or 180.
    fn invite(&mut self, to: &Softphone, from_digits: &str, key: &str) -> Vec<u16> {
        self.n += 1;
        let local = self.sock.local_addr().unwrap();
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
            free_udp_port()
        );
        let (callee, cid) = (to.number.replace('-', ""), format!("rdv{}-{}@test", self.n, std::process::id()));
        let m = format!(
            "INVITE sip:{callee}@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKrdv{n};rport\r\nMax-Forwards: 70\r\n\
From: <sip:{from_digits}@{local}>;tag=rdv{n}\r\nTo: <sip:{callee}@{sip}>\r\nCall-ID: {cid}\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:{from_digits}@{local}>\r\nX-Peerdial-Rendezvous-Key: {key}\r\nContent-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{sdp}",
            sip = to.sip,
            n = self.n,
            len = sdp.len()
        );
        self.sock.send_to(m.as_bytes(), to.sip).unwrap();
        let mut codes = Vec::new();
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, _)) = self.sock.recv_from(&mut buf) {
            let Ok(m) = Sip::parse(&buf[..n]) else { continue };
            if let (Some(c), StartLine::Response { code, .. }) = (m.header("Call-ID"), &m.start) {
                if c == cid {
                    codes.push(*code);
                    if *code >= 180 {
                        break;
                    }
                }
            }
        }
        codes
    }
}

fn tone_wav(dir: &Path) -> String {
    let p = dir.join("tone.wav");
    write_wav(&p, &tone(1000.0, 48_000, 48_000 * 4, 12_000.0), 48_000).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn a_mobile_call_becomes_an_internet_call_and_keys_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Server::start(&["cellular-sim", "--http", "127.0.0.1:0"]);
    let sim_addr = sim.field("http");
    let webhook = format!("http://{sim_addr}/sim/v1/sms");
    let top_dir = dir.path().join("top");
    let top = Server::start(&[
        "top",
        "--data",
        top_dir.to_str().unwrap(),
        "--dns",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--join-token",
        "t",
        "--sms-webhook",
        &webhook,
        "--rendezvous-window",
        "3",
    ]);
    let top_addr = top.field("http");
    let region = Region::start(&dir.path().join("region"), &[]);
    let (top_url, sim_url) = (format!("http://{}", top_addr), format!("http://{}", sim_addr));
    let mut responses = Vec::new();

    // Two mobiles: each registers and verifies with the code the SMS brings.
    let play = tone_wav(dir.path());
    let rec = dir.path().join("b.wav");
    let mobile = |msisdn, imsi| {
        vec![
            "--msisdn".to_string(),
            msisdn,
            "--imsi".into(),
            imsi,
            "--rendezvous".into(),
            top_url.clone(),
            "--cellular".into(),
            sim_url.clone(),
        ]
    };
    let mut args_a = mobile(A.into(), IMSI_A.into());
    args_a.extend(["--play".into(), play, "--duration".into(), "2".into()]);
    let mut args_b = mobile(B.into(), IMSI_B.into());
    args_b.extend(["--record".into(), rec.to_str().unwrap().into()]);
    let mut a = Softphone::start(
        &region,
        dir.path(),
        "02:00:00:00:14:01",
        region.dns,
        &args_a.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let mut b = Softphone::start(
        &region,
        dir.path(),
        "02:00:00:00:14:02",
        region.dns,
        &args_b.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    a.expect_line(&format!("mobile {A} registered with the rendezvous"), 10);
    b.expect_line(&format!("mobile {B} registered with the rendezvous"), 10);

    // A places a mobile call to B: they pair, talk over the internet, and
    // both release the mobile call.
    a.send(&format!("cellular-call {B}"));
    b.expect_line(&format!("cellular-ring from {A}"), 10);
    b.expect_line(&format!("rendezvous paired with {A}: waiting for its internet call"), 10);
    a.expect_line(&format!("rendezvous paired with {B}: calling sip:"), 10);
    b.expect_line("internet call from ", 10);
    b.expect_line("incoming call from", 10);
    // The internet call carries signed caller identity like any other.
    b.expect_line(&format!("caller {} verified", a.number), 10);
    b.send("answer");
    a.expect_line("answered codec=", 10);
    a.expect_line("releasing mobile call c1", 10);
    b.expect_line("releasing mobile call c1", 10);
    assert!(eventually(10, || sim.lines().iter().any(|l| l.contains("mobile call c1 released"))));
    b.expect_line(" ended: the other side hung up", 15);
    common::tones::assert_heard_tone_48k(&rec, 1000.0);

    // A number without the app: no match, the mobile call goes on.
    a.send("cellular-call +886912999999");
    a.expect_line("no internet match for +886912999999: the mobile call continues", 15);

    // A third device, registered by hand: bad input first, then the code.
    let (s, j) = http(
        top_addr,
        "POST",
        "/api/v1/rendezvous/devices",
        &body(serde_json::json!({"msisdn": "886912000003", "imsi": IMSI_C})),
    );
    assert_eq!(s, 400, "{j}");
    let (s, j) = http(
        top_addr,
        "POST",
        "/api/v1/rendezvous/devices",
        &body(serde_json::json!({"msisdn": C, "imsi": "46692000000000"})),
    );
    assert_eq!(s, 400, "{j}");
    assert!(j["error"].as_str().unwrap().contains("15 digits"), "{j}");
    let (s, j) = http(
        top_addr,
        "POST",
        "/api/v1/rendezvous/devices",
        &body(serde_json::json!({"msisdn": C, "imsi": IMSI_C})),
    );
    assert_eq!(s, 202, "{j}");
    responses.push(j);
    let (_, ev) = http(sim_addr, "GET", &format!("/sim/v1/events/{C}?wait=5"), b"");
    let text = ev["events"][0]["text"].as_str().unwrap_or_default().to_string();
    let code: String = text.chars().filter(char::is_ascii_digit).collect();
    assert_eq!(code.len(), 6, "{ev}");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let verify = |code: &str| body(serde_json::json!({"msisdn": C, "imsi": IMSI_C, "code": code}));
    let (s, j) = http(top_addr, "POST", "/api/v1/rendezvous/devices/verify", &verify(wrong));
    assert_eq!(s, 403, "{j}");
    responses.push(j);
    let (s, j) = http(top_addr, "POST", "/api/v1/rendezvous/devices/verify", &verify(&code));
    assert_eq!(s, 200, "{j}");
    responses.push(j);
    let (s, j) = http(top_addr, "POST", "/api/v1/rendezvous/devices/verify", &verify(&code));
    assert_eq!((s, j["error"].as_str()), (403, Some("the code was used already")), "{j}");

    // Someone with B's number but not its SIM learns nothing.
    let ring = |imsi: &str| body(serde_json::json!({"imsi": imsi, "msisdn": B, "contact": "sip:886021111111@127.0.0.1:9"}));
    let (s, stranger) = http(top_addr, "POST", "/api/v1/rendezvous/ring", &ring("466929999999999"));
    assert_eq!(s, 403);
    let (_, unknown) = http(
        top_addr,
        "POST",
        "/api/v1/rendezvous/ring",
        &body(serde_json::json!({"imsi": "466929999999998", "msisdn": "+886912999998", "contact": "sip:886021111111@127.0.0.1:9"})),
    );
    assert_eq!(stranger, unknown, "a known number without its SIM answers like an unknown one");
    responses.extend([stranger, unknown]);

    // C (this test, as a mobile) calls B and gets a session key for it.
    let mut raw = RawCaller {
        sock: UdpSocket::bind("127.0.0.1:0").unwrap(),
        n: 0,
    };
    raw.sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let me = "886021234567";
    let (s, placed) = http(sim_addr, "POST", "/sim/v1/calls", &body(serde_json::json!({"from": C, "to": B})));
    assert_eq!(s, 200, "{placed}");
    let submit = body(
        serde_json::json!({"msisdn": C, "imsi": IMSI_C, "callee": B, "contact": format!("sip:{me}@{}", raw.sock.local_addr().unwrap())}),
    );
    let (s, paired) = http(top_addr, "POST", "/api/v1/rendezvous/call", &submit);
    assert_eq!((s, paired["status"].as_str()), (200, Some("paired")), "{paired}");
    assert_eq!(paired["peer"], B);
    let key = paired["key"].as_str().unwrap().to_string();
    responses.push(paired);
    b.expect_line(&format!("rendezvous paired with {C}"), 10);

    // Forged and misbound keys are refused and do not use the key up; the
    // right one rings once; the same key again is refused.
    assert_eq!(raw.invite(&b, me, "forged-key-0000000000000000000000000000000"), vec![403]);
    assert_eq!(raw.invite(&b, "886029999999", &key), vec![403]);
    let codes = raw.invite(&b, me, &key);
    assert!(codes.contains(&180), "{codes:?} {:#?}", b.lines());
    b.send("hangup");
    b.expect_line(&format!("call with {me}"), 10);
    assert_eq!(raw.invite(&b, me, &key), vec![403]);
    for why in [
        "rendezvous key unknown",
        "rendezvous key issued for another caller",
        "rendezvous key already used",
    ] {
        b.expect_line(why, 5);
    }

    // No IMSI anywhere: answers, the top's and the simulator's output, the phones'.
    let everything: Vec<String> = responses
        .iter()
        .map(|j| j.to_string())
        .chain(top.lines())
        .chain(sim.lines())
        .chain(a.lines())
        .chain(b.lines())
        .collect();
    assert!(
        top.lines().iter().any(|l| l.contains("rendezvous: paired")),
        "the top logs at info: {:?}",
        top.lines()
    );
    for imsi in [IMSI_A, IMSI_B, IMSI_C, "466929999999999"] {
        let hits: Vec<&String> = everything.iter().filter(|l| l.contains(imsi)).collect();
        assert!(hits.is_empty(), "IMSI in output: {hits:#?}");
    }
    a.send("quit");
    b.send("quit");
}
