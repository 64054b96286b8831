//! A streaming resampler for mono 16-bit audio: fed blocks of any length,
//! it carries its position across them, so block edges leave no clicks.
//! Linear interpolation going up; going down, each output sample averages
//! the input span it covers (a cheap low-pass against aliasing), as
//! `peerdial_media::audio::resample` does for whole files.

#[derive(Debug, Clone)]
pub struct Resampler {
    from: u32,
    to: u32,
    /// Input not yet consumed (the last sample stays for interpolation).
    pending: Vec<i16>,
    /// Where the next output sample falls, in `pending`'s samples.
    pos: f64,
}

impl Resampler {
    pub fn new(from: u32, to: u32) -> Resampler {
        Resampler {
            from: from.max(1),
            to: to.max(1),
            pending: Vec::new(),
            pos: 0.0,
        }
    }

    pub fn rates(&self) -> (u32, u32) {
        (self.from, self.to)
    }

    /// Appends the resampled `input` to `out`.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        if self.from == self.to {
            out.extend_from_slice(input);
            return;
        }
        self.pending.extend_from_slice(input);
        let step = self.from as f64 / self.to as f64;
        let len = self.pending.len();
        if step > 1.0 {
            while self.pos + step <= len as f64 {
                let a = self.pos as usize;
                let b = ((self.pos + step) as usize).clamp(a + 1, len);
                let sum: i64 = self.pending[a..b].iter().map(|&s| s as i64).sum();
                out.push((sum / (b - a) as i64) as i16);
                self.pos += step;
            }
        } else {
            while self.pos + 1.0 < len as f64 {
                let a = self.pos as usize;
                let frac = self.pos - a as f64;
                let (x0, x1) = (self.pending[a] as f64, self.pending[a + 1] as f64);
                out.push((x0 + (x1 - x0) * frac).round() as i16);
                self.pos += step;
            }
        }
        let used = (self.pos as usize).min(len);
        self.pending.drain(..used);
        self.pos -= used as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone::tests::{frequency, sine};

    #[test]
    fn blocks_of_any_size_give_the_rate_and_the_frequency() {
        for (from, to) in [(48_000, 8_000), (8_000, 48_000), (44_100, 16_000), (16_000, 44_100)] {
            let input = sine(1000.0, from, from as usize);
            let mut r = Resampler::new(from, to);
            let mut out = Vec::new();
            // Odd block sizes, as a device's periods may be.
            for block in input.chunks(137) {
                r.process(block, &mut out);
            }
            let expected = to as usize;
            assert!(
                out.len().abs_diff(expected) <= to as usize / from as usize * 137 / 100 + 8,
                "{from}->{to}: {} samples",
                out.len()
            );
            let f = frequency(&out, to);
            assert!((f - 1000.0).abs() < 10.0, "{from}->{to}: {f} Hz");
            // No clicks at block edges: neighbours never jump more than a
            // 1 kHz sine can between two samples at the output rate.
            let max_step = 10_000.0 * 2.0 * std::f64::consts::PI * 1000.0 / to as f64 * 1.1 + 2.0;
            let worst = out.windows(2).map(|w| (w[1] as f64 - w[0] as f64).abs()).fold(0.0, f64::max);
            assert!(worst <= max_step, "{from}->{to}: a step of {worst}");
        }
    }

    #[test]
    fn equal_rates_pass_through() {
        let mut r = Resampler::new(8000, 8000);
        let mut out = Vec::new();
        r.process(&[1, 2, 3], &mut out);
        assert_eq!(out, [1, 2, 3]);
    }
}
