//! G.711's 8 kHz to and from the mixing rate, by whole factors (2, 3, 6):
//! linear interpolation up, averaging down (a box filter against
//! aliasing). Cheap, and enough for telephone speech.

/// Upsampling state: the last sample of the previous frame.
#[derive(Debug, Default)]
pub struct Up {
    last: i16,
}

impl Up {
    /// Appends `input` at `factor` times its rate to `out`.
    pub fn run(&mut self, input: &[i16], factor: usize, out: &mut Vec<i16>) {
        out.reserve(input.len() * factor);
        let f = factor as i32;
        for &s in input {
            let (a, b) = (self.last as i32, s as i32);
            for k in 1..=f {
                out.push((a + (b - a) * k / f) as i16);
            }
            self.last = s;
        }
    }
}

/// Appends `input` at 1/`factor` of its rate to `out`.
pub fn down(input: &[i16], factor: usize, out: &mut Vec<i16>) {
    let f = factor.max(1);
    out.extend(
        input
            .chunks(f)
            .map(|c| (c.iter().map(|&s| s as i32).sum::<i32>() / c.len() as i32) as i16),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{frequency, tone};

    #[test]
    fn up_and_down_keep_the_pitch_and_length() {
        let t = tone(700.0, 8000, 1600, 10_000.0);
        for factor in [2, 3, 6] {
            let mut up = Up::default();
            let mut wide = Vec::new();
            for c in t.chunks(160) {
                up.run(c, factor, &mut wide);
            }
            assert_eq!(wide.len(), t.len() * factor);
            assert!((frequency(&wide, 8000 * factor as u32) - 700.0).abs() < 5.0);
            let mut back = Vec::new();
            down(&wide, factor, &mut back);
            assert_eq!(back.len(), t.len());
            assert!((frequency(&back, 8000) - 700.0).abs() < 5.0);
        }
    }
}
