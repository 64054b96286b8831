//! Presence on a running region, as watchers and phones see it: SUBSCRIBE
//! and NOTIFY with PIDF over UDP, online from registrations, offline when a
//! phone stops answering keep-alives or its TCP connection closes, PUBLISH
//! with digest, the HTTP API (JSON and Server-Sent Events), friends-only
//! presence, baresip watching and publishing, and our phone's contacts
//! list.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use common::baresip::Baresip;
use common::*;
use peerdial_presence::{pidf, Presence, State};
use peerdial_sip::digest::{challenge_nonce, Algorithm, Credentials};
use peerdial_sip::message::{Message as Sip, StartLine};

const REALM: &str = "2.0.6.8.8.peerdial.internal";

/// A watcher (or publisher) speaking SIP over UDP from the test; it
/// answers every NOTIFY with 200 and keeps what they said.
struct Watcher {
    sock: UdpSocket,
    region: SocketAddr,
    notifies: Vec<Sip>,
    n: u32,
}

impl Watcher {
    fn new(region: SocketAddr) -> Watcher {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        Watcher {
            sock,
            region,
            notifies: Vec::new(),
            n: 0,
        }
    }

    /// One message, answering NOTIFYs (which are kept, not returned).
    fn recv_one(&mut self) -> Option<Sip> {
        let mut buf = vec![0u8; 65_536];
        let (n, _) = self.sock.recv_from(&mut buf).ok()?;
        let m = Sip::parse(&buf[..n]).expect("the region sent a parseable message");
        if m.method() == Some("NOTIFY") {
            let via = peerdial_sip::message::top_via(&m).unwrap();
            let ok = peerdial_sip::message::response(&m, &via, self.sock.local_addr().unwrap(), 200, "OK", "w");
            self.sock.send_to(&ok.to_bytes(), self.region).unwrap();
            self.notifies.push(m);
            return None;
        }
        Some(m)
    }

    /// The final response to the request just sent.
    fn response(&mut self) -> Sip {
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Some(m) = self.recv_one() {
                if matches!(m.start, StartLine::Response { code, .. } if code >= 200) {
                    return m;
                }
            }
        }
        panic!("no response from the region");
    }

    /// The state in the next NOTIFY (within `secs`), with its Subscription-State.
    fn next_state(&mut self, secs: u64) -> Option<(State, String)> {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            if !self.notifies.is_empty() {
                let m = self.notifies.remove(0);
                assert_eq!(m.header("Content-Type"), Some(pidf::CONTENT_TYPE));
                let doc = pidf::decode(&m.body).expect("NOTIFY carries PIDF");
                return Some((doc.state, m.header("Subscription-State").unwrap_or_default().to_string()));
            }
            if Instant::now() >= end {
                return None;
            }
            let _ = self.recv_one();
        }
    }

    /// Waits for a NOTIFY saying `want` (earlier ones are skipped).
    fn wait_state(&mut self, want: State, secs: u64) -> bool {
        let end = Instant::now() + Duration::from_secs(secs);
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.next_state(left.as_secs().max(1)) {
                Some((s, _)) if s == want => return true,
                Some(_) => {}
                None => return false,
            }
        }
        false
    }

    fn send(&mut self, method: &str, user: &str, headers: &[(&str, String)], body: &[u8]) -> Sip {
        self.n += 1;
        let local = self.sock.local_addr().unwrap();
        let mut s = format!(
            "{method} sip:{user}@{REALM} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKw{}{};rport\r\nMax-Forwards: 70\r\n\
From: <sip:watcher@{local}>;tag=f{}\r\nTo: <sip:{user}@{REALM}>\r\nCall-ID: w{}-{}\r\nCSeq: 1 {method}\r\n\
Contact: <sip:watcher@{local}>\r\n",
            self.n,
            std::process::id(),
            self.n,
            self.n,
            local.port()
        );
        for (k, v) in headers {
            s.push_str(&format!("{k}: {v}\r\n"));
        }
        s.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut bytes = s.into_bytes();
        bytes.extend_from_slice(body);
        self.sock.send_to(&bytes, self.region).unwrap();
        self.response()
    }

    fn subscribe(&mut self, user: &str, event: &str, auth: Option<String>) -> u16 {
        let mut h = vec![
            ("Event", event.to_string()),
            ("Expires", "600".into()),
            ("Accept", pidf::CONTENT_TYPE.into()),
        ];
        h.extend(auth.map(|a| ("Authorization", a)));
        status(&self.send("SUBSCRIBE", user, &h, b""))
    }
}

