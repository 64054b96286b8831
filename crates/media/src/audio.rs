//! Audio helpers: WAV files in and out (any PCM or float WAV is mixed to
//! mono and resampled to the codec rate), tones, and the measurements the
//! tests and the phone's own checks use.

use std::path::Path;

use crate::MediaError;

/// Reads a WAV file as mono 16-bit samples at `rate`.
pub fn read_wav(path: &Path, rate: u32) -> Result<Vec<i16>, MediaError> {
    let bad = |e: hound::Error| MediaError::Wav(format!("{}: {e}", path.display()));
    let mut r = hound::WavReader::open(path).map_err(bad)?;
    let spec = r.spec();
    if spec.channels == 0 || spec.sample_rate < 1000 || spec.sample_rate > 384_000 {
        return Err(MediaError::Wav(format!(
            "{}: {} channels at {} Hz is not playable audio",
            path.display(),
            spec.channels,
            spec.sample_rate
        )));
    }
    let samples: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => r.samples::<f32>().collect::<Result<_, _>>().map_err(bad)?,
        (hound::SampleFormat::Int, b @ 8..=32) => {
            let scale = (1i64 << (b - 1)) as f32;
            r.samples::<i32>()
                .map(|s| s.map(|s| s as f32 / scale))
                .collect::<Result<_, _>>()
                .map_err(bad)?
        }
        (f, b) => {
            return Err(MediaError::Wav(format!(
                "{}: {b}-bit {f:?} samples are not supported",
                path.display()
            )))
        }
    };
    let ch = spec.channels as usize;
    let mono: Vec<i16> = samples
        .chunks_exact(ch)
        .map(|c| ((c.iter().sum::<f32>() / ch as f32) * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect();
    Ok(resample(&mono, spec.sample_rate, rate))
}

pub fn write_wav(path: &Path, samples: &[i16], rate: u32) -> Result<(), MediaError> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let bad = |e: hound::Error| MediaError::Wav(format!("{}: {e}", path.display()));
    let mut w = hound::WavWriter::create(path, spec).map_err(bad)?;
    for &s in samples {
        w.write_sample(s).map_err(bad)?;
    }
    w.finalize().map_err(bad)
}

/// Resamples by linear interpolation; when going down, each output sample
/// first averages the input span it covers, a cheap low-pass against
/// aliasing.
pub fn resample(input: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == to || input.is_empty() {
        return input.to_vec();
    }
    let ratio = from as f64 / to as f64;
    let n = ((input.len() as f64) / ratio).floor() as usize;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let pos = i as f64 * ratio;
        let v = if ratio > 1.0 {
            let a = pos as usize;
            let b = ((pos + ratio) as usize).min(input.len()).max(a + 1);
            input[a..b].iter().map(|&s| s as f64).sum::<f64>() / (b - a) as f64
        } else {
            let a = pos as usize;
            let frac = pos - a as f64;
            let x0 = input[a] as f64;
            let x1 = *input.get(a + 1).unwrap_or(&input[a]) as f64;
            x0 + (x1 - x0) * frac
        };
        out.push(v.round().clamp(-32768.0, 32767.0) as i16);
    }
    out
}

/// `len` samples of a sine at `freq` Hz.
pub fn tone(freq: f32, rate: u32, len: usize, amplitude: f32) -> Vec<i16> {
    (0..len)
        .map(|i| (amplitude * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin()) as i16)
        .collect()
}

/// The dominant frequency of a signal, from the median spacing of its
/// positive-going zero crossings (interpolated between samples). Good for
/// a clean tone; a dropout or a click here and there (a busy machine's
/// glitch) does not move the median as it would a mean.
pub fn frequency(samples: &[i16], rate: u32) -> f32 {
    let mut prev = None;
    let mut spans = Vec::new();
    for i in 1..samples.len() {
        let (a, b) = (samples[i - 1] as f32, samples[i] as f32);
        if a < 0.0 && b >= 0.0 {
            let t = (i - 1) as f32 + (-a) / (b - a);
            if let Some(p) = prev {
                spans.push(t - p);
            }
            prev = Some(t);
        }
    }
    if spans.is_empty() {
        return 0.0;
    }
    spans.sort_by(f32::total_cmp);
    let mid = spans.len() / 2;
    let median = if spans.len() % 2 == 1 {
        spans[mid]
    } else {
        (spans[mid - 1] + spans[mid]) / 2.0
    };
    rate as f32 / median
}

