//! The two ends the phone holds, [`Input`] and [`Output`]: a
//! [`DriftBuffer`] shared with the device's own thread, and the device's
//! failure, if it failed. The device callbacks fill or drain the buffer at
//! the device's pace; the phone drains or fills it at the network's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::drift::Levels;
use crate::DriftBuffer;

// Only the device layer (feature `sound`) makes and fails them.
#[cfg_attr(not(feature = "sound"), allow(dead_code))]
#[derive(Debug)]
pub(crate) struct Shared {
    buf: Mutex<DriftBuffer>,
    failed: AtomicBool,
    failure: Mutex<Option<String>>,
}

#[cfg_attr(not(feature = "sound"), allow(dead_code))]
impl Shared {
    pub(crate) fn new(target: usize) -> Arc<Shared> {
        Arc::new(Shared {
            buf: Mutex::new(DriftBuffer::new(target)),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
        })
    }

    pub(crate) fn buf(&self) -> MutexGuard<'_, DriftBuffer> {
        // A panic elsewhere leaves samples, not broken invariants.
        self.buf.lock().unwrap_or_else(|e| e.into_inner())
    }

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

/// The capture side: mono samples at the device's rate.
#[derive(Debug)]
pub struct Input {
    pub name: String,
    pub rate: u32,
    pub(crate) shared: Arc<Shared>,
}

/// The playback side: mono samples at the device's rate.
#[derive(Debug)]
pub struct Output {
    pub name: String,
    pub rate: u32,
    pub(crate) shared: Arc<Shared>,
}

impl Input {
    /// Captured audio (silence when the device has delivered too little).
    pub fn pull(&self, out: &mut [i16]) {
        self.shared.buf().pull(out);
    }

    /// Samples captured and not yet pulled.
    pub fn level(&self) -> usize {
        self.shared.buf().level()
    }

    /// The drift buffer's levels, for the latency log.
    pub fn levels(&self) -> Levels {
        self.shared.buf().levels()
    }

    /// Drops what was captured so far (before a call starts).
    pub fn clear(&self) {
        self.shared.buf().clear();
    }

    /// Why the device stopped, once (then `None`).
    pub fn failure(&self) -> Option<String> {
        self.shared.take_failure()
    }
}

impl Output {
    pub fn push(&self, pcm: &[i16]) {
        self.shared.buf().push(pcm);
    }

    /// Samples queued for the device.
    pub fn level(&self) -> usize {
        self.shared.buf().level()
    }

    /// The drift buffer's levels, for the latency log.
    pub fn levels(&self) -> Levels {
        self.shared.buf().levels()
    }

    /// What a writer keeps queued: the level the buffer keeps after reads,
    /// or the device's read if that is larger.
    pub fn target(&self) -> usize {
        self.shared.buf().target()
    }

    /// Why the device stopped, once (then `None`).
    pub fn failure(&self) -> Option<String> {
        self.shared.take_failure()
    }
}
