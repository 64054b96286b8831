//! A jitter buffer for fixed-duration audio frames, driven by the playout
//! clock: the media session calls [`JitterBuffer::pop`] once per frame
//! period and gets a frame, or `Lost` to conceal.
//!
//! - Jitter is measured, not assumed: playout starts once `target` frames
//!   are queued (the session starts at one). A slot that finds the queue
//!   empty while playing (an underrun: the packet came later than the
//!   delay allowed) waits in place, which adds a frame of delay, and grows
//!   the target by one so that frame is kept; a packet that arrives after
//!   its slot was played (counted late) grows it too (up to `max`). After
//!   `CALM` frames with neither, the target shrinks by one again (down to
//!   where it started), so a burst of jitter, as when a call starts on a
//!   busy machine, is not delay for the rest of the call.
//! - Standing delay is dropped: over every window of `WINDOW` slots the
//!   lowest depth is watched; when even that stayed above the target (the
//!   frames beyond it were never needed), the excess goes at once, oldest
//!   first. This is also what absorbs a sender whose clock runs faster
//!   than ours.
//! - Loss: a missing frame with later ones queued is skipped as lost.
//! - A sender slower than our clock empties the queue; then we conceal
//!   without advancing, so nothing is dropped.
//! - A new SSRC is a new stream (a re-INVITE moved the call to a mixer,
//!   the far end restarted): its sequence numbers say nothing about the
//!   old one's, so playout starts over instead of taking its first
//!   packets for late ones.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pop {
    Frame(Vec<u8>),
    /// Nothing to play in this slot: conceal.
    Lost,
    /// Nothing to play in this slot, but nothing was lost either: playout
    /// has not started, or the sender is late or paused. A live listener
    /// conceals it like a loss; a recording with no one listening (a
    /// voicemail) has nothing to keep for it.
    Waiting,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct JitterStats {
    pub received: u64,
    pub played: u64,
    pub lost: u64,
    pub late: u64,
    pub duplicates: u64,
    pub dropped_for_drift: u64,
    /// Slots that found nothing queued while playing (waited in place).
    pub underruns: u64,
}

pub struct JitterBuffer {
    queue: BTreeMap<u64, Vec<u8>>,
    /// Extended sequence number of the next frame to play.
    next: Option<u64>,
    /// Highest extended sequence number seen, for unwrapping 16-bit ones.
    highest: Option<u64>,
    /// The SSRC of the stream being played (see [`JitterBuffer::push_from`]).
    source: Option<u32>,
    playing: bool,
    target: usize,
    /// Where the target started and shrinks back to.
    base: usize,
    max: usize,
    /// The lowest depth seen at a slot in the current window, and the
    /// slots counted in it.
    low: usize,
    slots: u32,
    /// The last slot found the queue empty (one underrun grows the target
    /// once, however long the sender stays silent).
    dry: bool,
    /// A late packet asked for a frame more of delay: the next missing
    /// frame waits a slot in place instead of being skipped.
    wait_next_gap: bool,
    /// Frames played since the last late packet (or the last shrink).
    calm_for: u32,
    pub stats: JitterStats,
}

/// Frames without a late packet (5 s) before the target shrinks a frame.
const CALM: u32 = 250;

/// Slots (1 s) over which the lowest depth is watched for standing delay.
const WINDOW: u32 = 50;
/// A jump larger than this is a new stream (a restarted sender), not loss.
const RESYNC_GAP: u64 = 200;

impl JitterBuffer {
    pub fn new(target: usize, max: usize) -> JitterBuffer {
        JitterBuffer {
            queue: BTreeMap::new(),
            next: None,
            highest: None,
            source: None,
            playing: false,
            target: target.max(1),
            base: target.max(1),
            max: max.max(target),
            low: usize::MAX,
            slots: 0,
            dry: false,
            wait_next_gap: false,
            calm_for: 0,
            stats: JitterStats::default(),
        }
    }

    pub fn target(&self) -> usize {
        self.target
    }

    pub fn depth(&self) -> usize {
        self.queue.len()
    }

    /// Whether [`JitterBuffer::pop`] would play a frame now (playout on
    /// arrival pops only then, and at a frame's deadline).
    pub fn next_ready(&self) -> bool {
        if !self.playing {
            return self.queue.len() >= self.target;
        }
        self.next.is_some_and(|n| self.queue.contains_key(&n))
    }

    fn extend(&mut self, seq: u16) -> u64 {
        let Some(h) = self.highest else {
            // Start high enough that sequence numbers before the first one
            // do not underflow.
            let e = (1u64 << 32) + seq as u64;
            self.highest = Some(e);
            return e;
        };
        let base = h & !0xFFFF;
        let candidates = [
            base.wrapping_sub(0x10000) + seq as u64,
            base + seq as u64,
            base + 0x10000 + seq as u64,
        ];
        let e = candidates.into_iter().min_by_key(|c| c.abs_diff(h)).expect("three candidates");
        if e > h {
            self.highest = Some(e);
        }
        e
    }

