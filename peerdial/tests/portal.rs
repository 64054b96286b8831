//! The web portal in a real browser: headless Chromium driven through
//! chromedriver (WebDriver), against a running `peerdial region`.

mod common;

use base64::Engine;
use std::process::Stdio;

use common::browser::browser;
use common::*;
use fantoccini::Locator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_edit_profile_and_search_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let region = Region::start(dir.path(), &[]);
    let dev = provision(region.http, "02:00:00:00:0a:01");

    // The first password, set with the number's SIP credentials.
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", dev.user, dev.password));
    let auth = format!("Basic {creds}");
    let resp = http_raw(
        region.http,
        "POST",
        "/api/v1/account/password",
        &[("Content-Type", "application/json"), ("Authorization", &auth)],
        br#"{"password":"kite flying 2026"}"#,
    );
    let (status, j) = parse_http(&resp);
    assert_eq!(status, 200, "{j}");
    let resp = http_raw(
        region.http,
        "POST",
        "/api/v1/account/password",
        &[("Content-Type", "application/json")],
        br#"{"password":"x"}"#,
    );
    assert_eq!(parse_http(&resp).0, 401, "no credentials, no password");

    let (driver, c) = browser().await;
    let base = format!("http://{}", region.http);

    // Sign in through the form.
    c.goto(&format!("{base}/signin")).await.unwrap();
    c.find(Locator::Id("number")).await.unwrap().send_keys(&dev.user).await.unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys("kite flying 2026")
        .await
        .unwrap();
    c.find(Locator::Id("submit")).await.unwrap().click().await.unwrap();
    c.wait()
        .for_element(Locator::Id("save"))
        .await
        .expect("signed in: the profile form");
    assert_eq!(c.current_url().await.unwrap().path(), "/profile");

    // Fill the profile; the organisation stays private.
    for (id, value, public) in [
        ("display_name", "Ada Kite", true),
        ("city", "Taipei", true),
        ("organisation", "Zebracorp", false),
        ("interests", "kites and <b>tea</b>", true),
    ] {
        c.find(Locator::Id(id)).await.unwrap().send_keys(value).await.unwrap();
        if public {
            c.find(Locator::Id(&format!("{id}_public"))).await.unwrap().click().await.unwrap();
        }
    }
    c.find(Locator::Id("listed")).await.unwrap().click().await.unwrap();
    c.find(Locator::Id("save")).await.unwrap().click().await.unwrap();
    if c.wait().for_element(Locator::Id("saved")).await.is_err() {
        panic!("the profile was not saved: {}", c.source().await.unwrap());
    }

    // A visitor's view: the yellow pages.
    c.goto(&format!("{base}/?q=kites")).await.unwrap();
    let result = c.wait().for_element(Locator::Css(".result")).await.expect("one result");
    let text = result.text().await.unwrap();
    assert!(text.contains("Ada Kite") && text.contains("Taipei"), "{text}");
    assert!(text.contains("<b>tea</b>"), "markup shown as text: {text}");
    let source = c.source().await.unwrap();
    assert!(!source.contains("Zebracorp"), "a private field is not in the page");
    let png = c.screenshot().await.unwrap();
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("portal-yellow-pages.png");
    std::fs::write(&shot, png).unwrap();
    // Live presence: the result's state follows the phone without a
    // reload (the page's one stream of the region's presence events).
    assert_eq!(shown_presence(&c, "offline").await, "offline");
    let mut sip = Phone::udp(region.sip);
    let md5 = peerdial_sip::digest::Algorithm::Md5;
    assert_eq!(sip.register(&dev, &dev.password, md5, 600).0, 200);
    assert_eq!(shown_presence(&c, "online").await, "online", "the page follows without a reload");
    assert_eq!(sip.register(&dev, &dev.password, md5, 0).0, 200);
    assert_eq!(shown_presence(&c, "offline").await, "offline");

    c.goto(&format!("{base}/?q=zebracorp")).await.unwrap();
    c.wait()
        .for_element(Locator::Id("no-results"))
        .await
        .expect("a private value finds nobody");
    assert!(c.find_all(Locator::Css(".result")).await.unwrap().is_empty());

    c.close().await.unwrap();
    drop(driver);
    region.stop();
}

/// A cookie-keeping HTTP client for the portal's forms, apart from the
/// browser: a second device signed in to the same number, or two owners
/// racing for one vanity number.
struct Web {
    addr: std::net::SocketAddr,
    cookie: String,
}

impl Web {
    fn new(addr: std::net::SocketAddr) -> Web {
        Web {
            addr,
            cookie: String::new(),
        }
    }

    /// (status, Location, body); keeps the session cookie it is given.
    fn send(&mut self, method: &str, path: &str, form: &[(&str, &str)]) -> (u16, String, String) {
        let body: String = form
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.replace('%', "%25").replace('&', "%26").replace('+', "%2B").replace(' ', "+")
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        let cookie = self.cookie.clone();
        let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
        if !cookie.is_empty() {
            headers.push(("Cookie", &cookie));
        }
        let resp = http_raw(self.addr, method, path, &headers, body.as_bytes());
        let text = String::from_utf8_lossy(&resp).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut location = String::new();
        for line in head.lines() {
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("set-cookie: ") {
                if v.starts_with("peerdial_portal=") {
                    self.cookie = line["set-cookie: ".len()..].split(';').next().unwrap().to_string();
                }
            }
            if lower.starts_with("location: ") {
                location = line["location: ".len()..].trim().to_string();
            }
        }
        (status, location, body.to_string())
    }

