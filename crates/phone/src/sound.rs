//! The phone's sound device (`--audio device`): opened once at start
//! through `peerdial-sound`, then audio moves between it and the live
//! call's `MediaSession` (resampled between the device's rate and the
//! codec's) as it comes: the microphone wakes the phone when a frame is
//! captured and the session sends it at once; each frame that arrives is
//! decoded and handed to the speaker's buffer at once. Without a call the
//! ring / ring-back tone plays on a tick. A device that is
//! missing or fails is reported once; the call goes on without it (with
//! `--play`'s WAV, if one was given, when there is no device at all).
//!
//! It is not the device layer itself (cpal, drift, tones live in
//! `peerdial-sound`) and holds no call state.

use std::sync::Arc;

use peerdial_media::MediaSession;
use peerdial_sip::call::{Role, State};
use peerdial_sound::{Resampler, Sound, SoundConfig, Tone, ToneKind};

use crate::calls::Slot;
use crate::display::UiEvent;
use crate::Phone;

/// How often audio is moved while the device is in use.
pub(crate) const TICK_MS: u64 = 10;

/// The resamplers of the call on the device.
struct Link {
    call_id: String,
    up: Resampler,
    down: Resampler,
}

/// How much a tone or a voice message keeps queued for the speaker: 40 ms
/// or the buffer's target, whichever is more. Ticks can come that far
/// apart while nothing else is due, and a tone has no latency to keep low.
fn tone_level(output: &peerdial_sound::Output) -> usize {
    output.target().max(output.rate as usize / 25)
}

#[derive(Default)]
pub(crate) struct SoundSide {
    dev: Option<Sound>,
    /// Reasons the device could not be opened, shown once the phone runs.
    problems: Vec<String>,
    link: Option<Link>,
    tone: Option<Tone>,
    /// The call-waiting beep, while a second call rings.
    beep: Option<Tone>,
    dev_buf: Vec<i16>,
    codec_buf: Vec<i16>,
    /// A voice message playing on the speaker (at the output's rate).
    clip: std::collections::VecDeque<i16>,
    /// Passes through `pump_call`, and when the latency log next shows the
    /// levels.
    ticks: u64,
    next_levels: u64,
    /// Notified from the device's thread once a frame is captured.
    mic: Arc<tokio::sync::Notify>,
    /// Samples since the last loud one, microphone and speaker, for the
    /// latency log's onsets.
    quiet: (usize, usize),
}

/// Whether `pcm` starts a sound after 200 ms of quiet (`quiet` counts
/// quiet samples across calls): the latency log notes when each burst
/// passes the microphone and the speaker, to place the delay.
fn onset(pcm: &[i16], rate: u32, quiet: &mut usize) -> bool {
    let mut found = false;
    for s in pcm {
        if s.unsigned_abs() > 3_000 {
            found |= *quiet >= rate as usize / 5;
            *quiet = 0;
        } else {
            *quiet += 1;
        }
    }
    found
}

fn log_onsets() -> bool {
    tracing::enabled!(target: "peerdial::latency", tracing::Level::DEBUG)
}

impl SoundSide {
    pub(crate) fn open(cfg: Option<&SoundConfig>) -> SoundSide {
        let Some(cfg) = cfg else { return SoundSide::default() };
        let (sound, errors) = Sound::open(cfg);
        let mut problems: Vec<String> = errors.iter().map(|e| format!("sound: {e}")).collect();
        let dev = match (&sound.input, &sound.output) {
            (None, None) => {
                problems.push("sound: no device could be opened; calls go on without the sound device".into());
                None
            }
            (None, Some(_)) => {
                problems.push("sound: calls go on without a microphone".into());
                Some(sound)
            }
            (Some(_), None) => {
                problems.push("sound: calls go on without a speaker".into());
                Some(sound)
            }
            (Some(_), Some(_)) => Some(sound),
        };
        let mic = Arc::new(tokio::sync::Notify::new());
        if let Some(input) = dev.as_ref().and_then(|d| d.input.as_ref()) {
            // A 20 ms frame at the device's rate wakes the phone.
            let waker = mic.clone();
            input.on_ready(input.rate as usize / 50, Box::new(move || waker.notify_one()));
        }
        SoundSide {
            dev,
            problems,
            mic,
            ..SoundSide::default()
        }
    }

    /// Wakes the phone's loop when the microphone has a frame.
    pub(crate) fn mic(&self) -> Arc<tokio::sync::Notify> {
        self.mic.clone()
    }

