//! The softphone as users see it: it provisions and registers, dials by
//! number through a DNS resolver, and the call runs straight between the
//! two phones with audio that arrives as sent.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use peerdial_media::audio::{frequency, read_wav, rms, similarity, tone, write_wav};

fn tone_wav(dir: &Path, secs: u32) -> String {
    let p = dir.join("tone.wav");
    write_wav(&p, &tone(1000.0, 48_000, 48_000 * secs as usize, 12_000.0), 48_000).unwrap();
    p.to_str().unwrap().to_string()
}

/// The frequency of the recorded tone, skipping the first and last 300 ms.
fn recorded_frequency(path: &Path, rate: u32) -> f32 {
    let s = read_wav(path, rate).unwrap();
    let skip = (rate as usize) * 3 / 10;
    assert!(s.len() > 3 * skip, "recording too short: {} samples", s.len());
    assert!(rms(&s[skip..s.len() - skip]) > 1000.0, "recording is (nearly) silent");
    frequency(&s[skip..s.len() - skip], rate)
}

#[test]
fn a_call_by_number_carries_a_tone_at_its_frequency() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let play = tone_wav(dir.path(), 4);
    for (codec, rate) in [("pcmu", 8000u32), ("opus", 48_000)] {
        let rec = dir.path().join(format!("callee-{codec}.wav"));
        let mut callee = Softphone::start(
            &r,
            dir.path(),
            "02:00:00:00:01:01",
            r.dns,
            &["--auto-answer", "--answer-after", "0.2", "--record", rec.to_str().unwrap()],
        );
        let mut caller = dial(
            &r,
            dir.path(),
            "02:00:00:00:01:02",
            r.dns,
            &callee.number,
            &["--play", &play, "--duration", "2", "--codecs", codec],
        );
        assert_eq!(caller.wait_exit(20), 0, "{:#?}", caller.lines());
        let lines = caller.lines();
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("calling ") && l.contains(&format!("@127.0.0.1:{}", callee.sip.port()))),
            "{lines:#?}"
        );
        assert!(lines.iter().any(|l| l == "ringing"), "{lines:#?}");
        assert!(
            lines
                .iter()
                .any(|l| l == &format!("answered codec={}", if codec == "opus" { "opus" } else { "PCMU" })),
            "{lines:#?}"
        );
        callee.expect_line("incoming call from 886-02-", 5);
        callee.expect_line("ended: the other side hung up after 2.", 5);
        callee.stop();
        let f = recorded_frequency(&rec, rate);
        assert!((f - 1000.0).abs() <= 20.0, "{codec}: the 1 kHz tone arrived at {f} Hz");
    }
}

#[test]
fn the_callee_hangs_up_and_the_identity_is_kept_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let mut callee = Softphone::start(
        &r,
        dir.path(),
        "02:00:00:00:02:01",
        r.dns,
        &["--auto-answer", "--answer-after", "0", "--duration", "1"],
    );
    let number = callee.number.clone();
    // Short dialing: the 8 individual digits within the own area.
    let short = number.rsplit('-').next().unwrap().to_string();
    let mut caller = dial(&r, dir.path(), "02:00:00:00:02:02", r.dns, &short, &[]);
    assert_eq!(caller.wait_exit(20), 0, "{:#?}", caller.lines());
    caller.expect_line(&format!("dialing {number}"), 1);
    caller.expect_line("ended: the other side hung up after 1.", 1);
    callee.expect_line("ended: hung up after 1.", 5);
    assert_eq!(callee.stop(), 0);
    // A restart reuses the stored number and secret.
    let again = Softphone::start(&r, dir.path(), "02:00:00:00:02:01", r.dns, &[]);
    assert_eq!(again.number, number);
}

