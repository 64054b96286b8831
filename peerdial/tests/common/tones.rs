//! What a phone heard, judged as a person would: a tone's pitch, and runs
//! of sound and silence (a hold, a mute, a swap between calls).

use std::path::Path;

use peerdial_media::audio::{frequency, read_wav, rms, tone, write_wav};

use super::{eventually, Softphone};

pub const RATE: u32 = 8000;

/// A recording at 48 kHz whose middle half is loud and at `freq`.
pub fn assert_heard_tone_48k(path: &Path, freq: f32) {
    let s = read_wav(path, 48_000).unwrap();
    let mid = &s[s.len() / 4..s.len() * 3 / 4];
    assert!(rms(mid) > 1000.0, "{} holds (nearly) nothing", path.display());
    let f = frequency(mid, 48_000);
    assert!((f - freq).abs() < 20.0, "{} holds {f} Hz, not {freq}", path.display());
}

pub fn tone_wav(dir: &Path, name: &str, freq: f32, secs: u32) -> String {
    let p = dir.join(name);
    write_wav(&p, &tone(freq, 48_000, 48_000 * secs as usize, 12_000.0), 48_000).unwrap();
    p.to_str().unwrap().to_string()
}

/// A recording as runs of sound and silence (`true`: the tone), in ms,
/// judged per 20 ms and ignoring runs shorter than 200 ms (transitions).
pub fn runs(samples: &[i16]) -> Vec<(bool, u64)> {
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
pub fn assert_tone_with_gaps(path: &Path, freq: f32, gaps: usize, min_gap_ms: u64) {
    assert_heard_with_gaps(&read_wav(path, RATE).unwrap(), &path.display().to_string(), freq, gaps, min_gap_ms)
}

pub fn assert_heard_with_gaps(s: &[i16], what: &str, freq: f32, gaps: usize, min_gap_ms: u64) {
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
pub fn shows(p: &Softphone, line: &str, n: usize) {
    assert!(
        eventually(5, || p.lines().iter().filter(|l| *l == line).count() == n),
        "no {line:?} ({n}) in {:#?}",
        p.lines()
    )
}
