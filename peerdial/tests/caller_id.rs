//! Caller identity and greeting pictures at our phone (issue 9): a PASSporT
//! on every INVITE, verified by the callee with the key it finds in DNS;
//! greeting pictures fetched only from the other number's own region;
//! forged or missing identities shown as unverified (or refused with
//! `--reject-unverified`).

mod common;

use std::io::Cursor;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::time::Duration;

use common::xterm::{XtermPhone, Xvfb};
use common::*;
use peerdial_sip::digest::Algorithm;
use peerdial_sip::message::{Message as Sip, StartLine};

fn png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 90]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// PUTs a greeting; its update code.
fn upload(http: SocketAddr, number: &str, kind: &str, auth: &str) -> String {
    upload_png(http, number, kind, auth, &png())
}

fn upload_png(http: SocketAddr, number: &str, kind: &str, auth: &str, png: &[u8]) -> String {
    let path = format!("/api/v1/greetings/{number}/{kind}");
    let (s, j) = parse_http(&http_raw(
        http,
        "PUT",
        &path,
        &[("Authorization", auth), ("Content-Type", "image/png")],
        png,
    ));
    assert_eq!(s, 200, "{j}");
    j["etag"].as_str().unwrap().to_string()
}

/// A PASSporT from the region for `dev` calling `dest`.
fn passport(http: SocketAddr, dev: &Device, dest: &str) -> String {
    let body = format!(r#"{{"dest":"{dest}"}}"#);
    let auth = basic(&dev.user, &dev.password);
    let (s, j) = parse_http(&http_raw(
        http,
        "POST",
        "/api/v1/identity/passport",
        &[("Authorization", &auth), ("Content-Type", "application/json")],
        body.as_bytes(),
    ));
    assert_eq!(s, 200, "{j}");
    j["identity"].as_str().unwrap().to_string()
}

/// A bare SIP client: sends INVITEs with whatever headers a test wants.
struct RawCaller {
    sock: UdpSocket,
    n: u32,
}

impl RawCaller {
    fn new() -> RawCaller {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        RawCaller { sock, n: 0 }
    }

    fn invite(&mut self, to: &Softphone, from_digits: &str, extra: &[(&str, &str)]) {
        self.n += 1;
        let local = self.sock.local_addr().unwrap();
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
            free_udp_port()
        );
        let callee = to.number.replace('-', "");
        let mut m = format!(
            "INVITE sip:{callee}@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKraw{n}x{p};rport\r\nMax-Forwards: 70\r\n\
From: <sip:{from_digits}@{local}>;tag=raw{n}\r\nTo: <sip:{callee}@{sip}>\r\nCall-ID: raw{n}-{p}@test\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:{from_digits}@{local}>\r\n",
            sip = to.sip,
            n = self.n,
            p = std::process::id()
        );
        for (k, v) in extra {
            m.push_str(&format!("{k}: {v}\r\n"));
        }
        m.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        ));
        self.sock.send_to(m.as_bytes(), to.sip).unwrap();
    }

    /// Status codes received for the latest INVITE until a final one, or
    /// until `until` arrives, or silence.
    fn codes(&self, until: u16) -> Vec<u16> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65_536];
        let cid = format!("raw{}-{}@test", self.n, std::process::id());
        while let Ok((n, _)) = self.sock.recv_from(&mut buf) {
            let Ok(m) = Sip::parse(&buf[..n]) else { continue };
            if m.header("Call-ID") != Some(cid.as_str()) {
                continue;
            }
            if let StartLine::Response { code, .. } = m.start {
                out.push(code);
                if code >= 200 || code == until {
                    break;
                }
            }
        }
        out
    }
}

/// One INVITE from `raw` that must ring; the callee's `caller …` line for
/// it. The callee then hangs up.
fn attempt(raw: &mut RawCaller, callee: &mut Softphone, from: &str, extra: &[(&str, &str)]) -> String {
    let seen = callee.lines().len();
    let ended = callee.lines().iter().filter(|l| l.contains(" ended: ")).count();
    raw.invite(callee, from, extra);
    let codes = raw.codes(180);
    assert!(codes.contains(&180), "no ringing: {codes:?} {:#?}", callee.lines());
    let new_caller_line = || callee.lines()[seen..].iter().find(|l| l.starts_with("caller ")).cloned();
    assert!(
        eventually(5, || new_caller_line().is_some()),
        "no caller line: {:#?}",
        callee.lines()
    );
    let line = new_caller_line().unwrap_or_default();
    callee.send("hangup");
    assert!(eventually(5, || callee.lines().iter().filter(|l| l.contains(" ended: ")).count() > ended));
    line
}

