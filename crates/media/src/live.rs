//! Live audio for a [`crate::MediaSession`]: the bounded queues between a
//! sound device and the session, at the codec's rate. The device side
//! pushes captured samples and takes played-out ones; the session reads one
//! frame per packet and adds one frame per decoded packet. Plain data, no
//! device and no clock here: pacing and drift are the device layer's.

use std::collections::VecDeque;

/// At most this much audio waits in either direction; older samples go
/// first, so a stalled reader never makes the call lag behind.
pub const LIVE_QUEUE_MS: usize = 200;

#[derive(Debug, Default)]
pub struct LiveQueues {
    capture: VecDeque<i16>,
    playout: VecDeque<i16>,
    cap: usize,
    /// Samples dropped because a queue was full.
    pub dropped: u64,
}

impl LiveQueues {
    pub fn new(rate: u32) -> LiveQueues {
        LiveQueues {
            cap: rate as usize * LIVE_QUEUE_MS / 1000,
            ..LiveQueues::default()
        }
    }

    pub fn push_capture(&mut self, pcm: &[i16]) {
        self.dropped += push_bounded(&mut self.capture, pcm, self.cap);
    }

    pub fn capture_queued(&self) -> usize {
        self.capture.len()
    }

    /// One frame to send: what was captured, then silence.
    pub fn take_frame(&mut self, frame: usize, out: &mut Vec<i16>) {
        let n = frame.min(self.capture.len());
        out.extend(self.capture.drain(..n));
        out.resize(out.len() + frame - n, 0);
    }

    pub fn push_playout(&mut self, pcm: &[i16]) {
        self.dropped += push_bounded(&mut self.playout, pcm, self.cap);
    }

    /// Appends everything played out since the last call.
    pub fn take_playout(&mut self, out: &mut Vec<i16>) {
        out.extend(self.playout.drain(..));
    }
}

fn push_bounded(q: &mut VecDeque<i16>, pcm: &[i16], cap: usize) -> u64 {
    q.extend(pcm);
    let over = q.len().saturating_sub(cap);
    q.drain(..over);
    over as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_out_in_order_then_silence() {
        let mut q = LiveQueues::new(8000);
        q.push_capture(&[1, 2, 3]);
        let mut out = Vec::new();
        q.take_frame(2, &mut out);
        q.take_frame(2, &mut out);
        q.take_frame(2, &mut out);
        assert_eq!(out, [1, 2, 3, 0, 0, 0]);
    }

    #[test]
    fn a_full_queue_keeps_the_newest_audio() {
        let mut q = LiveQueues::new(8000);
        let cap = 8000 * LIVE_QUEUE_MS / 1000;
        let pcm: Vec<i16> = (0..cap as i16 + 10).collect();
        q.push_playout(&pcm);
        let mut out = Vec::new();
        q.take_playout(&mut out);
        assert_eq!((out.len(), out[0], q.dropped), (cap, 10, 10));
        out.clear();
        q.take_playout(&mut out);
        assert!(out.is_empty());
    }
}