    /// Whether calls take their audio from the device.
    pub(crate) fn live(&self) -> bool {
        self.dev.is_some()
    }

    /// Pumps the device, failing or not, and reports what failed.
    fn failures(&mut self) -> Vec<String> {
        let mut out = std::mem::take(&mut self.problems);
        let Some(dev) = &mut self.dev else { return out };
        if let Some(e) = dev.input.as_ref().and_then(|i| i.failure()) {
            out.push(format!(
                "sound: the input device {} failed ({e}); the call goes on without a microphone",
                dev.input.as_ref().map_or("", |i| i.name.as_str())
            ));
            dev.input = None;
        }
        if let Some(e) = dev.output.as_ref().and_then(|o| o.failure()) {
            out.push(format!(
                "sound: the output device {} failed ({e}); the call goes on without a speaker",
                dev.output.as_ref().map_or("", |o| o.name.as_str())
            ));
            dev.output = None;
        }
        out
    }

    /// Makes (or keeps) the resamplers for `call_id` on the device; a new
    /// call forgets what the microphone captured before it, and the
    /// speaker's buffer starts afresh (a tone's tail, a grown margin).
    fn link(&mut self, call_id: &str, rate: u32) {
        let Some(dev) = &self.dev else { return };
        if self.link.as_ref().is_none_or(|l| l.call_id != call_id) {
            if let Some(input) = &dev.input {
                input.clear();
            }
            if let Some(output) = &dev.output {
                output.clear();
            }
            self.link = Some(Link {
                call_id: call_id.to_string(),
                up: Resampler::new(dev.input.as_ref().map_or(rate, |i| i.rate), rate),
                down: Resampler::new(rate, dev.output.as_ref().map_or(rate, |o| o.rate)),
            });
        }
    }

    /// Hands `media` what the microphone captured since the last pass;
    /// the session sends each whole frame at once (the microphone clocks
    /// the sender).
    fn capture(&mut self, call_id: &str, media: &mut MediaSession) {
        let rate = media.sample_rate();
        self.link(call_id, rate);
        let (Some(dev), Some(link)) = (&self.dev, &mut self.link) else {
            return;
        };
        let Some(input) = &dev.input else { return };
        media.set_capture_clocked(true);
        self.dev_buf.clear();
        input.take(&mut self.dev_buf);
        if self.dev_buf.is_empty() {
            return;
        }
        if log_onsets() && onset(&self.dev_buf, input.rate, &mut self.quiet.0) {
            tracing::debug!(target: "peerdial::latency", at = ?std::time::Instant::now(), "microphone onset");
        }
        self.codec_buf.clear();
        link.up.process(&self.dev_buf, &mut self.codec_buf);
        media.push_capture(&self.codec_buf);
    }

    /// Moves one tick's played-out audio from `media` to the speaker;
    /// `beep`: a second call is waiting.
    fn pump_call(&mut self, call_id: &str, media: &mut MediaSession, beep: bool, now: u64) {
        self.link(call_id, media.sample_rate());
        let (Some(dev), Some(link)) = (&self.dev, &mut self.link) else {
            return;
        };
        self.tone = None;
        self.ticks += 1;
        if now >= self.next_levels {
            // Once a second: each stage's level (samples at the device's
            // rate for the drift buffers; `kept`: what each keeps after
            // reads now), and how often the loop came here.
            self.next_levels = now + 1_000;
            tracing::debug!(
                target: "peerdial::latency",
                capture = ?dev.input.as_ref().map(|i| i.level()),
                capture_queue = media.capture_queued(),
                jitter = ?media.jitter_depth(),
                playout_drift = ?dev.output.as_ref().map(|o| o.levels()),
                ticks = self.ticks,
                "levels"
            );
        }
        self.codec_buf.clear();
        media.take_playout(&mut self.codec_buf);
        if let Some(output) = &dev.output {
            self.dev_buf.clear();
            link.down.process(&self.codec_buf, &mut self.dev_buf);
            match (&mut self.beep, beep) {
                (Some(t), true) => t.mix(&mut self.dev_buf),
                (None, true) => {
                    let mut t = Tone::new(ToneKind::Waiting, output.rate);
                    t.mix(&mut self.dev_buf);
                    self.beep = Some(t);
                }
                (_, false) => self.beep = None,
            }
            if log_onsets() && onset(&self.dev_buf, output.rate, &mut self.quiet.1) {
                tracing::debug!(
                    target: "peerdial::latency",
                    at = ?std::time::Instant::now(),
                    queued = output.level(),
                    "speaker onset"
                );
            }
            output.push(&self.dev_buf);
        }
    }

