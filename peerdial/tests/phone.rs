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
        &["--ring-timeout", "1.5"],
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

    // Busy: the callee is talking to someone else, exit 4.
    callee.stop();
    let mut callee = Softphone::start(
        &r,
        dir.path(),
        "02:00:00:00:03:02",
        r.dns,
        &["--auto-answer", "--answer-after", "0"],
    );
    let mut first = dial(&r, dir.path(), "02:00:00:00:03:04", r.dns, &callee.number, &["--duration", "4"]);
    first.expect_line("answered", 10);
    let mut second = dial(&r, dir.path(), "02:00:00:00:03:05", r.dns, &callee.number, &[]);
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
    let mut gone = Softphone::start(&r, dir.path(), "02:00:00:00:04:01", r.dns, &[]);
    gone.child.kill().unwrap();
    gone.child.wait().unwrap();
    let mut caller = dial(
        &r,
        dir.path(),
        "02:00:00:00:04:02",
        r.dns,
        &gone.number,
        &["--unreachable-after", "2"],
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
    let mut again = dial_no_region(dir.path(), "02:00:00:00:08:02", unbound.addr, &callee.number, &["--duration", "1"]);
    assert_eq!(again.wait_exit(20), 0, "{:#?}", again.lines());
    callee.stop();
}

/// A caller that was provisioned before (its identity is in `dir`), run
/// with no region at all.
fn dial_no_region(dir: &Path, mac: &str, resolver: std::net::SocketAddr, number: &str, extra: &[&str]) -> Softphone {
    let data = dir.join(format!("phone-{}", mac.replace(':', "")));
    let resolver = resolver.to_string();
    let mut args = vec![
        "phone",
        "--data",
        data.to_str().unwrap(),
        "--sip",
        "127.0.0.1:0",
        "--resolver",
        &resolver,
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["call", number]);
    Softphone::spawn(&args, &[])
}
