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
    cli(r.http, OPERATOR, OPERATOR_PASSWORD, args)
}

/// `peerdial region …` operator commands against a region or the top.
fn cli(http: std::net::SocketAddr, operator: &str, password: &str, args: &[&str]) -> (bool, String) {
    let url = format!("http://{http}");
    let out = Command::new(peerdial_bin())
        .arg("region")
        .args(args)
        .args(["--region", &url, "--operator", operator])
        .env("PEERDIAL_OPERATOR_PASSWORD", password)
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
    // A channel that has ended takes no more posts (410), and says so.
    let op = basic(OPERATOR, OPERATOR_PASSWORD);
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2;
    let (s, j) = api(
        &r,
        "POST",
        "/api/v1/channels",
        &op,
        &format!(r#"{{"name": "flash", "until": {until}}}"#),
    );
    assert_eq!(s, 201, "{j}");
    let flash = |text: &str| api(&r, "POST", "/api/v1/channels/flash/items", &op, &format!(r#"{{"text": "{text}"}}"#));
    assert_eq!(flash("while it lasts").0, 201);
    std::thread::sleep(Duration::from_millis(2_500));
    let (s, j) = flash("too late");
    assert_eq!(s, 410, "{j}");
    assert!(j["error"].as_str().unwrap().contains("has ended"), "{j}");
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
    for bad in ["not a publisher", "no such channel", "short life", "one too many", "n8", "too late"] {
        assert!(!lines.iter().any(|l| l.contains(bad)), "{bad:?} shown: {lines:?}");
    }
    phone.send("channels");
    phone.expect_line("channels (* subscribed): ads* flash news", 10);
    phone.stop();

    // What was acknowledged survives kill -9: the channels, a
    // subscription, an item not shown yet and a repeating broadcast.
    let auth = basic(&other.user, &other.password);
    assert_eq!(api(&r, "PUT", "/api/v1/channels/ads/subscription", &auth, "").0, 200);
    let (ok, out) = operator_cli(&r, &["channel", "post", "ads", "kept through a crash"]);
    assert!(ok, "{out}");
    let (ok, out) = operator_cli(&r, &["broadcast", "hourly notice", "--every", "60", "--until", "+600"]);
    assert!(ok, "{out}");
    let data = r.data.clone();
    r.kill9();
    let r = Region::start(&data, &[]);
    let (s, j) = api(&r, "GET", "/api/v1/marquee", &auth, "");
    assert_eq!((s, j["text"].as_str()), (200, Some("half price today")), "{j}");
    let (s, j) = api(&r, "GET", "/api/v1/marquee", &auth, "");
    assert_eq!((s, j["text"].as_str()), (200, Some("kept through a crash")), "{j}");
    assert_eq!(api(&r, "GET", "/api/v1/marquee", &auth, "").0, 204, "nothing more to show");
    let (s, j) = api(&r, "GET", "/api/v1/broadcasts", &basic(OPERATOR, OPERATOR_PASSWORD), "");
    assert_eq!(s, 200, "{j}");
    assert_eq!(j["broadcasts"][0]["text"], "hourly notice", "{j}");
    assert_eq!(j["broadcasts"][0]["every_minutes"], 60, "{j}");
}

#[test]
fn a_global_channel_on_the_top_reaches_the_phones_of_a_region_and_its_publishers_post_from_any_region() {
    let dir = tempfile::tempdir().unwrap();
    let top = common::top::start(&dir.path().join("top"));
    let top_url = format!("http://{}", top.http);
    add_operator(dir.path());
    let r = Region::start(dir.path(), &["--top", &top_url, "--join-token", common::top::TOKEN]);
    let mut phone = Softphone::start(&r, dir.path(), "02:00:00:00:b4:01", r.dns, &["--marquee-interval", "1"]);

    // The top's operator is `top` with the join token.
    let (ok, out) = cli(top.http, "top", "not the token", &["channel", "add", "dating"]);
    assert!(!ok && out.contains("401"), "{out}");
    let (ok, out) = cli(
        top.http,
        "top",
        common::top::TOKEN,
        &["channel", "add", "dating", "--title", "Dating, worldwide"],
    );
    assert!(ok && out.contains("global"), "{out}");
    let (ok, out) = cli(
        top.http,
        "top",
        common::top::TOKEN,
        &["channel", "post", "dating", "tennis partner wanted \u{1b}[5m"],
    );
    assert!(ok, "{out}");

    // The region relays it: phones list it and subscribe here.
    assert!(
        eventually(15, || {
            phone.send("channels");
            std::thread::sleep(Duration::from_millis(300));
            phone
                .lines()
                .iter()
                .any(|l| l.starts_with("channels (* subscribed):") && l.contains("dating"))
        }),
        "the global channel never reached the region: {:?}",
        phone.lines()
    );
    phone.send("subscribe dating");
    let line = phone.expect_line("marquee [dating] tennis partner wanted", 15);
    assert!(!line.contains('\u{1b}'));
    // Posted on the top only: the region refuses posts to it.
    let (s, j) = api(
        &r,
        "POST",
        "/api/v1/channels/dating/items",
        &basic(OPERATOR, OPERATOR_PASSWORD),
        r#"{"text": "x"}"#,
    );
    assert_eq!(s, 400, "{j}");
    assert!(j["error"].as_str().unwrap().contains("global"), "{j}");
    // A later item reaches the subscribed phone too.
    let (ok, out) = cli(
        top.http,
        "top",
        common::top::TOKEN,
        &["channel", "post", "dating", "salsa on friday"],
    );
    assert!(ok, "{out}");
    phone.expect_line("marquee [dating] salsa on friday", 15);

    // Publishers are numbers of any region, granted on the top; they post
    // from their phone through their region, which vouches for them.
    let mac_publisher = "02:00:00:00:b4:02";
    let mut publisher = Softphone::start(&r, dir.path(), mac_publisher, r.dns, &[]);
    phone.send("publish dating not a publisher");
    phone.expect_line("answered 403", 10);
    let (ok, out) = cli(
        top.http,
        "top",
        common::top::TOKEN,
        &["channel", "publisher", "dating", &publisher.number],
    );
    assert!(ok && out.contains(&publisher.number), "{out}");
    publisher.send("publish dating hiking buddy for sunday \x1b]0;pwned\x07");
    publisher.expect_line("posted to channel dating", 10);
    let line = phone.expect_line("hiking buddy for sunday", 15);
    assert!(line.starts_with(&format!("marquee [dating] {}: ", publisher.number)), "{line}");
    assert!(!line.contains("pwned") && !line.contains('\u{1b}'), "{line}");

    // Straight to the top: a token must be the poster's region's, for the
    // poster, and new.
    let (user, pass) = phone_credentials(dir.path(), mac_publisher);
    let token_for = |dest: &str| {
        let (s, j) = parse_http(&http_raw(
            r.http,
            "POST",
            "/api/v1/identity/passport",
            &[("Authorization", &basic(&user, &pass)), ("Content-Type", "application/json")],
            format!(r#"{{"dest": "{dest}"}}"#).as_bytes(),
        ));
        assert_eq!(s, 200, "{j}");
        j["identity"].as_str().unwrap().to_string()
    };
    let to_top = |identity: &str, text: &str| {
        parse_http(&http_raw(
            top.http,
            "POST",
            "/api/v1/channels/dating/items",
            &[
                ("Identity", identity),
                ("X-Peerdial-From", &publisher.number),
                ("Content-Type", "application/json"),
            ],
            format!(r#"{{"text": "{text}"}}"#).as_bytes(),
        ))
    };
    let good = token_for(&publisher.number);
    assert_eq!(to_top(&good, "direct post").0, 201);
    let (s, j) = to_top(&good, "replayed token");
    assert_eq!(s, 401, "{j}");
    let (s, j) = to_top(&token_for(&phone.number), "token for someone else");
    assert_eq!(s, 401, "{j}");
    let (s, j) = to_top("eyJhbGciOiJFUzI1NiJ9.e30.AAAA;info=<http://x/key>", "forged token");
    assert_eq!(s, 401, "{j}");
    let (_, j) = http(top.http, "GET", "/api/v1/channels/dating/items", b"");
    let texts: Vec<&str> = j["items"].as_array().unwrap().iter().filter_map(|i| i["text"].as_str()).collect();
    assert!(texts.contains(&"direct post"), "{j}");
    for refused in ["not a publisher", "replayed token", "someone else", "forged token"] {
        assert!(!texts.iter().any(|t| t.contains(refused)), "{refused} stored: {j}");
    }
    let poster = j["items"].as_array().unwrap().iter().find(|i| i["text"] == "direct post").unwrap();
    assert_eq!(poster["poster"], publisher.number.as_str(), "{j}");
    publisher.stop();
    phone.stop();
}
