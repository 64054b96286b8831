//! Call-progress tones the phone plays itself: the ring of an incoming call,
//! the ring-back heard while a call rings out, and the call-waiting beep
//! mixed into a call. Each is a mix of sines
//! switched on and off by a cadence; the phase runs on across calls to
//! `fill`, so the device may ask for blocks of any size.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToneKind {
    /// An incoming call: 660 + 880 Hz, a double ring (0.4 s on, 0.2 s off,
    /// 0.4 s on, 2 s off).
    Ring,
    /// Our call rings at the other end: 440 + 480 Hz, 1 s on, 2 s off.
    RingBack,
    /// A second call rings during a call: a 440 Hz beep of 0.3 s every 4 s,
    /// over the call's audio.
    Waiting,
}

impl ToneKind {
    fn freqs(self) -> &'static [f64] {
        match self {
            ToneKind::Ring => &[660.0, 880.0],
            ToneKind::RingBack => &[440.0, 480.0],
            ToneKind::Waiting => &[440.0],
        }
    }

    /// (on, off) in milliseconds, repeated.
    fn cadence(self) -> &'static [(u64, u64)] {
        match self {
            ToneKind::Ring => &[(400, 200), (400, 2000)],
            ToneKind::RingBack => &[(1000, 2000)],
            ToneKind::Waiting => &[(300, 3700)],
        }
    }
}

/// Peak of each sine; two together stay well below full scale.
const AMPLITUDE: f64 = 6000.0;

#[derive(Debug, Clone)]
pub struct Tone {
    kind: ToneKind,
    rate: u32,
    /// Samples produced so far.
    n: u64,
}

impl Tone {
    pub fn new(kind: ToneKind, rate: u32) -> Tone {
        Tone {
            kind,
            rate: rate.max(1),
            n: 0,
        }
    }

    pub fn kind(&self) -> ToneKind {
        self.kind
    }

    fn on(&self, n: u64) -> bool {
        let period: u64 = self.kind.cadence().iter().map(|(a, b)| a + b).sum();
        let mut ms = n * 1000 / self.rate as u64 % period;
        for &(on, off) in self.kind.cadence() {
            if ms < on {
                return true;
            }
            if ms < on + off {
                return false;
            }
            ms -= on + off;
        }
        false
    }

    /// Adds the tone to `samples` (saturating): a beep over a call.
    pub fn mix(&mut self, samples: &mut [i16]) {
        let mut tone = Vec::with_capacity(samples.len());
        self.fill(samples.len(), &mut tone);
        for (s, t) in samples.iter_mut().zip(tone) {
            *s = s.saturating_add(t);
        }
    }

    /// Appends `len` samples of the tone to `out`.
    pub fn fill(&mut self, len: usize, out: &mut Vec<i16>) {
        for _ in 0..len {
            let n = self.n;
            self.n += 1;
            if !self.on(n) {
                out.push(0);
                continue;
            }
            let t = n as f64 / self.rate as f64;
            let v: f64 = self
                .kind
                .freqs()
                .iter()
                .map(|f| (2.0 * std::f64::consts::PI * f * t).sin() * AMPLITUDE)
                .sum();
            out.push(v as i16);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sine(freq: f64, rate: u32, len: usize) -> Vec<i16> {
        (0..len)
            .map(|i| ((2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin() * 10_000.0) as i16)
            .collect()
    }

    /// Mean frequency from upward zero crossings.
    pub(crate) fn frequency(s: &[i16], rate: u32) -> f64 {
        let ups: Vec<usize> = (1..s.len()).filter(|&i| s[i - 1] < 0 && s[i] >= 0).collect();
        if ups.len() < 2 {
            return 0.0;
        }
        (ups.len() - 1) as f64 * rate as f64 / (ups[ups.len() - 1] - ups[0]) as f64
    }

    fn loud(s: &[i16]) -> bool {
        s.iter().any(|v| v.unsigned_abs() > 1000)
    }

    #[test]
    fn ring_back_is_one_second_of_440_and_480_then_two_of_silence() {
        let mut t = Tone::new(ToneKind::RingBack, 8000);
        let mut s = Vec::new();
        // In blocks of odd sizes: the phase must run on.
        while s.len() < 8000 * 6 {
            t.fill(173, &mut s);
        }
        let f = frequency(&s[..8000], 8000);
        assert!((430.0..=490.0).contains(&f), "{f} Hz");
        assert!(loud(&s[7800..8000]) && !loud(&s[8100..8000 * 3 - 100]) && loud(&s[8000 * 3..8000 * 3 + 200]));
    }

    #[test]
    fn the_waiting_beep_is_mixed_over_the_call() {
        let mut t = Tone::new(ToneKind::Waiting, 8000);
        let mut call = sine(1000.0, 8000, 8000 * 4);
        for block in call.chunks_mut(160) {
            t.mix(block);
        }
        let plain = sine(1000.0, 8000, 8000 * 4);
        // The first 0.3 s carry the beep as well, the rest only the call.
        let diff: Vec<i16> = call.iter().zip(&plain).map(|(a, b)| a - b).collect();
        let f = frequency(&diff[..2400], 8000);
        assert!((430.0..=450.0).contains(&f), "{f} Hz");
        assert!(!loud(&diff[2500..8000 * 4]) && call[2500..] == plain[2500..]);
    }

    #[test]
    fn ring_is_a_double_ring() {
        let mut t = Tone::new(ToneKind::Ring, 8000);
        let mut s = Vec::new();
        t.fill(8000 * 3, &mut s);
        let ms = |m: usize| &s[m * 8..m * 8 + 80];
        assert!(loud(ms(100)) && !loud(ms(450)) && loud(ms(700)) && !loud(ms(1500)));
        let f = frequency(&s[..3200], 8000);
        assert!((650.0..=890.0).contains(&f), "{f} Hz");
    }
}
