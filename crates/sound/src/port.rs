//! The two ends the phone holds, [`Input`] and [`Output`], each a buffer
//! shared with the device's own thread, and the device's failure, if it
//! failed. The capture callback fills the input's queue and wakes the
//! phone once a frame's worth is there (the microphone clocks the sender);
//! the phone fills the output's [`DriftBuffer`] as packets arrive and the
//! playback callback drains it at the device's pace.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::drift::Levels;
use crate::DriftBuffer;

/// A device's failure, kept for the phone to report once.
#[derive(Debug, Default)]
pub(crate) struct Status {
    failed: AtomicBool,
    failure: Mutex<Option<String>>,
}

// Only the device layer (feature `sound`) makes and fails them.
#[cfg_attr(not(feature = "sound"), allow(dead_code))]
impl Status {
    /// Keeps the first failure only: a dead device repeats its error.
    pub(crate) fn fail(&self, reason: String) {
        if !self.failed.swap(true, Ordering::SeqCst) {
            *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
        }
    }

    pub(crate) fn has_failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    fn take_failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

#[cfg_attr(not(feature = "sound"), allow(dead_code))]
#[derive(Debug)]
pub(crate) struct Shared<B> {
    buf: Mutex<B>,
    pub(crate) status: Arc<Status>,
    /// The clock the buffer's times count from.
    epoch: Instant,
}

#[cfg_attr(not(feature = "sound"), allow(dead_code))]
impl<B> Shared<B> {
    pub(crate) fn new(buf: B) -> Arc<Shared<B>> {
        Arc::new(Shared {
            buf: Mutex::new(buf),
            status: Arc::default(),
            epoch: Instant::now(),
        })
    }

    pub(crate) fn buf(&self) -> MutexGuard<'_, B> {
        // A panic elsewhere leaves samples, not broken invariants.
        self.buf.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Microseconds on the buffer's clock.
    pub(crate) fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

/// What the microphone captured and the phone has not taken yet, oldest
/// first; past `limit` the oldest go (a phone that stalls does not talk
/// behind the person for the rest of the call).
pub struct CaptureQueue {
    q: VecDeque<i16>,
    limit: usize,
    /// The phone is woken once this much is queued, until it takes it.
    wake_at: usize,
    woken: bool,
    waker: Option<Box<dyn Fn() + Send>>,
    /// Samples dropped because the phone did not take them in time.
    pub dropped: u64,
}

impl std::fmt::Debug for CaptureQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureQueue")
            .field("queued", &self.q.len())
            .field("wake_at", &self.wake_at)
            .field("dropped", &self.dropped)
            .finish()
    }
}

impl CaptureQueue {
    /// Keeps at most `limit` samples.
    pub fn new(limit: usize) -> CaptureQueue {
        CaptureQueue {
            q: VecDeque::new(),
            limit: limit.max(1),
            wake_at: usize::MAX,
            woken: false,
            waker: None,
            dropped: 0,
        }
    }

    /// Calls `waker` (from the device's thread) whenever `at` samples or
    /// more are queued, once until they are taken.
    pub fn on_ready(&mut self, at: usize, waker: Box<dyn Fn() + Send>) {
        (self.wake_at, self.waker, self.woken) = (at.max(1), Some(waker), false);
    }

    pub fn push(&mut self, pcm: &[i16]) {
        self.q.extend(pcm);
        let over = self.q.len().saturating_sub(self.limit);
        if over > 0 {
            self.q.drain(..over);
            self.dropped += over as u64;
        }
        if self.q.len() >= self.wake_at && !self.woken {
            self.woken = true;
            if let Some(w) = &self.waker {
                w();
            }
        }
    }

    /// Appends everything queued to `out`.
    pub fn take(&mut self, out: &mut Vec<i16>) {
        out.extend(self.q.drain(..));
        self.woken = false;
    }

    pub fn level(&self) -> usize {
        self.q.len()
    }

    pub fn clear(&mut self) {
        self.q.clear();
        self.woken = false;
    }
}

/// The capture side: mono samples at the device's rate.
#[derive(Debug)]
pub struct Input {
    pub name: String,
    pub rate: u32,
    pub(crate) shared: Arc<Shared<CaptureQueue>>,
}

/// The playback side: mono samples at the device's rate.
#[derive(Debug)]
pub struct Output {
    pub name: String,
    pub rate: u32,
    pub(crate) shared: Arc<Shared<DriftBuffer>>,
}

impl Input {
    /// Appends what was captured since the last call to `out`.
    pub fn take(&self, out: &mut Vec<i16>) {
        self.shared.buf().take(out);
    }

    /// Calls `waker` (from the device's thread) once `samples` or more are
    /// captured and not taken: a frame's worth, so the sender goes as soon
    /// as the microphone has it.
    pub fn on_ready(&self, samples: usize, waker: Box<dyn Fn() + Send>) {
        self.shared.buf().on_ready(samples, waker);
    }

    /// Samples captured and not yet taken.
    pub fn level(&self) -> usize {
        self.shared.buf().level()
    }

    /// Drops what was captured so far (before a call starts).
    pub fn clear(&self) {
        self.shared.buf().clear();
    }

    /// Why the device stopped, once (then `None`).
    pub fn failure(&self) -> Option<String> {
        self.shared.status.take_failure()
    }
}

impl Output {
    /// Audio for the speaker, arrived now.
    pub fn push(&self, pcm: &[i16]) {
        let mut b = self.shared.buf();
        b.push(pcm, self.shared.now_us());
    }

    /// Samples queued for the device.
    pub fn level(&self) -> usize {
        self.shared.buf().level()
    }

    /// The buffer's levels, for the latency log.
    pub fn levels(&self) -> Levels {
        self.shared.buf().levels()
    }

    /// What a writer keeps queued, in samples (a tone's level).
    pub fn target(&self) -> usize {
        self.shared.buf().target()
    }

    /// Starts afresh for a new call: nothing queued, the base margin.
    pub fn clear(&self) {
        self.shared.buf().clear();
    }

    /// Why the device stopped, once (then `None`).
    pub fn failure(&self) -> Option<String> {
        self.shared.status.take_failure()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_phone_is_woken_once_a_frame_is_captured_and_the_oldest_go_first() {
        let woken = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let mut q = CaptureQueue::new(10);
        let w = woken.clone();
        q.on_ready(
            4,
            Box::new(move || {
                w.fetch_add(1, Ordering::SeqCst);
            }),
        );
        q.push(&[1, 2, 3]);
        assert_eq!(woken.load(Ordering::SeqCst), 0);
        q.push(&[4]);
        q.push(&[5]);
        assert_eq!(woken.load(Ordering::SeqCst), 1, "once until taken");
        let mut out = Vec::new();
        q.take(&mut out);
        assert_eq!(out, [1, 2, 3, 4, 5]);
        q.push(&[0; 12]);
        assert_eq!((q.level(), q.dropped, woken.load(Ordering::SeqCst)), (10, 2, 2));
    }
}
