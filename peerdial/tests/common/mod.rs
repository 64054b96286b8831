//! Test harness: starts the real `peerdial` binary on loopback port 0 and
//! talks to it over sockets, the way a phone or an operator's tool would.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};

pub mod baresip;
pub mod browser;
pub mod kamailio;
pub mod mailbox;
pub mod server;
mod sip_phone;
mod softphone;
pub mod tones;
pub mod top;
pub mod xterm;

// Each test binary uses a part of the harness.
#[allow(unused_imports)]
pub use sip_phone::{status, Phone};
#[allow(unused_imports)]
pub(crate) use softphone::phone_args;
#[allow(unused_imports)]
pub use softphone::{dial, dial_without_region, voicemail, Softphone};

/// The peers' configuration texts, shared with the benchmarks.
#[path = "../../src/peer_conf.rs"]
pub mod peer_conf;

pub const ZONE: &str = "2.0.6.8.8.peerdial.internal.";
pub const ZONE_03: &str = "3.0.6.8.8.peerdial.internal.";

/// The `peerdial` binary under test: cargo's, or `PEERDIAL_BIN` when set
/// (where several checkouts share one target directory, cargo's path is
/// relinked by whichever built last; `target/debug/deps/peerdial-<hash>`
/// is one checkout's own).
pub fn peerdial_bin() -> String {
    std::env::var("PEERDIAL_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_peerdial").to_string())
}

/// `peerdial ARGS` with `stdin`, which must succeed; its stdout.
pub fn run(args: &[&str], stdin: &str) -> String {
    let mut c = Command::new(peerdial_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success(), "peerdial {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

pub struct Region {
    pub child: Child,
    pub sip: SocketAddr,
    pub dns: SocketAddr,
    pub http: SocketAddr,
    /// The third-party call controller's SIP address (UDP).
    pub control: SocketAddr,
    pub data: PathBuf,
}

impl Region {
    /// Starts `peerdial region` with its data in `data` and any extra flags.
    pub fn start(data: &Path, extra: &[&str]) -> Region {
        let mut args = vec![
            "region",
            "--data",
            data.to_str().unwrap(),
            "--sip",
            "127.0.0.1:0",
            "--dns",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        Region::spawn(&args, data)
    }

    pub fn spawn(args: &[&str], data: &Path) -> Region {
        let mut child = Command::new(peerdial_bin())
            .args(args)
            .env("PEERDIAL_LOG", std::env::var("PEERDIAL_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start peerdial");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).expect("read ready line");
        assert!(line.starts_with("peerdial region ready:"), "unexpected first line: {line:?}");
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = out.read_to_end(&mut sink);
        });
        let field = |k: &str| -> SocketAddr {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{k}=")))
                .unwrap()
                .parse()
                .unwrap()
        };
        Region {
            sip: field("sip"),
            dns: field("dns"),
            http: field("http"),
            control: field("control"),
            child,
            data: data.to_path_buf(),
        }
    }

    /// kill -9: no chance to flush anything.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) {
        unsafe_kill(self.child.id() as i32, 15);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "region exited with {status}");
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_kill(pid: i32, sig: i32) {
    // The test depends on no libc crate: ask kill(1), by PID.
    Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().unwrap();
}

/// A minimal HTTP/1.1 client: one request per connection.
pub fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, serde_json::Value) {
    let resp = http_raw(addr, method, path, &[("Content-Type", "application/json")], body);
    parse_http(&resp)
}