/// A TCP listener that records whether anyone connected.
fn trap() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let hit = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let h = hit.clone();
    std::thread::spawn(move || {
        for _ in l.incoming() {
            h.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    });
    (addr, hit)
}

#[test]
fn a_call_between_two_regions_shows_the_caller_verified_with_its_greeting() {
    let dir = tempfile::tempdir().unwrap();
    let a = Region::start(&dir.path().join("a"), &[]);
    let b = Region::start(&dir.path().join("b"), &["--area", "886-03"]);
    let unbound = Unbound::start(&[(ZONE, a.dns), (ZONE_03, b.dns)]);
    let (mac_callee, mac_caller) = ("02:00:00:00:93:01", "02:00:00:00:93:02");
    let mut callee = Softphone::start(&b, dir.path(), mac_callee, unbound.addr, &["--auto-answer", "--answer-after", "0"]);
    let mut caller = Softphone::start(&a, dir.path(), mac_caller, unbound.addr, &["--greeting-poll", "1"]);
    assert!(callee.number.starts_with("886-03-") && caller.number.starts_with("886-02-"));

    let (user, pass) = phone_credentials(dir.path(), mac_caller);
    let caller_etag = upload(a.http, &caller.number, "caller", &basic(&user, &pass));
    let (user, pass) = phone_credentials(dir.path(), mac_callee);
    let callee_etag = upload(b.http, &callee.number, "callee", &basic(&user, &pass));
    // The phone polls its region and fetches its own changed greeting.
    caller.expect_line(
        &format!(
            "own greeting caller http://{}/api/v1/greetings/{}/caller etag {caller_etag}",
            a.http, caller.number
        ),
        10,
    );

    caller.send(&format!("call {}", callee.number));
    callee.expect_line(&format!("caller {} verified", caller.number), 10);
    callee.expect_line(
        &format!(
            "greeting http://{}/api/v1/greetings/{}/caller etag {caller_etag}",
            a.http, caller.number
        ),
        10,
    );
    caller.expect_line(
        &format!(
            "greeting http://{}/api/v1/greetings/{}/callee etag {callee_etag}",
            b.http, callee.number
        ),
        10,
    );
    caller.expect_line("answered", 10);
    caller.send("hangup");
    callee.expect_line("ended", 10);
    // The pictures were kept in the bounded cache.
    let cached = std::fs::read_dir(dir.path().join(format!("phone-{}", mac_callee.replace(':', ""))).join("greetings"))
        .unwrap()
        .count();
    assert!(cached >= 1);
    callee.stop();
    seen_in_a_graphics_terminal(&a, &b, dir.path(), unbound.addr, &mut caller, mac_caller);
    caller.stop();
}

/// Orange and blue squares of 4 px: finer than a character cell, so only a
/// picture drawn at pixel resolution (sixel, kitty) shows them. Half blocks
/// (one colour per half cell) would show a blur of the two.
const ORANGE: [u8; 3] = [250, 130, 20];
const BLUE: [u8; 3] = [0, 60, 200];
/// Sixel's palette is in percent: a channel may be off by a few steps.
const TOLERANCE: u8 = 12;

