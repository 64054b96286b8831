//! Our phones as third-party-call talkers and conferences the region
//! hosts for its own numbers (issue 13; the top matches and hands them
//! over, and relays the progress). Alice's own phone is her talker, and her dialer too (`dial
//! --talker`): the top's controller calls it with no offer (RFC 3725 flow I), it answers with an offer and takes
//! the answer from the ACK, and it talks with bob's phone directly. A
//! callee that is busy is reported and alice's leg released. Then a
//! conference: alice's phone, bob's phone and a busy talker (reported,
//! the others go on), carol's baresip added while it runs; each records
//! the others' tones and not its own (Opus for our phones, PCMU for
//! baresip); people leave, and when fewer than two remain the last one is
//! hung up on. Last, a connected two-party call grows into a conference
//! when dave, a number of another region, is added (both legs re-INVITEd
//! into the room; the region's controller finds dave through DNS). The
//! regions run below a country server: the top reaches the region's
//! controller through it, each hop with the token its two ends share.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::baresip::Baresip;
use common::top::{TopNode, TOKEN};
use common::{basic, eventually, http_raw, naptr_uri, parse_http, phone_credentials, provision, Region, Softphone};
use peerdial_media::audio::{read_wav, tone, tone_share, write_wav};

fn call(top: &TopNode, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, serde_json::Value) {
    let mut h = vec![("Content-Type", "application/json")];
    h.extend_from_slice(headers);
    parse_http(&http_raw(top.http, method, path, &h, body.as_bytes()))
}