    /// The CSRF token of the form on `path`.
    fn token(&mut self, path: &str) -> String {
        let (status, _, body) = self.send("GET", path, &[]);
        assert_eq!(status, 200, "{path}: {body}");
        let at = body.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
        body[at..].split('"').next().unwrap().to_string()
    }

    /// A sign-in form post: (status, Location, body).
    fn try_sign_in(&mut self, number: &str, password: &str) -> (u16, String, String) {
        let t = self.token("/signin");
        self.send("POST", "/signin", &[("csrf", &t), ("number", number), ("password", password)])
    }

    fn sign_in(&mut self, number: &str, password: &str) {
        let (status, location, body) = self.try_sign_in(number, password);
        assert_eq!((status, location.as_str()), (303, "/profile"), "{body}");
    }

    fn signed_in(&mut self) -> bool {
        self.send("GET", "/profile", &[]).0 == 200
    }
}

/// The first password of a provisioned number, set with its SIP credentials.
fn set_password(http: std::net::SocketAddr, dev: &Device, password: &str) {
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", dev.user, dev.password));
    let body = serde_json::json!({ "password": password }).to_string();
    let resp = http_raw(
        http,
        "POST",
        "/api/v1/account/password",
        &[("Content-Type", "application/json"), ("Authorization", &format!("Basic {creds}"))],
        body.as_bytes(),
    );
    let (status, j) = parse_http(&resp);
    assert_eq!(status, 200, "{j}");
}

