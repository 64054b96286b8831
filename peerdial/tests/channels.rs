//! Broadcasts, channels, private channels and the marquee on running
//! regions, as operators, publishers and phones see them: the operator's
//! command line and API, baresip and our phone receiving broadcasts as SIP
//! MESSAGE, unanswered deliveries making a phone offline, friends posting
//! to each other's private channel across regions (and strangers refused),
//! subscriptions changing what the marquee shows, and every bad post
//! refused with nothing stored.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::baresip::Baresip;
use common::*;

const OPERATOR: &str = "ops";
const OPERATOR_PASSWORD: &str = "correct horse battery";

/// Creates the operator account on a region's (stopped) data folder.
fn add_operator(data: &Path) {
    let mut c = Command::new(peerdial_bin())
        .args(["region", "operator", "add", OPERATOR, "--data", data.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(format!("{OPERATOR_PASSWORD}\n").as_bytes())
        .unwrap();
    assert!(c.wait().unwrap().success());
}

/// `peerdial region …` operator commands against a running region.
fn operator_cli(r: &Region, args: &[&str]) -> (bool, String) {
    let url = format!("http://{}", r.http);
    let out = Command::new(peerdial_bin())
        .arg("region")
        .args(args)
        .args(["--region", &url, "--operator", OPERATOR])
        .env("PEERDIAL_OPERATOR_PASSWORD", OPERATOR_PASSWORD)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn api(r: &Region, method: &str, path: &str, auth: &str, body: &str) -> (u16, serde_json::Value) {
    parse_http(&http_raw(
        r.http,
        method,
        path,
        &[("Authorization", auth), ("Content-Type", "application/json")],
        body.as_bytes(),
    ))
}

fn state(r: &Region, number: &str) -> String {
    let (_, j) = http(r.http, "GET", &format!("/api/v1/presence/{number}"), b"");
    j["state"].as_str().unwrap_or_default().to_string()
}

#[test]
fn broadcasts_reach_baresip_and_our_phone_and_unanswered_ones_make_a_phone_offline() {
    let dir = tempfile::tempdir().unwrap();
    add_operator(dir.path());
    // Keep-alives are rare here: only unanswered broadcasts can make
    // baresip offline within the test.
    let r = Region::start(dir.path(), &["--keepalive", "600"]);
    let theirs = provision(r.http, "02:00:00:00:b1:01");
    let mut bs = Baresip::start(
        dir.path(),
        &format!(
            "<sip:{}@{};transport=udp>;auth_pass={};regint=600\n",
            theirs.user, r.sip, theirs.password
        ),
        "",
        &[],
    );
    let mut phone = Softphone::start(&r, dir.path(), "02:00:00:00:b1:02", r.dns, &["--marquee-interval", "0"]);
    assert!(
        eventually(10, || state(&r, &theirs.number) == "online"),
        "baresip did not register: {}",
        bs.log()
    );

    // The text carries a terminal title change and a screen clear.
    let (ok, out) = operator_cli(&r, &["broadcast", "typhoon \x1b]0;pwned\x07warning\x1b[2J: stay inside"]);
    assert!(ok, "{out}");
    assert!(out.contains("sent to the region's online phones"), "{out}");
    let line = phone.expect_line("message from peerdial 886-02: typhoon warning: stay inside", 10);
    assert!(!line.contains('\u{1b}'));
    assert!(
        eventually(10, || bs.log().contains("typhoon warning: stay inside")),
        "baresip did not show the broadcast: {}",
        bs.log()
    );
    assert!(!bs.log().contains("pwned"), "the escape sequence reached baresip");

    // A wrong password is refused and nothing goes out.
    let (ok, out) = Command::new(peerdial_bin())
        .args([
            "region",
            "broadcast",
            "not me",
            "--region",
            &format!("http://{}", r.http),
            "--operator",
            OPERATOR,
        ])
        .env("PEERDIAL_OPERATOR_PASSWORD", "wrong")
        .output()
        .map(|o| (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned()))
        .unwrap();
    assert!(!ok && out.contains("401"), "{out}");

    // baresip dies without unregistering; three broadcasts go unanswered
    // and it is offline at once, long before keep-alives or expiry.
    bs.kill9();
    let op = basic(OPERATOR, OPERATOR_PASSWORD);
    for i in 0..3 {
        let (s, j) = api(&r, "POST", "/api/v1/broadcasts", &op, &format!(r#"{{"text": "drill {i}"}}"#));
        assert_eq!(s, 201, "{j}");
    }
    assert!(
        eventually(20, || state(&r, &theirs.number) == "offline"),
        "baresip is still {}",
        state(&r, &theirs.number)
    );
    // Our phone answered every one and is online.
    phone.expect_line("drill 2", 10);
    assert_eq!(state(&r, &phone.number), "online");
    assert!(!phone.lines().iter().any(|l| l.contains("not me")));
    phone.stop();
}

#[test]
fn friends_post_to_a_private_channel_across_regions_and_strangers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (unbound, a, b) = two_regions_with_resolver(dir.path());
    let mac_owner = "02:00:00:00:b2:01";
    let interval = ["--marquee-interval", "1"];
    let mut owner = Softphone::start(&b, dir.path(), mac_owner, unbound.addr, &interval);
    let mut friend = Softphone::start(&a, dir.path(), "02:00:00:00:b2:02", unbound.addr, &[]);
    let mut stranger = Softphone::start(&a, dir.path(), "02:00:00:00:b2:03", unbound.addr, &[]);
    let (user, pass) = phone_credentials(dir.path(), mac_owner);
    let policy = format!(r#"{{"friends_only": false, "friends": ["{}"]}}"#, friend.number);
    let (s, j) = api(
        &b,
        "PUT",
        &format!("/api/v1/presence/{}/policy", owner.number),
        &basic(&user, &pass),
        &policy,
    );
    assert_eq!(s, 200, "{j}");

    // The friend posts from another region: its own region's PASSporT
    // proves its number; the owner's phone shows it at once.
    friend.send(&format!("post {} dinner at 8? \x1b[31mred", owner.number));
    friend.expect_line("(delivered now)", 10);
    owner.expect_line(&format!("message from {}: dinner at 8? red", friend.number), 10);
    // The stranger's token verifies too, but it is no friend: refused.
    stranger.send(&format!("post {} let me in", owner.number));
    stranger.expect_line("answered 403", 10);

    // The owner goes offline: a friend's post waits, and shows when the
    // phone is back.
    owner.send("quit");
    owner.wait_exit(10);
    friend.send(&format!("post {} call me back", owner.number));
    friend.expect_line("(kept until the phone is back)", 10);
    let mut owner = Softphone::start(&b, dir.path(), mac_owner, unbound.addr, &interval);
    owner.expect_line("call me back", 10);
    std::thread::sleep(Duration::from_millis(2500));
    let lines = owner.lines();
    assert_eq!(
        lines.iter().filter(|l| l.contains("call me back")).count(),
        1,
        "shown twice: {lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("let me in") || l.contains("dinner")), "{lines:?}");
    for p in [&mut owner, &mut friend, &mut stranger] {
        p.stop();
    }
    drop((a, b));
}

#[test]
fn subscriptions_change_the_marquee_and_bad_posts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    add_operator(dir.path());
    let r = Region::start(dir.path(), &[]);
    let publisher = provision(r.http, "02:00:00:00:b3:01");
    let other = provision(r.http, "02:00:00:00:b3:02");
    let mut phone = Softphone::start(&r, dir.path(), "02:00:00:00:b3:03", r.dns, &["--marquee-interval", "1"]);
    for name in ["news", "ads"] {
        let (ok, out) = operator_cli(&r, &["channel", "add", name]);
        assert!(ok, "{out}");
    }
    let (ok, out) = operator_cli(&r, &["channel", "publisher", "news", &publisher.number]);
    assert!(ok && out.contains(&publisher.number), "{out}");
    let (ok, out) = operator_cli(&r, &["channel", "add", "news"]);
    assert!(!ok && out.contains("409"), "{out}");

    let post = |d: &Device, channel: &str, body: &str| {
        api(
            &r,
            "POST",
            &format!("/api/v1/channels/{channel}/items"),
            &basic(&d.user, &d.password),
            body,
        )
    };
    let (s, j) = post(&publisher, "news", r#"{"text": "first \u001b]2;x\u0007news \u001b[1;1H item"}"#);
    assert_eq!(s, 201, "{j}");
    // Nothing is shown before subscribing.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!phone.lines().iter().any(|l| l.starts_with("marquee")));
    phone.send("subscribe news");
    phone.expect_line("subscribed to news; subscriptions: news", 10);
    let line = phone.expect_line(&format!("marquee [news] {}: first news item", publisher.number), 10);
    assert!(!line.contains('\u{1b}'));

    // Bad posts: a clear error each, and nothing reaches the marquee.
    let refused = [
        (post(&other, "news", r#"{"text": "not a publisher"}"#), 403),
        (post(&publisher, "weather", r#"{"text": "no such channel"}"#), 404),
        (post(&publisher, "news", r#"{"text": " \u001b[2J "}"#), 400),
        (post(&publisher, "news", &format!(r#"{{"text": "{}"}}"#, "x".repeat(2000))), 413),
        (post(&publisher, "news", r#"{"text": "short life", "expires_in": 1}"#), 400),
        (post(&publisher, "news", r#"{"text": 5}"#), 400),
        (post(&publisher, "news", "not json"), 400),
    ];
    for ((s, j), want) in refused {
        assert_eq!(s, want, "{j}");
        assert!(j["error"].as_str().is_some_and(|e| !e.is_empty()), "{j}");
    }
    // Ten posts a minute; the eleventh waits.
    for i in 0..9 {
        assert_eq!(post(&publisher, "news", &format!(r#"{{"text": "n{i}"}}"#)).0, 201);
    }
    let (s, j) = post(&publisher, "news", r#"{"text": "one too many"}"#);
    assert_eq!(s, 429, "{j}");

    // Unsubscribed from news and subscribed to ads: only ads show now.
    phone.send("unsubscribe news");
    phone.expect_line("unsubscribed from news; subscriptions: none", 10);
    phone.send("subscribe ads");
    phone.expect_line("subscriptions: ads", 10);
    let (ok, out) = operator_cli(&r, &["channel", "post", "ads", "half price today"]);
    assert!(ok, "{out}");
    phone.expect_line("marquee [ads] half price today", 10);
    std::thread::sleep(Duration::from_millis(1500));
    let lines = phone.lines();
    for bad in ["not a publisher", "no such channel", "short life", "one too many", "n8"] {
        assert!(!lines.iter().any(|l| l.contains(bad)), "{bad:?} shown: {lines:?}");
    }
    phone.send("channels");
    phone.expect_line("channels (* subscribed): ads* news", 10);
    phone.stop();
}
