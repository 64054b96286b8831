//! Issue 15: `peerdial switch` and designation at the top. One network: a
//! top, a region joined to it, a switch with baresip registered to it, and
//! our phones calling baresip through designation; a fake device (a raw
//! socket) for what must never ring.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use common::baresip::Baresip;
use common::server::Server;
use common::top::{TopNode, TOKEN};
use common::{dial, eventually, http_raw, parse_http, provision, run, status, Device, Phone, Region, Softphone};
use peerdial_sip::digest::Algorithm;

const REALM: &str = "switch.peerdial.internal";
const DESK: &str = "886-02-99990001";
const FAKE: &str = "886-02-99990002";
/// A device behind a second switch.
const BRANCH: &str = "886-02-99990003";
/// Our phone as a device of the first switch (`peerdial phone --switch`).
const OURS: &str = "886-02-99990004";

fn designate(top: &TopNode, headers: &[(&str, &str)], body: &str) -> (u16, serde_json::Value) {
    let mut h = vec![("Content-Type", "application/json")];
    h.extend_from_slice(headers);
    parse_http(&http_raw(top.http, "POST", "/api/v1/calls/designate", &h, body.as_bytes()))
}

/// A PASSporT from `d`'s region for its own number.
fn passport(r: &Region, d: &Device) -> String {
    let (s, j) = parse_http(&http_raw(
        r.http,
        "POST",
        "/api/v1/identity/passport",
        &[
            ("Authorization", &common::basic(&d.user, &d.password)),
            ("Content-Type", "application/json"),
        ],
        format!(r#"{{"dest": "{}"}}"#, d.number).as_bytes(),
    ));
    assert_eq!(s, 200, "{j}");
    j["identity"].as_str().unwrap().to_string()
}

fn digits(n: &str) -> String {
    n.chars().filter(char::is_ascii_digit).collect()
}

/// An INVITE from `caller` to `callee` at the switch, with `key` if any;
/// the final status it gets.
fn invite(sock: &mut Phone, caller: &str, callee: &str, key: Option<&str>) -> u16 {
    let (local, sw) = (sock.local(), sock.registrar);
    let id = format!("{}{}", rand_part(), digits(callee));
    let sdp = String::from(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
    );
    let key = key.map(|k| format!("X-Peerdial-Switch-Key: {k}\r\n")).unwrap_or_default();
    let msg = format!(
        "INVITE sip:{callee}@{sw} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{id};rport\r\nMax-Forwards: 70\r\n\
From: <sip:{caller}@{local}>;tag=f{id}\r\nTo: <sip:{callee}@{sw}>\r\nCall-ID: {id}@test\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:{caller}@{local}>\r\n{key}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len(),
        callee = digits(callee),
        caller = digits(caller),
    );
    sock.send_raw(msg.as_bytes());
    for _ in 0..10 {
        let Some(r) = sock.recv() else { return 0 };
        let code = status(&r);
        if code >= 200 {
            return code;
        }
    }
    0
}

fn rand_part() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    std::process::id() as u64 * 1000 + N.fetch_add(1, Ordering::Relaxed)
}

/// The calls (Call-IDs of INVITEs, retransmissions counted once) the fake
/// device has received so far.
fn calls_at(fake: &mut Phone, seen: &mut std::collections::HashSet<String>) -> usize {
    while let Some(m) = fake.recv() {
        if matches!(&m.start, peerdial_sip::message::StartLine::Request { method, .. } if method == "INVITE") {
            let id = m.headers.iter().find(|(n, _)| n == "Call-ID").map(|(_, v)| v.clone());
            seen.extend(id);
        }
    }
    seen.len()
}

/// A call between our phone (playing 1 kHz, recording to `rec`) and a
/// baresip (its dump grew from `before` samples): our phone heard `tone`
/// and the baresip heard our 1 kHz.
fn both_heard((rec, tone): (&Path, f32), (b, dump, before): (&Baresip, &Path, usize), what: &str) {
    let got = peerdial_media::audio::read_wav(rec, 8000).unwrap();
    let f = peerdial_media::audio::frequency(&got[4000..got.len().min(16000)], 8000);
    assert!((f - tone).abs() <= 15.0, "{what}: our phone heard {f} Hz, not {tone} Hz");
    assert!(eventually(10, || Baresip::heard(dump).len() > before + 12000), "{}", b.log());
    let heard = Baresip::heard(dump);
    let f = peerdial_media::audio::frequency(&heard[before + 4000..heard.len().min(before + 16000)], 8000);
    assert!((f - 1000.0).abs() <= 25.0, "{what}: baresip heard {f} Hz from our 1 kHz");
}

