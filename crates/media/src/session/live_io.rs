//! A [`MediaSession`] with a sound device: what is sent comes from the
//! microphone's queue, clocked by it, and what arrives is played out at
//! once for the device's buffer. Not the device itself, nor its clock:
//! the phone moves the samples and keeps the time.

use super::*;

impl MediaSession {
    /// Live audio: from now on what is sent comes from
    /// [`MediaSession::push_capture`] (silence when nothing is queued) and
    /// what is played out can be taken with [`MediaSession::take_playout`].
    pub fn set_live(&mut self) {
        if self.live.is_none() {
            self.live = Some(LiveQueues::new(self.neg.codec.clock_rate()));
            self.jitter = JitterBuffer::new(jitter_start(true), JITTER_MAX);
        }
    }

    /// Live audio whose microphone clocks the sender: from now on a frame
    /// is sent as soon as [`MediaSession::push_capture`] has queued one
    /// (`poll_timeout` is then due at once), rather than on the session's
    /// timer, which runs up to a frame out of phase with the device. The
    /// timer stands in, sending what there is, only when no frame came for
    /// `CAPTURE_GRACE_MS` (a microphone that stopped). Off: the timer
    /// sends, as for a file.
    pub fn set_capture_clocked(&mut self, on: bool) {
        if on && !self.capture_clocked {
            // The microphone's first frame is on its way.
            self.next_send += CAPTURE_GRACE_MS;
        }
        self.capture_clocked = on;
    }

    pub(super) fn captured_frame(&self) -> bool {
        self.capture_clocked && self.capture_queued() >= self.frame
    }

    /// Live playout on arrival (not while held: silence goes on the timer).
    pub(super) fn plays_on_arrival(&self) -> bool {
        self.live.is_some() && matches!(self.neg.direction, Direction::SendRecv | Direction::RecvOnly)
    }

    /// Captured audio at the codec's rate, to be sent.
    pub fn push_capture(&mut self, pcm: &[i16]) {
        if let Some(l) = &mut self.live {
            l.push_capture(pcm);
        }
    }

    /// Captured samples not yet sent.
    pub fn capture_queued(&self) -> usize {
        self.live.as_ref().map_or(0, LiveQueues::capture_queued)
    }

    /// Appends the audio played out since the last call, at the codec's rate.
    pub fn take_playout(&mut self, out: &mut Vec<i16>) {
        if let Some(l) = &mut self.live {
            l.take_playout(out);
        }
    }

    /// Live playout: every frame that arrived in order goes out now; a
    /// missing one whose successor waits is concealed once it is
    /// `LOSS_WAIT_MS` overdue. A sender that is merely late or silent is
    /// not filled in here (the device's buffer bridges it, and learns the
    /// jitter from it).
    pub(super) fn play_arrivals(&mut self, now: u64) -> Result<(), MediaError> {
        let mut played = false;
        while self.jitter.next_ready() {
            self.play_frame()?;
            played = true;
        }
        if played {
            self.next_play = now + self.ptime_ms + LOSS_WAIT_MS;
        } else if self.next_play <= now {
            if self.jitter.depth() > 0 {
                // Lost (a later frame is here): conceal it and play on.
                self.play_frame()?;
                while self.jitter.next_ready() {
                    self.play_frame()?;
                }
            }
            self.next_play = now + self.ptime_ms;
        }
        Ok(())
    }
}