/// A request's head (HTTP/1.1, one request per connection).
pub fn http_head(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> String {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// One request with any headers; the whole raw response.
pub fn http_raw(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(http_head(addr, method, path, headers, body).as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    resp
}

pub fn parse_http(resp: &[u8]) -> (u16, serde_json::Value) {
    let text = String::from_utf8_lossy(resp);
    let status: u16 = text.split_whitespace().nth(1).expect("status line").parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

pub struct Device {
    pub number: String,
    pub user: String,
    pub password: String,
    pub secret: String,
    pub realm: String,
}

pub fn provision(http_addr: SocketAddr, mac: &str) -> Device {
    let (status, j) = http(
        http_addr,
        "POST",
        "/api/v1/provision",
        format!(r#"{{"mac":"{mac}","ip":"127.0.0.1","number":"000-00-00000000"}}"#).as_bytes(),
    );
    assert_eq!(status, 200, "{j}");
    Device {
        number: j["number"].as_str().unwrap().into(),
        user: j["sip_username"].as_str().unwrap().into(),
        password: j["sip_password"].as_str().unwrap().into(),
        secret: j["device_secret"].as_str().unwrap().into(),
        realm: j["sip_realm"].as_str().unwrap().into(),
    }
}

/// The ENUM name of a 13-digit user part.
pub fn enum_name(digits: &str) -> String {
    let mut s: String = digits.chars().rev().flat_map(|c| [c, '.']).collect();
    s.push_str("peerdial.internal.");
    s
}

/// One DNS query over UDP; returns the parsed response.
pub fn dns_query(server: SocketAddr, name: &str, t: RecordType) -> Message {
    let mut q = Message::new();
    q.set_id(7).add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    dns_raw(server, &q.to_vec().unwrap())
        .map(|b| Message::from_vec(&b).unwrap())
        .expect("DNS answer")
}

pub fn dns_raw(server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.send_to(bytes, server).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}

pub fn dns_query_tcp(server: SocketAddr, name: &str, t: RecordType) -> Message {
    let mut q = Message::new();
    q.set_id(8).add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    let b = q.to_vec().unwrap();
    let mut s = TcpStream::connect(server).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(&(b.len() as u16).to_be_bytes()).unwrap();
    s.write_all(&b).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut resp = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut resp).unwrap();
    Message::from_vec(&resp).unwrap()
}

/// The phone's contact for `digits`: the SIP URI of the order-10 NAPTR
/// (design §9), if the zone has one (the phone is online).
pub fn naptr_uri(server: SocketAddr, digits: &str) -> Option<String> {
    naptr_set(server, digits)
        .into_iter()
        .find_map(|(order, uri)| (order == 10).then_some(uri))
}

/// Every NAPTR of `digits` as (order, SIP URI), lowest order first: what
/// a caller tries, in turn. Empty for NXDOMAIN.
pub fn naptr_set(server: SocketAddr, digits: &str) -> Vec<(u16, String)> {
    let m = dns_query(server, &enum_name(digits), RecordType::NAPTR);
    let mut set: Vec<(u16, String)> = m
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::NAPTR(n) => {
                let re = String::from_utf8_lossy(n.regexp()).to_string();
                Some((n.order(), re.trim_start_matches("!^.*$!").trim_end_matches('!').to_string()))
            }
            _ => None,
        })
        .collect();
    set.sort();
    set
}

/// The region's mailbox URI for `digits` (its order-20 NAPTR).
pub fn mailbox_uri(r: &Region, digits: &str) -> String {
    format!("sip:{digits}@{}", r.sip)
}

pub fn soa_serial(server: SocketAddr) -> u32 {
    let m = dns_query(server, ZONE, RecordType::SOA);
    match m.answers()[0].data() {
        RData::SOA(s) => s.serial(),
        _ => panic!("no SOA"),
    }
}

/// Polls `f` until it returns true or `secs` pass.
pub fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The path of a required third-party program; the test command installs
/// them all, so a missing one is a failure, not a skip.
pub fn require(tool: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain(["/usr/sbin", "/sbin"]) {
        let p = Path::new(dir).join(tool);
        if p.exists() {
            return p;
        }
    }
    panic!("{tool} is not installed: run the README's test command (scripts/test), which installs the test peers");
}

pub fn free_udp_port() -> u16 {
    // Bind port 0, read the port, release it: good enough on loopback.
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}

/// unbound as the "ISP resolver", with a stub zone for the area pointing at
/// the region's DNS port. Stopped by PID on drop.
pub struct Unbound {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Unbound {
    pub fn start(stubs: &[(&str, SocketAddr)]) -> Unbound {
        // The free port is free for UDP when asked; another test may take
        // it (or its TCP twin) before unbound binds: try again elsewhere.
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_udp_port();
            let conf = peer_conf::unbound(dir.path(), port, stubs, false);
            let path = dir.path().join("unbound.conf");
            std::fs::write(&path, conf).unwrap();
            let mut child = Command::new(require("unbound"))
                .args(["-d", "-c", path.to_str().unwrap()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap();
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            // Ready when it answers anything.
            let up = eventually(10, || {
                dns_raw(addr, &{
                    let mut q = Message::new();
                    q.set_id(1)
                        .add_query(Query::query(Name::from_ascii("localhost.").unwrap(), RecordType::A));
                    q.to_vec().unwrap()
                })
                .is_some()
                    || child.try_wait().unwrap().is_some()
            });
            if up && child.try_wait().unwrap().is_none() {
                return Unbound { child, addr, _dir: dir };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("unbound did not start (three ports tried)");
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// HTTP Basic credentials.
pub fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{user}:{password}"))
    )
}

/// The SIP credentials a phone keeps in its data folder.
pub fn phone_credentials(dir: &Path, mac: &str) -> (String, String) {
    let path = dir.join(format!("phone-{}", mac.replace(':', ""))).join("phone.json");
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    (
        j["sip_username"].as_str().unwrap().into(),
        j["sip_password"].as_str().unwrap().into(),
    )
}

/// A region started on a DNS port chosen beforehand (so the resolver can
/// know it before the region exists), asking that resolver for other areas.
pub fn region_with_resolver(data: &Path, area: &str, dns_port: u16, resolver: SocketAddr) -> Region {
    let dns = format!("127.0.0.1:{dns_port}");
    let resolver = resolver.to_string();
    Region::spawn(
        &[
            "region",
            "--data",
            data.to_str().unwrap(),
            "--area",
            area,
            "--sip",
            "127.0.0.1:0",
            "--dns",
            &dns,
            "--http",
            "127.0.0.1:0",
            "--resolver",
            &resolver,
        ],
        data,
    )
}

/// Two regions (886-02 and 886-03) whose DNS an Unbound resolver knows,
/// each asking that resolver for the other's records.
pub fn two_regions_with_resolver(dir: &Path) -> (Unbound, Region, Region) {
    let (pa, pb) = (free_udp_port(), free_udp_port());
    let unbound = Unbound::start(&[
        (ZONE, format!("127.0.0.1:{pa}").parse().unwrap()),
        (ZONE_03, format!("127.0.0.1:{pb}").parse().unwrap()),
    ]);
    let a = region_with_resolver(&dir.join("a"), "886-02", pa, unbound.addr);
    let b = region_with_resolver(&dir.join("b"), "886-03", pb, unbound.addr);
    (unbound, a, b)
}

/// A mu-law WAV of a sine at `freq` for `secs` seconds (sox), what SIPp's
/// `rtp_stream` plays.
pub fn ulaw_tone(path: &Path, freq: u32, secs: u32) {
    let st = Command::new(require("sox"))
        .args(["-n", "-r", "8000", "-c", "1", "-e", "u-law", path.to_str().unwrap(), "synth"])
        .args([secs.to_string(), "sine".into(), freq.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "sox could not make {}", path.display());
}

/// One SIPp call (`args` picks the scenario) from `dir` to `service` at
/// `target`, on free ports; panics with SIPp's output if it fails.
pub fn sipp_call(dir: &Path, args: &[&str], service: &str, target: SocketAddr) {
    let out = Command::new(require("sipp"))
        .current_dir(dir)
        .args(args)
        .args(["-m", "1", "-i", "127.0.0.1", "-p", &free_udp_port().to_string()])
        .args(["-cp", &free_udp_port().to_string(), "-mp", &free_udp_port().to_string()])
        .args(["-nostdin", "-timeout", "30s", "-timeout_error", "-s", service, &target.to_string()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sipp failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
