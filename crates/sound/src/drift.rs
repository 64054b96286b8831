//! The speaker's buffer between two clocks: the network's (a frame
//! whenever a packet arrives, played at once) and the sound device's (a
//! period whenever the card wants one). It is also the call's jitter
//! buffer at the sample level: how long audio waits in it is set in
//! milliseconds, not in whole frames.
//!
//! It keeps time. Each read notes when it happened; each write works out
//! when its first sample will be heard if the device goes on at its pace:
//! the next read is due a period after the last one, and what is queued
//! ahead plays first. That wait, the write's *latency*, is continuous
//! (a level sampled only after reads jumps by a whole read as the two
//! clocks slide past each other, which is why a buffer steered by levels
//! had to keep a whole read to spare). A write never runs dry before its
//! latency is up as long as that latency is at least one device period
//! plus a margin, whatever the phase of the two clocks, so the buffer aims
//! the lowest latency of each window of writes (the latest packet's) at a
//! period plus the margin:
//! - below it, reads stretch their block by one sample in a hundred until
//!   the difference is made up; above it, they squeeze; a 1 % change of
//!   speed for a fraction of a second is not heard, a gap is. This is also
//!   what follows a device clock that drifts against the sender's: what
//!   the drift took in each window is learnt and made up in advance;
//! - far above it (a burst after a stall), the excess goes at once;
//! - a read that runs dry (audio came later than the margin allowed) plays
//!   what there is and silence, and grows the margin by how late the audio
//!   then came (up to `MAX_MARGIN_US`; a longer silence is a pause, not
//!   jitter); the next write starts again at the target, behind silence.
//!   After `CALM` writes without another, half of the growth goes again:
//!   a busy moment costs a little delay for a few seconds, not the call.
//!
//! It holds mono samples at one rate; times are microseconds on any clock
//! the caller keeps (the device layer's, or simulated time in tests).

use std::collections::VecDeque;

/// How much a read may stretch or squeeze: one sample in this many.
const CORRECTION: usize = 100;
/// Writes per window over which the lowest latency is watched (half a
/// second of 20 ms frames: a device clock 5 per mille fast takes 2.5 ms
/// of it in a window, less than the margin, before the drift is learnt).
const WINDOW: u32 = 25;
/// Writes without running dry before a grown margin halves its growth
/// (5 s of 20 ms frames).
const CALM: u32 = 250;
/// The margin a write keeps before it is needed, to start with.
pub const BASE_MARGIN_US: u64 = 3_000;
/// The margin grows at most to this; audio later than this after a read
/// ran dry is a pause (hold, a silent sender), not jitter.
const MAX_MARGIN_US: u64 = 60_000;
/// The lowest latency of a window may be this much above the target
/// before reads squeeze, and as much below before they stretch.
const BAND_US: u64 = 2_000;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DriftStats {
    /// Reads that found less than they asked for (a gap was heard).
    pub underruns: u64,
    /// Samples thrown away because the buffer was far over its target.
    pub overflowed: u64,
    /// Samples squeezed out and stretched in to follow the other clock.
    pub squeezed: u64,
    pub stretched: u64,
    /// Samples of silence put before a write when playout (re)started.
    pub padded: u64,
}

/// The buffer at a glance, for the latency log: samples queued; the
/// latency it aims the latest write of a window at (`target_us`) and the
/// lowest it saw in the last window (`low_us`); reads that ran dry and
/// samples dropped so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    pub level: usize,
    pub target_us: u64,
    pub low_us: i64,
    pub underruns: u64,
    pub dropped: u64,
}

#[derive(Debug)]
pub struct DriftBuffer {
    q: VecDeque<i16>,
    rate: u32,
    /// What a write keeps beyond a device period, now (grown after a
    /// read ran dry).
    margin_us: u64,
    /// The largest read so far (the device's period).
    block: usize,
    /// When the last read was, and how much it took.
    last_read: Option<(u64, usize)>,
    /// Writes are timed from the first one after a start or a gap, which
    /// puts silence before itself to start at the target.
    primed: bool,
    /// The read that ran dry, until audio comes again.
    starved_at: Option<u64>,
    /// The lowest latency in the current window, and its writes.
    low_us: i64,
    last_low_us: i64,
    writes: u32,
    /// Writes since the buffer last ran dry or the margin last shrank.
    calm: u32,
    /// Samples still to stretch in (positive) or squeeze out (negative).
    pending: i64,
    /// What the clocks' drift takes away (positive) or adds per window,
    /// learnt from the windows' errors: corrected for in advance, so a
    /// steady drift leaves no steady error.
    trend: i64,
    scratch: Vec<i16>,
    pub stats: DriftStats,
}

