//! The tree: a top server delegating to regions (directly, or through a
//! country server), walked by a real resolver (unbound); calls across
//! regions; joins that are refused; the grace period; `peerdial up`.
//!
//! Real resolvers ask name servers on port 53 (NS records carry no port),
//! so these tests put each server on port 53 of its own loopback address
//! (127.6x.P.n, P from the test process id, so parallel runs do not meet).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use peerdial_sip::digest::Algorithm;

use common::top::{TopNode, TOKEN};

/// `peerdial top` on the given addresses; its ready line gives them back.
fn net(base: u8) -> String {
    format!("127.{base}.{}", std::process::id() % 250)
}

/// A region on port 53 of `ip`, joined to `top`.
fn region_at(dir: &Path, ip: &str, area: &str, top: SocketAddr) -> Region {
    let data = dir.join(format!("region-{area}"));
    let (sip, dns, httpa, topu) = (format!("{ip}:0"), format!("{ip}:53"), format!("{ip}:0"), format!("http://{top}"));
    Region::spawn(
        &[
            "region",
            "--area",
            area,
            "--data",
            data.to_str().unwrap(),
            "--sip",
            &sip,
            "--dns",
            &dns,
            "--http",
            &httpa,
            "--top",
            &topu,
            "--join-token",
            TOKEN,
        ],
        &data,
    )
}

/// A registered number in a region, from a raw SIP registration.
fn registered(r: &Region, mac: &str) -> (Device, Phone) {
    let d = provision(r.http, mac);
    let mut p = Phone::udp(r.sip);
    let (code, _) = p.register(&d, &d.password, Algorithm::Md5, 600);
    assert_eq!(code, 200);
    (d, p)
}

/// A recursive query (RD set), as a stub resolver sends it.
fn resolve(resolver: SocketAddr, name: &str) -> hickory_proto::op::Message {
    let mut q = hickory_proto::op::Message::new();
    q.set_id(9).set_recursion_desired(true);
    q.add_query(hickory_proto::op::Query::query(
        hickory_proto::rr::Name::from_ascii(name).unwrap(),
        RecordType::NAPTR,
    ));
    hickory_proto::op::Message::from_vec(&dns_raw(resolver, &q.to_vec().unwrap()).expect("an answer")).unwrap()
}

fn delegated(top: &TopNode, n: usize) -> bool {
    eventually(10, || {
        http(top.http, "GET", "/api/v1/regions", b"").1["regions"]
            .as_array()
            .map(|a| a.len())
            == Some(n)
    })
}

