//! The region server as users see it: provisioning over HTTP, REGISTER over
//! UDP and TCP, and the number appearing in (and leaving) the DNS zone.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use peerdial_sip::digest::Algorithm;

#[test]
fn provisioning_by_mac_is_unique_and_guarded_by_the_device_secret() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let d = provision(r.http, "02:00:00:00:00:01");
    assert!(d.number.starts_with("886-02-"), "{}", d.number);
    assert_eq!(d.user, d.number.replace('-', ""));
    assert!(d.password.len() >= 16 && d.secret.len() >= 32);

    // Same MAC with its secret: same number, fresh password.
    let body = format!(r#"{{"mac":"02:00:00:00:00:01","secret":"{}","number":"{}"}}"#, d.secret, d.number);
    let (s, j) = http(r.http, "POST", "/api/v1/provision", body.as_bytes());
    assert_eq!(s, 200, "{j}");
    assert_eq!(j["number"], d.number.as_str());
    assert_ne!(j["sip_password"], d.password.as_str());
    assert_eq!(j["registrar"]["udp"], r.sip.to_string().as_str());
    assert_eq!(j["dns"], r.dns.to_string().as_str());

    // Same MAC without the secret, or a wrong one: refused.
    let (s, j) = http(r.http, "POST", "/api/v1/provision", br#"{"mac":"02:00:00:00:00:01"}"#);
    assert_eq!(s, 403);
    assert!(j["error"].as_str().unwrap().contains("device secret"), "{j}");
    let (s, _) = http(
        r.http,
        "POST",
        "/api/v1/provision",
        br#"{"mac":"02-00-00-00-00-01","secret":"nope"}"#,
    );
    assert_eq!(s, 403);

    // A phone may ask for a free number of this area.
    let (s, j) = http(
        r.http,
        "POST",
        "/api/v1/provision",
        br#"{"mac":"02:00:00:00:00:02","number":"886-02-12345678"}"#,
    );
    assert_eq!((s, j["number"].as_str().unwrap()), (200, "886-02-12345678"));
    let (s, j) = http(
        r.http,
        "POST",
        "/api/v1/provision",
        br#"{"mac":"02:00:00:00:00:03","number":"886-02-12345678"}"#,
    );
    assert_eq!(s, 200);
    assert_ne!(j["number"], "886-02-12345678", "a taken number is never handed out twice");

    let (_, status) = http(r.http, "GET", "/api/v1/region", b"");
    assert_eq!(status["provisioned"], 3);
}

#[test]
fn bad_provisioning_requests_get_clear_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let cases: &[(&[u8], u16, &str)] = &[
        (br#"{"mac":"zz:00:00:00:00:01"}"#, 400, "invalid MAC"),
        (br#"{"mac":"ff:ff:ff:ff:ff:ff"}"#, 400, "broadcast"),
        (br#"{"mac":"02:00:00:00:00:09","number":"886-02-1234"}"#, 400, "invalid number"),
        (
            br#"{"mac":"02:00:00:00:00:09","number":"886-03-12345678"}"#,
            400,
            "not in this region's area",
        ),
        (br#"{"mac":"02:00:00:00:00:09","ip":"300.1.1.1"}"#, 400, "invalid ip"),
        (br#"{"mac":"02:00:00:00:00:09""#, 400, "invalid JSON"),
        (br#"{"ip":"127.0.0.1"}"#, 400, "mac"),
        (b"", 400, "invalid JSON"),
    ];
    for (body, want, reason) in cases {
        let (s, j) = http(r.http, "POST", "/api/v1/provision", body);
        assert_eq!(s, *want, "{}: {j}", String::from_utf8_lossy(body));
        assert!(j["error"].as_str().unwrap_or_default().contains(reason), "{j}");
    }
    let big = format!(r#"{{"mac":"02:00:00:00:00:09","pad":"{}"}}"#, "x".repeat(100_000));
    let (s, j) = http(r.http, "POST", "/api/v1/provision", big.as_bytes());
    assert_eq!(s, 413);
    assert!(j["error"].as_str().unwrap().contains("too large"), "{j}");
    let (s, j) = http(r.http, "GET", "/api/v1/numbers/886-02-xx", b"");
    assert_eq!(s, 400, "{j}");
    let (_, status) = http(r.http, "GET", "/api/v1/region", b"");
    assert_eq!(status["provisioned"], 0, "nothing was stored");

    // The default challenge offers MD5 alone (what deployed phones handle).
    let mut phone = Phone::udp(r.sip);
    let req = phone.request("8860200000001", 600, None);
    phone.send_raw(&req);
    let ch = phone.recv().unwrap();
    let offered: Vec<&String> = ch.headers.iter().filter(|(n, _)| n == "WWW-Authenticate").map(|(_, v)| v).collect();
    assert_eq!(offered.len(), 1);
    assert!(offered[0].contains("algorithm=MD5"));

    // Wrong secrets are rate-limited per client address.
    provision(r.http, "02:00:00:00:00:0a");
    let mut last = 0;
    for _ in 0..12 {
        last = http(
            r.http,
            "POST",
            "/api/v1/provision",
            br#"{"mac":"02:00:00:00:00:0a","secret":"guess"}"#,
        )
        .0;
    }
    assert_eq!(last, 429);
}

#[test]
fn ten_thousand_concurrent_provisionings_get_distinct_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let addr = r.http;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let numbers: Vec<String> = rt.block_on(async move {
        let gate = Arc::new(tokio::sync::Semaphore::new(1000));
        let tasks: Vec<_> = (0..10_000u32)
            .map(|i| {
                let gate = gate.clone();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let _permit = gate.acquire().await.unwrap();
                    let body = format!(r#"{{"mac":"02:10:00:{:02x}:{:02x}:{:02x}"}}"#, i >> 16, (i >> 8) & 0xff, i & 0xff);
                    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                    let req = format!(
                        "POST /api/v1/provision HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    s.write_all(req.as_bytes()).await.unwrap();
                    let mut resp = Vec::new();
                    s.read_to_end(&mut resp).await.unwrap();
                    let (status, j) = parse_http(&resp);
                    assert_eq!(status, 200, "{j}");
                    j["number"].as_str().unwrap().to_string()
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let distinct: HashSet<&String> = numbers.iter().collect();
    assert_eq!(distinct.len(), 10_000);
    assert!(numbers.iter().all(|n| n.starts_with("886-02-")));
    // All of them survive a restart.
    r.stop();
    let r = Region::start(dir.path(), &[]);
    let (_, status) = http(r.http, "GET", "/api/v1/region", b"");
    assert_eq!(status["provisioned"], 10_000);
}

#[test]
fn register_publishes_moves_and_withdraws_the_naptr() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &["--min-expires", "1", "--digest", "sha-256,md5"]);
    // An unassigned number is NXDOMAIN with the SOA.
    let unassigned = dns_query(r.dns, &enum_name("8860299999999"), RecordType::NAPTR);
    assert_eq!(unassigned.response_code(), ResponseCode::NXDomain);
    assert_eq!(
        unassigned.name_servers()[0].record_type(),
        RecordType::SOA,
        "NXDOMAIN carries the SOA"
    );
    // A provisioned number always resolves: offline, to its mailbox alone.
    let d = provision(r.http, "02:00:00:00:00:01");
    let mailbox = mailbox_uri(&r, &d.user);
    assert_eq!(naptr_set(r.dns, &d.user), vec![(20, mailbox.clone())]);
    let serial0 = soa_serial(r.dns);

    for alg in [Algorithm::Sha256, Algorithm::Md5] {
        let mut phone = Phone::udp(r.sip);
        let (code, resp) = phone.register(&d, &d.password, alg, 600);
        assert_eq!(code, 200, "{alg:?}");
        assert!(resp.header("Contact").unwrap().contains("expires=600"));
        // Visible at once: the 200 OK is sent only after the zone has it.
        assert_eq!(
            naptr_uri(r.dns, &d.user),
            Some(format!("sip:{}@{}", d.user, phone.local())),
            "{alg:?}"
        );
    }
    let m = dns_query(r.dns, &enum_name(&d.user), RecordType::NAPTR);
    assert!(m.authoritative());
    assert_eq!(m.answers()[0].ttl(), 60);
    assert_eq!(dns_query_tcp(r.dns, &enum_name(&d.user), RecordType::NAPTR).answers().len(), 2);
    assert_eq!(
        naptr_set(r.dns, &d.user)[1],
        (20, mailbox.clone()),
        "online: the mailbox after the phone"
    );
    assert!(soa_serial(r.dns) > serial0, "serial bumped");

    // Unregister: the phone's record goes, the mailbox stays.
    let mut phone = Phone::udp(r.sip);
    let (code, _) = phone.register(&d, &d.password, Algorithm::Md5, 0);
    assert_eq!(code, 200);
    assert_eq!(naptr_set(r.dns, &d.user), vec![(20, mailbox.clone())]);

    // A short registration expires by itself.
    let (code, _) = phone.register(&d, &d.password, Algorithm::Md5, 2);
    assert_eq!(code, 200);
    assert!(naptr_uri(r.dns, &d.user).is_some());
    assert!(eventually(5, || naptr_uri(r.dns, &d.user).is_none()), "stale binding expired");
    assert_eq!(naptr_set(r.dns, &d.user), vec![(20, mailbox)], "expired: the mailbox answers");
}

#[test]
fn register_over_tcp_publishes_a_tcp_contact() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &["--digest", "sha-256"]);
    let d = provision(r.http, "02:00:00:00:00:01");
    let mut phone = Phone::tcp(r.sip);
    let (code, _) = phone.register(&d, &d.password, Algorithm::Sha256, 300);
    assert_eq!(code, 200);
    let port = phone.local().port();
    // The Contact names the phone's own address; over TCP the source port
    // is ephemeral, so the published port is the Contact's.
    assert_eq!(
        naptr_uri(r.dns, &d.user),
        Some(format!("sip:{}@127.0.0.1:{port};transport=tcp", d.user))
    );
}

#[test]
fn binding_follows_the_real_source_address() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let d = provision(r.http, "02:00:00:00:00:01");
    let mut phone = Phone::udp_on(r.sip, "127.0.0.2:0");
    // The Contact claims an address the request did not come from.
    let req = String::from_utf8(phone.request(&d.user, 600, None)).unwrap();
    let lying = req.replace(
        &format!("Contact: <sip:{}@{}>", d.user, phone.local()),
        &format!("Contact: <sip:{}@192.0.2.99:5060>", d.user),
    );
    phone.send_raw(lying.as_bytes());
    let challenge = phone.recv().unwrap();
    assert_eq!(status(&challenge), 401);
    let (code, resp) = phone.register(&d, &d.password, Algorithm::Md5, 600);
    assert_eq!(code, 200);
    let via = resp.header("Via").unwrap();
    assert!(via.contains(&format!("rport={}", phone.local().port())), "{via}");
    assert_eq!(naptr_uri(r.dns, &d.user), Some(format!("sip:{}@{}", d.user, phone.local())));
    // A new address (the phone's IP changed) replaces the old one.
    let mut moved = Phone::udp_on(r.sip, "127.0.0.3:0");
    assert_eq!(moved.register(&d, &d.password, Algorithm::Md5, 600).0, 200);
    assert_eq!(naptr_uri(r.dns, &d.user), Some(format!("sip:{}@{}", d.user, moved.local())));
}

#[test]
fn wrong_passwords_are_refused_then_rate_limited_and_publish_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let d = provision(r.http, "02:00:00:00:00:01");
    let mut phone = Phone::udp(r.sip);
    let serial = soa_serial(r.dns);
    for _ in 0..5 {
        assert_eq!(phone.register(&d, "wrong", Algorithm::Md5, 600).0, 403);
    }
    let req = phone.request(&d.user, 600, None);
    phone.send_raw(&req);
    let limited = phone.recv().unwrap();
    assert_eq!(status(&limited), 403);
    assert!(limited.header("Retry-After").is_some());
    assert_eq!(naptr_uri(r.dns, &d.user), None);
    assert_eq!(soa_serial(r.dns), serial, "nothing changed");
}

#[test]
fn malformed_sip_and_dns_get_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let d = provision(r.http, "02:00:00:00:00:01");
    let serial = soa_serial(r.dns);
    let mut phone = Phone::udp(r.sip);
    let local = phone.local();
    // Missing CSeq: 400 naming the problem.
    phone.send_raw(format!("REGISTER sip:x SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: 1\r\nContent-Length: 0\r\n\r\n").as_bytes());
    let m = phone.recv().unwrap();
    assert_eq!(status(&m), 400);
    // Unparseable junk and an oversize datagram: dropped, no answer.
    phone.send_raw(b"\x16\x03\x01 definitely not SIP");
    phone.send_raw(&vec![b'A'; 20_000]);
    phone
        .udp
        .as_ref()
        .unwrap()
        .set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    assert!(phone.recv().is_none());
    // OPTIONS is answered, so the registrar is alive and well.
    phone.send_raw(format!("OPTIONS sip:{} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK2\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: 2\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", r.sip).as_bytes());
    let m = phone.recv().unwrap();
    assert_eq!(status(&m), 200);
    assert!(m.header("Allow").unwrap().contains("REGISTER"));
    // A bad Contact on an authenticated REGISTER: 400, no binding.
    phone
        .udp
        .as_ref()
        .unwrap()
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let (code, _) = {
        let req = String::from_utf8(phone.request(&d.user, 600, None)).unwrap();
        phone.send_raw(req.as_bytes());
        let ch = phone.recv().unwrap();
        let auth = phone.answer(&ch, &d, &d.password, Algorithm::Md5);
        let req = String::from_utf8(phone.request(&d.user, 600, Some(auth))).unwrap();
        let bad = req.replace(&format!("Contact: <sip:{}@{}>", d.user, local), "Contact: <mailto:x>");
        phone.send_raw(bad.as_bytes());
        let m = phone.recv().unwrap();
        (status(&m), m)
    };
    assert_eq!(code, 400);
    assert_eq!(naptr_uri(r.dns, &d.user), None);

    // DNS: junk after a header gets FORMERR with the query's ID.
    let mut junk = vec![0xbe, 0xef, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    junk.extend_from_slice(&[0xc0, 0xff, 0xee]);
    let resp = dns_raw(r.dns, &junk).expect("FORMERR answer");
    assert_eq!((&resp[..2], resp[3] & 0x0f), (&[0xbe, 0xef][..], 1));
    // Outside the zone: REFUSED; the apex: SOA, NS, SRV for SIP and the API.
    assert_eq!(
        dns_query(r.dns, "example.com.", RecordType::A).response_code(),
        ResponseCode::Refused
    );
    let ns = dns_query(r.dns, ZONE, RecordType::NS);
    assert_eq!(ns.answers().len(), 1);
    for (name, port) in [
        ("_sip._udp.", r.sip.port()),
        ("_sip._tcp.", r.sip.port()),
        ("_peerdial._tcp.", r.http.port()),
    ] {
        let m = dns_query(r.dns, &format!("{name}{ZONE}"), RecordType::SRV);
        match m.answers()[0].data() {
            hickory_proto::rr::RData::SRV(s) => assert_eq!(s.port(), port, "{name}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(soa_serial(r.dns), serial, "bad input changed nothing");
}

#[test]
fn acknowledged_registrations_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let devices: Vec<Device> = (0..800u32)
        .map(|i| provision(r.http, &format!("02:20:00:00:{:02x}:{:02x}", i >> 8, i & 0xff)))
        .collect();
    let devices = Arc::new(devices);
    let sip = r.sip;
    // Register from several threads; kill the region part-way through.
    let acked = Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let devices = devices.clone();
            let acked = acked.clone();
            std::thread::spawn(move || {
                for d in devices.iter().skip(w).step_by(4) {
                    let mut phone = Phone::udp(sip);
                    phone
                        .udp
                        .as_ref()
                        .unwrap()
                        .set_read_timeout(Some(std::time::Duration::from_secs(1)))
                        .unwrap();
                    let req = phone.request(&d.user, 600, None);
                    phone.send_raw(&req);
                    let Some(ch) = phone.recv() else { return };
                    let auth = phone.answer(&ch, d, &d.password, Algorithm::Md5);
                    let req = phone.request(&d.user, 600, Some(auth));
                    phone.send_raw(&req);
                    match phone.recv() {
                        Some(m) if status(&m) == 200 => acked
                            .lock()
                            .unwrap()
                            .push((d.user.clone(), format!("sip:{}@{}", d.user, phone.local()))),
                        _ => return,
                    }
                }
            })
        })
        .collect();
    assert!(eventually(30, || acked.lock().unwrap().len() >= 60));
    r.kill9();
    for w in workers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 60 && acked.len() < 800,
        "the kill landed mid-load ({} acked)",
        acked.len()
    );
    let r = Region::start(dir.path(), &[]);
    for (user, uri) in &acked {
        assert_eq!(naptr_uri(r.dns, user).as_ref(), Some(uri), "acknowledged binding of {user} lost");
    }
}

#[test]
fn config_file_sets_options_and_rejects_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("region.toml");
    std::fs::write(
        &cfg,
        "area = \"886-03\"\nttl = 17\nsip = \"127.0.0.1:0\"\ndns = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\n\
         mailbox-max-messages = 50\nmailbox-max-bytes = 20000000\nmailbox-retention-days = 7\n",
    )
    .unwrap();
    let data = dir.path().join("d");
    let r = Region::spawn(
        &["region", "--config", cfg.to_str().unwrap(), "--data", data.to_str().unwrap()],
        &data,
    );
    let d = provision(r.http, "02:00:00:00:00:01");
    assert!(d.number.starts_with("886-03-"));
    let mut phone = Phone::udp(r.sip);
    assert_eq!(phone.register(&d, &d.password, Algorithm::Md5, 600).0, 200);
    let m = dns_query(r.dns, &enum_name(&d.user), RecordType::NAPTR);
    assert_eq!(m.answers()[0].ttl(), 17);

    std::fs::write(&cfg, "area = \"886-03\"\nbogus = 1\n").unwrap();
    let out = std::process::Command::new(peerdial_bin())
        .args(["region", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bogus"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A quota that could hold nothing is refused, naming the flag.
    std::fs::write(&cfg, "mailbox-max-bytes = 1000\n").unwrap();
    for (flags, why) in [
        (
            &["--mailbox-max-message", "2000"][..],
            "--mailbox-max-message (2000) must be at least 1 and at most --mailbox-max-bytes (1000)",
        ),
        (
            &["--mailbox-max-message", "500", "--mailbox-retention-days", "0"],
            "--mailbox-retention-days must be between 1 and 3650",
        ),
    ] {
        let out = std::process::Command::new(peerdial_bin())
            .args(["region", "--config", cfg.to_str().unwrap()])
            .args(flags)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(why), "{err}");
    }
    let out = std::process::Command::new(peerdial_bin())
        .args(["region", "--area", "88-02"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid area"));
}

#[test]
fn the_region_runs_on_postgresql() {
    let Ok(admin) = std::env::var("PEERDIAL_TEST_POSTGRES") else {
        assert!(
            std::env::var("PEERDIAL_REQUIRE_POSTGRES").is_err(),
            "PEERDIAL_TEST_POSTGRES is not set"
        );
        eprintln!("PEERDIAL_TEST_POSTGRES not set: skipped (the test command sets it)");
        return;
    };
    let db = format!("peerdial_region_{}", std::process::id());
    let out = std::process::Command::new("psql")
        .args([admin.as_str(), "-c", &format!("CREATE DATABASE {db}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let url = format!("{}/{db}", admin.rsplit_once('/').unwrap().0);
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &["--database", &url, "--digest", "sha-256,md5"]);
    let d = provision(r.http, "02:00:00:00:00:01");
    let mut phone = Phone::udp(r.sip);
    assert_eq!(phone.register(&d, &d.password, Algorithm::Sha256, 600).0, 200);
    let uri = naptr_uri(r.dns, &d.user).unwrap();
    r.kill9();
    // A fresh process (new data folder, same database) knows the device and binding.
    let dir2 = tempfile::tempdir().unwrap();
    let r = Region::start(dir2.path(), &["--database", &url]);
    assert_eq!(naptr_uri(r.dns, &d.user), Some(uri));
    let body = format!(r#"{{"mac":"02:00:00:00:00:01","secret":"{}"}}"#, d.secret);
    let (s, j) = http(r.http, "POST", "/api/v1/provision", body.as_bytes());
    assert_eq!((s, j["number"].as_str().unwrap()), (200, d.number.as_str()));
}