#[test]
fn unknown_number_busy_no_answer_and_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);

    // Nobody has this number: a clear message, no INVITE, exit 3.
    let mut p = dial(&r, dir.path(), "02:00:00:00:03:01", r.dns, "886-02-99999998", &[]);
    assert_eq!(p.wait_exit(20), 3);
    p.expect_line("no such number: 886-02-99999998", 0);
    assert!(!p.lines().iter().any(|l| l.starts_with("calling")), "{:#?}", p.lines());

    // A number that does not parse: a clear message, exit 1.
    let mut p = dial(&r, dir.path(), "02:00:00:00:03:01", r.dns, "12-34", &[]);
    assert_eq!(p.wait_exit(20), 1);
    p.expect_line("cannot dial \"12-34\"", 0);

    // Ringing without an answer: the caller gives up (CANCEL), exit 5.
    let mut callee = Softphone::start(&r, dir.path(), "02:00:00:00:03:02", r.dns, &[]);
    let mut caller = dial(
        &r,
        dir.path(),
        "02:00:00:00:03:03",
        r.dns,
        &callee.number,
        &["--ring-timeout", "1.5", "--no-mailbox"],
    );
    assert_eq!(caller.wait_exit(20), 5, "{:#?}", caller.lines());
    caller.expect_line("ended: no answer", 0);
    callee.expect_line("incoming call from", 1);
    callee.expect_line("ended: the caller gave up", 5);

    // Hang up while ringing (the user presses hang up): CANCEL.
    let mut caller = dial(&r, dir.path(), "02:00:00:00:03:03", r.dns, &callee.number, &[]);
    caller.expect_line("ringing", 10);
    caller.send("hangup");
    assert_ne!(caller.wait_exit(20), 0);
    callee.expect_line("incoming call from", 1);
    assert!(
        eventually(5, || callee
            .lines()
            .iter()
            .filter(|l| l.contains("ended: the caller gave up"))
            .count()
            == 2),
        "{:#?}",
        callee.lines()
    );

    // The callee dies while ringing, the user hangs up and dials again at
    // once: the CANCEL nobody answers does not hold the line.
    let mut caller = Softphone::start(&r, dir.path(), "02:00:00:00:03:03", r.dns, &[]);
    caller.send(&format!("call {}", callee.number));
    caller.expect_line("ringing", 10);
    callee.child.kill().unwrap();
    callee.child.wait().unwrap();
    caller.send("hangup");
    caller.send(&format!("call {}", callee.number));
    assert!(
        eventually(5, || caller.lines().iter().filter(|l| l.starts_with("dialing ")).count() == 2),
        "{:#?}",
        caller.lines()
    );
    assert!(
        !caller.lines().iter().any(|l| l.contains("already in a call")),
        "{:#?}",
        caller.lines()
    );
    drop(caller);
    let mut callee = Softphone::start(&r, dir.path(), "02:00:00:00:03:02", r.dns, &[]);

    // Busy: the callee is talking to someone else (and has no call
    // waiting), exit 4.
    callee.stop();
    let mut callee = Softphone::start(
        &r,
        dir.path(),
        "02:00:00:00:03:02",
        r.dns,
        &["--auto-answer", "--answer-after", "0", "--no-call-waiting"],
    );
    let mut first = dial(&r, dir.path(), "02:00:00:00:03:04", r.dns, &callee.number, &["--duration", "4"]);
    first.expect_line("answered", 10);
    let mut second = dial(&r, dir.path(), "02:00:00:00:03:05", r.dns, &callee.number, &["--no-mailbox"]);
    assert_eq!(second.wait_exit(20), 4, "{:#?}", second.lines());
    second.expect_line("ended: busy", 0);
    assert_eq!(first.wait_exit(20), 0);
    callee.stop();
}

#[test]
fn an_unreachable_callee_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    // A phone registers, then vanishes without unregistering (kill -9):
    // its NAPTR still points at a port where nobody listens.
    // (Over UDP: on a TCP flow its going would be noticed at once.)
    let mut gone = Softphone::start(&r, dir.path(), "02:00:00:00:04:01", r.dns, &["--sip-transport", "udp"]);
    gone.child.kill().unwrap();
    gone.child.wait().unwrap();
    let mut caller = dial(
        &r,
        dir.path(),
        "02:00:00:00:04:02",
        r.dns,
        &gone.number,
        &["--unreachable-after", "2", "--no-mailbox"],
    );
    assert_eq!(caller.wait_exit(20), 6, "{:#?}", caller.lines());
    caller.expect_line("callee unreachable", 0);
}