/// Digest credentials of `dev` for `method` to its own presentity URI.
fn digest(dev: &Device, method: &str, nonce: &str) -> String {
    let uri = format!("sip:{}@{REALM}", dev.user);
    Credentials::respond(&dev.user, REALM, &dev.password, Algorithm::Md5, method, &uri, nonce).to_header()
}

fn nonce_of(challenge: &Sip) -> String {
    assert_eq!(status(challenge), 401);
    challenge_nonce(challenge.header("WWW-Authenticate").unwrap()).unwrap()
}

fn http_state(r: &Region, dev: &Device) -> String {
    let (s, j) = http(r.http, "GET", &format!("/api/v1/presence/{}", dev.number), b"");
    assert_eq!(s, 200, "{j}");
    assert_eq!(j["number"], dev.number.as_str());
    assert!(j["since"].as_u64().is_some(), "{j}");
    j["state"].as_str().unwrap().to_string()
}

fn basic(dev: &Device) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", dev.user, dev.password));
    format!("Basic {b}")
}

/// Answers the region's keep-alives (OPTIONS) on the phone's socket.
fn answer_keepalives(phone: &mut Phone, count: usize) {
    let sock = phone.udp.as_ref().unwrap();
    let mut buf = vec![0u8; 65_536];
    let mut answered = 0;
    while answered < count {
        let (n, from) = sock.recv_from(&mut buf).expect("a keep-alive from the region");
        let m = Sip::parse(&buf[..n]).unwrap();
        if m.method() == Some("OPTIONS") {
            let via = peerdial_sip::message::top_via(&m).unwrap();
            let ok = peerdial_sip::message::response(&m, &via, sock.local_addr().unwrap(), 200, "OK", "p");
            sock.send_to(&ok.to_bytes(), from).unwrap();
            answered += 1;
        }
    }
}

#[test]
fn watchers_see_phones_come_online_and_go_offline_when_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &["--keepalive", "1"]);
    let a = provision(r.http, "02:00:00:00:00:01");
    let mut w = Watcher::new(r.sip);

    // Bad requests first: an unknown number, an unknown event package.
    assert_eq!(w.subscribe("8860299999999", "presence", None), 404);
    assert_eq!(w.subscribe(&a.user, "dialog", None), 489);
    let (s, _) = http(r.http, "GET", "/api/v1/presence/886-02-99999999", b"");
    assert_eq!(s, 404);

    // Anyone may watch: 200, then a NOTIFY with the current state at once.
    assert_eq!(w.subscribe(&a.user, "presence", None), 200);
    let (state, sub) = w.next_state(5).expect("an immediate NOTIFY");
    assert_eq!(state, State::Offline);
    assert!(sub.starts_with("active"), "{sub}");
    assert_eq!(http_state(&r, &a), "offline");

    // A phone registers over UDP: online; it answers keep-alives.
    let mut phone = Phone::udp(r.sip);
    assert_eq!(phone.register(&a, &a.password, Algorithm::Md5, 600).0, 200);
    assert!(w.wait_state(State::Online, 5), "no NOTIFY saying online");
    assert_eq!(http_state(&r, &a), "online");
    answer_keepalives(&mut phone, 2);
    // Then it dies without unregistering (like kill -9): three missed
    // keep-alives later it is offline, long before its registration ends.
    assert!(w.wait_state(State::Offline, 15), "no NOTIFY saying offline");
    assert_eq!(http_state(&r, &a), "offline");
    drop(phone);

    // Over TCP the connection is the proof: closed, offline at once.
    let mut phone = Phone::tcp(r.sip);
    assert_eq!(phone.register(&a, &a.password, Algorithm::Md5, 600).0, 200);
    assert!(w.wait_state(State::Online, 5), "no NOTIFY saying online over TCP");
    drop(phone);
    assert!(w.wait_state(State::Offline, 5), "closing the connection did not show offline");
    assert_eq!(http_state(&r, &a), "offline");

    // A flow (RFC 5626) whose phone pings once, hears the pong, then goes
    // silent with the connection left open (a NAT that dropped it): offline
    // after two Flow-Timer intervals of silence, not at once.
    let mut phone = Phone::tcp(r.sip);
    let (code, ok) = phone.register(&a, &a.password, Algorithm::Md5, 600);
    assert_eq!(code, 200);
    assert_eq!(ok.header("Flow-Timer"), Some("1"), "{ok:?}");
    assert!(w.wait_state(State::Online, 5), "no NOTIFY saying online over TCP");
    phone.send_raw(b"\r\n\r\n");
    let tcp = phone.tcp.as_mut().unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut pong = [0u8; 2];
    std::io::Read::read_exact(tcp, &mut pong).expect("a pong");
    assert_eq!(&pong, b"\r\n", "the answer to a double-CRLF ping");
    let silent = Instant::now();
    assert!(w.wait_state(State::Offline, 20), "a silent flow stayed online");
    assert!(
        silent.elapsed() >= Duration::from_secs(2),
        "offline {:?} into the silence",
        silent.elapsed()
    );
    assert_eq!(http_state(&r, &a), "offline");
    drop(phone);
}

