//! Blind transfer (REFER, RFC 3515) as people use it: our phone hands a
//! call with baresip to another of our phones, and baresip hands a call
//! with our phone to another of ours. In both, the one transferred ends up
//! talking to the target: the target hears its tone.

mod common;

use common::baresip::Baresip;
use common::tones::*;
use common::*;
use peerdial_media::audio::{tone, write_wav};

/// A baresip registered with region `r` that answers by itself and plays
/// a 600 Hz tone: its number and the process.
fn baresip(r: &Region, dir: &std::path::Path, mac: &str) -> (String, Baresip) {
    let d = provision(r.http, mac);
    let theirs = dir.join("theirs.wav");
    write_wav(&theirs, &tone(600.0, 8000, 8000 * 30, 12_000.0), 8000).unwrap();
    let account = format!(
        "<sip:{}@{};transport=udp>;auth_pass={};regint=600;answermode=auto;audio_codecs=PCMU;mwi=no\n",
        d.user, r.sip, d.password
    );
    let b = Baresip::start_with_audio(dir, &account, &theirs, &dir.join("dump"));
    assert!(
        eventually(10, || naptr_uri(r.dns, &d.user)
            .is_some_and(|u| u.contains(&format!(":{}", b.port)))),
        "baresip did not register: {}",
        b.log()
    );
    (peerdial_number::Number::parse(&d.user).unwrap().to_string(), b)
}

/// One of our phones that answers at once, records what it hears into
/// `rec` and hangs up after 3 s.
fn target(r: &Region, dir: &std::path::Path, mac: &str, rec: &std::path::Path) -> Softphone {
    Softphone::start(
        r,
        dir,
        mac,
        r.dns,
        &[
            "--auto-answer",
            "--answer-after",
            "0",
            "--duration",
            "3",
            "--record",
            rec.to_str().unwrap(),
            "--codecs",
            "pcmu",
        ],
    )
}

#[test]
fn our_phone_transfers_a_call_with_baresip_to_a_third_phone() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let (b_number, b) = baresip(&r, dir.path(), "02:00:00:00:d1:01");
    let rec_c = dir.path().join("c-heard.wav");
    let c = target(&r, dir.path(), "02:00:00:00:d1:03", &rec_c);
    let mut a = dial(&r, dir.path(), "02:00:00:00:d1:02", r.dns, &b_number, &["--codecs", "pcmu"]);
    a.expect_line("answered codec=PCMU", 10);
    a.send("transfer 99");
    a.expect_line("cannot transfer to \"99\": wrong number of digits", 5);
    a.send("transfer 99999998");
    a.expect_line("cannot transfer: no such number 886-02-99999998", 5);
    a.send(&format!("transfer {}", c.number));
    a.expect_line(&format!("transferring {b_number} to {}", c.number), 5);
    a.expect_line(&format!("transfer to {} accepted", c.number), 5);
    a.expect_line(&format!("transferred to {}", c.number), 10);
    // We left the call once baresip's new call was answered.
    assert_eq!(a.wait_exit(10), 0, "{:#?}\n{}", a.lines(), b.log());
    // baresip called the target itself and talked to it.
    c.expect_line(&format!("incoming call from {b_number}"), 5);
    c.expect_line("answered codec=PCMU", 5);
    c.expect_line("ended: hung up", 10);
    assert_tone_with_gaps(&rec_c, 600.0, 0, 0);
    let errors = a.lines().into_iter().filter(|l| l.starts_with("error")).count();
    assert_eq!(errors, 2, "only the two bad transfers: {:#?}", a.lines());
}

#[test]
fn baresip_transfers_our_phone_which_asks_refuses_foreign_targets_and_follows() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let (b_number, mut b) = baresip(&r, dir.path(), "02:00:00:00:d2:01");
    let rec_c = dir.path().join("c-heard.wav");
    let c = target(&r, dir.path(), "02:00:00:00:d2:03", &rec_c);
    let ours = tone_wav(dir.path(), "ours.wav", 1000.0, 30);
    let mac_a = "02:00:00:00:d2:02";
    let call_b = || {
        let a = dial(&r, dir.path(), mac_a, r.dns, &b_number, &["--codecs", "pcmu", "--play", &ours]);
        a.expect_line("answered codec=PCMU", 10);
        a
    };
    let c_uri = format!("sip:{}@{}", c.number.replace('-', ""), r.sip);
    // A target that is no peerdial number is refused (403) at once; asked
    // (the default), "no" refuses with 603. baresip ends its call when a
    // transfer fails.
    for (to, line, answer) in [
        (
            "sip:alice@example.com",
            format!("{b_number} asked to transfer this call to sip:alice@example.com, which is not a number: refused"),
            None,
        ),
        (
            c_uri.as_str(),
            format!("{b_number} asks to transfer this call to {}: accept? (yes/no)", c.number),
            Some("no"),
        ),
    ] {
        let mut a = call_b();
        b.command(&format!("/transfer {to}"));
        a.expect_line(&line, 5);
        if let Some(no) = answer {
            a.send(no);
            a.expect_line(&format!("transfer to {} refused", c.number), 5);
        }
        assert_eq!(a.wait_exit(10), 0, "{:#?}", a.lines());
    }
    assert_eq!(b.log().matches("menu: transfer failure: 403 Forbidden").count(), 1, "{}", b.log());
    assert_eq!(b.log().matches("menu: transfer failure: 603 Decline").count(), 1, "{}", b.log());
    // Asked again, "yes": our phone calls the target, found through DNS.
    let mut a = call_b();
    b.command(&format!("/transfer {c_uri}"));
    a.expect_line("accept? (yes/no)", 5);
    a.send("yes");
    a.expect_line(&format!("{b_number} transfers this call to {}", c.number), 5);
    c.expect_line("incoming call from 886-02-", 10);
    // baresip ends its call once told the new call was answered.
    a.expect_line(&format!("call with {b_number} ended"), 10);
    // The target heard our tone, and when it hung up our phone was done.
    c.expect_line("ended: hung up", 10);
    assert_eq!(a.wait_exit(10), 0, "{:#?}\n{}", a.lines(), b.log());
    assert_tone_with_gaps(&rec_c, 1000.0, 0, 0);
}
