//! Standard secondaries fed by a region: NSD, BIND and Knot each transfer
//! the area zone (AXFR, then IXFR after NOTIFY, all with TSIG), answer each
//! new registration (how fast: `peerdial bench propagation`), and keep answering — and calls keep
//! connecting — while the region is down.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use peerdial_dns::tsig;
use peerdial_sip::digest::Algorithm;

const SECRET: &str = "cGVlcmRpYWwtdGVzdC10c2lnLXNlY3JldC0zMmJ5dGVz";

struct Daemon {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    /// Where its stderr (and, for NSD, its log file) goes: shown when it fails us.
    dir: PathBuf,
}

impl Daemon {
    /// Every `*.log` the daemon wrote, for a failing assertion's message.
    fn logs(&self) -> String {
        let mut out = String::new();
        for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            if e.path().extension().is_some_and(|x| x == "log") {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                out += &format!("--- {}\n{text}", e.path().display());
            }
        }
        out
    }
}

/// How long a secondary may take for its first full transfer. NSD retries
/// a zone it does not have yet after 10 to 20 s (its xfrd's empty-zone
/// back-off), so one failed first attempt on a loaded machine needs more
/// than that; a passing run waits only as long as the transfer takes.
const FIRST_TRANSFER_SECS: u64 = 45;

impl Drop for Daemon {
    fn drop(&mut self) {
        // By PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(name: &'static str, cmd: &mut Command, addr: SocketAddr, dir: &Path) -> Daemon {
    let stderr = std::fs::File::create(dir.join("stderr.log")).unwrap();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    Daemon {
        name,
        child,
        addr,
        dir: dir.to_path_buf(),
    }
}

/// A secondary of the area zone (config shared with `peerdial bench`).
fn secondary(name: &'static str, which: &str, dir: &Path, port: u16, primary: SocketAddr) -> Daemon {
    let d = dir.join(which);
    std::fs::create_dir_all(&d).unwrap();
    let (prog, args, conf) = peer_conf::secondary(which, &d, port, primary, ZONE, SECRET);
    let path = d.join("server.conf");
    std::fs::write(&path, conf).unwrap();
    spawn(
        name,
        Command::new(require(prog)).args(args).arg(&path),
        SocketAddr::from(([127, 0, 0, 1], port)),
        &d,
    )
}

fn nsd(dir: &Path, port: u16, primary: SocketAddr) -> Daemon {
    secondary("NSD", "nsd", dir, port, primary)
}

fn bind(dir: &Path, port: u16, primary: SocketAddr) -> Daemon {
    secondary("BIND", "bind", dir, port, primary)
}

fn knot(dir: &Path, port: u16, primary: SocketAddr) -> Daemon {
    secondary("Knot", "knot", dir, port, primary)
}

fn serial_at(server: SocketAddr) -> Option<u32> {
    let mut q = Message::new();
    q.set_id(3)
        .add_query(Query::query(Name::from_ascii(ZONE).unwrap(), RecordType::SOA));
    let m = Message::from_vec(&dns_raw(server, &q.to_vec().unwrap())?).ok()?;
    m.answers().iter().find_map(|r| match r.data() {
        RData::SOA(s) => Some(s.serial()),
        _ => None,
    })
}

fn key() -> peerdial_dns::TsigKey {
    peerdial_dns::TsigKey::parse(&format!("xfr:{SECRET}")).unwrap()
}

fn region_with_secondaries(dir: &Path, ports: &[u16]) -> Region {
    let dns = format!("127.0.0.1:{}", free_udp_port());
    let secondaries: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let (k, s) = (format!("hmac-sha256:xfr:{SECRET}"), secondaries.join(","));
    let data = dir.join("region");
    Region::spawn(
        &[
            "region",
            "--data",
            data.to_str().unwrap(),
            "--sip",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--dns",
            &dns,
            "--tsig-key",
            &k,
            "--secondary",
            &s,
        ],
        &data,
    )
}

/// One transfer request over TCP, signed with `key` (or not); the answers.
fn transfer(server: SocketAddr, t: RecordType, serial: Option<u32>, key: Option<&peerdial_dns::TsigKey>) -> Vec<Vec<u8>> {
    use std::io::{Read, Write};
    let mut m = Message::new();
    m.set_id(77).add_query(Query::query(Name::from_ascii(ZONE).unwrap(), t));
    if let Some(s) = serial {
        m.add_name_server(Record::from_rdata(
            Name::from_ascii(ZONE).unwrap(),
            0,
            RData::SOA(SOA::new(Name::root(), Name::root(), s, 0, 0, 0, 0)),
        ));
    }
    let mut wire = m.to_vec().unwrap();
    if let Some(k) = key {
        wire = tsig::sign_request(
            wire,
            k,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        )
        .0;
    }
    let mut s = std::net::TcpStream::connect(server).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(&(wire.len() as u16).to_be_bytes()).unwrap();
    s.write_all(&wire).unwrap();
    let mut out = Vec::new();
    loop {
        let mut len = [0u8; 2];
        if s.read_exact(&mut len).is_err() {
            break;
        }
        let mut b = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut b).unwrap();
        let failed = b[3] & 0x0f != 0;
        out.push(b);
        let answers: Vec<Record> = out
            .iter()
            .flat_map(|m| Message::from_vec(m).map(|m| m.answers().to_vec()).unwrap_or_default())
            .collect();
        let soas = answers.iter().filter(|r| r.record_type() == RecordType::SOA).count();
        // Done: an error, a lone SOA (IXFR: up to date), or AXFR's closing SOA.
        if failed || answers.len() == 1 || (t == RecordType::AXFR && soas >= 2) {
            break;
        }
    }
    out
}