/// A PASSporT from the region for `number` (its device's credentials).
fn passport(r: &Region, user: &str, password: &str, number: &str) -> String {
    let (s, j) = parse_http(&http_raw(
        r.http,
        "POST",
        "/api/v1/identity/passport",
        &[("Authorization", &basic(user, password)), ("Content-Type", "application/json")],
        format!(r#"{{"dest": "{number}"}}"#).as_bytes(),
    ));
    assert_eq!(s, 200, "{j}");
    j["identity"].as_str().unwrap().to_string()
}

/// A two-party call from alice's talker "phone" to `callee`; its id.
fn place_call(top: &TopNode, h: &[(&str, &str)], callee: &str) -> u64 {
    let body = format!(r#"{{"talker": "phone", "callee": "{callee}"}}"#);
    let (s, j) = call(top, "POST", "/api/v1/calls", h, &body);
    assert_eq!(s, 201, "{j}");
    j["id"].as_u64().unwrap()
}

/// One more talker, `callee`, in alice's call `id`.
fn add(top: &TopNode, h: &[(&str, &str)], id: u64, callee: &str) -> (u16, serde_json::Value) {
    let body = format!(r#"{{"callee": "{callee}"}}"#);
    call(top, "POST", &format!("/api/v1/calls/{id}/participants"), h, &body)
}

/// The call's events so far, as the dialer reads them.
fn events(top: &TopNode, h: &[(&str, &str)], id: u64) -> Vec<String> {
    let (_, j) = call(top, "GET", &format!("/api/v1/calls/{id}"), h, "");
    j["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn wait_event(top: &TopNode, h: &[(&str, &str)], id: u64, needle: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let found = eventually(20, || {
        seen = events(top, h, id);
        seen.iter().any(|e| e.contains(needle))
    });
    assert!(found, "no {needle:?} in call {id}: {seen:?}");
    seen
}

/// Calls the phone says ended.
fn ended(p: &Softphone) -> usize {
    p.lines()
        .iter()
        .filter(|l| l.starts_with("call with") && l.contains(" ended: "))
        .count()
}

/// Heard `want` (each clearly) and not `own` (nothing of it).
/// `p`'s output goes into the message: a failure says what its phone saw.
fn assert_mix(what: &str, p: Option<&Softphone>, s: &[i16], rate: u32, want: &[f32], own: f32) {
    let said = p.map(|p| p.lines().join("\n")).unwrap_or_default();
    assert!(s.len() > rate as usize, "{what}: only {} samples\n{said}", s.len());
    for f in want {
        let share = tone_share(s, rate, *f);
        assert!(share > 0.05, "{what} misses {f} Hz: {share}\n{said}");
    }
    let share = tone_share(s, rate, own);
    assert!(share < 0.02, "{what} hears its own {own} Hz: {share}\n{said}");
}

#[test]
fn our_phones_talk_for_a_dialer_and_meet_a_baresip_in_a_conference() {
    let dir = tempfile::tempdir().unwrap();
    let top = TopNode::start(&dir.path().join("top"), "127.0.0.1:0", "127.0.0.1:0", &["--sip", "127.0.0.1:0"]);
    let top_url = format!("http://{}", top.http);
    let country = TopNode::start(
        &dir.path().join("country"),
        "127.0.0.1:0",
        "127.0.0.1:0",
        &["--prefix", "886", "--parent", &top_url, "--parent-token", TOKEN],
    );
    let country_url = format!("http://{}", country.http);
    let r = Region::start(dir.path(), &["--top", &country_url, "--join-token", TOKEN]);
    let r3 = Region::start(
        &dir.path().join("886-03"),
        &["--area", "886-03", "--top", &country_url, "--join-token", TOKEN],
    );
    let regions = |node: &TopNode| call(node, "GET", "/api/v1/regions", &[], "").1.to_string();
    assert!(
        eventually(10, || regions(&top).contains("\"886\"")
            && regions(&country).contains("886-02")
            && regions(&country).contains("886-03")),
        "the tree never formed: {} {}",
        regions(&top),
        regions(&country)
    );
    // Alice's and bob's phones answer by themselves, each playing its tone
    // and recording what it hears.
    let phone = |mac: &str, freq: f32| {
        let wav = dir.path().join(format!("{freq}.wav"));
        write_wav(&wav, &tone(freq, 48_000, 48_000 * 60, 12_000.0), 48_000).unwrap();
        let rec = dir.path().join(format!("heard-{freq}.wav"));
        let p = Softphone::start(
            &r,
            dir.path(),
            mac,
            r.dns,
            &[
                "--auto-answer",
                "--play",
                wav.to_str().unwrap(),
                "--record",
                rec.to_str().unwrap(),
                "--top",
                &top_url,
            ],
        );
        (p, rec)
    };
    let (mut alice, alice_rec) = phone("02:00:00:00:c1:01", 400.0);
    let (mut bob, bob_rec) = phone("02:00:00:00:c1:02", 700.0);
    let (a_user, a_pass) = phone_credentials(dir.path(), "02:00:00:00:c1:01");

    // Alice signs in at the top and makes her phone her talker.
    let id = passport(&r, &a_user, &a_pass, &alice.number);
    let (s, j) = call(
        &top,
        "POST",
        "/api/v1/session",
        &[("Identity", &id), ("X-Peerdial-From", &alice.number)],
        "",
    );
    assert_eq!(s, 201, "{j}");
    let auth = format!("Bearer {}", j["token"].as_str().unwrap());
    let h = [("Authorization", auth.as_str())];
    let id = passport(&r, &a_user, &a_pass, &alice.number);
    let proof = [h[0], ("Identity", id.as_str()), ("X-Peerdial-From", alice.number.as_str())];
    let body = format!(r#"{{"name": "phone", "number": "{}"}}"#, alice.number);
    let (s, j) = call(&top, "POST", "/api/v1/talkers", &proof, &body);
    assert_eq!(s, 201, "{j}");

    // Bad input: the region's controller API is the top's alone (its join
    // token) and for the region's own numbers; nothing is started.
    let control = |auth: &str, body: &str| {
        parse_http(&http_raw(
            r.http,
            "POST",
            "/api/v1/control/calls",
            &[("Authorization", auth), ("Content-Type", "application/json")],
            body.as_bytes(),
        ))
    };
    let pair = |callee: &str| format!(r#"{{"talker": "{}", "callee": "{callee}"}}"#, alice.number);
    let (s, j) = control("", &pair(&bob.number));
    assert_eq!(s, 401, "{j}");
    let (s, j) = control("Bearer not-the-token", &pair(&bob.number));
    assert_eq!(s, 401, "{j}");
    let top_auth = format!("Bearer {TOKEN}");
    let (s, j) = control(&top_auth, &pair("886-03-12345678"));
    assert_eq!(s, 403, "{j}");
    assert!(j["error"].as_str().unwrap().contains("not a number of this region"), "{j}");
    // A foreign newcomer whose address of record is not one: 400, before
    // any call is looked up.
    let (s, j) = parse_http(&http_raw(
        r.http,
        "POST",
        "/api/v1/control/calls/1/participants",
        &[("Authorization", &top_auth), ("Content-Type", "application/json")],
        br#"{"who": "x", "number": "x", "via": {"aor": "sip:a b@c", "server": "127.0.0.1:5060"}}"#,
    ));
    assert_eq!(s, 400, "{j}");
    assert!(j["error"].as_str().unwrap().contains("invalid address of record"), "{j}");
    // The country server passes calls on for its parent only, and only
    // calls of one region below it; the top takes no control requests.
    let pass = |node: &TopNode, auth: &str, body: &str| {
        parse_http(&http_raw(
            node.http,
            "POST",
            "/api/v1/control/calls",
            &[("Authorization", auth), ("Content-Type", "application/json")],
            body.as_bytes(),
        ))
    };
    assert_eq!(pass(&country, "Bearer not-the-token", &pair(&bob.number)).0, 401);
    assert_eq!(pass(&top, &top_auth, &pair(&bob.number)).0, 401);
    let (s, j) = pass(&country, &top_auth, &pair("886-03-12345678"));
    assert_eq!(s, 403, "{j}");
    let (s, j) = pass(&country, &top_auth, "{}");
    assert_eq!(s, 400, "{j}");
    // Asked about another country's number, the country server refers to
    // the top (how its regions find any number through the directory).
    let (s, j) = parse_http(&http_raw(country.http, "GET", "/api/v1/lookup/852-01-12345678", &[], b""));
    assert_eq!(
        (s, j["kind"].as_str(), j["http"].as_str()),
        (200, Some("parent"), Some(top_url.as_str())),
        "{j}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !alice.lines().iter().any(|l| l.contains("incoming call")),
        "a refused request started a call: {:?}",
        alice.lines()
    );

    // 1. A third-party call placed from alice's phone itself (`dial
    // --talker`, signed in at the top with its own identity): it gets an
    // INVITE with no offer, and talks with bob's phone; alice hanging up
    // ends bob's leg too.
    alice.send(&format!("dial --talker phone {}", bob.number));
    alice.expect_line("dial: matched: your \"phone\"", 10);
    alice.expect_line("dial: connected", 20);
    alice.expect_line("answered codec=", 10);
    bob.expect_line("answered codec=", 10);
    std::thread::sleep(Duration::from_secs(2));
    alice.send("hangup");
    alice.expect_line("dial: ended: your talker hung up", 10);
    assert!(eventually(10, || ended(&bob) == 1), "bob's leg was left up: {:?}", bob.lines());
    let rate = |p: &Softphone| {
        if p.lines().iter().any(|l| l.contains("codec=PCMU")) {
            8000
        } else {
            48_000
        }
    };
    let (ra, rb) = (rate(&alice), rate(&bob));
    assert!(eventually(5, || alice_rec.exists() && bob_rec.exists()));
    assert_mix(
        "alice (two-party)",
        Some(&alice),
        &read_wav(&alice_rec, ra).unwrap(),
        ra,
        &[700.0],
        400.0,
    );
    assert_mix("bob (two-party)", Some(&bob), &read_wav(&bob_rec, rb).unwrap(), rb, &[400.0], 700.0);

    // A talker that answers busy: a registered SIP socket of the test's.
    let busy_dev = provision(r.http, "02:00:00:00:c1:04");
    let mut busy = common::Phone::udp(r.sip);
    let (s, _) = busy.register(&busy_dev, &busy_dev.password, peerdial_sip::digest::Algorithm::Md5, 600);
    assert_eq!(s, 200);
    let busy_sock = busy.udp.take().unwrap();
    busy_sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let refuse_all = |sock: &UdpSocket, secs: u64| {
        // Answers every INVITE 486 (and ignores the rest) for `secs`.
        let mut buf = [0u8; 4096];
        let mut refused = 0;
        let until = std::time::Instant::now() + Duration::from_secs(secs);
        while std::time::Instant::now() < until {
            let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
            if buf[..n].starts_with(b"INVITE ") {
                if let Ok(Some(t)) = peerdial_sip::call::stateless_response(&buf[..n], from, 486, "Busy Here", &[]) {
                    sock.send_to(&t.data, t.to).unwrap();
                    refused += 1;
                }
            }
        }
        refused
    };

    // 2. Bad input: the callee is busy. The dialer is told, and alice's
    // leg (already answered) is released.
    let c2 = place_call(&top, &h, &busy_dev.number);
    assert!(refuse_all(&busy_sock, 3) > 0, "the busy talker was never called");
    let seen = wait_event(&top, &h, c2, "failed");
    assert!(seen.iter().any(|e| e == "failed: the callee: busy"), "{seen:?}");
    assert!(
        eventually(10, || ended(&alice) == 2),
        "alice's leg was left up: {:?}",
        alice.lines()
    );
    // Bad requests: one callee is no conference; unknown callees are 404.
    let conf = |callees: &[&str]| {
        let list: Vec<String> = callees.iter().map(|c| format!("\"{c}\"")).collect();
        call(
            &top,
            "POST",
            "/api/v1/calls",
            &h,
            &format!(r#"{{"talker": "phone", "callees": [{}]}}"#, list.join(",")),
        )
    };
    assert_eq!(conf(&[&bob.number]).0, 400);
    assert_eq!(conf(&[&bob.number, "886-09-12345678"]).0, 404);

    // 3. The conference: alice, bob and the busy talker (reported; the
    // two others go on), then carol's baresip joins while it runs.
    let carol_dev = provision(r.http, "02:00:00:00:c1:03");
    let cdir = dir.path().join("carol");
    std::fs::create_dir_all(&cdir).unwrap();
    let csrc = cdir.join("tone.wav");
    write_wav(&csrc, &tone(1100.0, 8000, 8000 * 60, 12_000.0), 8000).unwrap();
    let cdump = cdir.join("dump");
    let account = format!(
        "<sip:{}@{};transport=udp>;auth_pass={};regint=600;mwi=no;answermode=auto;audio_codecs=PCMU\n",
        carol_dev.user, r.sip, carol_dev.password
    );
    let mut carol = Baresip::start_with_audio(&cdir, &account, &csrc, &cdump);
    assert!(
        eventually(10, || naptr_uri(r.dns, &carol_dev.user)
            .is_some_and(|u| u.contains(&format!(":{}", carol.port)))),
        "carol did not register: {}",
        carol.log()
    );
    let (s, j) = conf(&[&bob.number, &busy_dev.number]);
    assert_eq!(s, 201, "{j}");
    assert_eq!(j["conference"], true, "{j}");
    let c3 = j["id"].as_u64().unwrap();
    assert!(refuse_all(&busy_sock, 2) > 0, "the busy talker was never called");
    let seen = wait_event(&top, &h, c3, "busy");
    assert!(
        seen.iter().any(|e| e.starts_with(&busy_dev.number) && e.ends_with("failed: busy")),
        "{seen:?}"
    );
    wait_event(&top, &h, c3, &format!("{} (", bob.number));
    let (s, j) = add(&top, &h, c3, &carol_dev.number);
    assert_eq!(s, 202, "{j}");
    let seen = wait_event(&top, &h, c3, &carol_dev.number);
    assert!(
        eventually(15, || events(&top, &h, c3).iter().filter(|e| e.ends_with("joined")).count() == 3),
        "not everyone joined: {seen:?}\n{}",
        carol.log()
    );
    // The region hosts a conference of its numbers: carol was called by
    // its controller, not the top's.
    let from_region = format!("sip:peerdial@{}", r.control);
    assert!(
        carol.log().contains(&from_region) && !carol.log().contains(&format!("sip:peerdial@{}", top.sip)),
        "carol was not called by the region's controller ({from_region}): {}",
        carol.log()
    );
    std::thread::sleep(Duration::from_secs(4));
    // Carol leaves: the two others go on; then bob hangs up, fewer than
    // two remain, and alice is hung up on.
    carol.command("/hangup");
    let seen = wait_event(&top, &h, c3, " left");
    let left: Vec<_> = seen.iter().filter(|e| e.ends_with(" left")).collect();
    assert!(left.len() == 1 && left[0].starts_with(&carol_dev.number), "{seen:?}");
    bob.send("hangup");
    let seen = wait_event(&top, &h, c3, "ended: fewer than two talkers remain");
    assert!(
        eventually(10, || ended(&alice) == 3),
        "alice was left in the conference: {seen:?} {:?}",
        alice.lines()
    );
    // Each heard the other two and not itself.
    std::thread::sleep(Duration::from_millis(500));
    let (ra, rb) = (rate(&alice), rate(&bob));
    assert_mix(
        "alice",
        Some(&alice),
        &read_wav(&alice_rec, ra).unwrap(),
        ra,
        &[700.0, 1100.0],
        400.0,
    );
    assert_mix("bob", Some(&bob), &read_wav(&bob_rec, rb).unwrap(), rb, &[400.0, 1100.0], 700.0);
    assert_mix("carol", None, &Baresip::heard(&cdump), 8000, &[400.0, 700.0], 1100.0);

    // 4. A connected two-party call grows: alice's talker and bob talk
    // directly, dave (a baresip of region 886-03) is added, both legs move
    // into a room by re-INVITE, and alice and bob each hear both others.
    // Alice leaves, bob and dave go on; bob leaves, and dave is hung up on.
    let dave_dev = provision(r3.http, "02:00:00:00:c1:05");
    let ddir = dir.path().join("dave");
    std::fs::create_dir_all(&ddir).unwrap();
    let dsrc = ddir.join("tone.wav");
    write_wav(&dsrc, &tone(1300.0, 8000, 8000 * 60, 12_000.0), 8000).unwrap();
    let account = format!(
        "<sip:{}@{};transport=udp>;auth_pass={};regint=600;mwi=no;answermode=auto;audio_codecs=PCMU\n",
        dave_dev.user, r3.sip, dave_dev.password
    );
    let dave = Baresip::start_with_audio(&ddir, &account, &dsrc, &ddir.join("dump"));
    assert!(
        eventually(10, || naptr_uri(r3.dns, &dave_dev.user)
            .is_some_and(|u| u.contains(&format!(":{}", dave.port)))),
        "dave did not register: {}",
        dave.log()
    );
    let c4 = place_call(&top, &h, &bob.number);
    let add_dave = || add(&top, &h, c4, &dave_dev.number);
    wait_event(&top, &h, c4, "connected");
    // Bad input: a number of 886-03 that is offline; the region running
    // the call finds it so through DNS, and the call stays as it was.
    // (Alice's requests this minute are at the top's limit of 10 with
    // the one after the call ends: this is the one newcomer refused.)
    let offline = provision(r3.http, "02:00:00:00:c1:06");
    let (s, j) = add(&top, &h, c4, &offline.number);
    assert_eq!(
        (s, j["error"].as_str()),
        (409, Some(format!("{}: offline", offline.number).as_str())),
        "{j}"
    );
    std::thread::sleep(Duration::from_secs(1));
    let (s, j) = add_dave();
    assert_eq!(s, 202, "{j}");
    assert!(
        eventually(15, || events(&top, &h, c4).iter().filter(|e| e.ends_with("joined")).count() == 3),
        "the call did not become a conference of three: {:?}\n{}",
        events(&top, &h, c4),
        dave.log()
    );
    // Region 886-02 runs the call and called dave, a number of 886-03.
    assert!(
        dave.log().contains(&from_region),
        "dave was not called by the controller of the region running the call ({from_region}): {}",
        dave.log()
    );
    std::thread::sleep(Duration::from_secs(3));
    alice.send("hangup");
    wait_event(&top, &h, c4, "phone left");
    bob.send("hangup");
    wait_event(&top, &h, c4, "ended: fewer than two talkers remain");
    assert!(eventually(10, || ended(&alice) == 4 && ended(&bob) == 3), "a leg was left up");
    assert!(
        eventually(10, || dave.log().contains("terminated") || dave.log().contains("closed")),
        "dave's leg was left up: {}",
        dave.log()
    );
    // An ended call takes no one more.
    assert_eq!(add_dave().0, 409);
    std::thread::sleep(Duration::from_millis(500));
    let (ra, rb) = (rate(&alice), rate(&bob));
    assert_mix(
        "alice (grown)",
        Some(&alice),
        &read_wav(&alice_rec, ra).unwrap(),
        ra,
        &[700.0, 1300.0],
        400.0,
    );
    assert_mix(
        "bob (grown)",
        Some(&bob),
        &read_wav(&bob_rec, rb).unwrap(),
        rb,
        &[400.0, 1300.0],
        700.0,
    );
    alice.stop();
    bob.stop();
}