fn checkerboard() -> Vec<u8> {
    let img = image::RgbImage::from_fn(240, 120, |x, y| image::Rgb(if (x / 4 + y / 4) % 2 == 0 { ORANGE } else { BLUE }));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// The caller's greeting as a user of a graphics terminal sees it: a callee
/// runs full-screen in xterm as a VT340 (sixel) on Xvfb, and the test reads
/// the screen's pixels from Xvfb's framebuffer file. Only a real terminal
/// shows whether ratatui-image's query, its sixel output, the picture's
/// place, its removal at hang-up and the terminal given back at exit work;
/// xterm is the one sixel terminal that runs headless from a Debian package
/// (kitty needs OpenGL). Skipped where Xvfb or xterm is missing, unless CI.
fn seen_in_a_graphics_terminal(
    a: &Region,
    b: &Region,
    dir: &std::path::Path,
    resolver: SocketAddr,
    caller: &mut Softphone,
    mac_caller: &str,
) {
    let Some(x) = Xvfb::start_if_installed() else { return };
    let (user, pass) = phone_credentials(dir, mac_caller);
    upload_png(a.http, &caller.number, "caller", &basic(&user, &pass), &checkerboard());
    let mut tui = XtermPhone::start(&x, b, dir, "02:00:00:00:93:03", resolver, &[]);
    let colours = [ORANGE, BLUE];
    let picture_count = |screen: &common::xterm::Screen| screen.find(&colours, TOLERANCE).0;

    caller.send(&format!("call {}", tui.number));
    let mut seen = None;
    eventually(10, || {
        let s = x.screen();
        let (counts, bounds) = s.find(&colours, TOLERANCE);
        seen = bounds.filter(|_| counts.iter().all(|c| *c > 2_000)).map(|b| (s, b));
        seen.is_some()
    });
    let log = tui.log();
    let (screen, (x0, y0, x1, y1)) = seen.unwrap_or_else(|| panic!("the caller's picture is not on the screen; the phone's log:\n{log}"));
    // The phone chose sixel, and says so with the terminal's cell size.
    let chose = log
        .lines()
        .find(|l| l.contains("pictures drawn with"))
        .unwrap_or_else(|| panic!("no protocol line in the log:\n{log}"));
    assert!(chose.contains("pictures drawn with sixel"), "{chose}");
    let cell = chose
        .split("cell ")
        .nth(1)
        .and_then(|c| c.trim_end_matches(|c: char| !c.is_ascii_digit()).split_once('x'));
    let (cell_w, cell_h): (usize, usize) = cell.map(|(w, h)| (w.parse().unwrap(), h.parse().unwrap())).expect(chose);
    // Pixel resolution: across the middle of the picture the two colours
    // alternate in runs shorter than a cell's width, and down it in runs
    // shorter than half a cell's height (what half blocks could do).
    let across = screen.runs((x0..x1).map(|x| (x, (y0 + y1) / 2)), &colours, TOLERANCE);
    let down = screen.runs((y0..y1).map(|y| ((x0 + x1) / 2, y)), &colours, TOLERANCE);
    assert!(
        across.len() >= 20 && across.iter().all(|n| *n < cell_w),
        "across: {across:?} (cell {cell_w} px wide)"
    );
    assert!(
        down.len() >= 10 && down.iter().all(|n| *n < cell_h / 2),
        "down: {down:?} (cell {cell_h} px high)"
    );

    // Hung up: the picture is gone from the screen.
    caller.send("hangup");
    assert!(
        eventually(10, || picture_count(&x.screen()).iter().sum::<usize>() == 0),
        "the picture stayed on the screen after the hang-up"
    );
    // Ringing again, the phone quits: the terminal is given back (line
    // mode, echo) with no picture left on it.
    caller.send(&format!("call {}", tui.number));
    assert!(
        eventually(10, || picture_count(&x.screen()).iter().all(|c| *c > 2_000)),
        "no picture the second time"
    );
    let (code, modes) = tui.stop();
    assert_eq!(code, 0, "{}", tui.log());
    let modes: Vec<&str> = modes.split_whitespace().collect();
    assert!(
        modes.contains(&"icanon") && modes.contains(&"echo"),
        "the terminal was left raw: {modes:?}"
    );
    assert!(
        eventually(5, || picture_count(&x.screen()).iter().sum::<usize>() == 0),
        "the picture stayed on the screen after the phone quit"
    );
}

#[test]
fn missing_and_forged_identities_are_unverified_and_foreign_picture_urls_are_not_fetched() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let unbound = Unbound::start(&[(ZONE, r.dns)]);
    let mut callee = Softphone::start(&r, dir.path(), "02:00:00:00:94:01", unbound.addr, &[]);
    let alice = provision(r.http, "02:00:00:00:94:02");
    let bob = provision(r.http, "02:00:00:00:94:03");
    let (alice_digits, bob_digits) = (alice.number.replace('-', ""), bob.number.replace('-', ""));
    let mut raw = RawCaller::new();
    let (trap_addr, trapped) = trap();

    // No Identity header (any SIP client that does not sign).
    let l = attempt(&mut raw, &mut callee, &alice_digits, &[]);
    assert_eq!(l, format!("caller {} unverified: no Identity header", alice.number));
    // Garbage.
    let l = attempt(&mut raw, &mut callee, &alice_digits, &[("Identity", "garbage;;;==,<<>>")]);
    assert!(l.starts_with(&format!("caller {} unverified: malformed", alice.number)), "{l}");
    // Alice's genuine token, sent as Bob: for another caller.
    let token = passport(r.http, &alice, &callee.number);
    let l = attempt(&mut raw, &mut callee, &bob_digits, &[("Identity", &token)]);
    assert!(
        l.starts_with(&format!("caller {} unverified: token is for caller {}", bob.number, alice.number)),
        "{l}"
    );
    // Verified, but its picture URL points at another host: not fetched.
    let token = passport(r.http, &alice, &callee.number);
    let foreign = format!("<http://{trap_addr}/api/v1/greetings/{}/caller>;purpose=icon", alice.number);
    let l = attempt(
        &mut raw,
        &mut callee,
        &alice_digits,
        &[("Identity", &token), ("Call-Info", &foreign)],
    );
    assert_eq!(l, format!("caller {} verified", alice.number));
    callee.expect_line(&format!("greeting of {} not fetched", alice.number), 10);
    // The same token again is a replay.
    let l = attempt(&mut raw, &mut callee, &alice_digits, &[("Identity", &token)]);
    assert!(l.ends_with("unverified: token was already used"), "{l}");
    assert!(
        !trapped.load(std::sync::atomic::Ordering::SeqCst),
        "the phone connected to a foreign host"
    );

    // The phone still takes a real, signed call.
    let mut caller = dial(
        &r,
        dir.path(),
        "02:00:00:00:94:04",
        unbound.addr,
        &callee.number,
        &["--ring-timeout", "2", "--no-mailbox"],
    );
    caller.wait_exit(20);
    let caller_number = caller.number.clone();
    callee.expect_line(&format!("caller {caller_number} verified"), 1);
    callee.stop();
}

