//! What a person does during a call, as they hear it: hold and resume
//! from either side (re-INVITE, RFC 3264 8.4) and mute. Each phone plays
//! its own tone and records what it hears; the recordings must show the
//! tone stop while the call is held or muted and come back after. baresip
//! holds and resumes a call with our phone, and takes ours.

mod common;

use std::time::Duration;

use common::baresip::Baresip;
use common::tones::*;
use common::*;
use peerdial_media::audio::{tone, write_wav};

#[test]
fn hold_and_resume_from_either_side_and_mute_stop_the_audio_and_bring_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let (rec_a, rec_b) = (dir.path().join("a-heard.wav"), dir.path().join("b-heard.wav"));
    let tone_a = tone_wav(dir.path(), "a.wav", 1000.0, 20);
    let tone_b = tone_wav(dir.path(), "b.wav", 600.0, 20);
    let mut b = Softphone::start(
        &r,
        dir.path(),
        "02:00:00:00:c1:02",
        r.dns,
        &[
            "--auto-answer",
            "--answer-after",
            "0",
            "--play",
            &tone_b,
            "--record",
            rec_b.to_str().unwrap(),
        ],
    );
    let mut a = dial(
        &r,
        dir.path(),
        "02:00:00:00:c1:01",
        r.dns,
        &b.number,
        &["--play", &tone_a, "--record", rec_a.to_str().unwrap(), "--codecs", "pcmu"],
    );
    a.expect_line("answered codec=PCMU", 10);
    let pause = || std::thread::sleep(Duration::from_millis(1500));
    // The caller holds and resumes, then the callee (its re-INVITEs go the
    // other way): while held, neither hears the other.
    for (caller_acts, cmd, own, other, n) in [
        (true, "hold", "on hold", "held by the other side", 1),
        (true, "resume", "resumed", "resumed", 1),
        (false, "hold", "on hold", "held by the other side", 1),
        (false, "unhold", "resumed", "resumed", 2),
    ] {
        pause();
        let (x, y) = if caller_acts { (&mut a, &b) } else { (&mut b, &a) };
        x.send(cmd);
        shows(x, own, n);
        shows(y, other, n);
    }
    pause();
    // Mute: the other side hears silence, the call goes on.
    a.send("mute");
    a.expect_line("muted", 5);
    pause();
    a.send("unmute");
    a.expect_line("unmuted", 5);
    pause();
    a.send("hangup");
    assert_eq!(a.wait_exit(10), 0, "{:#?}", a.lines());
    b.expect_line("ended: the other side hung up", 5);
    b.stop();
    // b heard a's tone stop for a's hold, b's hold and a's mute; a heard
    // b's stop for both holds (the mute is a's own).
    for (p, rec, freq, gaps) in [(&a, &rec_b, 1000.0, 3), (&b, &rec_a, 600.0, 2)] {
        assert_tone_with_gaps(rec, freq, gaps, 900);
        assert!(!p.lines().iter().any(|l| l.starts_with("error")), "{:#?}", p.lines());
    }
}

#[test]
fn hold_without_a_call_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let mut p = Softphone::start(&r, dir.path(), "02:00:00:00:c1:03", r.dns, &[]);
    p.send("hold");
    p.expect_line("error: no call in progress", 5);
    p.send("volume 900");
    p.send("mute");
    assert!(
        eventually(5, || p.lines().iter().filter(|l| l.contains("no call in progress")).count() == 2),
        "{:#?}",
        p.lines()
    );
    p.stop();
}

#[test]
fn baresip_holds_and_resumes_a_call_with_our_phone_and_takes_our_hold() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let d = provision(r.http, "02:00:00:00:c1:04");
    let (theirs, dump, rec) = (dir.path().join("theirs.wav"), dir.path().join("dump"), dir.path().join("heard.wav"));
    write_wav(&theirs, &tone(600.0, 8000, 8000 * 30, 12_000.0), 8000).unwrap();
    let account = format!(
        "<sip:{}@{};transport=udp>;auth_pass={};regint=600;answermode=auto;audio_codecs=PCMU\n",
        d.user, r.sip, d.password
    );
    let mut b = Baresip::start_with_audio(dir.path(), &account, &theirs, &dump);
    assert!(
        eventually(10, || naptr_uri(r.dns, &d.user)
            .is_some_and(|u| u.contains(&format!(":{}", b.port)))),
        "baresip did not register: {}",
        b.log()
    );
    let number = peerdial_number::Number::parse(&d.user).unwrap().to_string();
    let ours = tone_wav(dir.path(), "ours.wav", 1000.0, 30);
    let mut a = dial(
        &r,
        dir.path(),
        "02:00:00:00:c1:05",
        r.dns,
        &number,
        &["--play", &ours, "--record", rec.to_str().unwrap(), "--codecs", "pcmu"],
    );
    a.expect_line("answered codec=PCMU", 10);
    let pause = || std::thread::sleep(Duration::from_millis(1500));
    pause();
    // Ours holds: baresip answers the re-INVITE (recvonly).
    a.send("hold");
    shows(&a, "on hold", 1);
    pause();
    a.send("resume");
    shows(&a, "resumed", 1);
    pause();
    // baresip holds (its menu's /hold) and resumes.
    b.command("/hold");
    shows(&a, "held by the other side", 1);
    pause();
    b.command("/resume");
    shows(&a, "resumed", 2);
    pause();
    a.send("hangup");
    assert_eq!(a.wait_exit(10), 0, "{:#?}\n{}", a.lines(), b.log());
    assert!(!a.lines().iter().any(|l| l.starts_with("error")), "{:#?}", a.lines());
    // We heard baresip's tone stop for both holds.
    assert_tone_with_gaps(&rec, 600.0, 2, 900);
    // baresip took our two offers and heard our tone (its dump ends when
    // the stream is first updated, so it cannot show the gap itself).
    let log = b.log();
    assert_eq!(log.matches("got re-INVITE (SDP Offer)").count(), 2, "{log}");
    assert!(eventually(5, || std::fs::read_dir(&dump).unwrap().flatten().count() > 0));
    std::thread::sleep(Duration::from_millis(300));
    assert_heard_with_gaps(&Baresip::heard(&dump), "baresip's dump", 1000.0, 0, 0);
}

