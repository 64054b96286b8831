//! Interop with real third-party programs (../shared/peers.md): sipsak,
//! SIPp and baresip register with the region; `dig` reads the zone.

mod common;

use std::process::{Command, Stdio};

use common::*;

/// `dig … NAPTR +short` for a 13-digit user, as an operator would run it.
fn dig_naptr(r: &Region, user: &str) -> String {
    let out = Command::new(require("dig"))
        .args([
            &format!("@{}", r.dns.ip()),
            "-p",
            &r.dns.port().to_string(),
            &enum_name(user),
            "NAPTR",
            "+norec",
            "+time=2",
            "+tries=1",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn sipsak_registers_with_digest_and_dig_sees_the_naptr() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let d = provision(r.http, "02:00:00:00:00:01");
    let target = format!("sip:{}@{}", d.user, r.sip);
    let sipsak = |password: &str| {
        let out = Command::new(require("sipsak"))
            .args(["-U", "-s", &target, "-u", &d.user, "-a", password, "-x", "600", "-l", "0", "-vvv"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    // Wrong password: 403, and nothing published.
    let (ok, text) = sipsak("not-the-password");
    assert!(!ok, "{text}");
    assert!(text.contains("SIP/2.0 403"), "{text}");
    let answer = dig_naptr(&r, &d.user);
    assert!(answer.contains("status: NXDOMAIN"), "{answer}");

    // Right password: registered, and dig finds the number's address.
    let (ok, text) = sipsak(&d.password);
    assert!(ok && text.contains("SIP/2.0 200"), "{text}");
    let answer = dig_naptr(&r, &d.user);
    assert!(answer.contains("flags: qr aa"), "authoritative answer: {answer}");
    assert!(
        answer.contains("\"E2U+sip\"") && answer.contains(&format!("!^.*$!sip:{}@127.0.0.1:", d.user)),
        "{answer}"
    );
}

#[test]
fn sipp_registers_many_users_with_digest() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let devices: Vec<Device> = (0..50).map(|i| provision(r.http, &format!("02:30:00:00:00:{i:02x}"))).collect();
    let mut csv = String::from("SEQUENTIAL\n");
    for d in &devices {
        csv.push_str(&format!(
            "{};[authentication username={} password={}]\n",
            d.user, d.user, d.password
        ));
    }
    std::fs::write(dir.path().join("users.csv"), csv).unwrap();
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/sipp/register.xml");
    let port = free_udp_port();
    let out = Command::new(require("sipp"))
        .current_dir(dir.path())
        .args([
            "-sf",
            scenario,
            "-inf",
            "users.csv",
            "-m",
            "50",
            "-r",
            "100",
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .args([
            "-cp",
            &free_udp_port().to_string(),
            "-mp",
            &free_udp_port().to_string(),
            "-nostdin",
            "-timeout",
            "30s",
            "-timeout_error",
        ])
        .arg(r.sip.to_string())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sipp failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for d in &devices {
        assert_eq!(naptr_uri(r.dns, &d.user), Some(format!("sip:{}@127.0.0.1:{port}", d.user)));
    }
}

#[test]
fn baresip_registers_and_becomes_reachable_by_number() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let d = provision(r.http, "02:00:00:00:00:01");
    let conf = dir.path().join("baresip");
    std::fs::create_dir_all(&conf).unwrap();
    let port = free_udp_port();
    std::fs::write(
        conf.join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{port}\nnet_interface 127.0.0.1\n\
audio_player aufile,/dev/null\naudio_source aufile,/dev/null\nmodule_path /usr/lib/baresip/modules\n\
module g711.so\nmodule aufile.so\nmodule_app account.so\n"
        ),
    )
    .unwrap();
    std::fs::write(
        conf.join("accounts"),
        format!("<sip:{}@{};transport=udp>;auth_pass={};regint=600\n", d.user, r.sip, d.password),
    )
    .unwrap();
    let child = Command::new("timeout")
        .args(["-k", "2", "20", require("baresip").to_str().unwrap(), "-f", conf.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let want = format!("sip:{}@127.0.0.1:{port}", d.user);
    let reachable = eventually(10, || naptr_uri(r.dns, &d.user).as_deref() == Some(want.as_str()));
    let answer = dig_naptr(&r, &d.user);
    // baresip unregisters when it quits: the number leaves the zone.
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let gone = eventually(10, || naptr_uri(r.dns, &d.user).is_none());
    let out = child.wait_with_output().unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(reachable, "baresip did not register: {log}");
    assert!(answer.contains(&format!("!^.*$!{want}!")), "{answer}");
    assert!(gone, "baresip's unregister did not remove the number: {log}");
}