#[test]
fn nsd_bind_and_knot_follow_the_region() {
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_udp_port(), free_udp_port(), free_udp_port()];
    let r = region_with_secondaries(dir.path(), &ports);
    let d1 = provision(r.http, "02:00:00:00:5e:01");
    let mut p1 = Phone::udp(r.sip);
    assert_eq!(p1.register(&d1, &d1.password, Algorithm::Md5, 600).0, 200);
    let daemons = [
        nsd(dir.path(), ports[0], r.dns),
        bind(dir.path(), ports[1], r.dns),
        knot(dir.path(), ports[2], r.dns),
    ];
    // The first full transfer.
    let serial = soa_serial(r.dns);
    for d in &daemons {
        assert!(
            eventually(FIRST_TRANSFER_SECS, || serial_at(d.addr) == Some(serial)),
            "{} did not load the zone (serial {:?})\n{}",
            d.name,
            serial_at(d.addr),
            d.logs()
        );
        assert_eq!(naptr_uri(d.addr, &d1.user), naptr_uri(r.dns, &d1.user), "{}", d.name);
    }
    // A new registration: NOTIFY, IXFR, and every secondary answers it
    // (how fast is measured by `peerdial bench propagation`, not here).
    for round in 0..3 {
        let d = provision(r.http, &format!("02:00:00:00:5e:1{round}"));
        let mut p = Phone::udp(r.sip);
        assert_eq!(p.register(&d, &d.password, Algorithm::Md5, 600).0, 200);
        let want = naptr_uri(r.dns, &d.user).unwrap();
        for s in &daemons {
            let seen = eventually(10, || naptr_uri(s.addr, &d.user).as_deref() == Some(want.as_str()));
            assert!(seen, "round {round}: {} never answered the new number\n{}", s.name, s.logs());
        }
    }
}

