//! Push wake-up as users see it (issue 15): a phone asleep with no switch
//! is woken by a Web Push through a local push service (over HTTPS, HTTP/2
//! by ALPN, its certificate from a test CA the top and the phones are
//! given with --push-ca), registers, checks
//! the caller's cloud token, presents its own, and the call connects with
//! audio; a wrongly encrypted push is refused; malformed RFC 8599
//! parameters get 400 and change nothing; a failing push endpoint is
//! retried with back-off and another wake-up goes through meanwhile, and so
//! is a push service whose certificate the top does not trust (the caller
//! is told why); a phone holding the cloud's command connection is woken
//! down it.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use peerdial_sip::digest::Algorithm;

/// `peerdial push-service` and what it printed.
struct PushService {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    addr: SocketAddr,
}

impl PushService {
    fn start(args: &[&str]) -> PushService {
        let mut child = Command::new(peerdial_bin())
            .args(["push-service", "--http", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let addr = line
            .split("https://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("push service did not start: {line:?}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        std::thread::spawn(move || {
            for x in out.lines().map_while(Result::ok) {
                l.lock().unwrap().push(x);
            }
        });
        PushService { child, lines, addr }
    }

    fn stats(&self, ca: &Path, topic: &str) -> serde_json::Value {
        https(ca, &format!("https://{}/stats", self.addr), "GET", &[], b"").1[topic].clone()
    }
}

/// A test CA and a certificate it signed for 127.0.0.1 (PEM files in
/// `dir`): (CA, certificate, key).
fn test_pki(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, format!("peerdial {name} test CA"));
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let files = [("ca", ca.pem()), ("cert", cert.pem()), ("key", key.serialize_pem())].map(|(what, pem)| {
        let p = dir.join(format!("{name}-{what}.pem"));
        std::fs::write(&p, pem).unwrap();
        p
    });
    let [a, b, c] = files;
    (a, b, c)
}

/// One HTTPS request trusting `ca`: status and JSON body.
fn https(ca: &Path, url: &str, method: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, serde_json::Value) {
    let client = peerdial_net::https_client::HttpsClient::new(Some(ca)).unwrap();
    let headers: Vec<(String, String)> = headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let a = rt
        .block_on(client.send(method, url, &headers, body, Duration::from_secs(10)))
        .unwrap();
    (a.status, serde_json::from_slice(&a.body).unwrap_or_default())
}

impl Drop for PushService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PASSporT the region makes for the phone `mac` (number `own`).
fn passport(region: &Region, dir: &std::path::Path, mac: &str, own: &str) -> String {
    let (user, password) = phone_credentials(dir, mac);
    let auth = basic(&user, &password);
    let body = serde_json::json!({"dest": own}).to_string();
    let r = http_raw(
        region.http,
        "POST",
        "/api/v1/identity/passport",
        &[("Authorization", &auth)],
        body.as_bytes(),
    );
    let (s, j) = parse_http(&r);
    assert_eq!(s, 200, "{j}");
    j["identity"].as_str().unwrap().to_string()
}

fn designate(top: SocketAddr, region: &Region, dir: &std::path::Path, mac: &str, caller: &str, callee: &str) -> (u16, serde_json::Value) {
    let identity = passport(region, dir, mac, caller);
    let body = serde_json::json!({"callee": callee}).to_string();
    let r = http_raw(
        top,
        "POST",
        "/api/v1/calls/designate",
        &[("Identity", &identity), ("X-Peerdial-From", caller)],
        body.as_bytes(),
    );
    parse_http(&r)
}

#[test]
fn a_sleeping_phone_is_woken_by_push_and_the_call_connects() {
    let dir = tempfile::tempdir().unwrap();
    // The push service's certificate comes from a CA the top and the
    // phones trust by --push-ca; the second service's from one they do not.
    let (ca, cert, key) = test_pki(dir.path(), "push");
    let (other_ca, other_cert, other_key) = test_pki(dir.path(), "other");
    let ca_s = ca.to_str().unwrap();
    let top = common::top::TopNode::start(&dir.path().join("top"), "127.0.0.1:0", "127.0.0.1:0", &["--push-ca", ca_s]);
    let top_url = format!("http://{}", top.http);
    let region = Region::start(
        &dir.path().join("region"),
        &["--top", &top_url, "--join-token", common::top::TOKEN, "--keepalive", "1"],
    );
    assert!(eventually(10, || {
        http(top.http, "GET", "/api/v1/regions", b"").1["regions"]
            .as_array()
            .is_some_and(|r| r.len() == 1)
    }));
    let (mac_a, mac_b, mac_c) = ("02:00:00:00:15:01", "02:00:00:00:15:02", "02:00:00:00:15:03");
    let keys = |mac: &str| dir.path().join(format!("phone-{}", mac.replace(':', ""))).join("push-keys.json");
    let mac_d = "02:00:00:00:15:04";
    let (kb, kc, kd) = (keys(mac_b), keys(mac_c), keys(mac_d));
    let svc = PushService::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--subscriber",
        &format!("b={}", kb.display()),
        "--subscriber",
        &format!("c={}", kc.display()),
        "--subscriber",
        &format!("d={}", kd.display()),
        "--fail",
        "c=2",
    ]);
    let endpoint = |t: &str| format!("https://{}/up/{t}", svc.addr);