#[test]
fn designated_calls_reach_baresip_behind_a_switch_queue_in_order_and_bad_keys_ring_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (top_dir, sw_dir) = (dir.path().join("top"), dir.path().join("switch"));
    // The top and its switch tokens; a token added while it runs works at once.
    let top = TopNode::start(&top_dir, "127.0.0.1:0", "127.0.0.1:0", &[]);
    let top_url = format!("http://{}", top.http);
    let token = run(&["top", "switch", "add", "office", "--data", top_dir.to_str().unwrap()], "");
    let token = token.trim();
    let dead_token = run(&["top", "switch", "add", "dead", "--data", top_dir.to_str().unwrap()], "");
    let dead_token = dead_token.trim();
    assert!(!std::fs::read_to_string(top_dir.join("switches.json")).unwrap().contains(token));
    let r = Region::start(dir.path(), &["--top", &top_url, "--join-token", TOKEN]);
    // The switch's devices: the desk phone (baresip) and the fake one.
    for n in [DESK, FAKE, OURS] {
        let out = run(&["switch", "device", "add", n, "--data", sw_dir.to_str().unwrap()], "desk-pw\n");
        assert!(out.contains("can register"), "{out}");
    }
    let sw = Server::start(&[
        "switch",
        "--cloud",
        &top_url,
        "--token",
        token,
        "--sip",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--data",
        sw_dir.to_str().unwrap(),
        "--key-lifetime",
        "3",
        // Its direct calls find numbers through the cloud's directory;
        // switch B below asks the region's DNS itself.
        "--lookup-via-cloud",
        "--heartbeat",
        "1",
    ]);
    let sw_sip = sw.field("sip");
    assert!(eventually(10, || sw.text().contains("joined the cloud")), "{}", sw.text());

    // baresip registers to the switch with number and password.
    let (ours, theirs) = (dir.path().join("ours.wav"), dir.path().join("theirs.wav"));
    for (p, f) in [(&ours, 1000.0), (&theirs, 600.0)] {
        let t = peerdial_media::audio::tone(f, 8000, 8000 * 12, 12_000.0);
        peerdial_media::audio::write_wav(p, &t, 8000).unwrap();
    }
    let bd = dir.path().join("desk");
    std::fs::create_dir_all(&bd).unwrap();
    let account = format!(
        "<sip:{}@{sw_sip};transport=udp>;auth_pass=desk-pw;regint=600;mwi=no;answermode=auto;audio_codecs=PCMU\n",
        digits(DESK)
    );
    let mut desk = Baresip::start_with_audio(&bd, &account, &theirs, &bd.join("dump"));
    assert!(
        eventually(10, || sw.text().contains(&format!("number={DESK}"))),
        "baresip did not register: {}\n{}",
        sw.text(),
        desk.log()
    );
    // The fake device: a socket registered with digest, that never answers.
    let mut fake = Phone::udp(sw_sip);
    let fake_dev = Device {
        number: FAKE.into(),
        user: digits(FAKE),
        password: "desk-pw".into(),
        secret: String::new(),
        realm: REALM.into(),
    };
    assert_eq!(fake.register(&fake_dev, "desk-pw", Algorithm::Md5, 600).0, 200);
    fake.udp
        .as_ref()
        .unwrap()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();

    // Designation: a device signed in by its region, or a switch's token.
    let caller = provision(r.http, "02:00:00:00:5a:01");
    assert!(eventually(10, || !designate(&top, &[], "{}").1.is_null()), "top not answering");
    // A PASSporT is good once (the top keeps a replay cache): one per request.
    let by_device = |body: &str| {
        let id = passport(&r, &caller);
        designate(
            &top,
            &[("Identity", id.as_str()), ("X-Peerdial-From", caller.number.as_str())],
            body,
        )
    };
    let office = format!("Bearer {token}");
    let as_switch = [("Authorization", office.as_str())];
    let body = |callee: &str| format!(r#"{{"callee":"{callee}"}}"#);
    assert_eq!(designate(&top, &[], &body(DESK)).0, 401, "no credentials");
    assert_eq!(designate(&top, &[("Authorization", "Bearer nope")], &body(DESK)).0, 401);
    let forged = [
        ("Identity", "eyJhbGciOiJFUzI1NiJ9.e30.AAAA"),
        ("X-Peerdial-From", caller.number.as_str()),
    ];
    assert_eq!(designate(&top, &forged, &body(DESK)).0, 401, "forged PASSporT");
    assert_eq!(by_device("{\"callee\":").0, 400, "malformed JSON");
    assert_eq!(by_device(r#"{"callee":"12"}"#).0, 400, "not a number");
    let (s, j) = by_device(&body("886-02-55550000"));
    assert_eq!((s, j["error"].as_str()), (404, Some("invalid call: unknown callee")), "{j}");
    // A switch speaks only for its own devices.
    let for_other = format!(r#"{{"callee":"{DESK}","caller":"{}"}}"#, caller.number);
    assert_eq!(designate(&top, &as_switch, &for_other).0, 403);
    let (s, j) = designate(&top, &as_switch, &format!(r#"{{"callee":"{DESK}","caller":"{FAKE}"}}"#));
    assert_eq!(
        (s, j["route"].as_str(), j["from"].as_str()),
        (200, Some("switch"), Some("switch")),
        "{j}"
    );
    // A callee with no switch: called directly, as any number.
    let (s, j) = by_device(&body(&caller.number));
    assert_eq!(
        (s, j["route"].as_str(), j["from"].as_str()),
        (200, Some("direct"), Some("device")),
        "{j}"
    );

    // A switch that never answers (it accepts the connection and stays
    // silent), and a disabled device: the caller is told.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let join = format!(
        r#"{{"sip":"127.0.0.1:9","http":"http://{}","secret":"s","devices":[{{"number":"886-02-99990009"}},{{"number":"886-02-99990008","disabled":true}}]}}"#,
        silent.local_addr().unwrap()
    );
    let dead = format!("Bearer {dead_token}");
    let (s, _) = parse_http(&http_raw(
        top.http,
        "POST",
        "/api/v1/switches/join",
        &[("Authorization", &dead), ("Content-Type", "application/json")],
        join.as_bytes(),
    ));
    assert_eq!(s, 200);
    let (s, j) = by_device(&body("886-02-99990009"));
    assert_eq!(s, 504, "{j}");
    let (s, j) = by_device(&body("886-02-99990008"));
    assert_eq!((s, j["error"].as_str()), (403, Some("invalid call: callee disabled")), "{j}");
    drop(silent);

    // Keys: the switch admits an INVITE only with a key made for this
    // caller and this callee, once, in time; nothing rings otherwise.
    let mut raw = Phone::udp(sw_sip);
    let key_for = |callee: &str| {
        let (s, j) = by_device(&body(callee));
        assert_eq!((s, j["route"].as_str()), (200, Some("switch")), "{j}");
        assert_eq!(j["switch"].as_str(), Some(sw_sip.to_string().as_str()));
        j["key"].as_str().unwrap().to_string()
    };
    assert_eq!(invite(&mut raw, &caller.number, FAKE, None), 403, "no key");
    let desk_key = key_for(DESK);
    assert_eq!(invite(&mut raw, &caller.number, FAKE, Some(&desk_key)), 403, "another callee's key");
    assert_eq!(invite(&mut raw, &caller.number, FAKE, Some("forged")), 403, "a forged key");
    let k = key_for(FAKE);
    assert_eq!(invite(&mut raw, "886-03-12345678", FAKE, Some(&k)), 403, "another caller");
    let mut seen = std::collections::HashSet::new();
    assert_eq!(calls_at(&mut fake, &mut seen), 0, "a refused INVITE rang the device");
    // The right caller: the device is called (it never answers here).
    let mut ok = Phone::udp(sw_sip);
    ok.udp.as_ref().unwrap().set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let _ = invite(&mut ok, &caller.number, FAKE, Some(&k));
    assert!(eventually(5, || calls_at(&mut fake, &mut seen) == 1), "{}", sw.text());
    assert_eq!(invite(&mut raw, &caller.number, FAKE, Some(&k)), 403, "a used key");
    let late = key_for(FAKE);
    std::thread::sleep(Duration::from_millis(3300));
    assert_eq!(invite(&mut raw, &caller.number, FAKE, Some(&late)), 403, "an expired key");
    assert_eq!(calls_at(&mut fake, &mut seen), 1, "a refused INVITE rang the device");
    assert!(sw.text().contains("already used") && sw.text().contains("expired"), "{}", sw.text());

    // Our phones call baresip through designation. The first talks; the
    // second and third wait in the queue and are connected in order.
    let rec = dir.path().join("heard.wav");
    let play = ours.to_str().unwrap();
    let rec_s = rec.to_str().unwrap();
    let extra = |d: &'static str| ["--top", &top_url, "--play", play, "--duration", d, "--no-mailbox"];
    let mut a_args = extra("6").to_vec();
    a_args.extend(["--record", rec_s]);
    let mut a = dial(&r, dir.path(), "02:00:00:00:5a:11", r.dns, DESK, &a_args);
    a.expect_line(&format!("{DESK}: via switch {sw_sip}"), 15);
    a.expect_line("answered", 15);
    let mut b = dial(&r, dir.path(), "02:00:00:00:5a:12", r.dns, DESK, &extra("1"));
    b.expect_line("place 1 in queue", 15);
    assert!(eventually(10, || sw.text().contains("place=1")), "{}", sw.text());
    let mut c = dial(&r, dir.path(), "02:00:00:00:5a:13", r.dns, DESK, &extra("1"));
    c.expect_line("place 2 in queue", 15);
    assert_eq!(a.wait_exit(30), 0, "{:#?}\n{}", a.lines(), sw.text());
    assert_eq!(b.wait_exit(30), 0, "{:#?}\n{}", b.lines(), sw.text());
    assert_eq!(c.wait_exit(30), 0, "{:#?}\n{}", c.lines(), sw.text());
    for p in [&b, &c] {
        p.expect_line("answered", 0);
    }
    // Connected in order: A, then B (told it is first), then C.
    let t = sw.text();
    let connected: Vec<&str> = t
        .lines()
        .filter(|l| l.contains("connected") && l.contains(DESK))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("caller=")))
        .collect();
    let order: Vec<String> = [&a, &b, &c].iter().map(|p| digits(&p.number)).collect();
    assert_eq!(connected, order, "{t}");
    // A talked with baresip both ways.
    std::thread::sleep(Duration::from_millis(500));
    let got = peerdial_media::audio::read_wav(&rec, 8000).unwrap();
    let f = peerdial_media::audio::frequency(&got[4000..16000], 8000);
    assert!((f - 600.0).abs() <= 15.0, "we heard {f} Hz from baresip's 600 Hz");
    let heard = Baresip::heard(&bd.join("dump"));
    let f = peerdial_media::audio::frequency(&heard[4000..heard.len().min(16000)], 8000);
    assert!((f - 1000.0).abs() <= 25.0, "baresip heard {f} Hz from our 1 kHz: {}", desk.log());

    // The desk phone (behind this switch) calls a device behind another
    // switch: its switch checks its credentials, asks the cloud as the
    // switch, and takes the call on to the other switch with the key.
    let top_data = top_dir.to_str().unwrap();
    let token2 = run(&["top", "switch", "add", "branch", "--data", top_data], "");
    let sw2_dir = dir.path().join("switch2");
    let out = run(
        &["switch", "device", "add", BRANCH, "--data", sw2_dir.to_str().unwrap()],
        "branch-pw\n",
    );
    assert!(out.contains("can register"), "{out}");
    let sw2 = Server::start(&[
        "switch",
        "--cloud",
        &top_url,
        "--token",
        token2.trim(),
        "--sip",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--data",
        sw2_dir.to_str().unwrap(),
        "--heartbeat",
        "1",
    ]);
    let sw2_sip = sw2.field("sip");
    let branch_tone = dir.path().join("branch.wav");
    let t = peerdial_media::audio::tone(700.0, 8000, 8000 * 12, 12_000.0);
    peerdial_media::audio::write_wav(&branch_tone, &t, 8000).unwrap();
    let brd = dir.path().join("branch");
    std::fs::create_dir_all(&brd).unwrap();
    let account = format!(
        "<sip:{}@{sw2_sip};transport=udp>;auth_pass=branch-pw;regint=600;mwi=no;answermode=auto;audio_codecs=PCMU\n",
        digits(BRANCH)
    );
    let mut branch = Baresip::start_with_audio(&brd, &account, &branch_tone, &brd.join("dump"));
    assert!(
        eventually(10, || sw2.text().contains(&format!("number={BRANCH}"))
            && sw2.text().contains("joined the cloud")),
        "{}\n{}",
        sw2.text(),
        branch.log()
    );
    let before = Baresip::heard(&bd.join("dump")).len();
    desk.command(&format!("/dial {}", digits(BRANCH)));
    assert!(
        eventually(15, || sw2
            .text()
            .lines()
            .any(|l| l.contains("connected") && l.contains(&format!("caller={}", digits(DESK))))),
        "switch 2: {}\nswitch 1: {}\ndesk: {}",
        sw2.text(),
        sw.text(),
        desk.log()
    );
    std::thread::sleep(Duration::from_secs(3));
    desk.command("/hangup");
    assert!(
        eventually(10, || Baresip::heard(&bd.join("dump")).len() > before + 8000
            && !Baresip::heard(&brd.join("dump")).is_empty()),
        "{}",
        desk.log()
    );
    let heard = Baresip::heard(&brd.join("dump"));
    let f = peerdial_media::audio::frequency(&heard[2000..heard.len().min(12000)], 8000);
    assert!((f - 600.0).abs() <= 15.0, "the branch heard {f} Hz from the desk's 600 Hz");
    let heard = Baresip::heard(&bd.join("dump"));
    let f = peerdial_media::audio::frequency(&heard[before + 2000..heard.len().min(before + 12000)], 8000);
    assert!((f - 700.0).abs() <= 15.0, "the desk heard {f} Hz from the branch's 700 Hz");
    // Our phone as a device of the first switch: it registers with its
    // number and password, takes the branch's call (designated at the
    // cloud, keyed at the switch), then calls the branch through its switch.
    let pw = dir.path().join("ours-pw");
    std::fs::write(&pw, "desk-pw\n").unwrap();
    let (rec_in, rec_out) = (dir.path().join("ours-in.wav"), dir.path().join("ours-out.wav"));
    let ours_data = dir.path().join("ours");
    let ours_args = |rec: &Path| -> Vec<String> {
        let mut a: Vec<String> = ["phone", "--switch"].map(String::from).to_vec();
        a.push(format!("sip:{}@{sw_sip}", digits(OURS)));
        for (k, v) in [
            ("--switch-password-file", pw.to_str().unwrap()),
            ("--data", ours_data.to_str().unwrap()),
            ("--sip", "127.0.0.1:0"),
            ("--resolver", &r.dns.to_string()),
            ("--play", play),
            ("--record", rec.to_str().unwrap()),
            ("--duration", "3"),
        ] {
            a.extend([k.to_string(), v.to_string()]);
        }
        a
    };
    let mut args = ours_args(&rec_in);
    args.push("--auto-answer".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut mine = Softphone::spawn(&args, &[]);
    mine.expect_line(&format!("registered number={OURS}"), 10);
    branch.command(&format!("/dial {}", digits(OURS)));
    mine.expect_line("answered", 15);
    assert!(
        eventually(15, || sw.text().lines().any(|l| l.contains("call ended") && l.contains(OURS))),
        "{}\n{:#?}",
        sw.text(),
        mine.lines()
    );
    mine.stop();
    let got = peerdial_media::audio::read_wav(&rec_in, 8000).unwrap();
    let f = peerdial_media::audio::frequency(&got[4000..got.len().min(16000)], 8000);
    assert!((f - 700.0).abs() <= 15.0, "our phone heard {f} Hz from the branch's 700 Hz");
    let before = Baresip::heard(&brd.join("dump")).len();
    let args = ours_args(&rec_out);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend(["call", BRANCH]);
    let mut mine = Softphone::spawn(&args, &[]);
    assert_eq!(mine.wait_exit(30), 0, "{:#?}\n{}\n{}", mine.lines(), sw.text(), sw2.text());
    both_heard(
        (&rec_out, 700.0),
        (&branch, &brd.join("dump"), before),
        "our phone calling the branch",
    );
    assert!(!sw.text().contains("desk-pw"), "a password in the switch's log");

    // The desk phone calls a number with no switch (a region's phone): the
    // cloud answers "direct", and the switch looks the number up (NAPTR)
    // and calls it itself.
    // The desk has no region to sign for it: the cloud vouches for it with
    // a PASSporT the switch carries, and the callee (given --top) checks
    // it with the cloud's key: "verified".
    let direct_rec = dir.path().join("direct.wav");
    let extra = [
        "--top",
        &top_url,
        "--auto-answer",
        "--play",
        play,
        "--record",
        direct_rec.to_str().unwrap(),
        "--duration",
        "3",
    ];
    let mut plain = Softphone::start(&r, dir.path(), "02:00:00:00:5a:21", r.dns, &extra);
    let before = Baresip::heard(&bd.join("dump")).len();
    desk.command(&format!("/dial {}", digits(&plain.number)));
    plain.expect_line(&format!("caller {DESK} verified"), 15);
    plain.expect_line("answered", 15);
    plain.expect_line(&format!("call with {} ended", DESK), 15);
    // A PASSporT for the desk under a key neither its region nor the cloud
    // holds: unverified.
    let forger = peerdial_identity::SigningKey::generate(&mut rand::rngs::OsRng);
    let (desk_n, plain_n) = (
        peerdial_number::Number::parse(DESK).unwrap(),
        peerdial_number::Number::parse(&plain.number).unwrap(),
    );
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let forged = peerdial_identity::Passport::sign(&forger, desk_n, &[plain_n], unix, 60, "https://x/k").unwrap();
    let forged = peerdial_identity::IdentityHeader::new(forged, "https://x/k").to_string();
    let mut liar = Phone::udp(plain.sip);
    let sdp =
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    let invite = format!(
        "INVITE sip:{p}@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bKforged{r}\r\nFrom: <sip:{d}@{l}>;tag=f1\r\nTo: <sip:{p}@{to}>\r\nCall-ID: forged-{r}\r\nCSeq: 1 INVITE\r\nContact: <sip:{d}@{l}>\r\nMax-Forwards: 70\r\nIdentity: {forged}\r\nContent-Type: application/sdp\r\nContent-Length: {n}\r\n\r\n{sdp}",
        p = digits(&plain.number),
        to = plain.sip,
        d = digits(DESK),
        l = liar.local(),
        r = rand_part(),
        n = sdp.len(),
    );
    liar.send_raw(invite.as_bytes());
    plain.expect_line(&format!("caller {DESK} unverified"), 15);
    plain.stop();
    both_heard(
        (&direct_rec, 600.0),
        (&desk, &bd.join("dump"), before),
        "the desk calling a region's phone",
    );

    // A call out from a device without its password is challenged and goes nowhere.
    let mut stranger = Phone::udp(sw_sip);
    let invite = format!(
        "INVITE sip:{b}@{sw_sip} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bKout1\r\nFrom: <sip:{d}@{l}>;tag=x1\r\nTo: <sip:{b}@{sw_sip}>\r\nCall-ID: out-{r}\r\nCSeq: 1 INVITE\r\nContact: <sip:{d}@{l}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        b = digits(BRANCH),
        d = digits(DESK),
        l = stranger.local(),
        r = rand_part()
    );
    stranger.send_raw(invite.as_bytes());
    let answer = stranger.recv().expect("an answer");
    assert_eq!(status(&answer), 401, "a device's call out needs its credentials");
}