#[test]
fn reject_unverified_answers_438_without_ringing() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let unbound = Unbound::start(&[(ZONE, r.dns)]);
    let mut callee = Softphone::start(&r, dir.path(), "02:00:00:00:95:01", unbound.addr, &["--reject-unverified"]);
    let mut raw = RawCaller::new();
    raw.invite(&callee, "8860200000001", &[]);
    let codes = raw.codes(0);
    assert_eq!(codes.last(), Some(&438), "{codes:?}");
    assert!(!codes.contains(&180), "{codes:?}");
    callee.expect_line("unverified: no Identity header", 1);
    assert!(callee.wait_line("incoming call from", 0).is_none());
    callee.stop();
}

#[test]
fn a_callee_picture_url_on_another_host_is_not_fetched_by_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let unbound = Unbound::start(&[(ZONE, r.dns)]);
    // The callee is a bare SIP socket registered with the region.
    let dev = provision(r.http, "02:00:00:00:96:01");
    let mut callee = Phone::udp(r.sip);
    assert_eq!(callee.register(&dev, &dev.password, Algorithm::Md5, 600).0, 200);
    let (trap_addr, trapped) = trap();
    let mut caller = dial(&r, dir.path(), "02:00:00:00:96:02", unbound.addr, &dev.number, &["--no-mailbox"]);
    let sock = callee.udp.take().unwrap();
    let mut buf = vec![0u8; 65_536];
    let (n, from) = sock.recv_from(&mut buf).expect("the INVITE");
    let invite = Sip::parse(&buf[..n]).unwrap();
    assert!(invite.header("Identity").is_some(), "the caller sent no Identity");
    assert!(invite.header("Call-Info").is_some_and(|c| c.contains("purpose=icon")));
    let reply = |code: u16, reason: &str, extra: &str| {
        let mut m = format!("SIP/2.0 {code} {reason}\r\n");
        for h in ["Via", "From", "Call-ID", "CSeq"] {
            m.push_str(&format!("{h}: {}\r\n", invite.header(h).unwrap()));
        }
        m.push_str(&format!(
            "To: {};tag=raw\r\n{extra}Content-Length: 0\r\n\r\n",
            invite.header("To").unwrap()
        ));
        sock.send_to(m.as_bytes(), from).unwrap();
    };
    let foreign = format!(
        "Call-Info: <http://{trap_addr}/api/v1/greetings/{}/callee>;purpose=icon\r\n",
        dev.number
    );
    reply(180, "Ringing", &foreign);
    caller.expect_line(&format!("greeting of {} not fetched", dev.number), 10);
    reply(486, "Busy Here", "");
    assert_eq!(caller.wait_exit(10), 4);
    assert!(
        !trapped.load(std::sync::atomic::Ordering::SeqCst),
        "the phone connected to a foreign host"
    );
}