#[test]
fn unbound_walks_a_three_level_tree_to_numbers_in_two_regions() {
    let dir = tempfile::tempdir().unwrap();
    let n = net(61);
    let top = TopNode::start(&dir.path().join("top"), &format!("{n}.1:53"), &format!("{n}.1:0"), &[]);
    let top_url = format!("http://{}", top.http);
    // A country server for 886 below the top, by configuration.
    let country = TopNode::start(
        &dir.path().join("country"),
        &format!("{n}.2:53"),
        &format!("{n}.2:0"),
        &["--prefix", "886", "--parent", &top_url, "--parent-token", TOKEN],
    );
    let a = region_at(dir.path(), &format!("{n}.3"), "886-02", country.http);
    let b = region_at(dir.path(), &format!("{n}.4"), "886-03", country.http);
    assert!(delegated(&top, 1) && delegated(&country, 2));
    let (da, _pa) = registered(&a, "02:00:00:00:61:01");
    let (db, _pb) = registered(&b, "02:00:00:00:61:02");

    let unbound = Unbound::start(&[("peerdial.internal.", top.dns)]);
    for d in [&da, &db] {
        let m = resolve(unbound.addr, &enum_name(&d.user));
        assert_eq!(m.response_code(), ResponseCode::NoError, "{m:?}");
        // The phone's contact (order 10), not the mailbox (order 20).
        let uri = m.answers().iter().find_map(|r| match r.data() {
            RData::NAPTR(x) if x.order() == 10 => Some(String::from_utf8_lossy(x.regexp()).to_string()),
            _ => None,
        });
        let uri = uri.expect("a NAPTR");
        assert!(uri.starts_with(&format!("!^.*$!sip:{}@127.0.0.1:", d.user)), "{uri}");
    }
    // An unregistered number of a delegated area: NXDOMAIN, through unbound.
    let m = resolve(unbound.addr, &enum_name("8860299999999"));
    assert_eq!(m.response_code(), ResponseCode::NXDomain);

    // The directory: the top points to the country server, which names the region.
    let (s, j) = http(top.http, "GET", &format!("/api/v1/lookup/{}", da.user), b"");
    assert_eq!(
        (s, j["kind"].as_str(), j["area"].as_str()),
        (200, Some("country"), Some("886")),
        "{j}"
    );
    let (s, j) = http(country.http, "GET", &format!("/api/v1/lookup/{}", db.number), b"");
    assert_eq!(
        (s, j["area"].as_str(), j["dns"].as_str()),
        (200, Some("886-03"), Some(b.dns.to_string().as_str())),
        "{j}"
    );
    let (s, _) = http(country.http, "GET", "/api/v1/lookup/886-09", b"");
    assert_eq!(s, 404);
    let (s, _) = http(country.http, "GET", "/api/v1/lookup/not-a-number", b"");
    assert_eq!(s, 400);
}