impl DriftBuffer {
    /// A buffer of samples at `rate` per second, keeping the base margin.
    pub fn new(rate: u32) -> DriftBuffer {
        DriftBuffer {
            q: VecDeque::new(),
            rate: rate.max(1),
            margin_us: BASE_MARGIN_US,
            block: rate.max(1) as usize / 100,
            last_read: None,
            primed: false,
            starved_at: None,
            low_us: i64::MAX,
            last_low_us: 0,
            writes: 0,
            calm: 0,
            pending: 0,
            trend: 0,
            scratch: Vec::new(),
            stats: DriftStats::default(),
        }
    }

    fn us(&self, samples: usize) -> u64 {
        samples as u64 * 1_000_000 / self.rate as u64
    }

    fn samples(&self, us: u64) -> usize {
        (us * self.rate as u64).div_ceil(1_000_000) as usize
    }

    /// The latency a write aims at: a device period and the margin.
    pub fn target_us(&self) -> u64 {
        self.us(self.block) + self.margin_us
    }

    /// What a writer keeps queued, in samples: the target's worth.
    pub fn target(&self) -> usize {
        self.samples(self.target_us() + BAND_US)
    }

    pub fn level(&self) -> usize {
        self.q.len()
    }

    /// What the latency log shows.
    pub fn levels(&self) -> Levels {
        Levels {
            level: self.q.len(),
            target_us: self.target_us(),
            low_us: self.last_low_us,
            underruns: self.stats.underruns,
            dropped: self.stats.overflowed,
        }
    }

    fn limit(&self) -> usize {
        (4 * self.target()).max(2 * self.block)
    }

    /// When a sample written at `now` would be heard, from now: the next
    /// read is due a period after the last, and what is queued goes first.
    fn latency_us(&self, now: u64) -> Option<i64> {
        let (at, n) = self.last_read?;
        Some((at + self.us(n) + self.us(self.q.len())) as i64 - now as i64)
    }

    /// Forgets what is queued and any grown margin (a new call starts
    /// afresh; what was captured or played for nobody is not kept).
    pub fn clear(&mut self) {
        self.q.clear();
        self.primed = false;
        self.starved_at = None;
        self.margin_us = BASE_MARGIN_US;
        (self.low_us, self.writes, self.calm, self.pending, self.trend) = (i64::MAX, 0, 0, 0, 0);
    }

    /// Audio that arrived at `now`.
    pub fn push(&mut self, pcm: &[i16], now: u64) {
        if pcm.is_empty() {
            return;
        }
        if let Some(at) = self.starved_at.take() {
            // How late this audio came for the read that needed it.
            let late = now.saturating_sub(at);
            if late < MAX_MARGIN_US {
                self.margin_us = (self.margin_us + late + 1_000).min(MAX_MARGIN_US);
            }
            self.calm = 0;
        }
        if let Some(mut latency) = self.latency_us(now) {
            if !self.primed {
                // Start at the target: silence before this write.
                let want = (self.target_us() + BAND_US / 2) as i64;
                if latency < want {
                    let pad = self.samples((want - latency) as u64);
                    self.q.extend(std::iter::repeat_n(0, pad));
                    self.stats.padded += pad as u64;
                    latency = want;
                }
                self.primed = true;
                (self.low_us, self.writes, self.pending) = (i64::MAX, 0, 0);
            }
            self.low_us = self.low_us.min(latency);
            self.writes += 1;
            self.calm += 1;
        }
        self.q.extend(pcm);
        let over = self.q.len().saturating_sub(self.limit());
        if over > 0 {
            self.q.drain(..over);
            self.stats.overflowed += over as u64;
        }
        if self.calm >= CALM {
            // Calm: half of what the margin grew goes again.
            let excess = self.margin_us - BASE_MARGIN_US;
            self.margin_us = if excess < 1_000 {
                BASE_MARGIN_US
            } else {
                BASE_MARGIN_US + excess / 2
            };
            self.calm = 0;
        }
        if self.writes >= WINDOW {
            self.steer();
        }
    }