/// Speech through the whole path (WAV → resample → PCMU → RTP → jitter
/// buffer → WAV) is still the same speech: the recording correlates with
/// what was sent, and a mismatched reference does not.
#[test]
fn speech_arrives_intelligible() {
    let dir = tempfile::tempdir().unwrap();
    let speech = dir.path().join("speech.wav");
    let st = std::process::Command::new(require("espeak-ng"))
        .args([
            "-w",
            speech.to_str().unwrap(),
            "-s",
            "150",
            "one two three four five, the quick brown fox jumps over the lazy dog",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let r = Region::start(dir.path(), &[]);
    let rec = dir.path().join("heard.wav");
    let mut callee = Softphone::start(
        &r,
        dir.path(),
        "02:00:00:00:05:01",
        r.dns,
        &["--auto-answer", "--answer-after", "0", "--record", rec.to_str().unwrap()],
    );
    let mut caller = dial(
        &r,
        dir.path(),
        "02:00:00:00:05:02",
        r.dns,
        &callee.number,
        &["--play", speech.to_str().unwrap(), "--duration", "6", "--codecs", "pcmu"],
    );
    assert_eq!(caller.wait_exit(30), 0, "{:#?}", caller.lines());
    callee.expect_line("ended:", 5);
    callee.stop();
    // What the caller's codec made of the speech: the reference.
    let sent = read_wav(&speech, 8000).unwrap();
    let reference: Vec<i16> = sent
        .iter()
        .map(|&s| peerdial_media::g711::ulaw_decode(peerdial_media::g711::ulaw_encode(s)))
        .collect();
    let heard = read_wav(&rec, 8000).unwrap();
    let score = similarity(&reference, &heard, 2400, 1600);
    assert!(score > 0.9, "speech arrived garbled: similarity {score:.3}");
    // The same measure fails a broken path: the speech played backwards.
    let mut backwards = heard.clone();
    backwards.reverse();
    let wrong = similarity(&reference, &backwards, 2400, 1600);
    assert!(wrong < 0.5, "the measure cannot tell: {wrong:.3}");
}

#[test]
fn bad_sip_and_sdp_get_clear_answers_and_do_not_crash_the_phone() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let callee = Softphone::start(&r, dir.path(), "02:00:00:00:06:01", r.dns, &["--auto-answer"]);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let me = sock.local_addr().unwrap();
    let invite = |call_id: &str, extra: &str, body: &str| {
        format!(
            "INVITE sip:{n}@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{call_id}\r\nFrom: <sip:x@{me}>;tag=1\r\n\
             To: <sip:{n}@{to}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:x@{me}>\r\n{extra}Content-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len(),
            n = callee.number.replace('-', ""),
            to = callee.sip,
        )
    };
    let final_status = |msg: &str| -> u16 {
        sock.send_to(msg.as_bytes(), callee.sip).unwrap();
        let mut buf = [0u8; 4096];
        loop {
            let (n, _) = sock.recv_from(&mut buf).expect("an answer");
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            let code: u16 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
            if code >= 200 {
                return code;
            }
        }
    };
    // No codec in common (G.722 only): 488.
    let g722 = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 9\r\n";
    assert_eq!(final_status(&invite("c1", "", g722)), 488);
    // SDP that does not parse: 488.
    assert_eq!(final_status(&invite("c2", "", "this is not sdp")), 488);
    // An INVITE missing its To header: 400.
    let no_to = invite("c3", "", g722).replace(&format!("To: <sip:{}@{}>\r\n", callee.number.replace('-', ""), callee.sip), "");
    assert_eq!(final_status(&no_to), 400);
    // Garbage SIP and random bytes: no answer, no crash.
    sock.send_to(b"\x00\x01\x02 not sip at all", callee.sip).unwrap();
    sock.send_to(&[0xffu8; 1500], callee.sip).unwrap();
    // Still alive and answering.
    let options = format!(
        "OPTIONS sip:x@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKo1\r\nFrom: <sip:x@{me}>;tag=1\r\nTo: <sip:x@{to}>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        to = callee.sip
    );
    assert_eq!(final_status(&options), 200);
}

#[test]
fn garbage_and_foreign_rtp_do_not_disturb_a_call() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let play = tone_wav(dir.path(), 5);
    let rec = dir.path().join("rec.wav");
    let mut callee = Softphone::start(
        &r,
        dir.path(),
        "02:00:00:00:07:01",
        r.dns,
        &["--auto-answer", "--answer-after", "0", "--record", rec.to_str().unwrap()],
    );
    // The callee's RTP port is in its SDP answer; find it from the socket table.
    let mut caller = dial(
        &r,
        dir.path(),
        "02:00:00:00:07:02",
        r.dns,
        &callee.number,
        &["--play", &play, "--duration", "3", "--codecs", "pcmu"],
    );
    caller.expect_line("answered", 10);
    let ports = udp_ports_of(callee.child.id());
    let junk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let forged = peerdial_media::rtp::build(
        &peerdial_media::rtp::RtpHeader {
            marker: false,
            payload_type: 0,
            seq: 1,
            timestamp: 0,
            ssrc: 9,
        },
        &[0x00; 160],
    );
    for _ in 0..50 {
        for &p in &ports {
            let to = std::net::SocketAddr::from(([127, 0, 0, 1], p));
            let _ = junk.send_to(b"\x80garbage", to);
            let _ = junk.send_to(&forged, to); // loud noise from a stranger
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(caller.wait_exit(20), 0);
    callee.expect_line("ended:", 5);
    callee.stop();
    let f = recorded_frequency(&rec, 8000);
    assert!((f - 1000.0).abs() <= 20.0, "{f}");
}

/// UDP ports a process has open, from /proc (no extra tools).
fn udp_ports_of(pid: u32) -> Vec<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_string))
        .collect();
    let table = std::fs::read_to_string("/proc/net/udp").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let port = u16::from_str_radix(f.get(1)?.split(':').nth(1)?, 16).ok()?;
            inodes.contains(&f.get(9)?.to_string()).then_some(port)
        })
        .collect()
}