#[test]
fn bad_joins_are_refused_with_a_reason_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let n = net(63);
    let country = TopNode::start(
        &dir.path().join("country"),
        &format!("{n}.1:53"),
        &format!("{n}.1:0"),
        &["--prefix", "886"],
    );
    let serial = || match dns_query(country.dns, "6.8.8.peerdial.internal.", RecordType::SOA).answers()[0].data() {
        RData::SOA(s) => s.serial(),
        _ => panic!("no SOA"),
    };
    let before = serial();
    let join = |area: &str, token: &str, dns: &str| format!(r#"{{"area":"{area}","token":"{token}","dns":"{dns}","http":"http://{dns}"}}"#);
    let cases = [
        (join("886-02", "wrong", "127.0.0.9:53"), 401, "wrong join token"),
        (join("001-02", TOKEN, "127.0.0.9:53"), 400, "outside the range"),
        (join("886", TOKEN, "127.0.0.9:53"), 400, "outside the range"),
        (join("886-2x", TOKEN, "127.0.0.9:53"), 400, "invalid area"),
        ("{not json".to_string(), 400, "invalid JSON"),
        (format!(r#"{{"area":"886-02","token":"{TOKEN}"}}"#), 400, "invalid JSON"),
    ];
    for (body, code, reason) in &cases {
        let (s, j) = country.join(body);
        assert_eq!(s, *code, "{body}: {j}");
        assert!(j["error"].as_str().unwrap().contains(reason), "{body}: {j}");
    }
    let (s, _) = http(country.http, "POST", "/api/v1/join", &vec![b'x'; 20_000]);
    assert_eq!(s, 413);
    assert_eq!(serial(), before, "refused joins changed the zone");
    assert_eq!(
        http(country.http, "GET", "/api/v1/regions", b"").1["regions"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // A good join, then the same area from another server: 409.
    let (s, j) = country.join(&join("886-02", TOKEN, "127.0.0.9:53"));
    assert_eq!(s, 200, "{j}");
    assert_eq!(j["zone"], "2.0.6.8.8.peerdial.internal.");
    let after = serial();
    assert!(after > before);
    let (s, j) = country.join(&join("886-02", TOKEN, "127.0.0.10:53"));
    assert_eq!(s, 409, "{j}");
    assert!(j["error"].as_str().unwrap().contains("already held"), "{j}");
    // The same server again is a heartbeat: fine, nothing changes.
    assert_eq!(country.join(&join("886-02", TOKEN, "127.0.0.9:53")).0, 200);
    assert_eq!(serial(), after);

    // At the top, a country and one of its areas cannot both be delegated.
    let top = TopNode::start(&dir.path().join("top"), &format!("{n}.2:53"), &format!("{n}.2:0"), &[]);
    assert_eq!(top.join(&join("886", TOKEN, "127.0.0.11:53")).0, 200);
    let (s, j) = top.join(&join("886-05", TOKEN, "127.0.0.12:53"));
    assert_eq!(s, 409, "{j}");

    // Push credentials that cannot work stop a top at start, with a reason
    // (not at the first call that needs them).
    let bad_key = dir.path().join("AuthKey.p8");
    std::fs::write(&bad_key, "not a key").unwrap();
    let data = dir.path().join("push-top");
    let key = bad_key.to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&["--apns-key", key, "--apns-key-id", "ABC123DEFG"], "go together"),
        (
            &["--apns-key", key, "--apns-key-id", "ABC123DEFG", "--apns-team", "DEF123GHIJ"],
            "not a PKCS#8 P-256 key",
        ),
        (&["--fcm-project", "p"], "go together"),
        (
            &["--fcm-project", "p", "--fcm-token-file", key, "--fcm-url", "http://fcm.example"],
            "https://",
        ),
    ];
    for (flags, why) in cases {
        let mut args = vec![
            "top",
            "--data",
            data.to_str().unwrap(),
            "--dns",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(flags);
        let (ok, out) = peerdial(&args);
        assert!(!ok && out.contains(why), "{flags:?}: {out}");
    }
}

#[test]
fn a_silent_region_is_undelegated_only_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let n = net(64);
    let top = TopNode::start(
        &dir.path().join("top"),
        &format!("{n}.1:53"),
        &format!("{n}.1:0"),
        &["--grace", "3"],
    );
    let r = region_at(dir.path(), &format!("{n}.2"), "886-02", top.http);
    assert!(delegated(&top, 1));
    let referral = || {
        let m = dns_query(top.dns, "8.7.6.5.4.3.2.1.2.0.6.8.8.peerdial.internal.", RecordType::NAPTR);
        m.name_servers().iter().any(|r| matches!(r.data(), RData::NS(_)))
    };
    assert!(referral());
    // Heartbeats keep it delegated past the grace period while it runs.
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert!(referral(), "a living region lost its delegation");
    let stopped = std::time::Instant::now();
    r.kill9();
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(referral(), "undelegated before the grace period");
    assert!(eventually(10, || !referral()), "still delegated long after the grace period");
    assert!(stopped.elapsed().as_secs() >= 3);
    // And the top remembers its children across a restart (here: none left).
    assert_eq!(
        http(top.http, "GET", "/api/v1/regions", b"").1["regions"].as_array().unwrap().len(),
        0
    );
}

#[test]
fn phones_call_across_regions_through_unbound_and_neighbours_by_short_number() {
    let dir = tempfile::tempdir().unwrap();
    let n = net(62);
    let top = TopNode::start(&dir.path().join("top"), &format!("{n}.1:53"), &format!("{n}.1:0"), &[]);
    let a = region_at(dir.path(), &format!("{n}.2"), "886-02", top.http);
    let b = region_at(dir.path(), &format!("{n}.3"), "886-03", top.http);
    assert!(delegated(&top, 2));
    let unbound = Unbound::start(&[("peerdial.internal.", top.dns)]);
    let mut callee_b = Softphone::start(
        &b,
        dir.path(),
        "02:00:00:00:62:01",
        unbound.addr,
        &["--auto-answer", "--answer-after", "0"],
    );
    let mut neighbour = Softphone::start(
        &a,
        dir.path(),
        "02:00:00:00:62:02",
        unbound.addr,
        &["--auto-answer", "--answer-after", "0"],
    );
    // Full number into the other area.
    let mut caller = dial(
        &a,
        dir.path(),
        "02:00:00:00:62:03",
        unbound.addr,
        &callee_b.number,
        &["--duration", "1"],
    );
    assert_eq!(caller.wait_exit(20), 0, "{:#?}", caller.lines());
    caller.expect_line(
        &format!("at sip:{}@127.0.0.1:{}", callee_b.number.replace('-', ""), callee_b.sip.port()),
        0,
    );
    callee_b.expect_line("incoming call from 886-02-", 1);
    // 8 digits: a neighbour in the caller's own area.
    let short = neighbour.number.rsplit('-').next().unwrap().to_string();
    let mut caller = dial(&a, dir.path(), "02:00:00:00:62:03", unbound.addr, &short, &["--duration", "1"]);
    assert_eq!(caller.wait_exit(20), 0, "{:#?}", caller.lines());
    caller.expect_line(&format!("dialing {}", neighbour.number), 0);
    neighbour.expect_line("incoming call from 886-02-", 1);
    callee_b.stop();
    neighbour.stop();
}

#[test]
fn peerdial_up_brings_up_a_network_that_phones_can_use() {
    // As root `up` puts its servers on 127.53.0.1-3, port 53; --high-ports
    // is what it does without root. The high-port network is run several
    // times on one data folder, as a user comes back to it.
    let dir = tempfile::tempdir().unwrap();
    up_and_call(&dir.path().join("up53"), &[]);
    let data = dir.path().join("up");
    let a_mac = up_and_call(&data, &["--high-ports"]);
    // Stopped and started again (after /tmp was cleaned, say): the printed
    // phone commands still work, their identities are in up's own folder.
    up_and_call(&data, &["--high-ports"]);

    // A phone whose identity is lost is told what happened and what to do;
    // the region's operator cannot release its MAC while the region runs.
    let up = start_up(&data, &["--high-ports"]);
    let mut lost = Softphone::spawn(&with_data(&up.phone_a, &dir.path().join("lost")), &[]);
    assert_ne!(lost.wait_exit(20), 0);
    let text = lost.lines().join("\n");
    assert!(text.contains(&format!("MAC {a_mac} already has a number")), "{text}");
    assert!(text.contains("--data") && text.contains("peerdial region release-mac"), "{text}");
    let region_a = data.join("region-886-02");
    let (ok, out) = peerdial(&["region", "release-mac", &a_mac, "--data", region_a.to_str().unwrap()]);
    assert!(!ok && out.contains("in use by a running region"), "{out}");
    up.stop();

    // Bad input changes nothing; then the MAC is freed for a new phone.
    let (ok, out) = peerdial(&["region", "release-mac", "02:zz:00:00:00:01", "--data", region_a.to_str().unwrap()]);
    assert!(!ok && out.contains("invalid MAC address"), "{out}");
    let (ok, out) = peerdial(&["region", "release-mac", "02:00:00:00:99:99", "--data", region_a.to_str().unwrap()]);
    assert!(!ok && out.contains("is not provisioned"), "{out}");
    let (ok, out) = peerdial(&["region", "release-mac", &a_mac, "--data", region_a.to_str().unwrap()]);
    assert!(ok && out.contains("it can be provisioned again"), "{out}");
    let (ok, out) = peerdial(&["region", "release-mac", &a_mac, "--data", region_a.to_str().unwrap()]);
    assert!(!ok && out.contains("is not provisioned"), "released once only: {out}");
    let up = start_up(&data, &["--high-ports"]);
    let fresh = Softphone::spawn(&with_data(&up.phone_a, &dir.path().join("new-a")), &[]);
    fresh.expect_line("registered", 10);
    drop(fresh);
    up.stop();

    // --fresh removes what up put in its folder, and nothing else.
    std::fs::write(data.join("keep-me.txt"), b"mine").unwrap();
    let up = start_up(&data, &["--high-ports", "--fresh"]);
    let said = up.child.lines().join("\n");
    assert!(said.contains("--fresh: removing") && said.contains("phones"), "{said}");
    assert_eq!(std::fs::read(data.join("keep-me.txt")).unwrap(), b"mine");
    assert!(!data.join("phones").exists());
    up.stop();
}

/// A running `peerdial up` and the two phone commands it printed.
struct Up {
    child: Softphone,
    phone_a: Vec<String>,
    phone_b: Vec<String>,
}

impl Up {
    /// Ctrl-C (SIGINT) shuts everything down cleanly.
    fn stop(mut self) {
        Command::new("kill")
            .args(["-INT", &self.child.child.id().to_string()])
            .status()
            .unwrap();
        assert_eq!(self.child.wait_exit(15), 0, "{:#?}", self.child.lines());
    }
}

fn start_up(data: &Path, flags: &[&str]) -> Up {
    let mut args = vec!["up", "--data", data.to_str().unwrap()];
    args.extend_from_slice(flags);
    let up = Softphone::spawn(&args, &[]);
    up.expect_line("Ctrl-C stops everything", 20);
    // The local push service it started answers where it said.
    let push = up.expect_line("peerdial up: push http://", 0);
    let push: std::net::SocketAddr = push
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(common::http(push, "GET", "/stats", b"").0, 200, "the push service of up");
    // The printed commands, exactly: `cargo run --release --` is this binary.
    let printed: Vec<Vec<String>> = up
        .lines()
        .iter()
        .filter_map(|l| l.trim().strip_prefix("cargo run --release -- phone "))
        .map(|rest| {
            std::iter::once("phone".to_string())
                .chain(rest.split_whitespace().map(String::from))
                .collect()
        })
        .collect();
    assert_eq!(printed.len(), 2, "{:#?}", up.lines());
    Up {
        phone_a: printed[0].clone(),
        phone_b: printed[1].clone(),
        child: up,
    }
}

fn with_data<'a>(cmd: &'a [String], data: &'a Path) -> Vec<&'a str> {
    let i = cmd.iter().position(|a| a == "--data").unwrap() + 1;
    cmd.iter()
        .enumerate()
        .map(|(j, a)| if j == i { data.to_str().unwrap() } else { a.as_str() })
        .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Runs `peerdial ARGS` to the end: success, and stdout + stderr.
fn peerdial(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_peerdial")).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Starts `up`, places a call across areas with the phone commands exactly
/// as printed (the callee answers from its keyboard, here stdin), stops it.
/// Returns the calling phone's MAC.
fn up_and_call(data: &Path, flags: &[&str]) -> String {
    let up = start_up(data, flags);
    let mut b = Softphone::spawn(&strs(&up.phone_b), &[]);
    b.expect_line("registered", 10);
    let mut call = strs(&up.phone_a);
    call.extend(["--duration", "1", "call", &b.number]);
    let mut a = Softphone::spawn(&call, &[]);
    b.expect_line("incoming call from 886-02-", 10);
    b.send("answer");
    assert_eq!(a.wait_exit(20), 0, "{:#?}", a.lines());
    // Plain text when the output is not a terminal: no colour escapes.
    for l in a.lines().iter().chain(b.lines().iter()).chain(up.child.lines().iter()) {
        assert!(!l.contains('\x1b'), "escape code in {l:?}");
    }
    drop(b);
    let mac = up.phone_a[up.phone_a.iter().position(|a| a == "--mac").unwrap() + 1].clone();
    up.stop();
    mac
}

#[test]
fn logs_are_plain_text_when_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_peerdial"))
        .args(["region", "--data", dir.path().to_str().unwrap()])
        .args(["--sip", "127.0.0.1:0", "--dns", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .env("PEERDIAL_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut ready).unwrap();
    assert!(ready.starts_with("peerdial region ready:"), "{ready}");
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("region started"), "{log}");
    assert!(!log.contains('\x1b'), "colour escapes in a piped log: {log:?}");
}
