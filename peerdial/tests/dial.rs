//! Dial on one device, talk on another (issue 13): a user signs in at the
//! top with their region's word for their number, adds talkers (foreign
//! SIP accounts proven by a code sent to them in a SIP MESSAGE), and
//! dials with `peerdial dial`; the top's directory matches the two
//! accounts on the same foreign server (Kamailio) and its third-party call
//! controller connects the two baresips through it. They talk directly:
//! each hears the other's tone. Then, on the top's dialer page in headless
//! Chromium with "any talker", the match falls on the region where both
//! users have numbers (baresips registered there): the top hands the call
//! to the region's controller, which calls both, and the page's hang-up
//! ends both legs. Bad input — a forged code, someone else's
//! or an unknown talker, an unknown callee, an unproven number, floods —
//! gets a clear refusal.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use common::baresip::Baresip;
use common::kamailio::Kamailio;
use common::tones::assert_heard_with_gaps;
use common::top::{TopNode, TOKEN};
use common::{basic, eventually, http_raw, naptr_uri, parse_http, peerdial_bin, provision, Device, Region};
use fantoccini::Locator;
use peerdial_media::audio::{tone, write_wav};

/// An HTTP request to the top with extra headers and a JSON body.
fn call(top: &TopNode, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, serde_json::Value) {
    let mut h = vec![("Content-Type", "application/json")];
    h.extend_from_slice(headers);
    parse_http(&http_raw(top.http, method, path, &h, body.as_bytes()))
}