/// Reads a Server-Sent Events stream; each `data:` line, as JSON.
fn sse(r: &Region, dev: &Device) -> mpsc::Receiver<serde_json::Value> {
    let mut s = TcpStream::connect(r.http).unwrap();
    write!(
        s,
        "GET /api/v1/presence/{}/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n",
        dev.number
    )
    .unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(s).lines() {
            let Ok(line) = line else { return };
            // Chunked framing puts the event text on lines of its own.
            if let Some(d) = line.strip_prefix("data:") {
                if let Ok(v) = serde_json::from_str(d.trim()) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

#[test]
fn publish_with_digest_reaches_watchers_http_and_events_and_friends_only_hides_it() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let a = provision(r.http, "02:00:00:00:00:01");
    let b = provision(r.http, "02:00:00:00:00:02");
    let mut phone = Phone::udp(r.sip);
    assert_eq!(phone.register(&a, &a.password, Algorithm::Md5, 600).0, 200);
    let events = sse(&r, &a);
    let first = events.recv_timeout(Duration::from_secs(5)).expect("the current state first");
    assert_eq!(
        (first["number"].as_str(), first["state"].as_str()),
        (Some(a.number.as_str()), Some("online"))
    );
    let mut w = Watcher::new(r.sip);
    assert_eq!(w.subscribe(&a.user, "presence", None), 200);
    assert_eq!(w.next_state(5).map(|s| s.0), Some(State::Online));

    let meeting = pidf::encode(
        &format!("sip:{}@{REALM}", a.user),
        &Presence {
            state: State::Meeting,
            since: 0,
            note: Some("board meeting".into()),
        },
    );
    let pidf_type = ("Content-Type", pidf::CONTENT_TYPE.to_string());
    let publish = |w: &mut Watcher, auth: Option<String>, body: &[u8]| {
        let mut h = vec![("Event", "presence".to_string()), ("Expires", "600".into()), pidf_type.clone()];
        h.extend(auth.map(|a| ("Authorization", a)));
        w.send("PUBLISH", &a.user, &h, body)
    };
    let mut p = Watcher::new(r.sip);
    // Without credentials: a challenge; then malformed PIDF: 400, no change.
    let nonce = nonce_of(&publish(&mut p, None, &meeting));
    let bad = publish(&mut p, Some(digest(&a, "PUBLISH", &nonce)), b"<presence><tuple>");
    assert_eq!(status(&bad), 400);
    assert_eq!(http_state(&r, &a), "online");
    // Another number's credentials may not publish for a.
    assert_eq!(status(&publish(&mut p, Some(digest(&b, "PUBLISH", &nonce)), &meeting)), 403);
    let ok = publish(&mut p, Some(digest(&a, "PUBLISH", &nonce)), &meeting);
    assert_eq!(status(&ok), 200);
    assert!(ok.header("SIP-ETag").is_some());
    assert!(w.wait_state(State::Meeting, 5), "the watcher was not told");
    let (s, j) = http(r.http, "GET", &format!("/api/v1/presence/{}", a.number), b"");
    assert_eq!(
        (s, j["state"].as_str(), j["note"].as_str()),
        (200, Some("meeting"), Some("board meeting"))
    );
    let change = events.recv_timeout(Duration::from_secs(5)).expect("an event for the change");
    assert_eq!(change["state"], "meeting");

    // Friends-only: set with a's own credentials, b is a friend.
    let path = format!("/api/v1/presence/{}/policy", a.number);
    let put = |auth: &str, body: &[u8]| {
        parse_http(&http_raw(
            r.http,
            "PUT",
            &path,
            &[("Authorization", auth), ("Content-Type", "application/json")],
            body,
        ))
    };
    let policy = format!(r#"{{"friends_only": true, "friends": ["{}"]}}"#, b.number);
    assert_eq!(put(&basic(&b), policy.as_bytes()).0, 403, "only the owner sets the policy");
    assert_eq!(put(&basic(&a), b"{\"friends_only\": ").0, 400);
    let (s, j) = http(r.http, "PUT", "/api/v1/presence/886-02-99999999/policy", policy.as_bytes());
    assert_eq!(s, 404, "{j}");
    let (s, j) = put(&basic(&a), policy.as_bytes());
    assert_eq!((s, j["friends_only"].as_bool()), (200, Some(true)), "{j}");
    // Anonymous watchers, the HTTP API and its event stream now see offline…
    assert!(w.wait_state(State::Offline, 5), "the anonymous watcher still sees the real state");
    assert_eq!(http_state(&r, &a), "offline");
    let hidden = events.recv_timeout(Duration::from_secs(5)).expect("an event for the policy");
    assert_eq!(hidden["state"], "offline");
    // …an authenticated friend sees the real state.
    let mut friend = Watcher::new(r.sip);
    // The digest covers the Request-URI: a's presentity.
    let uri = format!("sip:{}@{REALM}", a.user);
    let auth = Credentials::respond(&b.user, REALM, &b.password, Algorithm::Md5, "SUBSCRIBE", &uri, &nonce).to_header();
    assert_eq!(friend.subscribe(&a.user, "presence", Some(auth)), 200);
    assert_eq!(friend.next_state(5).map(|s| s.0), Some(State::Meeting));

    // The policy is stored: a restarted region still hides a.
    drop((w, friend, p, events));
    let data = r.data.clone();
    r.stop();
    let r = Region::start(&data, &[]);
    let get = parse_http(&http_raw(r.http, "GET", &path, &[("Authorization", &basic(&a))], b""));
    assert_eq!(get.1["friends"], serde_json::json!([b.number]), "{}", get.1);
    assert_eq!(http_state(&r, &a), "offline");
}

#[test]
fn baresip_watches_our_numbers_and_publishes_its_own_status() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let ours = provision(r.http, "02:00:00:00:00:01");
    let theirs = provision(r.http, "02:00:00:00:00:02");
    let mut phone = Phone::udp(r.sip);
    assert_eq!(phone.register(&ours, &ours.password, Algorithm::Md5, 600).0, 200);
    let mut bs = Baresip::start(
        dir.path(),
        &format!(
            "<sip:{}@{};transport=udp>;auth_pass={};regint=600;pubint=60;mwi=no\n",
            theirs.user, r.sip, theirs.password
        ),
        &format!("\"Ours\" <sip:{}@{}>;presence=p2p\n", ours.user, r.sip),
        &["module_app contact.so", "module_app presence.so"],
    );

    // baresip registers and publishes "open": online.
    assert!(
        eventually(10, || http_state(&r, &theirs) == "online"),
        "baresip never showed online: {}",
        bs.log()
    );
    // It says it is offline (PUBLISH closed) while still registered.
    bs.command("/presence_offline");
    assert!(
        eventually(10, || http_state(&r, &theirs) == "offline"),
        "baresip's PUBLISH was not understood: {}",
        bs.log()
    );
    bs.command("/presence_online");
    assert!(eventually(10, || http_state(&r, &theirs) == "online"), "{}", bs.log());

    // baresip subscribes a moment after it starts: its contacts list
    // shows our number online once it has.
    let listed = |bs: &mut Baresip, state: &str| {
        let want = format!("{state} Ours <sip:{}@{}>", ours.user, r.sip);
        eventually(15, || {
            bs.command("/contacts");
            std::thread::sleep(Duration::from_millis(300));
            bs.log().contains(&want)
        })
    };
    assert!(listed(&mut bs, "Online"), "baresip never saw our number online: {}", bs.log());

    // Our phone unregisters: baresip, watching it, shows the change.
    let req = phone.request(&ours.user, 0, None);
    phone.send_raw(&req);
    let ch = phone.recv().unwrap();
    let auth = phone.answer(&ch, &ours, &ours.password, Algorithm::Md5);
    let req = phone.request(&ours.user, 0, Some(auth));
    phone.send_raw(&req);
    assert_eq!(status(&phone.recv().unwrap()), 200);
    assert!(
        listed(&mut bs, "Offline"),
        "baresip did not see our number go offline: {}",
        bs.log()
    );
}

#[test]
fn a_phone_shows_its_contacts_presence_from_a_contacts_file() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let mut other = Softphone::start(&r, dir.path(), "02:00:00:00:98:01", r.dns, &[]);
    let contacts = dir.path().join("contacts");
    std::fs::write(&contacts, format!("# family\n{} Aunt May\n", other.number)).unwrap();
    let file = contacts.to_str().unwrap();
    let mut ours = Softphone::start(&r, dir.path(), "02:00:00:00:98:02", r.dns, &["--contacts", file]);
    ours.expect_line(&format!("contact {} online (Aunt May)", other.number), 10);
    other.send("status meeting");
    other.expect_line("status meeting", 10);
    ours.expect_line(&format!("contact {} meeting (Aunt May)", other.number), 10);
    ours.stop();
    other.stop();
}