    /// A frame of stream `ssrc`: a stream other than the one playing
    /// starts playout over (what was queued of the old one is dropped).
    pub fn push_from(&mut self, ssrc: u32, seq: u16, payload: Vec<u8>) {
        if self.source.replace(ssrc).is_some_and(|old| old != ssrc) {
            self.restart();
        }
        self.push(seq, payload);
    }

    pub fn push(&mut self, seq: u16, payload: Vec<u8>) {
        self.stats.received += 1;
        let e = self.extend(seq);
        if let Some(next) = self.next {
            if e < next {
                if next - e > RESYNC_GAP {
                    self.resync(e);
                } else {
                    self.stats.late += 1;
                    self.grow();
                    self.wait_next_gap = self.playing;
                    return;
                }
            } else if e - next > RESYNC_GAP {
                self.resync(e);
            }
        }
        if self.queue.insert(e, payload).is_some() {
            self.stats.duplicates += 1;
        }
    }

    /// Measured jitter: keep a frame more.
    fn grow(&mut self) {
        self.target = (self.target + 1).min(self.max);
        self.calm_for = 0;
    }

    /// Playout starts over: nothing queued, no sequence numbers known.
    fn restart(&mut self) {
        self.queue.clear();
        self.next = None;
        self.highest = None;
        self.playing = false;
        (self.low, self.slots, self.dry, self.wait_next_gap) = (usize::MAX, 0, false, false);
    }

    /// The same stream jumped (a restarted sender): start over from `e`.
    fn resync(&mut self, e: u64) {
        self.restart();
        self.highest = Some(e);
    }

    /// Frames queued in an unbroken run from `next`: the slots that would
    /// play even if nothing more arrived (a frame queued beyond a gap does
    /// not cover that gap's slot).
    fn ready(&self, next: u64) -> usize {
        self.queue.range(next..).zip(next..).take_while(|((k, _), want)| *k == want).count()
    }

