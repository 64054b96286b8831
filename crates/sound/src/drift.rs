//! The buffer between two clocks: the network's (a frame every 20 ms) and
//! the sound device's (a period whenever the card wants one). The two never
//! run at exactly the same rate, so the buffer would slowly fill up (delay
//! grows) or run dry (a gap every few seconds). Instead it watches the
//! lowest level it falls to after reads, over a window of reads: below half
//! the target, reads stretch their block by one sample in a hundred; above
//! the target, they squeeze it; in between, they take it as is. A 1 %
//! change of speed for a fraction of a second is not heard; a gap is.
//! A backlog far above the target (a burst when a call starts, a stall)
//! would take seconds to squeeze away and is delay the whole time, so a
//! window whose lowest level stays over twice the target drops the excess
//! at once: one skip instead of a lasting lag.
//!
//! It holds mono samples at one rate; no device or clock here.

use std::collections::VecDeque;

/// How much a read may stretch or squeeze: one sample in this many.
const CORRECTION: usize = 100;
/// Reads per window over which the lowest level is watched.
const WINDOW: u32 = 25;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DriftStats {
    /// Reads that found less than they asked for (a gap was heard).
    pub underruns: u64,
    /// Samples thrown away because the buffer was far over its limit.
    pub overflowed: u64,
    /// Samples squeezed out and stretched in to follow the other clock.
    pub squeezed: u64,
    pub stretched: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Keep,
    Squeeze,
    Stretch,
}

#[derive(Debug)]
pub struct DriftBuffer {
    q: VecDeque<i16>,
    target: usize,
    /// The largest read so far: reads wait until at least that much is
    /// queued (a device may take more than its period at a time).
    block: usize,
    limit: usize,
    /// Reads wait until the target is reached first (and again after a gap).
    primed: bool,
    low: usize,
    reads: u32,
    mode: Mode,
    scratch: Vec<i16>,
    pub stats: DriftStats,
}

impl DriftBuffer {
    /// `target`: what is left queued after each read, at most (and at
    /// least half of it); reads start once that much, and at least a whole
    /// read, is queued. Past four times that, the oldest samples are
    /// dropped at once (after a stall, rather than lag behind for good).
    pub fn new(target: usize) -> DriftBuffer {
        let target = target.max(2);
        DriftBuffer {
            q: VecDeque::new(),
            target,
            block: 0,
            limit: target * 4,
            primed: false,
            low: usize::MAX,
            reads: 0,
            mode: Mode::Keep,
            scratch: Vec::new(),
            stats: DriftStats::default(),
        }
    }

    /// What a writer keeps queued: the target, or the reader's block if
    /// that is larger.
    pub fn target(&self) -> usize {
        self.target.max(self.block)
    }

    pub fn level(&self) -> usize {
        self.q.len()
    }

    /// Forgets what is queued (a new call should not start with the audio
    /// captured while nobody listened); reads wait for the target again.
    pub fn clear(&mut self) {
        self.q.clear();
        self.primed = false;
    }

    pub fn push(&mut self, pcm: &[i16]) {
        self.q.extend(pcm);
        let over = self.q.len().saturating_sub(self.limit);
        if over > 0 {
            self.q.drain(..over);
            self.stats.overflowed += over as u64;
        }
    }

    /// Fills `out` (silence where there is nothing to play).
    pub fn pull(&mut self, out: &mut [i16]) {
        let n = out.len();
        self.block = self.block.max(n.min(self.limit));
        if !self.primed {
            if self.q.len() < self.target() {
                out.fill(0);
                return;
            }
            self.primed = true;
            (self.low, self.reads, self.mode) = (usize::MAX, 0, Mode::Keep);
        }
        let room = (n / CORRECTION).max(1);
        let take = match self.mode {
            Mode::Squeeze if self.q.len() >= n + room => n + room,
            Mode::Stretch if self.q.len() >= n && n > room => n - room,
            _ => n,
        };
        if take > self.q.len() {
            // Ran dry: play what there is, then silence, and prime again.
            self.stats.underruns += 1;
            self.primed = false;
            let got = self.q.len();
            for (o, s) in out.iter_mut().zip(self.q.drain(..)) {
                *o = s;
            }
            out[got..].fill(0);
            return;
        }
        if take > n {
            self.stats.squeezed += (take - n) as u64;
        } else {
            self.stats.stretched += (n - take) as u64;
        }
        self.scratch.clear();
        self.scratch.extend(self.q.drain(..take));
        stretch(&self.scratch, out);
        self.low = self.low.min(self.q.len());
        self.reads += 1;
        if self.reads >= WINDOW {
            if self.low > 2 * self.target {
                let excess = self.low - self.target;
                self.q.drain(..excess);
                self.stats.overflowed += excess as u64;
                self.low = self.target;
            }
            self.mode = if self.low > self.target {
                Mode::Squeeze
            } else if self.low < self.target / 2 {
                Mode::Stretch
            } else {
                Mode::Keep
            };
            (self.low, self.reads) = (usize::MAX, 0);
        }
    }
}