#[test]
fn two_phones_call_through_unbound_and_calls_survive_the_region_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &["--ttl", "300"]);
    let unbound = Unbound::start(&[(ZONE, r.dns)]);
    let play = tone_wav(dir.path(), 8);
    let rec = dir.path().join("rec.wav");
    let mut callee = Softphone::start(
        &r,
        dir.path(),
        "02:00:00:00:08:01",
        unbound.addr,
        &["--auto-answer", "--answer-after", "0", "--record", rec.to_str().unwrap()],
    );
    let mut caller = dial(
        &r,
        dir.path(),
        "02:00:00:00:08:02",
        unbound.addr,
        &callee.number,
        &["--play", &play, "--duration", "4", "--codecs", "pcmu"],
    );
    caller.expect_line("answered", 10);
    // The region goes away mid-call; the call is between the phones.
    r.kill9();
    assert_eq!(caller.wait_exit(20), 0, "{:#?}", caller.lines());
    caller.expect_line("ended: hung up after 4.", 0);
    callee.expect_line("ended: the other side hung up after 4.", 5);
    let f = recorded_frequency(&rec, 8000);
    assert!((f - 1000.0).abs() <= 20.0, "{f}");
    // A new call still connects: unbound has the callee's address cached.
    let mut again = dial_without_region(dir.path(), "02:00:00:00:08:02", unbound.addr, &callee.number, &["--duration", "1"]);
    assert_eq!(again.wait_exit(20), 0, "{:#?}", again.lines());
    callee.stop();
}

/// A network namespace joined to the host by a veth pair: a second "host"
/// whose address the test can change. Removed (with its veth) on drop.
struct Netns {
    name: String,
    inside: String,
    host_if: String,
}

fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Netns {
    fn new(net: &str) -> Netns {
        let id = std::process::id() % 100_000;
        let n = Netns {
            name: format!("pdns-{id}"),
            inside: format!("pdn{id}"),
            host_if: format!("pdh{id}"),
        };
        ip(&["netns", "add", &n.name]);
        ip(&["link", "add", &n.host_if, "type", "veth", "peer", "name", &n.inside]);
        ip(&["link", "set", &n.inside, "netns", &n.name]);
        ip(&["addr", "add", &format!("{net}.1/24"), "dev", &n.host_if]);
        ip(&["link", "set", &n.host_if, "up"]);
        n.exec(&["ip", "addr", "add", &format!("{net}.2/24"), "dev", &n.inside]);
        n.exec(&["ip", "link", "set", &n.inside, "up"]);
        n.exec(&["ip", "link", "set", "lo", "up"]);
        n
    }

    fn exec(&self, cmd: &[&str]) {
        let mut args = vec!["netns", "exec", &self.name];
        args.extend_from_slice(cmd);
        ip(&args);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.name]).status();
        let _ = std::process::Command::new("ip").args(["link", "del", &self.host_if]).status();
    }
}