#[test]
fn transfers_need_a_good_signature() {
    let dir = tempfile::tempdir().unwrap();
    let r = region_with_secondaries(dir.path(), &[free_udp_port()]);
    let d = provision(r.http, "02:00:00:00:5f:01");
    let mut p = Phone::udp(r.sip);
    assert_eq!(p.register(&d, &d.password, Algorithm::Md5, 600).0, 200);
    let rcode = |msgs: &[Vec<u8>]| msgs[0][3] & 0x0f;
    // Signed with the right key: the zone, in signed messages.
    let good = transfer(r.dns, RecordType::AXFR, None, Some(&key()));
    assert_eq!(rcode(&good), 0);
    assert!(good.iter().all(|m| tsig::find(m).unwrap().is_some()));
    let records: usize = good.iter().map(|m| Message::from_vec(m).unwrap().answers().len()).sum();
    assert_eq!(
        records,
        1 + 8 + 2 + 1,
        "SOA, apex records (the identity key's TXT among them), the number's two NAPTRs (phone, mailbox), SOA"
    );
    // Unsigned: REFUSED. Unknown key or wrong secret: NOTAUTH, no records.
    assert_eq!(rcode(&transfer(r.dns, RecordType::AXFR, None, None)), ResponseCode::Refused.low());
    let stranger = peerdial_dns::TsigKey::parse(&format!("stranger:{SECRET}")).unwrap();
    let forged = peerdial_dns::TsigKey::parse("xfr:d3Jvbmd3cm9uZ3dyb25nd3Jvbmd3cm9uZw==").unwrap();
    for k in [stranger, forged] {
        let msgs = transfer(r.dns, RecordType::AXFR, None, Some(&k));
        assert_eq!(msgs.len(), 1);
        assert_eq!(rcode(&msgs), 9, "NOTAUTH");
        assert_eq!(u16::from_be_bytes([msgs[0][6], msgs[0][7]]), 0, "no answers");
    }
    // IXFR without the client's SOA is malformed: FORMERR.
    assert_eq!(
        rcode(&transfer(r.dns, RecordType::IXFR, None, Some(&key()))),
        ResponseCode::FormErr.low()
    );
    // IXFR from the current serial: just the SOA.
    let now = soa_serial(r.dns);
    let up_to_date = transfer(r.dns, RecordType::IXFR, Some(now), Some(&key()));
    assert_eq!(Message::from_vec(&up_to_date[0]).unwrap().answers().len(), 1);
    // dig, as an operator would run it, with the key.
    let out = Command::new(require("dig"))
        .args([
            &format!("@{}", r.dns.ip()),
            "-p",
            &r.dns.port().to_string(),
            "-y",
            &format!("hmac-sha256:xfr:{SECRET}"),
            ZONE,
            "AXFR",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("NAPTR") && !text.contains("failed"), "{text}");
}

#[test]
fn with_the_region_down_its_secondary_answers_and_calls_connect() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let r = region_with_secondaries(dir.path(), &[port]);
    let secondary = nsd(dir.path(), port, r.dns);
    // The resolver knows the area only by its secondary.
    let unbound = Unbound::start(&[(ZONE, secondary.addr)]);
    let mut callee = Softphone::start(
        &r,
        dir.path(),
        "02:00:00:00:5d:01",
        unbound.addr,
        &["--auto-answer", "--answer-after", "0"],
    );
    // The caller provisions (and learns its number) while the region is up.
    let mut caller = Softphone::start(&r, dir.path(), "02:00:00:00:5d:02", unbound.addr, &[]);
    caller.stop();
    let want = naptr_uri(r.dns, &callee.number.replace('-', "")).unwrap();
    assert!(
        eventually(FIRST_TRANSFER_SECS, || naptr_uri(secondary.addr, &callee.number.replace('-', ""))
            .as_deref()
            == Some(want.as_str())),
        "NSD never answered the callee\n{}",
        secondary.logs()
    );
    r.kill9();
    // The secondary still answers, and a new call connects through it.
    assert_eq!(
        naptr_uri(secondary.addr, &callee.number.replace('-', "")).as_deref(),
        Some(want.as_str())
    );
    let mut call = dial_without_region(dir.path(), "02:00:00:00:5d:02", unbound.addr, &callee.number, &["--duration", "1"]);
    assert_eq!(call.wait_exit(20), 0, "{:#?}", call.lines());
    callee.expect_line("incoming call from", 1);
    callee.stop();
}

const PRIMARY_ZONE: &str = "$TTL 60\n@ IN SOA ns hostmaster 1 3600 600 604800 30\n@ IN NS ns\nns IN A 127.0.0.1\n";