/// Linear interpolation of `input` onto `out`'s length.
fn stretch(input: &[i16], out: &mut [i16]) {
    if input.len() == out.len() || input.len() < 2 || out.len() < 2 {
        for (i, o) in out.iter_mut().enumerate() {
            *o = input.get(i).copied().unwrap_or(0);
        }
        return;
    }
    let step = (input.len() - 1) as f64 / (out.len() - 1) as f64;
    for (i, o) in out.iter_mut().enumerate() {
        let pos = i as f64 * step;
        let a = (pos as usize).min(input.len() - 2);
        let frac = pos - a as f64;
        *o = (input[a] as f64 + (input[a + 1] as f64 - input[a] as f64) * frac).round() as i16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The network pushes 20 ms frames at 48 kHz while a device with a
    /// 10 ms period reads at `skew` times the network's rate, for `secs`.
    fn run(skew: f64, secs: usize) -> (DriftBuffer, Vec<usize>) {
        let mut b = DriftBuffer::new(960 + 480);
        let (frame, period) = (960usize, 480usize);
        let mut levels = Vec::new();
        let mut out = vec![0i16; period];
        let (mut net_t, mut dev_t) = (0.0f64, 0.0f64);
        let frame_s = 0.020;
        let period_s = 0.010 / skew;
        let mut x = 0i64;
        while net_t < secs as f64 {
            if net_t <= dev_t {
                let f: Vec<i16> = (0..frame)
                    .map(|_| {
                        x += 1;
                        (x % 100) as i16
                    })
                    .collect();
                b.push(&f);
                net_t += frame_s;
            } else {
                b.pull(&mut out);
                levels.push(b.level());
                dev_t += period_s;
            }
        }
        (b, levels)
    }

    #[test]
    fn a_device_clock_off_by_five_per_mille_either_way_causes_no_gap() {
        for skew in [1.005, 0.995, 1.0] {
            let (b, levels) = run(skew, 120);
            assert_eq!((b.stats.underruns, b.stats.overflowed), (0, 0), "{skew}: {:?}", b.stats);
            // After settling, the level stays near the target.
            let late = &levels[levels.len() / 2..];
            let (lo, hi) = (late.iter().min().unwrap(), late.iter().max().unwrap());
            assert!(*lo > 100 && *hi < 3 * b.target(), "{skew}: level between {lo} and {hi}");
            if skew > 1.0 {
                assert!(b.stats.stretched > 0 && b.stats.squeezed == 0, "{skew}: {:?}", b.stats);
            } else if skew < 1.0 {
                assert!(b.stats.squeezed > 0 && b.stats.stretched == 0, "{skew}: {:?}", b.stats);
            }
        }
    }

    #[test]
    fn silence_until_primed_and_after_running_dry() {
        let mut b = DriftBuffer::new(100);
        let mut out = [7i16; 60];
        b.push(&[5; 50]);
        b.pull(&mut out);
        assert_eq!(out, [0; 60]);
        b.push(&[5; 50]);
        b.pull(&mut out);
        assert_eq!(out, [5; 60]);
        b.pull(&mut out);
        assert_eq!(&out[..40], &[5; 40]);
        assert_eq!(&out[40..], &[0; 20]);
        // Not before the target is reached again.
        b.push(&[5; 99]);
        b.pull(&mut out);
        assert_eq!(out, [0; 60]);
        assert_eq!(b.stats.underruns, 1);
    }

    #[test]
    fn a_lasting_backlog_is_dropped_at_once_not_squeezed_for_seconds() {
        let mut b = DriftBuffer::new(100);
        // 300 queued beyond the target, then writer and reader keep pace.
        b.push(&[1; 390]);
        let mut out = [0i16; 10];
        let mut levels = Vec::new();
        for _ in 0..2 * WINDOW {
            b.push(&[1; 10]);
            b.pull(&mut out);
            levels.push(b.level());
        }
        // After one window the level is back near the target.
        assert!(levels[WINDOW as usize..].iter().all(|l| *l <= 100), "{levels:?}");
        assert!(b.stats.overflowed > 0 && b.stats.underruns == 0, "{:?}", b.stats);
    }

    #[test]
    fn a_burst_after_a_stall_is_cut_to_the_limit() {
        let mut b = DriftBuffer::new(100);
        b.push(&[1; 1000]);
        assert_eq!((b.level(), b.stats.overflowed), (400, 600));
    }
}