    // B sleeps: registered with its push parameters, then silent.
    let rec = dir.path().join("b.wav");
    let eb = endpoint("b");
    let b = Softphone::start(
        &region,
        dir.path(),
        mac_b,
        region.dns,
        &[
            "--push",
            &eb,
            "--push-ca",
            ca_s,
            "--asleep",
            "--top",
            &top_url,
            "--auto-answer",
            "--record",
            rec.to_str().unwrap(),
        ],
    );
    b.expect_line("asleep: listening for push only", 10);
    let b_digits = b.number.replace('-', "");
    // Asleep is offline: no keep-alive answers, so its contact leaves DNS
    // (the mailbox record stays).
    assert!(
        eventually(15, || !naptr_set(region.dns, &b_digits).iter().any(|(o, _)| *o == 10)),
        "{:?}",
        naptr_set(region.dns, &b_digits)
    );
    // Its keys are the owner's alone and never printed.
    let kj: serde_json::Value = serde_json::from_slice(&std::fs::read(&kb).unwrap()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&kb).unwrap().permissions().mode() & 0o077, 0);
    }

    // A calls B through the cloud: B is woken by push and the call connects.
    let play = common::tones::tone_wav(dir.path(), "a.wav", 1000.0, 4);
    let mut a = dial(
        &region,
        dir.path(),
        mac_a,
        region.dns,
        &b.number,
        &["--top", &top_url, "--play", &play, "--duration", "2"],
    );
    a.expect_line(&format!("the cloud woke {} by push; waiting for it to register", b.number), 15);
    b.expect_line(&format!("woken by push: call from {}", a.number), 10);
    b.expect_line("its cloud token checks; registering", 1);
    a.expect_line(&format!("{} registered after its push", b.number), 15);
    b.expect_line(&format!("{} presented the cloud's token: verified", a.number), 15);
    a.expect_line("answered codec=", 15);
    a.expect_line(&format!("{} presented the cloud's token: verified", b.number), 5);
    assert_eq!(a.wait_exit(20), 0, "{:#?}", a.lines());
    b.expect_line(" ended: the other side hung up", 15);
    common::tones::assert_heard_tone_48k(&rec, 1000.0);
    let st = svc.stats(&ca, "b");
    assert_eq!((st["accepted"].as_u64(), st["fetched"].as_u64()), (Some(1), Some(1)), "{st}");
    // The top's push went over HTTPS, HTTP/2 chosen by ALPN.
    assert_eq!(st["version"].as_str(), Some("HTTP/2.0"), "{st}");
    for secret in [kj["auth"].as_str().unwrap(), kj["p256dh_private"].as_str().unwrap()] {
        assert!(!a.lines().iter().chain(b.lines().iter()).any(|l| l.contains(secret)));
    }

    // A push encrypted to other keys is refused by the push service (it
    // decrypts with B's subscription keys) and never reaches B.
    let other = peerdial_push::webpush::UaKeys::generate();
    let vapid = peerdial_push::webpush::VapidKey::generate("mailto:test@example.net");
    let req = peerdial_push::webpush::build(&other.subscription(&eb), &vapid, b"{}", Duration::from_secs(30)).unwrap();
    let headers: Vec<(&str, &str)> = req.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let (s, j) = https(&ca, &eb, "POST", &headers, &req.body);
    assert_eq!(s, 400, "{j}");
    assert!(j["error"].as_str().unwrap().contains("did not decrypt"), "{j}");
    assert_eq!(svc.stats(&ca, "b")["refused"].as_u64(), Some(1));
    // Without VAPID: 401.
    let unsigned: Vec<(&str, &str)> = headers.iter().filter(|(n, _)| *n != "authorization").cloned().collect();
    assert_eq!(https(&ca, &eb, "POST", &unsigned, &req.body).0, 401);

    // Malformed RFC 8599 parameters: 400 naming the problem, nothing changed.
    let dev = provision(region.http, "02:00:00:00:15:09");
    let mut raw = common::Phone::udp(region.sip);
    let local = raw.local();
    let bad = |req: Vec<u8>| {
        String::from_utf8(req)
            .unwrap()
            .replace(
                &format!("@{local}>"),
                &format!("@{local};pn-provider=webpush;pn-prid=ftp://x/y;pn-param=a.b>"),
            )
            .into_bytes()
    };
    let r1 = bad(raw.request(&dev.user, 300, None));
    raw.send_raw(&r1);
    let ch = raw.recv().unwrap();
    assert_eq!(status(&ch), 401);
    let auth = raw.answer(&ch, &dev, &dev.password, Algorithm::Md5);
    let r2 = bad(raw.request(&dev.user, 300, Some(auth)));
    raw.send_raw(&r2);
    let r = raw.recv().unwrap();
    assert_eq!(status(&r), 400);
    let line = String::from_utf8_lossy(&r.to_bytes()).lines().next().unwrap().to_string();
    assert!(line.contains("pn-prid for webpush"), "{line}");
    let dev_digits = dev.number.replace('-', "");
    assert!(!naptr_set(region.dns, &dev_digits).iter().any(|(o, _)| *o == 10));

    // C's endpoint fails twice: its wake-up is retried with back-off while
    // another wake-up (B again) goes through; then C wakes too. Meanwhile
    // the device provisioned above is subscribed at a push service whose
    // certificate no CA the top trusts signed: every attempt fails the TLS
    // handshake, is retried the same way, and the caller is told why.
    let untrusted = PushService::start(&["--tls-cert", other_cert.to_str().unwrap(), "--tls-key", other_key.to_str().unwrap()]);
    let sub = peerdial_push::webpush::UaKeys::generate();
    let reg = serde_json::json!({"token": common::top::TOKEN, "number": dev.number, "push": {
        "provider": "webpush", "prid": format!("https://{}/up/f", untrusted.addr), "param": sub.pn_param()}});
    let (s, j) = http(top.http, "POST", "/api/v1/push/registrations", reg.to_string().as_bytes());
    assert_eq!(s, 200, "{j}");
    // Plain http:// to a push service elsewhere than loopback: 400, saying so.
    let mut plain = reg.clone();
    plain["push"]["prid"] = "http://push.example.net/up/f".into();
    let (s, j) = http(top.http, "POST", "/api/v1/push/registrations", plain.to_string().as_bytes());
    assert_eq!(s, 400, "{j}");
    assert!(j.to_string().contains("only for a loopback push service; use https://"), "{j}");
    let ec = endpoint("c");
    let c = Softphone::start(
        &region,
        dir.path(),
        mac_c,
        region.dns,
        &["--push", &ec, "--push-ca", ca_s, "--asleep", "--top", &top_url],
    );
    c.expect_line("asleep: listening for push only", 10);
    let c_number = c.number.clone();
    let (top_http, dirp) = (top.http, dir.path().to_path_buf());
    let a_number = a.number.clone();
    let region_ref = &region;
    std::thread::scope(|sc| {
        let slow = sc.spawn(|| designate(top_http, region_ref, &dirp, mac_a, &a_number, &c_number));
        let fast = sc.spawn(|| designate(top_http, region_ref, &dirp, mac_a, &a_number, &b.number));
        let refused = sc.spawn(|| designate(top_http, region_ref, &dirp, mac_a, &a_number, &dev.number));
        let (sf, jf) = fast.join().unwrap();
        assert_eq!((sf, jf["route"].as_str()), (200, Some("push")), "{jf}");
        let (ss, js) = slow.join().unwrap();
        assert_eq!((ss, js["route"].as_str()), (200, Some("push")), "{js}");
        assert!(js["token"].as_str().is_some_and(|t| t.split('.').count() == 3));
        let (sr, jr) = refused.join().unwrap();
        let why = jr.to_string();
        assert_eq!(sr, 502, "{jr}");
        assert!(why.contains("could not be woken") && why.contains("(4 attempts)"), "{jr}");
        assert!(
            why.contains("TLS: 127.0.0.1:") && why.contains("invalid peer certificate: UnknownIssuer"),
            "{jr}"
        );
    });
    // Nothing reached the untrusted service past the handshake.
    assert!(https(&other_ca, &format!("https://{}/stats", untrusted.addr), "GET", &[], b"").1["f"].is_null());
    let st = svc.stats(&ca, "c");
    assert_eq!(
        (st["attempts"].as_u64(), st["failed"].as_u64(), st["accepted"].as_u64()),
        (Some(3), Some(2), Some(1)),
        "{st}"
    );
    c.expect_line(&format!("woken by push: call from {}", a.number), 10);
    // Unknown callees and unauthenticated askers are refused.
    let (s, j) = designate(top.http, &region, dir.path(), mac_a, &a.number, "999-99-99999999");
    assert_eq!(s, 404, "{j}");
    let (s, _) = parse_http(&http_raw(
        top.http,
        "POST",
        "/api/v1/calls/designate",
        &[],
        br#"{"callee":"886-02-00000001"}"#,
    ));
    assert_eq!(s, 401);

    // E holds the cloud's command connection instead of a push
    // subscription: its wake comes down that connection, and it registers.
    let e = Softphone::start(
        &region,
        dir.path(),
        "02:00:00:00:15:05",
        region.dns,
        &["--wake-by-cloud", "--asleep", "--top", &top_url],
    );
    e.expect_line("asleep: listening for cloud commands only", 10);
    e.expect_line(&format!("cloud commands: held at {top_url} for {}", e.number), 10);
    let e_digits = e.number.replace('-', "");
    assert!(eventually(15, || !naptr_set(region.dns, &e_digits).iter().any(|(o, _)| *o == 10)));
    let (s, j) = designate(top.http, &region, dir.path(), mac_a, &a.number, &e.number);
    assert_eq!((s, j["route"].as_str()), (200, Some("push")), "{j}");
    e.expect_line(&format!("woken by cloud command: call from {}", a.number), 10);
    assert!(eventually(10, || naptr_set(region.dns, &e_digits).iter().any(|(o, _)| *o == 10)));
    // The connection is a device's own: none without a PASSporT, and
    // none with A's PASSporT claiming to be E.
    let held = |headers: &[(&str, &str)]| parse_http(&http_raw(top.http, "GET", "/api/v1/devices/commands", headers, b"")).0;
    assert_eq!(held(&[]), 401);
    let a_identity = passport(&region, dir.path(), mac_a, &a.number);
    assert_eq!(held(&[("Identity", &a_identity), ("X-Peerdial-From", &e.number)]), 401);
    assert!(!e.lines().iter().any(|l| l.contains("push")), "{:#?}", e.lines());

    // A switch's device calls a sleeping phone: the cloud wakes it, the
    // switch waits for it to register and calls it with the cloud's token
    // (found through the cloud's directory), and the call connects.
    let top_data = dir.path().join("top");
    let sw_dir = dir.path().join("switch");
    let token = run(&["top", "switch", "add", "office", "--data", top_data.to_str().unwrap()], "");
    let desk = "886-02-99990001";
    run(&["switch", "device", "add", desk, "--data", sw_dir.to_str().unwrap()], "desk-pw\n");
    let sw = common::server::Server::start(&[
        "switch",
        "--cloud",
        &top_url,
        "--token",
        token.trim(),
        "--sip",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--data",
        sw_dir.to_str().unwrap(),
        "--lookup-via-cloud",
    ]);
    assert!(eventually(10, || sw.text().contains("joined the cloud")), "{}", sw.text());
    let rec_d = dir.path().join("d.wav");
    let ed = endpoint("d");
    let d = Softphone::start(
        &region,
        dir.path(),
        mac_d,
        region.dns,
        &[
            "--push",
            &ed,
            "--push-ca",
            ca_s,
            "--asleep",
            "--top",
            &top_url,
            "--auto-answer",
            "--record",
            rec_d.to_str().unwrap(),
        ],
    );
    d.expect_line("asleep: listening for push only", 10);
    let pw = dir.path().join("desk-pw");
    std::fs::write(&pw, "desk-pw\n").unwrap();
    let desk_uri = format!("sip:8860299990001@{}", sw.field("sip"));
    let desk_data = dir.path().join("desk");
    let mut on_switch = Softphone::spawn(
        &[
            "phone",
            "--switch",
            &desk_uri,
            "--switch-password-file",
            pw.to_str().unwrap(),
            "--data",
            desk_data.to_str().unwrap(),
            "--sip",
            "127.0.0.1:0",
            "--play",
            &play,
            "--duration",
            "2",
            "call",
            &d.number,
        ],
        &[],
    );
    d.expect_line(&format!("woken by push: call from {desk}"), 15);
    d.expect_line(&format!("{desk} presented the cloud's token: verified"), 20);
    assert_eq!(on_switch.wait_exit(30), 0, "{:#?}\n{}", on_switch.lines(), sw.text());
    d.expect_line(" ended: the other side hung up", 15);
    common::tones::assert_heard_tone_48k(&rec_d, 1000.0);
    assert!(sw.text().contains("registered after its push"), "{}", sw.text());

    let _ = svc.lines.lock().unwrap().len();
    drop(b);
    drop(c);
    drop(d);
    drop(e);
}