/// The share of a signal's energy at `freq` Hz (Goertzel), from 0 to
/// about 1: a pure tone at `freq` gives ~1, one far from it ~0. Tells the
/// tones of a mix apart where zero crossings cannot.
pub fn tone_share(samples: &[i16], rate: u32, freq: f32) -> f64 {
    let n = samples.len();
    let energy: f64 = samples.iter().map(|&s| (s as f64).powi(2)).sum();
    if n == 0 || energy == 0.0 {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * freq as f64 / rate as f64;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = x as f64 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    // A sine of amplitude A over n samples: power = (A n / 2)^2, energy = A^2 n / 2.
    2.0 * power / (n as f64 * energy)
}

/// Root-mean-square level.
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
}

/// The best normalised cross-correlation of `b` against `a` over lags of
/// `0..max_lag` samples (b delayed relative to a), in blocks so a path
/// that drops or inserts a few frames still lines up locally. Returns the
/// energy-weighted mean of the per-block best correlations: 1.0 for an
/// identical signal, near 0 for unrelated ones.
pub fn similarity(a: &[i16], b: &[i16], max_lag: usize, block: usize) -> f64 {
    let mut total = 0.0;
    let mut weight = 0.0;
    for start in (0..a.len()).step_by(block) {
        let x = &a[start..(start + block).min(a.len())];
        let ex: f64 = x.iter().map(|&v| (v as f64).powi(2)).sum();
        if ex < (x.len() as f64) * 100.0 * 100.0 {
            continue; // near silence says nothing
        }
        let mut best = 0.0f64;
        for lag in 0..max_lag {
            let Some(y) = b.get(start + lag..start + lag + x.len()) else {
                break;
            };
            let ey: f64 = y.iter().map(|&v| (v as f64).powi(2)).sum();
            if ey == 0.0 {
                continue;
            }
            let dot: f64 = x.iter().zip(y).map(|(&p, &q)| p as f64 * q as f64).sum();
            best = best.max(dot / (ex * ey).sqrt());
        }
        total += best * ex;
        weight += ex;
    }
    if weight == 0.0 {
        0.0
    } else {
        total / weight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequency_of_a_tone() {
        let t = tone(1000.0, 8000, 8000, 10000.0);
        assert!((frequency(&t, 8000) - 1000.0).abs() < 1.0);
        assert_eq!(frequency(&[0; 100], 8000), 0.0);
        // 40 ms of silence in half a second of 500 Hz is a dropout, not a
        // lower tone.
        let mut t = tone(500.0, 8000, 4000, 8000.0);
        t[2000..2320].fill(0);
        assert!((frequency(&t, 8000) - 500.0).abs() < 1.0, "{}", frequency(&t, 8000));
    }

    #[test]
    fn tone_share_finds_each_tone_of_a_mix() {
        let a = tone(500.0, 8000, 4000, 6000.0);
        let b = tone(1300.0, 8000, 4000, 6000.0);
        let mix: Vec<i16> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        assert!(tone_share(&a, 8000, 500.0) > 0.95);
        assert!(tone_share(&a, 8000, 1300.0) < 0.01);
        let (s5, s13) = (tone_share(&mix, 8000, 500.0), tone_share(&mix, 8000, 1300.0));
        assert!(s5 > 0.4 && s13 > 0.4, "{s5} {s13}");
        assert!(tone_share(&mix, 8000, 900.0) < 0.01);
        assert_eq!(tone_share(&[0; 10], 8000, 500.0), 0.0);
    }

    #[test]
    fn resampling_keeps_the_pitch() {
        let t = tone(440.0, 22_050, 22_050, 10000.0);
        for to in [8000, 16_000, 48_000] {
            let r = resample(&t, 22_050, to);
            assert!((frequency(&r, to) - 440.0).abs() < 4.0, "{to}");
            assert!((r.len() as i64 - to as i64).abs() <= 1);
        }
    }

    #[test]
    fn wav_round_trip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        let t = tone(1000.0, 16_000, 1600, 5000.0);
        write_wav(&p, &t, 16_000).unwrap();
        assert_eq!(read_wav(&p, 16_000).unwrap(), t);
        assert_eq!(read_wav(&p, 8000).unwrap().len(), 800);
        let junk = dir.path().join("junk.wav");
        std::fs::write(&junk, b"RIFF not really").unwrap();
        let e = read_wav(&junk, 8000).unwrap_err().to_string();
        assert!(e.contains("junk.wav"), "{e}");
        assert!(read_wav(&dir.path().join("missing.wav"), 8000).is_err());
    }

    #[test]
    fn similarity_tells_a_signal_from_noise() {
        let a = tone(300.0, 8000, 4000, 8000.0);
        let mut delayed = vec![0i16; 37];
        delayed.extend(&a);
        assert!(similarity(&a, &delayed, 100, 800) > 0.99);
        let mut x = 1u32;
        let noise: Vec<i16> = (0..4100)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as i16
            })
            .collect();
        assert!(similarity(&a, &noise, 100, 800) < 0.3);
    }
}