#[test]
fn presence_is_published_asked_before_calling_and_watched() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let unbound = Unbound::start(&[(ZONE, r.dns)]);
    let mut callee = Softphone::start(&r, dir.path(), "02:00:00:00:97:01", unbound.addr, &[]);
    let mut caller = Softphone::start(&r, dir.path(), "02:00:00:00:97:02", unbound.addr, &[]);
    callee.send("status meeting");
    callee.expect_line("status meeting", 10);
    caller.send(&format!("call {}", callee.number));
    caller.expect_line(&format!("presence {} meeting", callee.number), 10);
    let ask = format!(
        "{} is meeting: call anyway, leave a message, or not? (yes/message/no)",
        callee.number
    );
    caller.expect_line(&ask, 1);
    caller.send("no");
    caller.expect_line(&format!("not calling {}", callee.number), 5);
    assert!(callee.wait_line("incoming call from", 0).is_none());
    // Asked again, the caller leaves a message: the mailbox answers and
    // the callee's phone does not ring. The callee hears of the missed
    // call at once, by its message-summary subscription (it polls only
    // every 5 minutes), with the caller verified.
    caller.send(&format!("call {}", callee.number));
    assert!(
        eventually(10, || caller.lines().iter().filter(|l| l.contains(&ask)).count() == 2),
        "{:#?}",
        caller.lines()
    );
    caller.send("message");
    caller.expect_line("answered", 10);
    caller.send("hangup");
    let missed = callee.expect_line("mailbox: 1 missed call", 10);
    assert!(callee.wait_line("incoming call from", 0).is_none(), "{missed}");
    let from = callee.expect_line("missed call from ", 0);
    assert!(
        from.contains(&format!("from {} at", caller.number)) && from.ends_with("(verified)"),
        "{from}"
    );
    caller.send("message");
    caller.expect_line("no call waits for an answer", 5);
    caller.send(&format!("watch {}", callee.number));
    caller.expect_line(&format!("contact {} meeting", callee.number), 10);
    callee.send("status available");
    caller.expect_line(&format!("contact {} online", callee.number), 10);
    // In a call the callee is on the phone, and the watcher sees it.
    caller.send(&format!("call {}", callee.number));
    caller.expect_line(&format!("presence {} online", callee.number), 10);
    callee.expect_line("incoming call from", 10);
    caller.expect_line(&format!("contact {} on-the-phone", callee.number), 10);
    caller.send("hangup");
    callee.expect_line("ended", 10);
    caller.stop();
    callee.stop();
}

#[test]
fn a_friend_in_another_region_sees_friends_only_presence_and_a_stranger_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let (unbound, a, b) = two_regions_with_resolver(dir.path());
    let mac_owner = "02:00:00:00:94:01";
    let mut owner = Softphone::start(&b, dir.path(), mac_owner, unbound.addr, &[]);
    let mut friend = Softphone::start(&a, dir.path(), "02:00:00:00:94:02", unbound.addr, &[]);
    let mut stranger = Softphone::start(&a, dir.path(), "02:00:00:00:94:03", unbound.addr, &[]);

    // The owner is in a meeting, and shows it to friends only.
    owner.send("status meeting");
    owner.expect_line("status meeting", 10);
    let (user, pass) = phone_credentials(dir.path(), mac_owner);
    let policy = format!(r#"{{"friends_only": true, "friends": ["{}"]}}"#, friend.number);
    let (status, j) = parse_http(&http_raw(
        b.http,
        "PUT",
        &format!("/api/v1/presence/{}/policy", owner.number),
        &[("Authorization", &basic(&user, &pass)), ("Content-Type", "application/json")],
        policy.as_bytes(),
    ));
    assert_eq!(status, 200, "{j}");

    // Both watch from region 886-02: the friend proves its number with a
    // PASSporT its own region signed, and sees the meeting; the stranger's
    // token is valid too, but it is no friend: offline.
    friend.send(&format!("watch {}", owner.number));
    stranger.send(&format!("watch {}", owner.number));
    friend.expect_line(&format!("contact {} meeting", owner.number), 10);
    stranger.expect_line(&format!("contact {} offline", owner.number), 10);
    assert!(
        !stranger.lines().iter().any(|l| l.contains("meeting")),
        "the stranger saw the real state: {:?}",
        stranger.lines()
    );
    // Calling, the stranger is not asked whether to call someone
    // "offline": the owner's phone is in DNS, and "offline" is only what a
    // stranger is shown.
    stranger.send(&format!("call {}", owner.number));
    owner.expect_line("incoming call from", 10);
    assert!(
        !stranger
            .lines()
            .iter()
            .any(|l| l.contains("call anyway") || l.contains("presence ")),
        "{:#?}",
        stranger.lines()
    );
    stranger.send("hangup");
    owner.expect_line("ended", 10);
    // A change reaches the friend at once.
    owner.send("status available");
    friend.expect_line(&format!("contact {} online", owner.number), 10);
    for p in [&mut owner, &mut friend, &mut stranger] {
        p.stop();
    }
    drop((a, b));
}