#[test]
fn a_phone_whose_address_changes_re_registers_at_once() {
    let net = format!("10.201.{}", std::process::id() % 250);
    let ns = Netns::new(&net);
    let dir = tempfile::tempdir().unwrap();
    let host = format!("{net}.1");
    let (sip, dns, http) = (format!("{host}:0"), format!("{host}:0"), format!("{host}:0"));
    let data = dir.path().join("region");
    let r = Region::spawn(
        &[
            "region",
            "--data",
            data.to_str().unwrap(),
            "--sip",
            &sip,
            "--dns",
            &dns,
            "--http",
            &http,
        ],
        &data,
    );
    let phone_data = dir.path().join("phone");
    let (region_url, resolver) = (format!("http://{}", r.http), r.dns.to_string());
    let args = [
        "phone",
        "--region",
        &region_url,
        "--data",
        phone_data.to_str().unwrap(),
        "--mac",
        "02:00:00:00:09:01",
        "--sip",
        "0.0.0.0:0",
        "--resolver",
        &resolver,
        "--auto-answer",
        "--answer-after",
        "0",
    ];
    let phone = Softphone::spawn(&args, &["ip", "netns", "exec", &ns.name]);
    phone.expect_line("registered number=", 10);
    let digits = phone.number.replace('-', "");
    let port = phone.sip.port();
    assert_eq!(naptr_uri(r.dns, &digits), Some(format!("sip:{digits}@{net}.2:{port}")));

    // The phone's lease changes: .2 goes away, .3 comes.
    ns.exec(&["ip", "addr", "del", &format!("{net}.2/24"), "dev", &ns.inside]);
    ns.exec(&["ip", "addr", "add", &format!("{net}.3/24"), "dev", &ns.inside]);
    phone.expect_line(&format!("address changed from {net}.2 to {net}.3"), 10);
    phone.expect_line("re-registered", 10);
    let want = format!("sip:{digits}@{net}.3:{port}");
    assert!(
        eventually(5, || naptr_uri(r.dns, &digits).as_deref() == Some(want.as_str())),
        "{:?}",
        naptr_uri(r.dns, &digits)
    );

    // And a caller on the host reaches it at its new address.
    let caller_data = dir.path().join("caller");
    let mut caller = Softphone::spawn(
        &[
            "phone",
            "--region",
            &region_url,
            "--data",
            caller_data.to_str().unwrap(),
            "--mac",
            "02:00:00:00:09:02",
            "--sip",
            &format!("{host}:0"),
            "--resolver",
            &resolver,
            "--duration",
            "1",
            "call",
            &phone.number,
        ],
        &[],
    );
    assert_eq!(caller.wait_exit(20), 0, "{:#?}", caller.lines());
    caller.expect_line(&format!("at {want}"), 0);
    phone.expect_line("incoming call from", 1);
}