    /// The frame for the current playout slot.
    pub fn pop(&mut self) -> Pop {
        if !self.playing {
            if self.queue.len() < self.target {
                return Pop::Waiting;
            }
            self.playing = true;
            self.next = self.queue.keys().next().copied();
        }
        let Some(next) = self.next else { return Pop::Waiting };
        self.calm_for += 1;
        if self.calm_for >= CALM && self.target > self.base {
            self.calm_for = 0;
            self.target -= 1;
        }
        // Standing delay: frames beyond the target that no slot of a whole
        // window needed (the run of frames ready to play never fell below
        // them) go at once, oldest first.
        self.low = self.low.min(self.ready(next));
        self.slots += 1;
        if self.slots >= WINDOW {
            let excess = self.low.saturating_sub(self.target);
            for _ in 0..excess {
                if let Some((k, _)) = self.queue.pop_first() {
                    self.next = Some(k + 1);
                    self.stats.dropped_for_drift += 1;
                }
            }
            if self.low <= 1 {
                // Jitter used all the delay there was: not calm.
                self.calm_for = 0;
            }
            (self.low, self.slots) = (usize::MAX, 0);
        }
        let next = self.next.unwrap_or(next);
        if let Some(frame) = self.queue.remove(&next) {
            self.next = Some(next + 1);
            self.stats.played += 1;
            self.dry = false;
            return Pop::Frame(frame);
        }
        if self.queue.is_empty() {
            if !self.dry && !std::mem::take(&mut self.wait_next_gap) {
                // The sender is slower, paused, or its packet is late: wait
                // in place (a frame more of delay from now on) and keep it.
                self.stats.underruns += 1;
                self.grow();
            }
            self.dry = true;
            return Pop::Waiting;
        } else if std::mem::take(&mut self.wait_next_gap) {
            // A later frame is here, but a late packet asked for more
            // delay: conceal this slot as a loss would, and give the frame
            // a slot more to arrive in, from now on.
            return Pop::Lost;
        } else {
            // A later frame is here, so this one is lost (or very late).
            self.next = Some(next + 1);
            self.stats.lost += 1;
        }
        self.dry = self.queue.is_empty();
        Pop::Lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(i: u16) -> Vec<u8> {
        i.to_be_bytes().to_vec()
    }

    fn played(p: Pop) -> Option<u16> {
        match p {
            Pop::Frame(f) => Some(u16::from_be_bytes([f[0], f[1]])),
            Pop::Lost | Pop::Waiting => None,
        }
    }

    #[test]
    fn reordered_packets_play_in_order() {
        let mut jb = JitterBuffer::new(3, 10);
        for s in [10u16, 12, 11, 14, 13, 15] {
            jb.push(s, frame(s));
        }
        let out: Vec<_> = (0..6).filter_map(|_| played(jb.pop())).collect();
        assert_eq!(out, vec![10, 11, 12, 13, 14, 15]);
        assert_eq!(jb.stats.lost, 0);
    }

    #[test]
    fn waits_for_target_depth_before_playing() {
        let mut jb = JitterBuffer::new(3, 10);
        jb.push(1, frame(1));
        jb.push(2, frame(2));
        assert_eq!(jb.pop(), Pop::Waiting);
        jb.push(3, frame(3));
        assert_eq!(played(jb.pop()), Some(1));
    }

    #[test]
    fn loss_is_skipped_and_concealed() {
        let mut jb = JitterBuffer::new(2, 10);
        for s in [1u16, 2, 4, 5] {
            jb.push(s, frame(s));
        }
        let out: Vec<_> = (0..4).map(|_| played(jb.pop())).collect();
        assert_eq!(out, vec![Some(1), Some(2), None, Some(4)]);
        assert_eq!(jb.stats.lost, 1);
    }

    #[test]
    fn a_late_sender_is_waited_for_and_a_gap_is_lost() {
        let mut jb = JitterBuffer::new(1, 5);
        jb.push(1, frame(1));
        assert_eq!(played(jb.pop()), Some(1));
        assert_eq!(jb.pop(), Pop::Waiting, "2 has not come: nothing is lost yet");
        jb.push(2, frame(2));
        jb.push(4, frame(4));
        assert_eq!(played(jb.pop()), Some(2), "waited in place, 2 is kept");
        assert_eq!(jb.pop(), Pop::Lost, "3 is missing and 4 is here");
        assert_eq!(played(jb.pop()), Some(4));
        assert_eq!((jb.stats.lost, jb.stats.underruns), (1, 1));
    }

    #[test]
    fn late_packets_are_dropped_and_grow_the_target() {
        let mut jb = JitterBuffer::new(1, 5);
        jb.push(1, frame(1));
        jb.push(3, frame(3));
        assert_eq!(played(jb.pop()), Some(1));
        assert_eq!(played(jb.pop()), None, "2 is missing, 3 is queued: 2 is lost");
        jb.push(2, frame(2));
        assert_eq!(jb.stats.late, 1);
        assert_eq!(jb.target(), 2);
        assert_eq!(played(jb.pop()), Some(3));
    }

    #[test]
    fn duplicates_play_once() {
        let mut jb = JitterBuffer::new(1, 5);
        jb.push(7, frame(7));
        jb.push(7, frame(7));
        assert_eq!(played(jb.pop()), Some(7));
        assert_eq!(jb.pop(), Pop::Waiting);
        assert_eq!(jb.stats.duplicates, 1);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut jb = JitterBuffer::new(2, 5);
        for s in [65534u16, 65535, 0, 1] {
            jb.push(s, frame(s));
        }
        let out: Vec<_> = (0..4).filter_map(|_| played(jb.pop())).collect();
        assert_eq!(out, vec![65534, 65535, 0, 1]);
    }

    /// Simulated clocks: the sender's frame clock runs `ppm` faster or
    /// slower than ours for ten minutes of frames; nothing that arrived in
    /// time is lost to a slow sender, and the queue stays bounded with a
    /// fast one.
    fn drift(ppm: i64) -> JitterBuffer {
        let mut jb = JitterBuffer::new(3, 10);
        let frames = 30_000u64; // 10 minutes of 20 ms frames
        let period_us = 20_000i64;
        let sender_period = period_us - period_us * ppm / 1_000_000;
        let mut sent = 0u64;
        let mut max_depth = 0;
        for tick in 0..frames {
            let now = tick as i64 * period_us;
            while (sent as i64) * sender_period <= now {
                jb.push(sent as u16, frame(sent as u16));
                sent += 1;
            }
            jb.pop();
            max_depth = max_depth.max(jb.depth());
        }
        assert!(max_depth <= 10, "queue grew to {max_depth}");
        jb
    }

    #[test]
    fn fast_sender_drift_is_absorbed_by_dropping_frames() {
        // 1% fast: 300 extra frames in 10 minutes.
        let jb = drift(10_000);
        assert!(jb.stats.dropped_for_drift >= 250, "{:?}", jb.stats);
        assert_eq!(jb.stats.lost, 0);
    }

    #[test]
    fn slow_sender_drift_conceals_without_losing_frames() {
        let jb = drift(-10_000);
        assert_eq!(jb.stats.lost, 0, "{:?}", jb.stats);
        assert_eq!(jb.stats.late, 0, "{:?}", jb.stats);
        assert_eq!(jb.stats.dropped_for_drift, 0);
    }

    #[test]
    fn a_restarted_sender_resyncs() {
        let mut jb = JitterBuffer::new(1, 5);
        jb.push(100, frame(100));
        assert_eq!(played(jb.pop()), Some(100));
        jb.push(30_000, frame(30_000));
        assert_eq!(played(jb.pop()), Some(30_000));
        assert_eq!(jb.stats.late, 0);
    }

    #[test]
    fn a_new_ssrc_plays_even_where_its_sequence_numbers_look_late() {
        // The old stream is at 1000; the new one (a mixer after a
        // re-INVITE) happens to start 150 behind: not late, a new stream.
        let mut jb = JitterBuffer::new(1, 5);
        for s in 990..1000 {
            jb.push_from(7, s, frame(s));
            assert_eq!(played(jb.pop()), Some(s));
        }
        for s in 850..860 {
            jb.push_from(8, s, frame(s));
            assert_eq!(played(jb.pop()), Some(s));
        }
        assert_eq!(jb.stats.late, 0);
        // The same stream going back 150 is late, as before.
        jb.push_from(8, 700, frame(700));
        assert_eq!(jb.stats.late, 1);
    }

    #[test]
    fn the_target_grown_by_late_packets_shrinks_back_once_calm() {
        let mut jb = JitterBuffer::new(2, 10);
        let mut seq = 0u16;
        let mut tick = |jb: &mut JitterBuffer, late: bool| {
            jb.push(seq, frame(seq));
            if late {
                // A packet for a slot long played.
                jb.push(seq.wrapping_sub(20), frame(0));
            }
            seq = seq.wrapping_add(1);
            jb.pop();
        };
        for i in 0..30 {
            tick(&mut jb, i % 10 == 5);
        }
        assert_eq!(jb.target(), 5, "{:?}", jb.stats);
        for _ in 0..CALM * 3 + 1 {
            tick(&mut jb, false);
        }
        assert_eq!(jb.target(), 2, "three calm spells, three frames back");
        for _ in 0..CALM * 2 {
            tick(&mut jb, false);
        }
        assert_eq!(jb.target(), 2, "never below where it started");
    }

    /// Simulated time in ms: frame `i` is sent at `20 i` and arrives
    /// `delay(i)` ms later; a slot is played every 20 ms, 10 ms after a
    /// send. Returns, per slot from `from_ms` on, the frames queued before
    /// it and whether it played a frame.
    fn network(jb: &mut JitterBuffer, ms: std::ops::Range<u64>, delay: impl Fn(u64) -> u64) -> Vec<(usize, bool)> {
        let mut in_flight: Vec<(u64, u64)> = Vec::new();
        let mut slots = Vec::new();
        for t in ms {
            if t % 20 == 0 {
                let i = t / 20;
                in_flight.push((t + delay(i), i));
            }
            in_flight.sort();
            while in_flight.first().is_some_and(|(at, _)| *at <= t) {
                let (_, i) = in_flight.remove(0);
                jb.push(i as u16, frame(i as u16));
            }
            if t % 20 == 10 {
                let depth = jb.depth();
                slots.push((depth, played(jb.pop()).is_some()));
            }
        }
        slots
    }

    #[test]
    fn on_a_network_without_jitter_one_frame_is_all_that_waits() {
        let mut jb = JitterBuffer::new(1, 15);
        let slots = network(&mut jb, 0..60_000, |_| 2);
        assert!(slots.iter().all(|&(depth, played)| depth == 1 && played), "{:?}", jb.stats);
        assert_eq!((jb.target(), jb.stats.lost, jb.stats.underruns), (1, 0, 0));
    }

    #[test]
    fn measured_jitter_grows_the_delay_until_it_is_covered_and_then_it_goes_again() {
        let mut jb = JitterBuffer::new(1, 15);
        // Every 25th packet is 35 ms late (a busy machine), for 30 s.
        let spiky = |i: u64| if i % 25 == 7 { 37 } else { 2 };
        let slots = network(&mut jb, 0..30_000, spiky);
        let gaps: Vec<usize> = (0..slots.len()).filter(|&k| !slots[k].1).collect();
        // The first spikes are heard while the delay grows; then none.
        assert!(
            gaps.len() <= 4 && gaps.iter().all(|&k| k < 100),
            "gaps at slots {gaps:?}, {:?}",
            jb.stats
        );
        // Two frames more cover 35 ms; no more than that stands.
        let late_depth = slots[500..].iter().map(|s| s.0).max().unwrap();
        assert!(late_depth <= 3, "{late_depth} frames queued, {:?}", jb.stats);
        // Then the network calms down: within a minute, back to one frame.
        let slots = network(&mut jb, 30_000..90_000, |_| 2);
        assert!(slots.iter().all(|s| s.1), "no gap when the delay goes: {:?}", jb.stats);
        assert_eq!(slots.last().unwrap().0, 1, "{:?}", jb.stats);
        assert_eq!(jb.target(), 1);
    }
}