async fn fill(c: &fantoccini::Client, id: &str, text: &str) {
    let e = c.find(Locator::Id(id)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

async fn click(c: &fantoccini::Client, id: &str) {
    c.find(Locator::Id(id)).await.unwrap().click().await.unwrap();
}

/// Clicks `id`, a form's button, and waits until the answer has replaced
/// the page (the old page's root element goes stale).
async fn submit(c: &fantoccini::Client, id: &str) {
    let old = c.find(Locator::Css("html")).await.unwrap();
    click(c, id).await;
    for _ in 0..100 {
        if old.attr("lang").await.is_err() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("#{id} did not bring a new page");
}

/// The text of element `id` once it is there. The page may still be the
/// one before a form post (it may have the same element): an element that
/// went stale with the navigation is looked up again on the new page.
async fn text_of(c: &fantoccini::Client, id: &str) -> String {
    for _ in 0..50 {
        match c.wait().for_element(Locator::Id(id)).await {
            Ok(e) => match e.text().await {
                Ok(t) => return t,
                // The page was replaced between finding and reading (a
                // form's answer still loading): find it again. Chromium
                // says so either as a stale element or as a node that
                // left the document.
                Err(fantoccini::error::CmdError::Standard(w))
                    if w.error == fantoccini::error::ErrorStatus::StaleElementReference
                        || w.message.contains("does not belong to the document") =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("#{id}: {e}"),
            },
            Err(_) => break,
        }
    }
    panic!("no #{id} on {}: {}", c.current_url().await.unwrap(), c.source().await.unwrap())
}

async fn sign_in(c: &fantoccini::Client, base: &str, number: &str, password: &str, code: &str) {
    c.goto(&format!("{base}/signin")).await.unwrap();
    fill(c, "number", number).await;
    fill(c, "password", password).await;
    fill(c, "code", code).await;
    click(c, "submit").await;
}

async fn sign_out(c: &fantoccini::Client, base: &str) {
    c.goto(&format!("{base}/profile")).await.unwrap();
    if c.find(Locator::Id("signout")).await.is_ok() {
        click(c, "signout").await;
        c.wait().for_element(Locator::Id("q")).await.expect("signed out: the yellow pages");
    }
}

fn shot(name: &str, png: Vec<u8>) {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("portal-{name}.png"));
    std::fs::write(path, png).unwrap();
}

/// Issue 10's account features end to end, on one region and one browser:
/// pairing codes, password change ending other sessions, sign-out,
/// friends with friends-only presence, greetings, the operator, and a
/// vanity number the phone and the DNS follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_friends_greetings_operator_and_vanity_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("region");
    // The operator account, created from the command line before start.
    let mut op = std::process::Command::new(peerdial_bin())
        .args(["region", "operator", "add", "ops", "--data", data.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    op.stdin.take().unwrap().write_all(b"operator pass 1\n").unwrap();
    assert!(op.wait().unwrap().success(), "operator add");
    let region = Region::start(&data, &[]);
    let base = format!("http://{}", region.http);
    let mut phone = Softphone::start(&region, dir.path(), "02:00:00:00:0b:01", region.dns, &[]);
    let a = phone.number.clone();
    let b = provision(region.http, "02:00:00:00:0b:02");
    let cdev = provision(region.http, "02:00:00:00:0b:03");
    set_password(region.http, &b, "bee password");
    set_password(region.http, &cdev, "sea password");
    let pair = |phone: &mut Softphone| {
        let before = phone.lines().iter().filter(|l| l.starts_with("pairing code ")).count();
        phone.send("pair");
        assert!(
            eventually(10, || phone.lines().iter().filter(|l| l.starts_with("pairing code ")).count()
                > before),
            "no pairing code: {:?}",
            phone.lines()
        );
        let line = phone.lines().into_iter().rfind(|l| l.starts_with("pairing code ")).unwrap();
        line.split_whitespace().nth(2).unwrap().to_string()
    };
    let (driver, c) = browser().await;

    // 1. Sign in with a pairing code read from the phone's output; a used
    //    code is refused with a clear message and no session.
    let code = pair(&mut phone);
    sign_in(&c, &base, &a, "", &code).await;
    c.wait()
        .for_element(Locator::Id("save"))
        .await
        .expect("signed in with a pairing code");
    sign_out(&c, &base).await;
    sign_in(&c, &base, &a, "", &code).await;
    assert!(text_of(&c, "error").await.contains("already used"));
    c.goto(&format!("{base}/profile")).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/signin", "no session from a used code");

    // 2. A second device signs in too; a password change in the browser
    //    ends that other session and keeps this one; sign-out ends this one.
    let code = pair(&mut phone);
    sign_in(&c, &base, &a, "", &code).await;
    c.wait().for_element(Locator::Id("save")).await.unwrap();
    let mut other = Web::new(region.http);
    let t = other.token("/signin");
    let code2 = pair(&mut phone);
    let (status, _, body) = other.send("POST", "/signin", &[("csrf", &t), ("number", &a), ("code", &code2)]);
    assert_eq!(status, 303, "{body}");
    assert!(other.signed_in());
    c.goto(&format!("{base}/account")).await.unwrap();
    fill(&c, "new", "a fresh password").await;
    click(&c, "change").await;
    text_of(&c, "changed").await;
    assert!(!other.signed_in(), "the other session ended with the password change");
    c.goto(&format!("{base}/profile")).await.unwrap();
    c.wait().for_element(Locator::Id("save")).await.expect("this session stays");
    sign_out(&c, &base).await;
    c.goto(&format!("{base}/profile")).await.unwrap();
    assert_eq!(c.current_url().await.unwrap().path(), "/signin", "signed out");
    // The phone-side password API ends every session of the number.
    let mut web_b = Web::new(region.http);
    web_b.sign_in(&b.number, "bee password");
    set_password(region.http, &b, "bee password 2");
    assert!(!web_b.signed_in(), "a password set from the phone ends the sessions");

    // 3. Friends: A's presence is friends-only and lists B. B sees A online,
    //    C (not a friend) and anonymous watchers see offline.
    sign_in(&c, &base, &a, "a fresh password", "").await;
    c.wait().for_element(Locator::Id("save")).await.unwrap();
    c.goto(&format!("{base}/friends")).await.unwrap();
    click(&c, "friends_only").await;
    click(&c, "save_policy").await;
    text_of(&c, "saved").await;
    fill(&c, "friend", "12345").await;
    click(&c, "add").await;
    assert!(text_of(&c, "error").await.contains("13 digits"));
    for f in [b.number.as_str(), "001-01-00000042"] {
        fill(&c, "friend", f).await;
        click(&c, "add").await;
        let digits: String = f.chars().filter(char::is_ascii_digit).collect();
        c.wait()
            .for_element(Locator::Css(&format!("tr.friend[data-number='{digits}']")))
            .await
            .expect("the friend is listed");
    }
    let rows = c.find_all(Locator::Css("tr.friend")).await.unwrap();
    assert_eq!(rows.len(), 2, "{}", c.source().await.unwrap());
    let foreign = c
        .find(Locator::Css("tr.friend[data-number='0010100000042'] .presence"))
        .await
        .unwrap();
    assert_eq!(foreign.text().await.unwrap(), "unknown");
    shot("friends", c.screenshot().await.unwrap());
    let (_, j) = http(region.http, "GET", &format!("/api/v1/presence/{}", a.replace('-', "")), b"");
    assert_eq!(j["state"], "offline", "anonymous watchers see offline: {j}");
    sign_out(&c, &base).await;
    let digits_a: String = a.chars().filter(char::is_ascii_digit).collect();
    for (who, password, seen) in [(&b.number, "bee password 2", "online"), (&cdev.number, "sea password", "offline")] {
        sign_in(&c, &base, who, password, "").await;
        c.wait().for_element(Locator::Id("save")).await.unwrap();
        c.goto(&format!("{base}/friends")).await.unwrap();
        fill(&c, "friend", &a).await;
        click(&c, "add").await;
        let cell = c
            .wait()
            .for_element(Locator::Css(&format!("tr.friend[data-number='{digits_a}'] .presence")))
            .await
            .unwrap();
        assert_eq!(cell.text().await.unwrap(), seen, "{who} sees A");
        sign_out(&c, &base).await;
    }

    // 4. Greetings: upload a picture through the form and see it served by
    //    the API; a card from text; a post without the CSRF token is refused.
    let picture = dir.path().join("face.png");
    let mut png = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_pixel(40, 30, image::Rgb([200, 30, 30]))
        .write_to(&mut png, image::ImageFormat::Png)
        .unwrap();
    std::fs::write(&picture, png.into_inner()).unwrap();
    sign_in(&c, &base, &a, "a fresh password", "").await;
    c.wait().for_element(Locator::Id("save")).await.unwrap();
    c.goto(&format!("{base}/greetings")).await.unwrap();
    c.find(Locator::Id("picture"))
        .await
        .unwrap()
        .send_keys(picture.to_str().unwrap())
        .await
        .unwrap();
    click(&c, "upload").await;
    text_of(&c, "saved").await;
    let img = c.find(Locator::Css("#greeting-caller img")).await.unwrap();
    let etag = img.attr("data-etag").await.unwrap().expect("an update code");
    let resp = http_raw(region.http, "GET", &format!("/api/v1/greetings/{digits_a}/caller"), &[], b"");
    let head = String::from_utf8_lossy(&resp[..resp.len().min(600)]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("content-type: image/png") && head.contains(&etag.to_ascii_lowercase()),
        "{head}"
    );
    fill(&c, "text", "Hello <b>there</b>").await;
    // The live preview is drawn as the text is typed.
    let drawn = c.wait().for_element(Locator::Css("#preview:not([hidden])")).await;
    assert!(drawn.is_ok(), "a live preview");
    let mut loaded = false;
    for _ in 0..50 {
        let w = c
            .execute("return document.getElementById('preview').naturalWidth;", vec![])
            .await
            .unwrap();
        if w.as_i64().unwrap_or(0) > 0 {
            loaded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(loaded, "the preview image loads");
    click(&c, "draw").await;
    text_of(&c, "saved").await;
    // The page after the post may still be loading: wait for the picture.
    assert!(c.wait().for_element(Locator::Css("#greeting-caller img")).await.is_ok());
    shot("greetings", c.screenshot().await.unwrap());
    // Channels: the operator made one; subscribing in the page is what the
    // region keeps for the marquee.
    let op = basic("ops", "operator pass 1");
    let (status, j) = parse_http(&http_raw(
        region.http,
        "POST",
        "/api/v1/channels",
        &[("Authorization", &op), ("Content-Type", "application/json")],
        br#"{"name": "news", "title": "Taipei news"}"#,
    ));
    assert_eq!(status, 201, "{j}");
    c.goto(&format!("{base}/channels")).await.unwrap();
    click(&c, "subscribe-news").await;
    text_of(&c, "saved").await;
    let state = c.find(Locator::Css("tr.channel[data-name='news'] .state")).await.unwrap();
    assert_eq!(state.text().await.unwrap(), "subscribed");
    assert!(c.find(Locator::Id("unsubscribe-news")).await.is_ok());
    let mut anon = Web::new(region.http);
    anon.token("/signin");
    let (status, _, _) = anon.send("POST", "/greetings/card", &[("kind", "caller"), ("text", "forged")]);
    assert_eq!(status, 403, "no CSRF token, no change");
    // Refusals that come from the greetings and channels crates read in
    // the page's language too (Traditional Chinese here), and change nothing.
    let mut zh = Web::new(region.http);
    zh.sign_in(&a, "a fresh password");
    zh.cookie.push_str("; peerdial_lang=zh-Hant");
    let etag_of = || {
        let resp = http_raw(region.http, "GET", &format!("/api/v1/greetings/{digits_a}/caller"), &[], b"");
        let head = String::from_utf8_lossy(&resp[..resp.len().min(600)]).to_ascii_lowercase();
        head.lines().find_map(|l| l.strip_prefix("etag: ").map(str::to_string))
    };
    let before = etag_of();
    let t = zh.token("/greetings");
    let (status, _, page) = zh.send(
        "POST",
        "/greetings/card",
        &[("csrf", &t), ("kind", "caller"), ("text", "bell\u{7}")],
    );
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("控制字元 U+0007"), "{page}");
    assert_eq!(etag_of(), before, "a refused card changes nothing");
    let t = zh.token("/channels");
    let (status, _, page) = zh.send("POST", "/channels/subscribe", &[("csrf", &t), ("channel", "nosuch")]);
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("沒有名為「nosuch」的頻道"), "{page}");

    // 5. Vanity: find a free number ending in 2026, take it; the NAPTR
    //    moves at once, the old number is NXDOMAIN, and the phone switches
    //    at its next connection.
    c.goto(&format!("{base}/number?pattern=20x6")).await.unwrap();
    assert!(text_of(&c, "error").await.contains("digits"));
    c.goto(&format!("{base}/number?pattern=2026&mode=ends")).await.unwrap();
    let first = c.wait().for_element(Locator::Css("li.free")).await.expect("free numbers");
    let new_digits = first.attr("data-number").await.unwrap().unwrap();
    assert!(new_digits.ends_with("2026"), "{new_digits}");
    first.find(Locator::Css("button")).await.unwrap().click().await.unwrap();
    let shown = text_of(&c, "new-number").await;
    assert_eq!(shown.chars().filter(char::is_ascii_digit).collect::<String>(), new_digits);
    assert!(naptr_uri(region.dns, &new_digits).is_some(), "the NAPTR moved at once");
    let old = dns_query(region.dns, &enum_name(&digits_a), hickory_proto::rr::RecordType::NAPTR);
    assert_eq!(
        old.response_code(),
        hickory_proto::op::ResponseCode::NXDomain,
        "the old number is gone"
    );
    phone.stop();
    let phone = Softphone::start(&region, dir.path(), "02:00:00:00:0b:01", region.dns, &[]);
    phone.expect_line("number changed from", 10);
    assert!(
        eventually(10, || phone
            .lines()
            .iter()
            .any(|l| l.contains("registered number=") && l.contains(&shown))),
        "{:?}",
        phone.lines()
    );
    let stored = std::fs::read_to_string(dir.path().join("phone-020000000b01").join("phone.json")).unwrap();
    assert!(stored.contains(&shown), "the identity file has the new number: {stored}");
    // Two owners racing for one number: exactly one wins; the loser reads
    // why in the page's language (Traditional Chinese here).
    let race = free_number(&mut Web::new(region.http), &b.number, "bee password 2");
    let answers: Vec<(u16, String)> = [(&b.number, "bee password 2"), (&cdev.number, "sea password")]
        .into_iter()
        .map(|(who, pw)| {
            let mut w = Web::new(region.http);
            w.sign_in(who, pw);
            let t = w.token("/number");
            w.cookie.push_str("; peerdial_lang=zh-Hant");
            (w, t)
        })
        .map(|(mut w, t)| {
            let race = race.clone();
            std::thread::spawn(move || {
                let (status, _, body) = w.send("POST", "/number", &[("csrf", &t), ("number", &race)]);
                (status, body)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    let winners: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert_eq!(winners.iter().filter(|s| **s == 303).count(), 1, "{winners:?}");
    let loser = answers.iter().find(|a| a.0 == 409).expect("one refused");
    assert!(loser.1.contains("已有人使用，請另選一個"), "{}", loser.1);
    sign_out(&c, &base).await;

    // 6. The operator: counts, and disabling a number.
    c.goto(&format!("{base}/operator")).await.unwrap();
    fill(&c, "name", "ops").await;
    fill(&c, "password", "operator pass 1").await;
    click(&c, "submit").await;
    let numbers: usize = text_of(&c, "count-numbers").await.parse().unwrap();
    assert_eq!(numbers, 3);
    let registered: usize = text_of(&c, "count-registrations").await.parse().unwrap();
    assert!(registered >= 1);
    assert_eq!(text_of(&c, "count-operator-sessions").await, "1", "the operator's own session");
    shot("operator", c.screenshot().await.unwrap());
    let status_of = |n: &str| http(region.http, "GET", &format!("/api/v1/numbers/{n}"), b"").0;
    let target = cdev_number_now(region.http, &cdev);
    assert_eq!(status_of(&target), 200);
    fill(&c, "number", &target).await;
    // Each answer is waited for as a new page: the "done" of the last one
    // is still on the page while the next form is on its way (CI once
    // checked the number before the enable had arrived).
    submit(&c, "disable").await;
    text_of(&c, "done").await;
    assert_eq!(status_of(&target), 404, "a disabled number is not provisioned");
    fill(&c, "number", &target).await;
    submit(&c, "enable").await;
    text_of(&c, "done").await;
    assert_eq!(status_of(&target), 200, "enabled again");
    // A broadcast from the operator page reaches the phone.
    fill(&c, "text", "maintenance tonight <b>22:00</b>").await;
    submit(&c, "send_broadcast").await;
    text_of(&c, "done").await;
    phone.expect_line("message from peerdial 886-02: maintenance tonight <b>22:00</b>", 10);
    // The operator signs out: the page asks for a sign-in again.
    click(&c, "operator_signout").await;
    c.wait()
        .for_element(Locator::Id("name"))
        .await
        .expect("the operator's sign-in form");
    assert!(c.find(Locator::Id("count-numbers")).await.is_err(), "signed out");

    c.close().await.unwrap();
    drop(driver);
    drop(phone);
    region.stop();
}

/// The first result's shown presence once it reads `want`, or what it
/// still reads after 5 s.
async fn shown_presence(c: &fantoccini::Client, want: &str) -> String {
    presence_at(c, ".result dd.presence", want).await
}

/// The text at `css` once it reads `want`, or what it still reads after 5 s.
async fn presence_at(c: &fantoccini::Client, css: &str, want: &str) -> String {
    let mut last = String::new();
    for _ in 0..50 {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            last = e.text().await.unwrap_or_default();
            if last == want {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    last
}

/// The text of an element found before once it reads `want`, or what it
/// still reads after 10 s; the element going stale (the page reloaded)
/// fails the test.
async fn live_text(e: &fantoccini::elements::Element, want: &str) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        last = e.text().await.expect("the same element: no reload");
        if last == want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    last
}

/// The `data:` payloads of a Server-Sent Events stream at `path`, read in
/// a thread (it ends when the server closes or after 60 s of silence).
fn sse_data(addr: std::net::SocketAddr, path: &str, cookie: &str) -> std::sync::mpsc::Receiver<String> {
    use std::io::{BufRead, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nCookie: {cookie}\r\n\r\n"
    )
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(s).lines() {
            let Ok(line) = line else { break };
            if let Some(data) = line.strip_prefix("data: ") {
                if tx.send(data.to_string()).is_err() {
                    break;
                }
            }
        }
    });
    rx
}

/// Whether `want` arrives on `events` within `secs` seconds.
fn saw(events: &std::sync::mpsc::Receiver<String>, want: &str, secs: u64) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match events.recv_timeout(left) {
            Ok(d) if d == want => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

/// A free number of the area, found through the vanity page.
fn free_number(w: &mut Web, number: &str, password: &str) -> String {
    w.sign_in(number, password);
    let (status, _, body) = w.send("GET", "/number?pattern=77&mode=contains", &[]);
    assert_eq!(status, 200, "{body}");
    let at = body.find("data-number=\"").expect("a free number") + 13;
    body[at..].split('"').next().unwrap().to_string()
}

/// A device's number now (it may have moved in the race).
fn cdev_number_now(http_addr: std::net::SocketAddr, d: &Device) -> String {
    let body = serde_json::json!({ "mac": "02:00:00:00:0b:03", "ip": "127.0.0.1", "secret": d.secret }).to_string();
    let (status, j) = http(http_addr, "POST", "/api/v1/provision", body.as_bytes());
    assert_eq!(status, 200, "{j}");
    j["number"].as_str().unwrap().to_string()
}

/// A listed profile on `region`: the first password, a signed-in form
/// post; `public` names the fields shown to everyone.
fn listed_profile(region: &Region, mac: &str, fields: &[(&str, &str)], public: &[&str]) -> Device {
    let dev = provision(region.http, mac);
    set_password(region.http, &dev, "kite flying 2026");
    let mut w = Web::new(region.http);
    w.sign_in(&dev.number, "kite flying 2026");
    let t = w.token("/profile");
    let mut form: Vec<(&str, &str)> = vec![("csrf", &t), ("listed", "on")];
    form.extend_from_slice(fields);
    let flags: Vec<String> = public.iter().map(|f| format!("{f}_public")).collect();
    form.extend(flags.iter().map(|f| (f.as_str(), "on")));
    let (status, _, body) = w.send("POST", "/profile", &form);
    assert!(status == 200 || status == 303, "{status}: {body}");
    dev
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tops_yellow_pages_ask_every_region_and_name_the_ones_that_do_not_answer() {
    let dir = tempfile::tempdir().unwrap();
    let top = common::top::start(&dir.path().join("top"));
    // The regions find each other through the top (friends' presence).
    let top_url = format!("http://{}", top.http);
    let tree = ["--top", top_url.as_str(), "--join-token", common::top::TOKEN];
    let r2 = Region::start(&dir.path().join("r2"), &tree);
    let r3 = Region::start(&dir.path().join("r3"), &[&tree[..], &["--area", "886-03"]].concat());
    // A region that takes the connection and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    for (area, dns, web) in [
        ("886-02", r2.dns, r2.http),
        ("886-03", r3.dns, r3.http),
        ("886-04", r2.dns, silent.local_addr().unwrap()),
    ] {
        let body = format!(
            r#"{{"area":"{area}","token":"{}","dns":"{dns}","http":"http://{web}"}}"#,
            common::top::TOKEN
        );
        assert_eq!(top.join(&body).0, 200, "{area}");
    }
    let ada = listed_profile(
        &r2,
        "02:00:00:00:0b:01",
        &[
            ("display_name", "Ada Lovelace"),
            ("city", "Taipei"),
            ("organisation", "Secret Engines"),
        ],
        &["display_name", "city"],
    );
    let byron = listed_profile(
        &r3,
        "02:00:00:00:0b:02",
        &[("display_name", "Ada <b>Byron</b>"), ("city", "Hsinchu")],
        &["display_name", "city"],
    );
    let get = |path: &str, lang: &str| {
        let resp = http_raw(top.http, "GET", path, &[("Accept-Language", lang)], b"");
        let text = String::from_utf8_lossy(&resp).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
        body.to_string()
    };
    let item = |page: &str, area: &str| {
        let at = page
            .find(&format!("data-area=\"{area}\""))
            .unwrap_or_else(|| panic!("{area} not listed: {page}"));
        page[at..].split("</li>").next().unwrap().to_string()
    };

    // Both regions' people, from one search; the silent one named.
    let page = get("/?q=ada", "en");
    for (dev, city) in [(&ada, "Taipei"), (&byron, "Hsinchu")] {
        assert!(page.contains(&dev.number) && page.contains(city), "{} missing: {page}", dev.number);
    }
    assert!(
        page.contains(&format!("http://{}/api/v1/greetings/{}/caller", r2.http, ada.user)),
        "{page}"
    );
    assert!(!page.contains("Secret Engines"), "a private field left the region: {page}");
    assert!(
        page.contains("Ada &#60;b&#62;Byron") || page.contains("Ada &lt;b&gt;Byron"),
        "{page}"
    );
    assert!(!page.contains("<b>Byron"), "markup from a profile reached the page");
    assert!(item(&page, "886-02").contains("answered") && item(&page, "886-03").contains("answered"));
    assert!(item(&page, "886-04").contains("did not answer in time"), "{page}");
    // A private field's value finds nobody, at the top as in the region.
    let (status, j) = http(top.http, "GET", "/api/v1/yellow?q=Secret", b"");
    assert_eq!((status, j["results"].as_array().map(Vec::len)), (200, Some(0)), "{j}");
    // The area filter asks only that region.
    let page = get("/?q=ada&area=886-03", "en");
    assert!(page.contains(&byron.number) && !page.contains(&ada.number), "{page}");
    assert!(!page.contains("data-area=\"886-02\"") && !page.contains("data-area=\"886-04\""));
    // Traditional Chinese by Accept-Language.
    assert!(get("/?q=ada&country=886", "zh-TW,zh;q=0.9").contains("所有地區的黃頁"));

    // In a browser: the top's yellow pages show both regions' people, and
    // each result's presence follows its phone live, streamed from its
    // own region (cross-origin); then sign-in at the top, checked by the
    // number's region.
    let mut byron_phone = Phone::udp(r3.sip);
    let md5 = peerdial_sip::digest::Algorithm::Md5;
    let (driver, c) = browser().await;
    let top_base = format!("http://{}", top.http);
    c.goto(&format!("{top_base}/?q=ada")).await.unwrap();
    for dev in [&ada, &byron] {
        let css = format!(".result[data-number='{}']", dev.user);
        assert!(c.wait().for_element(Locator::Css(&css)).await.is_ok(), "{} shown", dev.number);
    }
    shot("top-yellow-pages", c.screenshot().await.unwrap());
    let byron_shown = format!(".result[data-number='{}'] dd.presence", byron.user);
    assert_eq!(presence_at(&c, &byron_shown, "offline").await, "offline");
    assert_eq!(byron_phone.register(&byron, &byron.password, md5, 600).0, 200);
    assert_eq!(presence_at(&c, &byron_shown, "online").await, "online", "live from 886-03's stream");
    sign_in(&c, &top_base, &ada.number, "kite flying 2026", "").await;
    assert_eq!(text_of(&c, "number").await, ada.number, "signed in at the top: /me");
    assert_eq!(c.current_url().await.unwrap().path(), "/me");

    // Friends across regions: Byron (886-03, online, friends-only, lists
    // Ada) is shown to Ada on her region's /friends as he is.
    let policy = serde_json::json!({ "friends_only": true, "friends": [ada.number] }).to_string();
    let presence = format!("/api/v1/presence/{}", byron.user);
    let auth = basic(&byron.user, &byron.password);
    let resp = http_raw(
        r3.http,
        "PUT",
        &format!("{presence}/policy"),
        &[("Authorization", &auth)],
        policy.as_bytes(),
    );
    assert_eq!(parse_http(&resp).0, 200);
    assert_eq!(
        http(r3.http, "GET", &presence, b"").1["state"],
        "offline",
        "anonymous watchers see offline"
    );
    let forged = http_raw(
        r3.http,
        "GET",
        &presence,
        &[("Identity", "e30.e30.AA"), ("X-Peerdial-From", &ada.number)],
        b"",
    );
    assert_eq!(parse_http(&forged).0, 401, "an identity that does not verify");
    let mut at_r2 = Web::new(r2.http);
    at_r2.sign_in(&ada.number, "kite flying 2026");
    let t = at_r2.token("/friends");
    assert_eq!(
        at_r2.send("POST", "/friends/add", &[("csrf", &t), ("friend", &byron.number)]).0,
        303
    );
    let friends = at_r2.send("GET", "/friends", &[]).2;
    let row = &friends[friends.find(&format!("data-number=\"{}\"", byron.user)).expect("Byron listed")..];
    assert!(
        row.split("</tr>").next().unwrap().contains("<td class=\"presence\">online</td>"),
        "{friends}"
    );
    // The page's live list, in the browser: Ada's /friends shows Byron
    // online, then offline once his phone unregisters, then online again,
    // in the same cell (a reload would have replaced it); the stream the
    // page's script reads says the same.
    let r2_base = format!("http://{}", r2.http);
    sign_in(&c, &r2_base, &ada.number, "kite flying 2026", "").await;
    c.wait().for_element(Locator::Id("save")).await.expect("Ada signed in at 886-02");
    c.goto(&format!("{r2_base}/friends")).await.unwrap();
    let byron_cell = format!("tr.friend[data-number='{}'] .presence", byron.user);
    let cell = c.wait().for_element(Locator::Css(&byron_cell)).await.unwrap();
    assert_eq!(cell.text().await.unwrap(), "online");
    let events = sse_data(r2.http, "/friends/events", &at_r2.cookie);
    let byron_is = |state: &str| serde_json::json!({ "number": byron.user, "presence": state }).to_string();
    assert!(saw(&events, &byron_is("online"), 10), "Byron online at once");
    assert_eq!(byron_phone.register(&byron, &byron.password, md5, 0).0, 200);
    assert!(saw(&events, &byron_is("offline"), 10), "Byron offline without a reload");
    assert_eq!(
        live_text(&cell, "offline").await,
        "offline",
        "shown offline on /friends without a reload"
    );
    shot("friends-live", c.screenshot().await.unwrap());
    assert_eq!(byron_phone.register(&byron, &byron.password, md5, 600).0, 200);
    assert_eq!(live_text(&cell, "online").await, "online", "and online again");
    c.close().await.unwrap();
    drop(driver);

    // Sign-in at the top, checked by the number's region (design §9).
    let mut w = Web::new(top.http);
    let (status, _, body) = w.try_sign_in(&byron.number, "not it at all");
    assert!(status == 401 && body.contains("Wrong number or password."), "{status} {body}");
    assert_eq!(w.send("GET", "/me", &[]).1, "/signin", "a wrong password opened no session");
    let (status, location, body) = w.try_sign_in(&byron.number, "kite flying 2026");
    assert_eq!((status, location.as_str()), (303, "/me"), "{body}");
    let (status, _, me) = w.send("GET", "/me", &[]);
    assert_eq!(status, 200, "{me}");
    assert!(
        me.contains(&byron.number) && me.contains(&format!("http://{}/profile", r3.http)),
        "{me}"
    );
    assert!(w.send("GET", "/?q=ada", &[]).2.contains(&format!("Signed in as {}", byron.number)));
    // The dialer page comes with a token of the signed-in number's own,
    // which the calls API takes; signed out, the field is empty.
    let dial_token = |w: &mut Web| {
        let page = w.send("GET", "/dial", &[]).2;
        let at = page.find("id=\"token\"").expect("a token field");
        page[at..].split("value=\"").nth(1).unwrap().split('"').next().unwrap().to_string()
    };
    let token = dial_token(&mut w);
    assert_eq!(token.len(), 48, "a fresh token: {token:?}");
    let bearer = format!("Bearer {token}");
    let mine = parse_http(&http_raw(top.http, "GET", "/api/v1/talkers", &[("Authorization", &bearer)], b""));
    assert_eq!((mine.0, mine.1["user"].as_str()), (200, Some(byron.number.as_str())), "{}", mine.1);
    let t = w.token("/me");
    assert_eq!(w.send("POST", "/signout", &[("csrf", &t)]).1, "/");
    assert_eq!(w.send("GET", "/me", &[]).1, "/signin", "signed out");
    assert_eq!(dial_token(&mut w), "", "no token for a person not signed in");
    // A pairing code from Byron's device signs him in at the top once.
    let code = http_raw(
        r3.http,
        "POST",
        "/api/v1/account/pairing-code",
        &[("Authorization", &basic(&byron.user, &byron.password))],
        b"",
    );
    let code = parse_http(&code).1["code"].as_str().expect("a pairing code").to_string();
    let with_code = |w: &mut Web| {
        let t = w.token("/signin");
        w.send("POST", "/signin", &[("csrf", &t), ("number", &byron.number), ("code", &code)])
    };
    assert_eq!(with_code(&mut w).1, "/me", "signed in with the code");
    let t = w.token("/me");
    assert_eq!(w.send("POST", "/signout", &[("csrf", &t)]).1, "/");
    let (status, _, body) = with_code(&mut w);
    assert!(status >= 400 && body.contains("class=\"error\""), "a used code: {status} {body}");
    // A number no region holds; then wrong passwords until the region's
    // limit refuses the number, at the top and at the region's own page.
    let (status, _, body) = w.try_sign_in("886-09-1234-5678", "x");
    assert!(
        status == 404 && body.contains("No region of this network holds that number."),
        "{status} {body}"
    );
    for _ in 0..5 {
        assert_eq!(w.try_sign_in(&ada.number, "guess guess").0, 401);
    }
    let (status, _, body) = w.try_sign_in(&ada.number, "kite flying 2026");
    assert!(
        status == 429 && body.contains("Too many wrong passwords for this number"),
        "{status} {body}"
    );
    let (status, _, _) = Web::new(r2.http).try_sign_in(&ada.number, "kite flying 2026");
    assert_eq!(status, 429, "the region counted the top's wrong passwords");
    let (status, j) = http(r2.http, "POST", "/api/v1/account/verify", b"{\"number\": 5");
    assert!(status == 400 && j["error"].as_str().unwrap_or("").contains("expected"), "{j}");

    // In a browser: type, search, both regions' people on one page.
    let (driver, c) = browser().await;
    c.goto(&format!("http://{}/", top.http)).await.unwrap();
    fill(&c, "q", "ada").await;
    c.find(Locator::Css("form[role=search] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    for dev in [&ada, &byron] {
        c.wait()
            .for_element(Locator::Css(&format!("section[data-number=\"{}\"]", dev.user)))
            .await
            .unwrap_or_else(|_| panic!("{} is not on the top's page", dev.number));
    }
    assert!(c
        .find(Locator::Id("regions"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .contains("886-04"));
    shot("top-yellow", c.screenshot().await.unwrap());
    c.close().await.unwrap();
    drop(driver);

    // A region that is down is named, and the others still answer.
    r3.stop();
    let page = get("/?q=ada", "en");
    assert!(page.contains(&ada.number) && !page.contains(&byron.number), "{page}");
    assert!(item(&page, "886-03").contains("did not answer in time"), "{page}");
    drop(silent);
}