    /// At the end of a window: aim its lowest latency at the target.
    fn steer(&mut self) {
        let aim = (self.target_us() + BAND_US / 2) as i64;
        let err = self.low_us - aim;
        if err > (self.us(self.block) + BAND_US) as i64 {
            // Far above: a backlog, dropped at once (one skip rather than
            // a second of lag).
            let excess = self.samples(err as u64).min(self.q.len());
            self.q.drain(..excess);
            self.stats.overflowed += excess as u64;
            self.pending = 0;
        } else {
            let err_samples = self.samples(err.unsigned_abs()) as i64 * err.signum();
            // At most what a window's reads can stretch or squeeze.
            let most = (self.rate as i64 / 50 * WINDOW as i64 / CORRECTION as i64).max(1);
            self.trend = (self.trend - err_samples / 2).clamp(-most, most);
            self.pending = if err.unsigned_abs() > BAND_US / 2 {
                self.trend - err_samples
            } else {
                self.trend
            };
        }
        self.last_low_us = self.low_us;
        (self.low_us, self.writes) = (i64::MAX, 0);
    }

    /// Fills `out` (silence where there is nothing to play), the device's
    /// read at `now`.
    pub fn pull(&mut self, out: &mut [i16], now: u64) {
        let n = out.len();
        if n == 0 {
            return;
        }
        self.block = self.block.max(n);
        self.last_read = Some((now, n));
        if !self.primed {
            out.fill(0);
            return;
        }
        let room = (n / CORRECTION).max(1);
        let take = if self.pending > 0 && n > room {
            self.pending -= room as i64;
            n - room
        } else if self.pending < 0 && self.q.len() >= n + room {
            self.pending += room as i64;
            n + room
        } else {
            n
        };
        if take > self.q.len() {
            // Ran dry: play what there is, then silence; the next write
            // starts again at the target, with a larger margin.
            self.stats.underruns += 1;
            self.primed = false;
            self.starved_at = Some(now);
            self.pending = 0;
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

    /// Two clocks in simulated time at 48 kHz: the network writes 20 ms
    /// frames every 20 ms (from 10 ms + `phase_ms` on), the device reads 10 ms
    /// periods every 10 ms of its clock, which runs `skew` times the
    /// network's; each event late by `late(n)` ms (the n-th write; a busy
    /// machine). Returns the buffer's `low_us` after each window.
    #[derive(Clone, Copy)]
    struct Sim {
        skew: f64,
        phase_ms: f64,
    }

    const WROTE: usize = 960;
    const READ: usize = 480;

    impl Sim {
        fn run(&self, b: &mut DriftBuffer, from_s: f64, secs: f64, late: impl Fn(u64) -> f64) -> Vec<i64> {
            let mut lows = Vec::new();
            let mut out = vec![0i16; READ];
            let start = from_s * 1000.0;
            let (mut writes, mut reads) = ((start / 20.0) as u64, (start * self.skew / 10.0) as u64);
            let mut x = 0i64;
            loop {
                // The device reads from the phone's start; the call's
                // first packet comes after its first read.
                let w_at = 10.0 + self.phase_ms + writes as f64 * 20.0 + late(writes);
                let r_at = reads as f64 * 10.0 / self.skew;
                if w_at.min(r_at) >= (from_s + secs) * 1000.0 {
                    return lows;
                }
                if w_at <= r_at {
                    let f: Vec<i16> = (0..WROTE)
                        .map(|_| {
                            x += 1;
                            1 + (x % 100) as i16
                        })
                        .collect();
                    let low = b.last_low_us;
                    b.push(&f, (w_at * 1000.0) as u64);
                    if b.last_low_us != low {
                        lows.push(b.last_low_us);
                    }
                    writes += 1;
                } else {
                    b.pull(&mut out, (r_at * 1000.0) as u64);
                    reads += 1;
                }
            }
        }
    }

    #[test]
    fn a_device_clock_off_either_way_causes_no_gap() {
        // 5 per mille, 500 and 50 ppm fast and slow, at several phases of
        // the two clocks, for five simulated minutes each: the device's
        // reads slide past the network's writes again and again.
        for skew in [1.005, 1.0005, 1.00005, 0.99995, 0.9995, 0.995, 1.0] {
            for phase_ms in [0.0, 3.0, 9.5] {
                let sim = Sim { skew, phase_ms };
                let mut b = DriftBuffer::new(48_000);
                let lows = sim.run(&mut b, 0.0, 300.0, |_| 0.0);
                let what = format!("skew {skew}, phase {phase_ms} ms");
                assert_eq!((b.stats.underruns, b.stats.overflowed), (0, 0), "{what}: {:?}", b.stats);
                // After settling, the latest write waits a period and the
                // margin, give or take the band and a window's drift.
                let late = &lows[lows.len() / 2..];
                let (lo, hi) = (*late.iter().min().unwrap(), *late.iter().max().unwrap());
                assert!(lo >= 10_000 && hi <= 20_000, "{what}: latency between {lo} and {hi} us");
                // A faster reader is followed by stretching, a slower one
                // by squeezing.
                if skew >= 1.0005 {
                    assert!(b.stats.stretched > b.stats.squeezed, "{what}: {:?}", b.stats);
                } else if skew <= 0.9995 {
                    assert!(b.stats.squeezed > b.stats.stretched, "{what}: {:?}", b.stats);
                }
            }
        }
    }

    #[test]
    fn late_writes_on_a_busy_machine_grow_the_margin_then_it_shrinks_back() {
        // One network frame in ten comes 25 ms late while the machine is
        // busy: more than the margin allows.
        let sim = Sim { skew: 1.0, phase_ms: 4.0 };
        let mut b = DriftBuffer::new(48_000);
        let busy = |n: u64| if n % 10 == 3 { 25.0 } else { 0.0 };
        sim.run(&mut b, 0.0, 10.0, busy);
        let grown = b.levels();
        assert!(grown.underruns >= 1 && grown.underruns <= 3, "{grown:?}");
        assert!(grown.target_us > 10_000 + BASE_MARGIN_US, "{grown:?}");
        // Once grown, the same jitter makes no more gaps.
        sim.run(&mut b, 10.0, 20.0, busy);
        assert_eq!(b.stats.underruns, grown.underruns, "{:?}", b.levels());
        // Calm again: within a minute it keeps what it started with, with
        // no gap and no standing queue.
        let lows = sim.run(&mut b, 30.0, 60.0, |_| 0.0);
        assert_eq!(b.levels().target_us, 10_000 + BASE_MARGIN_US, "{:?}", b.levels());
        assert_eq!(b.stats.underruns, grown.underruns);
        let late = &lows[lows.len() / 2..];
        assert!(late.iter().all(|l| *l <= 20_000), "a standing queue: {late:?}");
    }

    #[test]
    fn silence_until_primed_then_the_first_write_starts_at_the_target() {
        let mut b = DriftBuffer::new(1_000);
        let mut out = [7i16; 10];
        // Nothing written: silence, and no gap counted.
        b.pull(&mut out, 0);
        assert_eq!((out, b.stats.underruns), ([0; 10], 0));
        // Written 2 ms after a 10 ms read: its first sample would be heard
        // 8 ms from now; silence makes that the target (10 ms, the margin
        // and half the band).
        b.push(&[5; 20], 2_000);
        let pad = (10_000 + BASE_MARGIN_US + BAND_US / 2 - 8_000) as usize / 1000;
        assert_eq!((b.level(), b.stats.padded), (20 + pad, pad as u64));
        let mut heard = Vec::new();
        for k in 1..4 {
            b.pull(&mut out, k * 10_000);
            heard.extend_from_slice(&out);
        }
        assert_eq!(heard.iter().take_while(|s| **s == 0).count(), pad);
        assert_eq!(heard.iter().filter(|s| **s == 5).count(), 20);
        // Ran dry: the next write (2 ms after the read that needed it)
        // grows the margin by that and a millisecond.
        assert_eq!(b.stats.underruns, 1);
        b.push(&[5; 20], 32_000);
        assert_eq!(b.levels().target_us, 10_000 + BASE_MARGIN_US + 3_000);
    }

    #[test]
    fn a_lasting_backlog_is_dropped_at_once_not_squeezed_for_seconds() {
        let mut b = DriftBuffer::new(48_000);
        let mut out = vec![0i16; READ];
        b.pull(&mut out, 0);
        // 200 ms queued at once, then writer and reader keep pace.
        b.push(&vec![1; 9_600], 1_000);
        let mut lows = Vec::new();
        for k in 0..(3 * WINDOW as u64) {
            b.push(&vec![1; WROTE], 20_000 * k + 2_000);
            b.pull(&mut out, 20_000 * k + 10_000);
            b.pull(&mut out, 20_000 * k + 20_000);
            lows.push(b.latency_us(20_000 * k + 22_000).unwrap());
        }
        // After one window the latency is back near the target.
        assert!(lows[2 * WINDOW as usize..].iter().all(|l| *l <= 20_000), "{lows:?}");
        assert!(b.stats.overflowed > 0 && b.stats.underruns == 0, "{:?}", b.stats);
    }

    #[test]
    fn a_burst_after_a_stall_is_cut_to_the_limit() {
        let mut b = DriftBuffer::new(48_000);
        b.push(&vec![1; 48_000], 0);
        assert_eq!(b.level(), b.limit());
        assert!(b.stats.overflowed > 0);
    }
}
