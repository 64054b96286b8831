//! Interop with real third-party programs (../shared/peers.md): sipsak,
//! SIPp and baresip register with the region; `dig` reads the zone.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

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
    // Wrong password: 403, and no contact published: dig finds only the
    // mailbox a provisioned number always has (design §9).
    let (ok, text) = sipsak("not-the-password");
    assert!(!ok, "{text}");
    assert!(text.contains("SIP/2.0 403"), "{text}");
    let answer = dig_naptr(&r, &d.user);
    assert!(answer.contains("status: NOERROR"), "{answer}");
    assert!(
        answer.contains(&format!("20 100 \"u\" \"E2U+sip\" \"!^.*$!{}!\"", mailbox_uri(&r, &d.user))),
        "{answer}"
    );
    assert!(!answer.contains("10 100 \"u\""), "{answer}");

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
module stdio.so\nmodule g711.so\nmodule aufile.so\nmodule_app account.so\nmodule_app menu.so\n"
        ),
    )
    .unwrap();
    std::fs::write(
        conf.join("accounts"),
        format!("<sip:{}@{};transport=udp>;auth_pass={};regint=600\n", d.user, r.sip, d.password),
    )
    .unwrap();
    // Started directly (not under timeout(1)) so that killing it by PID
    // kills baresip itself; -t bounds it if the test never gets that far.
    let mut child = Command::new(require("baresip"))
        .args(["-t", "20", "-s", "-f", conf.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let want = format!("sip:{}@127.0.0.1:{port}", d.user);
    let reachable = eventually(10, || naptr_uri(r.dns, &d.user).as_deref() == Some(want.as_str()));
    let answer = dig_naptr(&r, &d.user);
    // baresip unregisters when it quits: the number leaves the zone. Quit
    // from its menu ('q' on stdin), as a user would: its SIGTERM handler
    // does the same work inside the signal handler, and under load it
    // now and then sent the unregister and never heard the answer.
    let _ = child.stdin.take().unwrap().write_all(b"q");
    let gone = eventually(10, || naptr_uri(r.dns, &d.user).is_none());
    let out = child.wait_with_output().unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(reachable, "baresip did not register: {log}");
    assert!(answer.contains(&format!("!^.*$!{want}!")), "{answer}");
    assert!(gone, "baresip's unregister did not remove the number: {log}");
    assert_eq!(naptr_set(r.dns, &d.user), vec![(20, mailbox_uri(&r, &d.user))], "the mailbox stays");
}

/// baresip with an account on our region: auto-answers, plays `source`,
/// and dumps what it heard (module sndfile) into `dump_dir`.
struct Baresip {
    child: std::process::Child,
    port: u16,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Baresip {
    fn start(
        dir: &std::path::Path,
        r: &Region,
        d: &Device,
        source: &std::path::Path,
        dump_dir: &std::path::Path,
        exec: Option<&str>,
    ) -> Baresip {
        let conf = dir.join("baresip");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::create_dir_all(dump_dir).unwrap();
        let port = free_udp_port();
        std::fs::write(
            conf.join("config"),
            format!(
                "poll_method epoll\nsip_listen 127.0.0.1:{port}\nnet_interface 127.0.0.1\n\
audio_player aufile,/dev/null\naudio_source aufile,{src}\nmodule_path /usr/lib/baresip/modules\n\
module g711.so\nmodule aufile.so\nmodule sndfile.so\nsnd_path {dump}\nmodule_app account.so\nmodule_app menu.so\n\
rtp_ports 30000-30100\n",
                src = source.display(),
                dump = dump_dir.display(),
            ),
        )
        .unwrap();
        std::fs::write(
            conf.join("accounts"),
            format!(
                "<sip:{}@{};transport=udp>;auth_pass={};regint=600;answermode=auto;audio_codecs=PCMU\n",
                d.user, r.sip, d.password
            ),
        )
        .unwrap();
        let mut cmd = Command::new(require("baresip"));
        cmd.args(["-t", "60", "-s", "-f", conf.to_str().unwrap()]);
        if let Some(e) = exec {
            cmd.args(["-e", e]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                    let mut g = log.lock().unwrap();
                    g.push_str(&l);
                    g.push('\n');
                }
            });
        }
        Baresip { child, port, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        // By PID; baresip ignores the first SIGTERM during a call.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tone_file(path: &std::path::Path, freq: f32, rate: u32, secs: usize) {
    let t = peerdial_media::audio::tone(freq, rate, rate as usize * secs, 12_000.0);
    peerdial_media::audio::write_wav(path, &t, rate).unwrap();
}

fn middle_frequency(s: &[i16], rate: u32) -> f32 {
    let skip = rate as usize / 2;
    assert!(s.len() > 3 * skip, "too short: {} samples", s.len());
    peerdial_media::audio::frequency(&s[skip..s.len() - skip], rate)
}

#[test]
fn our_phone_calls_baresip_by_number_and_audio_flows_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let d = provision(r.http, "02:00:00:00:0b:01");
    let (ours, theirs, dump) = (dir.path().join("ours.wav"), dir.path().join("theirs.wav"), dir.path().join("dump"));
    tone_file(&ours, 1000.0, 8000, 6);
    tone_file(&theirs, 600.0, 8000, 6);
    let b = Baresip::start(dir.path(), &r, &d, &theirs, &dump, None);
    let want = format!("sip:{}@127.0.0.1:{}", d.user, b.port);
    assert!(
        eventually(10, || naptr_uri(r.dns, &d.user).as_deref() == Some(want.as_str())),
        "baresip did not register: {}",
        b.log()
    );
    let rec = dir.path().join("heard.wav");
    let number = peerdial_number::Number::parse(&d.user).unwrap().to_string();
    let mut caller = dial(
        &r,
        dir.path(),
        "02:00:00:00:0b:02",
        r.dns,
        &number,
        &[
            "--play",
            ours.to_str().unwrap(),
            "--record",
            rec.to_str().unwrap(),
            "--duration",
            "3",
        ],
    );
    assert_eq!(caller.wait_exit(30), 0, "{:#?}\n{}", caller.lines(), b.log());
    caller.expect_line("answered codec=PCMU", 0);
    // baresip writes its dump when the call closes.
    std::thread::sleep(Duration::from_millis(500));
    let f = middle_frequency(&peerdial_media::audio::read_wav(&rec, 8000).unwrap(), 8000);
    assert!((f - 600.0).abs() <= 12.0, "we heard {f} Hz from baresip's 600 Hz");
    let f = middle_frequency(&common::baresip::Baresip::heard(&dump), 8000);
    assert!((f - 1000.0).abs() <= 20.0, "baresip heard {f} Hz from our 1 kHz: {}", b.log());
}

#[test]
fn baresip_calls_our_phone_directly_and_the_audio_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let rec = dir.path().join("heard.wav");
    let mut phone = Softphone::start(
        &r,
        dir.path(),
        "02:00:00:00:0c:01",
        r.dns,
        &[
            "--auto-answer",
            "--answer-after",
            "0",
            "--record",
            rec.to_str().unwrap(),
            "--duration",
            "3",
        ],
    );
    let d = provision(r.http, "02:00:00:00:0c:02");
    let (theirs, dump) = (dir.path().join("theirs.wav"), dir.path().join("dump"));
    tone_file(&theirs, 600.0, 8000, 6);
    let target = format!("/dial sip:{}@{}", phone.number.replace('-', ""), phone.sip);
    let b = Baresip::start(dir.path(), &r, &d, &theirs, &dump, Some(&target));
    let caller = peerdial_number::Number::parse(&d.user).unwrap();
    phone.expect_line(&format!("incoming call from {caller}"), 15);
    // baresip sends no Identity header: shown, and still rung, as unverified.
    phone.expect_line(&format!("caller {caller} unverified: no Identity header"), 0);
    phone.expect_line("ended: hung up after 3.", 10);
    phone.stop();
    let f = middle_frequency(&peerdial_media::audio::read_wav(&rec, 8000).unwrap(), 8000);
    assert!((f - 600.0).abs() <= 12.0, "we heard {f} Hz from baresip's 600 Hz: {}", b.log());
}