fn bind_primary(dir: &Path, port: u16) -> Daemon {
    let d = dir.join("bind-primary");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("primary.db"), PRIMARY_ZONE).unwrap();
    let conf = d.join("named.conf");
    std::fs::write(
        &conf,
        format!(
            "options {{ directory \"{d}\"; listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }}; pid-file \"{d}/named.pid\";\n\
             recursion no; notify no; dnssec-validation no; session-keyfile \"{d}/session.key\"; managed-keys-directory \"{d}\"; }};\n\
             controls {{ }};\n\
             key \"xfr\" {{ algorithm hmac-sha256; secret \"{SECRET}\"; }};\n\
             zone \"{ZONE}\" {{ type primary; file \"{d}/primary.db\"; allow-update {{ key xfr; }}; }};\n",
            d = d.display()
        ),
    )
    .unwrap();
    spawn(
        "BIND",
        Command::new(require("named")).args(["-g", "-c", conf.to_str().unwrap()]),
        SocketAddr::from(([127, 0, 0, 1], port)),
        &d,
    )
}

fn knot_primary(dir: &Path, port: u16) -> Daemon {
    let d = dir.join("knot-primary");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("primary.zone"), PRIMARY_ZONE).unwrap();
    let conf = d.join("knot.conf");
    std::fs::write(
        &conf,
        format!(
            "server:\n  rundir: \"{d}\"\n  listen: 127.0.0.1@{port}\n\
             control:\n  listen: \"{d}/knot.sock\"\n\
             database:\n  storage: \"{d}\"\n\
             key:\n  - id: xfr\n    algorithm: hmac-sha256\n    secret: {SECRET}\n\
             acl:\n  - id: update\n    address: 127.0.0.1\n    key: xfr\n    action: update\n\
             zone:\n  - domain: {ZONE}\n    storage: \"{d}\"\n    file: \"primary.zone\"\n    acl: update\n",
            d = d.display()
        ),
    )
    .unwrap();
    spawn(
        "Knot",
        Command::new(require("knotd")).args(["-c", conf.to_str().unwrap()]),
        SocketAddr::from(([127, 0, 0, 1], port)),
        &d,
    )
}

#[test]
fn a_region_publishes_by_signed_update_to_bind_and_knot_primaries() {
    for (which, start) in [("BIND", bind_primary as fn(&Path, u16) -> Daemon), ("Knot", knot_primary)] {
        let dir = tempfile::tempdir().unwrap();
        let port = free_udp_port();
        let primary = start(dir.path(), port);
        assert!(eventually(10, || serial_at(primary.addr).is_some()), "{which} did not start");
        let data = dir.path().join("region");
        let (k, p) = (format!("xfr:{SECRET}"), primary.addr.to_string());
        let r = Region::start(&data, &["--tsig-key", &k, "--update-primary", &p]);
        let d = provision(r.http, "02:00:00:00:6a:01");
        let mut phone = Phone::udp(r.sip);
        assert_eq!(phone.register(&d, &d.password, Algorithm::Md5, 600).0, 200);
        let want = naptr_uri(r.dns, &d.user).unwrap();
        assert!(
            eventually(5, || naptr_uri(primary.addr, &d.user).as_deref() == Some(want.as_str())),
            "{which} never got the NAPTR: {:?}",
            naptr_uri(primary.addr, &d.user)
        );
        // Unregistering removes it there too.
        assert_eq!(phone.register(&d, &d.password, Algorithm::Md5, 0).0, 200);
        assert!(
            eventually(5, || naptr_uri(primary.addr, &d.user).is_none()),
            "{which} kept the NAPTR"
        );
        assert_eq!(
            naptr_set(primary.addr, &d.user),
            vec![(20, mailbox_uri(&r, &d.user))],
            "{which}: the mailbox record stays"
        );
        // A region with the wrong key changes nothing at the primary.
        let data2 = dir.path().join("region2");
        let bad = "xfr:d3Jvbmd3cm9uZ3dyb25nd3Jvbmd3cm9uZw==".to_string();
        let r2 = Region::start(&data2, &["--area", "886-02", "--tsig-key", &bad, "--update-primary", &p]);
        let d2 = provision(r2.http, "02:00:00:00:6a:02");
        let mut phone2 = Phone::udp(r2.sip);
        assert_eq!(phone2.register(&d2, &d2.password, Algorithm::Md5, 600).0, 200);
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(
            naptr_uri(primary.addr, &d2.user),
            None,
            "{which} took an update with a bad signature"
        );
    }
}