#[test]
fn the_history_keeps_calls_across_restarts_and_redials_them() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let mut b = Softphone::start(
        &r,
        dir.path(),
        "02:00:00:00:c1:07",
        r.dns,
        &["--auto-answer", "--answer-after", "0"],
    );
    let mac_a = "02:00:00:00:c1:06";
    let mut a = dial(&r, dir.path(), mac_a, r.dns, &b.number, &["--duration", "1"]);
    assert_eq!(a.wait_exit(15), 0, "{:#?}", a.lines());
    b.expect_line("ended: the other side hung up", 5);
    // The callee's history: from the caller, verified, answered.
    b.send("history");
    let line = b.expect_line("history 1: ", 5);
    assert!(
        line.contains(" from 886-02-") && line.contains("(verified), 1 s, the other side hung up"),
        "{line}"
    );
    // The caller's, after a restart; `redial` calls the same number.
    let mut a = Softphone::start(&r, dir.path(), mac_a, r.dns, &["--duration", "1"]);
    a.send("history");
    let line = a.expect_line("history 1: ", 5);
    assert!(line.contains(&format!(" to {}, 1 s, hung up", b.number)), "{line}");
    a.send("redial");
    a.expect_line("answered codec=", 10);
    a.expect_line("ended: hung up", 5);
    a.send("history");
    assert!(
        eventually(5, || a.lines().iter().any(|l| l.starts_with("history 2: "))),
        "{:#?}",
        a.lines()
    );
    a.send("redial 9");
    a.expect_line("error: no call 9 in the history", 5);
    a.stop();
    b.stop();
}

#[test]
fn call_waiting_rejects_answers_holds_and_swaps_between_two_calls() {
    let dir = tempfile::tempdir().unwrap();
    let r = Region::start(dir.path(), &[]);
    let (rec_a, rec_b, rec_c) = (
        dir.path().join("a-heard.wav"),
        dir.path().join("b-heard.wav"),
        dir.path().join("c-heard.wav"),
    );
    let tone_b = tone_wav(dir.path(), "b.wav", 800.0, 30);
    let tone_c = tone_wav(dir.path(), "c.wav", 1200.0, 30);
    let mut b = Softphone::start(
        &r,
        dir.path(),
        "02:00:00:00:c2:02",
        r.dns,
        &[
            "--auto-answer",
            "--answer-after",
            "0",
            "--play",
            &tone_b,
            "--record",
            rec_b.to_str().unwrap(),
            "--codecs",
            "pcmu",
        ],
    );
    let codec = ["--codecs", "pcmu"];
    let mut a = dial(
        &r,
        dir.path(),
        "02:00:00:00:c2:01",
        r.dns,
        &b.number,
        &[&codec[..], &["--record", rec_a.to_str().unwrap()]].concat(),
    );
    a.expect_line("answered codec=PCMU", 10);
    // A second caller rings beside the call; rejected, it hears busy.
    let mac_c = "02:00:00:00:c2:03";
    let mut c = dial(&r, dir.path(), mac_c, r.dns, &b.number, &[&codec[..], &["--no-mailbox"]].concat());
    b.expect_line("call waiting: 886-02-", 10);
    b.send("reject");
    assert_eq!(c.wait_exit(10), 4, "{:#?}", c.lines());
    // It calls again and is answered: the first call goes on hold.
    let mut c = dial(
        &r,
        dir.path(),
        mac_c,
        r.dns,
        &b.number,
        &[&codec[..], &["--play", &tone_c, "--record", rec_c.to_str().unwrap()]].concat(),
    );
    assert!(
        eventually(10, || b.lines().iter().filter(|l| l.starts_with("call waiting: 886-02-")).count()
            == 2),
        "{:#?}",
        b.lines()
    );
    b.send("answer");
    shows(&a, "held by the other side", 1);
    c.expect_line("answered codec=PCMU", 10);
    let pause = || std::thread::sleep(Duration::from_millis(1500));
    pause();
    // Swap: back to the first caller, the second on hold.
    b.send("swap");
    shows(&c, "held by the other side", 1);
    shows(&a, "resumed", 1);
    pause();
    // Hanging up ends the call talked on; the held one is resumed by hand.
    b.send("hangup");
    assert_eq!(a.wait_exit(10), 0, "{:#?}", a.lines());
    b.send("resume");
    shows(&c, "resumed", 1);
    pause();
    c.send("hangup");
    assert_eq!(c.wait_exit(10), 0, "{:#?}", c.lines());
    b.expect_line("ended: the other side hung up", 5);
    b.stop();
    // Each heard b's tone stop while held and come back; b (its last call)
    // heard the second caller's tone stop while it held that call.
    assert_tone_with_gaps(&rec_a, 800.0, 1, 900);
    assert_tone_with_gaps(&rec_c, 800.0, 1, 900);
    assert_tone_with_gaps(&rec_b, 1200.0, 1, 900);
    assert!(!b.lines().iter().any(|l| l.starts_with("error")), "{:#?}", b.lines());
}