#[test]
fn sipp_calls_our_phone_with_its_standard_uac_and_with_rtp() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let rec = dir.path().join("heard.wav");
    let mut phone = Softphone::start(
        &r,
        dir.path(),
        "02:00:00:00:0d:01",
        r.dns,
        &["--auto-answer", "--answer-after", "0", "--record", rec.to_str().unwrap()],
    );
    let sipp = |args: &[&str]| sipp_call(dir.path(), args, &phone.number.replace('-', ""), phone.sip);
    // The built-in UAC: INVITE, 200, ACK, BYE.
    sipp(&["-sn", "uac"]);
    phone.expect_line("ended: the other side hung up", 5);
    // A scenario that streams a mu-law tone as RTP during the call.
    ulaw_tone(&dir.path().join("tone-ulaw.wav"), 1000, 3);
    sipp(&["-sf", concat!(env!("CARGO_MANIFEST_DIR"), "/sipp/uac-rtp.xml")]);
    assert!(eventually(5, || phone
        .lines()
        .iter()
        .filter(|l| l.contains("ended: the other side hung up"))
        .count()
        == 2));
    phone.stop();
    let f = middle_frequency(&peerdial_media::audio::read_wav(&rec, 8000).unwrap(), 8000);
    assert!((f - 1000.0).abs() <= 20.0, "we heard {f} Hz from SIPp's 1 kHz RTP stream");
}