/// A phone on its own tmux server (a private socket), so the test sees the
/// real terminal display and types real keys.
struct Tmux {
    socket: String,
    _dir: tempfile::TempDir,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("tmux.sock").to_str().unwrap().to_string();
        let st = std::process::Command::new(require("tmux"))
            .args(["-S", &socket, "new-session", "-d", "-x", "100", "-y", "30", command])
            .status()
            .unwrap();
        assert!(st.success());
        Tmux { socket, _dir: dir }
    }

    fn screen(&self) -> String {
        let out = std::process::Command::new("tmux")
            .args(["-S", &self.socket, "capture-pane", "-p"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["-S", &self.socket, "send-keys"];
        args.extend_from_slice(keys);
        assert!(std::process::Command::new("tmux").args(&args).status().unwrap().success());
    }

    fn wait_for(&self, text: &str, secs: u64) -> String {
        let mut last = String::new();
        let found = eventually(secs, || {
            last = self.screen();
            last.contains(text)
        });
        assert!(found, "{text:?} never appeared on the display:\n{last}");
        last
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Our own tmux server only (its socket is in our temp dir).
        let _ = std::process::Command::new("tmux")
            .args(["-S", &self.socket, "kill-server"])
            .status();
    }
}

#[test]
fn the_terminal_display_dials_answers_and_hangs_up_with_keys() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let mut other = Softphone::start(
        &r,
        dir.path(),
        "02:00:00:00:0a:01",
        r.dns,
        &["--auto-answer", "--answer-after", "0"],
    );
    let data = dir.path().join("tui");
    let cmd = format!(
        "{} phone --region http://{} --data {} --mac 02:00:00:00:0a:02 --sip 127.0.0.1:0 --resolver {} 2>{}",
        peerdial_bin(),
        r.http,
        data.display(),
        r.dns,
        dir.path().join("tui.log").display()
    );
    let t = Tmux::start(&cmd);
    let screen = t.wait_for("registered", 10);
    assert!(screen.contains("Number  886-02-"), "{screen}");
    // Dial the other phone by its 8 short digits.
    let short = other.number.rsplit('-').next().unwrap().to_string();
    for c in short.chars() {
        t.keys(&[&c.to_string()]);
    }
    t.wait_for(&format!("Dial    {short}_"), 5);
    t.keys(&["Enter"]);
    let screen = t.wait_for(&format!("talking to {}", other.number), 10);
    assert!(screen.contains("00:0"), "a call timer: {screen}");
    other.expect_line("incoming call from", 1);
    t.keys(&["h"]);
    t.wait_for("ended: hung up", 5);
    other.expect_line("ended: the other side hung up", 5);

    // Now the other phone calls us: the display rings, `a` answers.
    let tui_number = t
        .screen()
        .lines()
        .find_map(|l| l.split_whitespace().skip_while(|w| *w != "Number").nth(1).map(str::to_string))
        .unwrap();
    other.send(&format!("call {tui_number}"));
    t.wait_for(&format!("ringing from {}", other.number), 10);
    t.keys(&["a"]);
    t.wait_for(&format!("talking from {}", other.number), 5);
    other.send("hangup");
    // The events pane is half the screen wide: the line is cut there.
    t.wait_for("ended: the other side", 5);
    t.keys(&["q"]);
    other.stop();
}

#[test]
fn ten_digit_dialing_dtmf_and_wav_files_of_any_shape() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let mut callee = Softphone::start(
        &r,
        dir.path(),
        "02:00:00:00:0e:01",
        r.dns,
        &["--auto-answer", "--answer-after", "0"],
    );
    // A stereo 44.1 kHz float WAV is mixed down and resampled.
    let odd = dir.path().join("odd.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 44_100,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(&odd, spec).unwrap();
    for i in 0..44_100 {
        let v = (i as f32 * 2.0 * std::f32::consts::PI * 500.0 / 44_100.0).sin() * 0.3;
        w.write_sample(v).unwrap();
        w.write_sample(v).unwrap();
    }
    w.finalize().unwrap();
    // 10 digits: the own country is prefixed.
    let ten = callee.number.replace('-', "")[3..].to_string();
    let mut caller = dial(
        &r,
        dir.path(),
        "02:00:00:00:0e:02",
        r.dns,
        &ten,
        &["--play", odd.to_str().unwrap(), "--codecs", "pcma"],
    );
    caller.expect_line(&format!("dialing {}", callee.number), 5);
    caller.expect_line("answered codec=PCMA", 10);
    caller.send("dtmf 7");
    callee.expect_line("dtmf 7", 5);
    caller.send("hangup");
    assert_eq!(caller.wait_exit(10), 0);
    callee.stop();

    // Files that are not audio are refused before anything is sent.
    let junk = dir.path().join("junk.wav");
    std::fs::write(&junk, b"this is not a wav file").unwrap();
    let mut p = dial(
        &r,
        dir.path(),
        "02:00:00:00:0e:02",
        r.dns,
        &ten,
        &["--play", junk.to_str().unwrap()],
    );
    assert_ne!(p.wait_exit(10), 0);
    assert!(p.lines().iter().any(|l| l.contains("junk.wav")), "{:#?}", p.lines());
    assert!(!p.lines().iter().any(|l| l.starts_with("dialing")));
}