/// A PASSporT from `d`'s region for its own number (its device's credentials).
fn passport(r: &Region, d: &Device) -> String {
    let (s, j) = parse_http(&http_raw(
        r.http,
        "POST",
        "/api/v1/identity/passport",
        &[
            ("Authorization", &basic(&d.user, &d.password)),
            ("Content-Type", "application/json"),
        ],
        format!(r#"{{"dest": "{}"}}"#, d.number).as_bytes(),
    ));
    assert_eq!(s, 200, "{j}");
    j["identity"].as_str().unwrap().to_string()
}

/// The user's bearer token from the top.
fn sign_in(r: &Region, top: &TopNode, d: &Device) -> String {
    let id = passport(r, d);
    let (s, j) = call(
        top,
        "POST",
        "/api/v1/session",
        &[("Identity", &id), ("X-Peerdial-From", &d.number)],
        "",
    );
    assert_eq!(s, 201, "{j}");
    j["token"].as_str().unwrap().to_string()
}

/// The verification code baresip was sent, from its log.
fn code_in(b: &Baresip) -> Option<String> {
    let log = b.log();
    let at = log.rfind("peerdial verification code: ")?;
    let code: String = log[at + 28..].chars().take_while(char::is_ascii_digit).collect();
    (code.len() == 6).then_some(code)
}

#[test]
fn a_user_dials_on_the_api_and_two_baresips_talk_through_kamailio() {
    let dir = tempfile::tempdir().unwrap();
    let top = TopNode::start(&dir.path().join("top"), "127.0.0.1:0", "127.0.0.1:0", &["--sip", "127.0.0.1:0"]);
    let top_url = format!("http://{}", top.http);
    let r = Region::start(dir.path(), &["--top", &top_url, "--join-token", TOKEN]);
    let (alice, bob) = (provision(r.http, "02:00:00:00:d1:01"), provision(r.http, "02:00:00:00:d1:02"));
    assert!(
        eventually(10, || call(&top, "GET", "/api/v1/regions", &[], "").1.to_string().contains("886")),
        "the region never joined the top"
    );
    let a_token = sign_in(&r, &top, &alice);
    let b_token = sign_in(&r, &top, &bob);
    let (a_auth, b_auth) = (format!("Bearer {a_token}"), format!("Bearer {b_token}"));
    let a_h = [("Authorization", a_auth.as_str())];
    let b_h = [("Authorization", b_auth.as_str())];
    // A forged PASSporT gets no token; no token gets nothing.
    let (s, _) = call(
        &top,
        "POST",
        "/api/v1/session",
        &[("Identity", "eyJhbGciOiJFUzI1NiJ9.e30.AAAA"), ("X-Peerdial-From", &alice.number)],
        "",
    );
    assert_eq!(s, 401);
    assert_eq!(call(&top, "GET", "/api/v1/talkers", &[], "").0, 401);

    // The foreign server and the two talkers on it, auto-answering, each
    // playing its tone and keeping what it hears.
    let kam = Kamailio::start(dir.path());
    let talker = |name: &str, freq: f32| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        let src = d.join("tone.wav");
        write_wav(&src, &tone(freq, 8000, 8000 * 30, 12_000.0), 8000).unwrap();
        let account = format!(
            "<sip:{name}@{};transport=udp>;regint=600;mwi=no;answermode=auto;audio_codecs=PCMU\n",
            kam.addr
        );
        let dump = d.join("dump");
        (Baresip::start_with_audio(&d, &account, &src, &dump), dump)
    };
    let (desk, desk_dump) = talker("alice", 500.0);
    let (bobs, bobs_dump) = talker("bob", 1000.0);
    for b in [&desk, &bobs] {
        assert!(
            eventually(10, || b.log().contains("200 OK")),
            "baresip did not register: {}",
            b.log()
        );
    }

    // Talkers: foreign accounts are proven by a code sent to them.
    let add = |h: &[(&str, &str)], name: &str, user: &str| {
        let body = format!(
            r#"{{"name": "{name}", "aor": "sip:{user}@{}", "server": "{}"}}"#,
            kam.addr, kam.addr
        );
        call(&top, "POST", "/api/v1/talkers", h, &body)
    };
    let (s, j) = add(&a_h, "desk phone", "alice");
    assert_eq!(s, 202, "{j}");
    assert_eq!(j["talker"]["verified"], false, "{j}");
    let desk_id = j["talker"]["id"].as_i64().unwrap();
    assert!(
        eventually(10, || code_in(&desk).is_some()),
        "no code reached the desk phone: {}",
        desk.log()
    );
    let code = code_in(&desk).unwrap();
    let forged = if code == "000000" { "000001" } else { "000000" };
    let verify = |h: &[(&str, &str)], id: i64, code: &str| {
        call(
            &top,
            "POST",
            &format!("/api/v1/talkers/{id}/verify"),
            h,
            &format!(r#"{{"code": "{code}"}}"#),
        )
    };
    let (s, j) = verify(&a_h, desk_id, forged);
    assert_eq!(s, 403, "a forged code: {j}");
    // Someone else's talker is not theirs to verify.
    assert_eq!(verify(&b_h, desk_id, &code).0, 404);
    // Unverified, it cannot be dialed from.
    let dial_body = |talker: &str, callee: &str| format!(r#"{{"talker": "{talker}", "callee": "{callee}"}}"#);
    let (s, j) = call(&top, "POST", "/api/v1/calls", &a_h, &dial_body("desk phone", &bob.number));
    assert_eq!(s, 403, "{j}");
    let (s, j) = verify(&a_h, desk_id, &code);
    assert_eq!(s, 200, "{j}");
    assert_eq!(j["talker"]["verified"], true, "{j}");
    let (s, j) = add(&b_h, "talker", "bob");
    assert_eq!(s, 202, "{j}");
    let bob_id = j["talker"]["id"].as_i64().unwrap();
    assert!(eventually(10, || code_in(&bobs).is_some()), "no code reached bob: {}", bobs.log());
    assert_eq!(verify(&b_h, bob_id, &code_in(&bobs).unwrap()).0, 200);

    // A peerdial number is a talker only with its device's proof.
    let add_number = |h: &[(&str, &str)], number: &str| {
        call(
            &top,
            "POST",
            "/api/v1/talkers",
            h,
            &format!(r#"{{"name": "phone", "number": "{number}"}}"#),
        )
    };
    let (s, j) = add_number(&a_h, &bob.number);
    assert_eq!(s, 403, "someone else's number: {j}");
    let (s, j) = call(&top, "GET", "/api/v1/talkers", &a_h, "");
    assert_eq!(s, 200);
    assert_eq!(j["talkers"].as_array().unwrap().len(), 1, "{j}");

    // Bad calls: a talker the dialer does not own, an unknown callee.
    let (s, j) = call(&top, "POST", "/api/v1/calls", &a_h, &dial_body("talker", &bob.number));
    assert_eq!(s, 403, "bob's talker: {j}");
    let (s, j) = call(&top, "POST", "/api/v1/calls", &a_h, &dial_body("desk phone", "886-09-12345678"));
    assert_eq!(s, 404, "{j}");

    // Alice dials bob from the command line, choosing her desk phone.
    let mut dialer = Command::new(peerdial_bin())
        .args([
            "dial",
            "--top",
            &top_url,
            "--token",
            &a_token,
            "--talker",
            "desk phone",
            &bob.number,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    {
        let (out, lines) = (dialer.stdout.take().unwrap(), lines.clone());
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(l);
            }
        });
    }
    let shown = |needle: &str| lines.lock().unwrap().iter().any(|l| l.contains(needle));
    assert!(
        eventually(20, || shown("connected")),
        "never connected: {:?}\ndesk: {}\nbob: {}",
        lines.lock().unwrap(),
        desk.log(),
        bobs.log()
    );
    // The two talk for a while, then bob hangs up: the desk phone's leg
    // ends too, and the dialer says so.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let mut bobs = bobs;
    bobs.command("/hangup");
    assert!(eventually(10, || shown("ended: the callee hung up")), "{:?}", lines.lock().unwrap());
    let status = dialer.wait().unwrap();
    assert!(status.success(), "{:?}", lines.lock().unwrap());
    let l = lines.lock().unwrap().clone();
    assert!(
        l[0].starts_with("matched: your \"desk phone\" with") && l[0].contains("same SIP server"),
        "{l:?}"
    );
    let order = [
        "calling your talker",
        "your talker answered",
        "calling the callee",
        "connected",
        "ended",
    ];
    let mut at = 0;
    for want in order {
        at += l[at..]
            .iter()
            .position(|x| x.starts_with(want))
            .unwrap_or_else(|| panic!("no {want:?} in order in {l:?}"));
    }
    assert!(
        eventually(10, || desk.log().contains("terminated") || desk.log().contains("closed")),
        "the desk phone's leg was left up: {}",
        desk.log()
    );
    // A foreign server's call is the top's: its controller sent the INVITEs.
    let from_top = format!("sip:peerdial@{}", top.sip);
    assert!(desk.log().contains(&from_top), "not called by the top: {}", desk.log());
    // Each heard the other's tone, straight from the other.
    assert!(eventually(5, || std::fs::read_dir(&desk_dump).unwrap().flatten().count() > 0
        && std::fs::read_dir(&bobs_dump).unwrap().flatten().count() > 0));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_heard_with_gaps(&Baresip::heard(&desk_dump), "the desk phone's dump", 1000.0, 0, 0);
    assert_heard_with_gaps(&Baresip::heard(&bobs_dump), "bob's dump", 500.0, 0, 0);

    // "any": both users also have numbers in the region (baresips
    // registered there, proven by the devices' credentials); the match
    // falls on the region and their contacts are called. The dialer hangs
    // up with DELETE, which ends both legs.
    let phone = |name: &str, d: &Device| {
        let dd = dir.path().join(name);
        std::fs::create_dir_all(&dd).unwrap();
        let account = format!(
            "<sip:{}@{};transport=udp>;auth_pass={};regint=600;mwi=no;answermode=auto;audio_codecs=PCMU\n",
            d.user, r.sip, d.password
        );
        let src = dd.join("tone.wav");
        write_wav(&src, &tone(700.0, 8000, 8000 * 10, 12_000.0), 8000).unwrap();
        let b = Baresip::start_with_audio(&dd, &account, &src, &dd.join("dump"));
        assert!(
            eventually(10, || naptr_uri(r.dns, &d.user)
                .is_some_and(|u| u.contains(&format!(":{}", b.port)))),
            "baresip did not register at the region: {}",
            b.log()
        );
        b
    };
    let (a_phone, b_phone) = (phone("a-phone", &alice), phone("b-phone", &bob));
    for (h, d) in [(a_h, &alice), (b_h, &bob)] {
        let id = passport(&r, d);
        let proof = [h[0], ("Identity", id.as_str()), ("X-Peerdial-From", d.number.as_str())];
        let (s, j) = add_number(&proof, &d.number);
        assert_eq!(s, 201, "{j}");
        assert_eq!(j["talker"]["verified"], true, "{j}");
    }
    // Alice dials on the top's dialer page in a browser this time.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let shown = rt.block_on(async {
        let (_driver, c) = common::browser::browser().await;
        c.goto(&format!("{top_url}/dial")).await.unwrap();
        c.find(Locator::Id("token")).await.unwrap().send_keys(&a_token).await.unwrap();
        c.find(Locator::Id("load")).await.unwrap().click().await.unwrap();
        c.wait()
            .for_element(Locator::Css("#talker option[value='desk phone']"))
            .await
            .unwrap();
        c.find(Locator::Id("callee")).await.unwrap().send_keys(&bob.number).await.unwrap();
        c.find(Locator::Id("dial")).await.unwrap().click().await.unwrap();
        let text = |id: &'static str| {
            let c = c.clone();
            async move { c.find(Locator::Id(id)).await.unwrap().text().await.unwrap() }
        };
        let mut progress = String::new();
        for _ in 0..100 {
            progress = text("progress").await;
            if progress.contains("connected") || progress.contains("failed") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        let matched = text("matched").await;
        c.find(Locator::Id("hangup")).await.unwrap().click().await.unwrap();
        for _ in 0..100 {
            progress = text("progress").await;
            if progress.contains("ended") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        let _ = c.close().await;
        (matched, progress)
    });
    assert!(shown.0.contains("same peerdial region"), "{shown:?}");
    // The region controls calls for its numbers: the INVITEs came from its
    // controller, not the top's.
    let from_region = format!("sip:peerdial@{}", r.control);
    for b in [&a_phone, &b_phone] {
        assert!(
            b.log().contains(&from_region) && !b.log().contains(&from_top),
            "not called by the region's controller ({from_region}): {}",
            b.log()
        );
    }
    let want = [
        "calling your talker",
        "your talker answered",
        "calling the callee",
        "connected",
        "ended: hung up by the dialer",
    ];
    for w in want {
        assert!(
            shown.1.contains(w),
            "no {w:?} on the page: {shown:?}\n{}\n{}",
            a_phone.log(),
            b_phone.log()
        );
    }
    for b in [&a_phone, &b_phone] {
        assert!(
            eventually(10, || b.log().contains("terminated") || b.log().contains("closed")),
            "a leg was left up: {}",
            b.log()
        );
    }

    // A newcomer whose only talker is a foreign account joins a call the
    // region runs: the top hands the region the account, and the region's
    // controller calls it through Kamailio. Carol hears alice's and bob's
    // phones (both 700 Hz) in the region's mixer.
    let carol = provision(r.http, "02:00:00:00:d1:03");
    let c_auth = format!("Bearer {}", sign_in(&r, &top, &carol));
    let c_h = [("Authorization", c_auth.as_str())];
    let (carols, carols_dump) = talker("carol", 1300.0);
    assert!(eventually(10, || carols.log().contains("200 OK")), "{}", carols.log());
    let (s, j) = add(&c_h, "tablet", "carol");
    assert_eq!(s, 202, "{j}");
    let carol_id = j["talker"]["id"].as_i64().unwrap();
    assert!(
        eventually(10, || code_in(&carols).is_some()),
        "no code reached carol: {}",
        carols.log()
    );
    assert_eq!(verify(&c_h, carol_id, &code_in(&carols).unwrap()).0, 200);
    let (s, j) = call(&top, "POST", "/api/v1/calls", &a_h, &dial_body("any", &bob.number));
    assert_eq!(s, 201, "{j}");
    let id = j["id"].as_u64().unwrap();
    let events = || {
        let (_, j) = call(&top, "GET", &format!("/api/v1/calls/{id}"), &a_h, "");
        j["events"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e["text"].as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    assert!(eventually(15, || events().iter().any(|e| e == "connected")), "{:?}", events());
    let path = format!("/api/v1/calls/{id}/participants");
    let (s, j) = call(&top, "POST", &path, &a_h, &format!(r#"{{"callee": "{}"}}"#, carol.number));
    assert_eq!(s, 202, "{j}");
    assert!(
        eventually(15, || events().iter().filter(|e| e.ends_with("joined")).count() == 3),
        "carol did not join: {:?}\n{}",
        events(),
        carols.log()
    );
    assert!(
        carols.log().contains(&from_region),
        "carol was not called by the region: {}",
        carols.log()
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(call(&top, "DELETE", &format!("/api/v1/calls/{id}"), &a_h, "").0, 202);
    assert!(eventually(10, || carols.log().contains("terminated") || carols.log().contains("closed")));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let heard = Baresip::heard(&carols_dump);
    let share = peerdial_media::audio::tone_share(&heard, 8000, 700.0);
    assert!(share > 0.05, "carol did not hear the region's mix: {share}");

    // Progress is the dialer's own; floods are cut off.
    let (s, _) = call(&top, "GET", "/api/v1/calls/1", &b_h, "");
    assert_eq!(s, 404);
    let (s, _) = call(&top, "DELETE", "/api/v1/calls/1", &b_h, "");
    assert_eq!(s, 404);
    let limited = (0..12).any(|_| call(&top, "POST", "/api/v1/calls", &a_h, &dial_body("any", "886-09-12345678")).0 == 429);
    assert!(limited, "a flood of dial requests was never limited");
    drop(kam);
}