    /// Keeps the output topped up from the voice message playing.
    fn pump_clip(&mut self) {
        let Some(output) = self.dev.as_ref().and_then(|d| d.output.as_ref()) else {
            self.clip.clear();
            return;
        };
        let want = tone_level(output).saturating_sub(output.level()).min(self.clip.len());
        self.dev_buf.clear();
        self.dev_buf.extend(self.clip.drain(..want));
        output.push(&self.dev_buf);
    }

    /// Keeps the output topped up with `kind`'s tone.
    fn pump_tone(&mut self, kind: ToneKind) {
        let Some(output) = self.dev.as_ref().and_then(|d| d.output.as_ref()) else {
            return;
        };
        if self.tone.as_ref().is_none_or(|t| t.kind() != kind) {
            self.tone = Some(Tone::new(kind, output.rate));
        }
        let want = tone_level(output).saturating_sub(output.level());
        self.dev_buf.clear();
        if let Some(t) = &mut self.tone {
            t.fill(want, &mut self.dev_buf);
        }
        output.push(&self.dev_buf);
    }
}

impl Phone {
    /// When the device next needs attention: every tick while a tone or a
    /// voice message plays; never for a call on the device, whose audio
    /// wakes the loop as it comes (the microphone with each frame it
    /// captures, the network with each packet), so waking between them
    /// would find nothing to do.
    pub(crate) fn sound_wake(&self) -> u64 {
        if !self.sound.live() || self.calls.is_empty() && self.sound.clip.is_empty() || self.on_device().is_some() {
            u64::MAX
        } else {
            self.now() + TICK_MS
        }
    }

    /// The call heard on the device: the focused one; another with media
    /// is on hold.
    fn on_device(&self) -> Option<String> {
        let focus = self.focused();
        self.calls
            .iter()
            .filter(|(_, s)| s.media.is_some() && s.call.state() != State::Ended)
            .min_by_key(|(cid, _)| (Some(*cid) != focus.as_ref()) as u8)
            .map(|(cid, _)| cid.clone())
    }

    /// Before the media timers run: what the microphone captured, for the
    /// call on the device to send.
    pub(crate) fn pump_capture(&mut self) {
        if !self.sound.live() {
            return;
        }
        let Some(cid) = self.on_device() else { return };
        let Some(media) = self.calls.get_mut(&cid).and_then(|s| s.media.as_mut()) else {
            return;
        };
        self.sound.capture(&cid, media);
    }

    /// One tick of the device: the call's audio, or a tone while ringing.
    pub(crate) fn pump_sound(&mut self, now: u64) {
        for e in self.sound.failures() {
            self.emit(UiEvent::Error(e));
        }
        if !self.sound.live() {
            return;
        }
        let ringing = |s: &Slot, role| s.call.role == role && s.call.state() == State::Ringing;
        let beep = self.calls.values().any(|s| ringing(s, Role::Callee));
        if let Some(cid) = self.on_device() {
            let media = self.calls.get_mut(&cid).and_then(|s| s.media.as_mut()).expect("found with media");
            self.sound.pump_call(&cid, media, beep, now);
            return;
        }
        self.sound.link = None;
        if self.calls.values().any(|s| ringing(s, Role::Callee)) {
            self.sound.pump_tone(ToneKind::Ring);
        } else if self.calls.values().any(|s| ringing(s, Role::Caller)) {
            self.sound.pump_tone(ToneKind::RingBack);
        } else {
            self.sound.tone = None;
            if self.calls.is_empty() {
                self.sound.pump_clip();
            }
        }
    }

    /// Plays a WAV (a voice message) on the speaker; false: no speaker or
    /// no readable WAV.
    pub(crate) fn play_on_device(&mut self, path: &std::path::Path) -> bool {
        let Some(rate) = self.sound.dev.as_ref().and_then(|d| d.output.as_ref()).map(|o| o.rate) else {
            return false;
        };
        match peerdial_media::audio::read_wav(path, rate) {
            Ok(pcm) => {
                self.sound.clip = pcm.into();
                true
            }
            Err(e) => {
                tracing::warn!("voice message {}: {e}", path.display());
                false
            }
        }
    }
}
