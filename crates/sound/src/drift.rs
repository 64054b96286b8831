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
//! The target is as small as the clocks allow (the device layer asks for
//! two device periods, so one to two stay queued after reads: when the
//! device's clock is the faster one, a read now and then slides past a
//! write and finds only what the last read left) and grows only on
//! measured jitter: a read that runs dry (the other side came later than the target
//! allowed) grows it by half the starting target, up to four times that;
//! after `CALM` reads without another, in which even the lowest level had
//! that step to spare, it shrinks back a step. A busy moment costs a little
//! delay for a few seconds, not for the whole call.
//!
//! It holds mono samples at one rate; no device or clock here.

use std::collections::VecDeque;

/// How much a read may stretch or squeeze: one sample in this many.
const CORRECTION: usize = 100;
/// Reads per window over which the lowest level is watched.
const WINDOW: u32 = 25;
/// Reads without running dry before a grown target shrinks a step
/// (5 s of 10 ms device periods, 10 s of 20 ms frames).
const CALM: u32 = 500;
/// The target grows at most to this many times where it started.
const GROWTH: usize = 4;

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

/// A drift buffer at a glance: samples queued, the level it keeps after
/// reads, reads that ran dry and samples dropped so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    pub level: usize,
    pub kept: usize,
    pub underruns: u64,
    pub dropped: u64,
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
    /// Where the target started, and the step it grows and shrinks by
    /// (half of it).
    base: usize,
    /// The largest read so far: reads wait until at least that much is
    /// queued (a device may take more than its period at a time).
    block: usize,
    /// Reads since the buffer last ran dry or its target last changed, and
    /// the lowest level after them.
    calm: u32,
    calm_low: usize,
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
    /// least half of it), until the buffer runs dry and grows it; reads
    /// start once three quarters of it and a whole read are queued. Past
    /// four times the target or the largest read, the oldest
    /// samples are dropped at once (after a stall, rather than lag behind
    /// for good).
    pub fn new(target: usize) -> DriftBuffer {
        let target = target.max(2);
        DriftBuffer {
            q: VecDeque::new(),
            target,
            base: target,
            block: 0,
            calm: 0,
            calm_low: usize::MAX,
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

    /// The level kept after reads now: where it started, or more after the
    /// buffer ran dry.
    pub fn kept(&self) -> usize {
        self.target
    }

    /// What the latency log shows.
    pub fn levels(&self) -> Levels {
        Levels {
            level: self.q.len(),
            kept: self.target,
            underruns: self.stats.underruns,
            dropped: self.stats.overflowed,
        }
    }

    fn limit(&self) -> usize {
        4 * self.target.max(self.block)
    }

    /// Forgets what is queued (a new call should not start with the audio
    /// captured while nobody listened); reads wait for the target again.
    pub fn clear(&mut self) {
        self.q.clear();
        self.primed = false;
    }

    pub fn push(&mut self, pcm: &[i16]) {
        self.q.extend(pcm);
        let over = self.q.len().saturating_sub(self.limit());
        if over > 0 {
            self.q.drain(..over);
            self.stats.overflowed += over as u64;
        }
    }

    /// Fills `out` (silence where there is nothing to play).
    pub fn pull(&mut self, out: &mut [i16]) {
        let n = out.len();
        self.block = self.block.max(n.min(self.limit()));
        if !self.primed {
            // A whole read and three quarters of the target: the first
            // read leaves the middle of what the target allows queued.
            if self.q.len() < self.target * 3 / 4 + self.block {
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
            // Ran dry: play what there is, then silence, and prime again
            // with more kept from now on.
            self.stats.underruns += 1;
            self.primed = false;
            (self.calm, self.calm_low) = (0, usize::MAX);
            self.target = (self.target + (self.base / 2).max(1)).min(self.base * GROWTH);
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
        self.calm += 1;
        self.calm_low = self.calm_low.min(self.q.len());
        if self.calm >= CALM {
            // Shrink a step only if even the lowest level had a step to
            // spare: the jitter that grew it is gone.
            let step = (self.base / 2).max(1);
            if self.target > self.base && self.calm_low >= step {
                self.target = self.target.saturating_sub(step).max(self.base);
            }
            (self.calm, self.calm_low) = (0, usize::MAX);
        }
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

    /// Two clocks in simulated time at 48 kHz: a writer of `wrote`
    /// samples every `write_ms` and a reader of `read` samples every
    /// `read_ms`, the reader's clock `skew` times the writer's, each event
    /// late by `late(n)` ms (the n-th of its side; a busy machine), for
    /// `secs`. The levels after each read.
    #[derive(Clone, Copy)]
    struct Sim {
        wrote: usize,
        write_ms: f64,
        read: usize,
        read_ms: f64,
        skew: f64,
    }

    impl Sim {
        /// The network writes 20 ms frames, the device reads 10 ms periods.
        const PLAYOUT: Sim = Sim {
            wrote: 960,
            write_ms: 20.0,
            read: 480,
            read_ms: 10.0,
            skew: 1.0,
        };
        /// The device writes 10 ms periods, the phone reads 20 ms frames.
        const CAPTURE: Sim = Sim {
            wrote: 480,
            write_ms: 10.0,
            read: 960,
            read_ms: 20.0,
            skew: 1.0,
        };

        fn skewed(self, skew: f64) -> Sim {
            Sim { skew, ..self }
        }

        fn run(&self, b: &mut DriftBuffer, secs: f64, late: impl Fn(u64) -> f64) -> Vec<usize> {
            let mut levels = Vec::new();
            let mut out = vec![0i16; self.read];
            let (mut writes, mut reads) = (0u64, 0u64);
            let mut x = 0i64;
            loop {
                let w_at = writes as f64 * self.write_ms + late(writes);
                let r_at = reads as f64 * self.read_ms / self.skew + late(reads + 1_000_000);
                if w_at.min(r_at) >= secs * 1000.0 {
                    return levels;
                }
                if w_at <= r_at {
                    let f: Vec<i16> = (0..self.wrote)
                        .map(|_| {
                            x += 1;
                            (x % 100) as i16
                        })
                        .collect();
                    b.push(&f);
                    writes += 1;
                } else {
                    b.pull(&mut out);
                    levels.push(b.level());
                    reads += 1;
                }
            }
        }
    }

    #[test]
    fn a_device_clock_off_either_way_causes_no_gap() {
        // The device layer's target (two 10 ms periods) both ways, and the
        // old one (a period and a frame), at 5 per mille, 500 and 50 ppm fast and 5 per mille
        // slow. Half a period was tried: a device clock faster than the
        // network's ran it dry every time its reads slid past a write
        // (every 20 s at 500 ppm), since a read then finds only what was
        // left after the last one.
        for (sim, target) in [(Sim::PLAYOUT, 960), (Sim::CAPTURE, 960), (Sim::PLAYOUT, 960 + 480)] {
            for skew in [1.005, 1.0005, 1.00005, 0.995, 1.0] {
                let mut b = DriftBuffer::new(target);
                let levels = sim.skewed(skew).run(&mut b, 300.0, |_| 0.0);
                let what = format!("target {target}, {} per read, skew {skew}", sim.read);
                assert_eq!((b.stats.underruns, b.stats.overflowed), (0, 0), "{what}: {:?}", b.stats);
                // After settling, the level stays near the target.
                let late = &levels[levels.len() / 2..];
                let (lo, hi) = (*late.iter().min().unwrap(), *late.iter().max().unwrap());
                assert!(lo >= 50 && hi < 3 * target, "{what}: level between {lo} and {hi}");
                // A faster reader is followed by stretching, a slower one
                // by squeezing.
                if !(1.0..=1.001).contains(&skew) {
                    if skew > 1.0 {
                        assert!(b.stats.stretched > 0 && b.stats.squeezed == 0, "{what}: {:?}", b.stats);
                    } else {
                        assert!(b.stats.squeezed > 0 && b.stats.stretched == 0, "{what}: {:?}", b.stats);
                    }
                }
            }
        }
    }

    #[test]
    fn late_writes_on_a_busy_machine_grow_the_target_then_it_shrinks_back() {
        // Two 10 ms periods kept. One network frame in ten comes 25 ms
        // late (more than the 10–20 ms kept) while the machine is busy.
        let mut b = DriftBuffer::new(960);
        let busy = |n: u64| if n % 10 == 3 { 25.0 } else { 0.0 };
        Sim::PLAYOUT.run(&mut b, 10.0, busy);
        let grown = b.levels();
        assert!(grown.underruns >= 1 && grown.underruns <= 4, "{grown:?}");
        assert!(grown.kept > 960 && grown.kept <= 4 * 960, "{grown:?}");
        // Once grown, the same jitter makes no more gaps.
        Sim::PLAYOUT.run(&mut b, 20.0, busy);
        assert_eq!(b.stats.underruns, grown.underruns, "{:?}", b.levels());
        // Calm again: within a minute it keeps what it started with, with
        // no gap and no standing queue.
        let levels = Sim::PLAYOUT.run(&mut b, 60.0, |_| 0.0);
        assert_eq!(b.levels().kept, 960, "{:?}", b.levels());
        assert_eq!(b.stats.underruns, grown.underruns);
        let late = &levels[levels.len() / 2..];
        assert!(late.iter().all(|l| *l <= 960 + 480), "a standing queue: {:?}", late.iter().max());
    }

    #[test]
    fn silence_until_primed_and_after_running_dry() {
        let mut b = DriftBuffer::new(100);
        let mut out = [7i16; 60];
        // Reads start once 3/4 of the target and a whole read are queued.
        b.push(&[5; 134]);
        b.pull(&mut out);
        assert_eq!(out, [0; 60]);
        b.push(&[5; 1]);
        b.pull(&mut out);
        assert_eq!(out, [5; 60]);
        b.pull(&mut out);
        b.pull(&mut out);
        assert_eq!(&out[..15], &[5; 15]);
        assert_eq!(&out[15..], &[0; 45]);
        // Ran dry: the target grew by half, and reads wait for 3/4 of it
        // and a read again.
        assert_eq!((b.stats.underruns, b.levels().kept), (1, 150));
        b.push(&[5; 171]);
        b.pull(&mut out);
        assert_eq!(out, [0; 60]);
        b.push(&[5; 1]);
        b.pull(&mut out);
        assert_eq!(out, [5; 60]);
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
