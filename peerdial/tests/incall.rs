//! What a person does during a call, as they hear it: hold and resume
//! from either side (re-INVITE, RFC 3264 8.4) and mute. Each phone plays
//! its own tone and records what it hears; the recordings must show the
//! tone stop while the call is held or muted and come back after. baresip
//! holds and resumes a call with our phone, and takes ours.

mod common;

use std::path::Path;
use std::time::Duration;

use common::baresip::Baresip;
use common::*;
use peerdial_media::audio::{frequency, read_wav, rms, tone, write_wav};

const RATE: u32 = 8000;

fn tone_wav(dir: &Path, name: &str, freq: f32, secs: u32) -> String {
    let p = dir.join(name);
    write_wav(&p, &tone(freq, 48_000, 48_000 * secs as usize, 12_000.0), 48_000).unwrap();
    p.to_str().unwrap().to_string()
}

/// A recording as runs of sound and silence (`true`: the tone), in ms,
/// judged per 20 ms and ignoring runs shorter than 200 ms (transitions).
fn runs(samples: &[i16]) -> Vec<(bool, u64)> {
    let mut out: Vec<(bool, u64)> = Vec::new();
    for w in samples.chunks(RATE as usize / 50) {
        let loud = rms(w) > 1_500.0;
        match out.last_mut() {
            Some((l, ms)) if *l == loud => *ms += 20,
            _ => out.push((loud, 20)),
        }
    }
    let mut merged: Vec<(bool, u64)> = Vec::new();
    for (loud, ms) in out.into_iter().filter(|(_, ms)| *ms >= 200) {
        match merged.last_mut() {
            Some((l, m)) if *l == loud => *m += ms,
            _ => merged.push((loud, ms)),
        }
    }
    merged
}

/// The recording at `path` is the tone at `freq`, then silence, again
/// `gaps` times, then the tone: each gap at least `min_gap_ms`.
fn assert_tone_with_gaps(path: &Path, freq: f32, gaps: usize, min_gap_ms: u64) {
    assert_heard_with_gaps(&read_wav(path, RATE).unwrap(), &path.display().to_string(), freq, gaps, min_gap_ms)
}

fn assert_heard_with_gaps(s: &[i16], what: &str, freq: f32, gaps: usize, min_gap_ms: u64) {
    let r = runs(s);
    // Leading silence (before the first packet) does not count.
    let r: Vec<_> = r.into_iter().skip_while(|(loud, _)| !loud).collect();
    let shape: Vec<bool> = r.iter().map(|(l, _)| *l).collect();
    let mut want = vec![true];
    for _ in 0..gaps {
        want.extend([false, true]);
    }
    assert!(shape.starts_with(&want), "{what}: runs {r:?}");
    for (_, ms) in r.iter().filter(|(l, _)| !l).take(gaps) {
        assert!(*ms >= min_gap_ms, "{what}: a gap of only {ms} ms in {r:?}");
    }
    // The tone's pitch, from the loud 100 ms blocks only (the median).
    let mut fs: Vec<f32> = s
        .chunks(RATE as usize / 10)
        .filter(|w| w.len() == RATE as usize / 10 && rms(w) > 1_500.0)
        .map(|w| frequency(w, RATE))
        .collect();
    fs.sort_by(f32::total_cmp);
    let f = fs[fs.len() / 2];
    assert!((f - freq).abs() <= 25.0, "{what}: the tone arrived at {f} Hz");
}

/// The line `line` shows for the `n`th time on `p`.
fn shows(p: &Softphone, line: &str, n: usize) {
    assert!(
        eventually(5, || p.lines().iter().filter(|l| *l == line).count() == n),
        "no {line:?} ({n}) in {:#?}",
        p.lines()
    )
}

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
