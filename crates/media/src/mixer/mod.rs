//! The conference mixer, free of I/O (quinn-proto's shape): fed each
//! participant's RTP datagrams and the time in milliseconds, it yields one
//! RTP datagram per participant every 20 ms carrying everyone but that
//! participant, and events (a mute toggled by DTMF, the end).
//!
//! - Each participant has its own codec (PCMU, PCMA or Opus), payload type,
//!   jitter buffer, and outgoing SSRC, sequence number and timestamp.
//! - All audio is mixed at one rate (8, 16, 24 or 48 kHz). Opus is decoded
//!   and encoded at that rate directly (its RTP clock stays 48 kHz); G.711
//!   is resampled between 8 kHz and the mixing rate ([`resample`]).
//! - One tick for all: every 20 ms each jitter buffer gives a frame; the
//!   frames of those speaking are summed once, and each speaker hears the
//!   sum minus its own frame (saturated to 16 bits). A participant below
//!   the noise gate (and past its hang-over) adds nothing and hears the
//!   whole sum, so all such listeners with one codec share one encoding.
//! - DTMF (RFC 4733): `*6` toggles one's own mute (see [`MUTE_KEYS`]).
//! - Participants join and leave at any time; once two have been present,
//!   fewer than two left ends the conference ([`MixerEvent::Ended`]).
//! - Bad datagrams (malformed RTP, an unknown payload type) are dropped and
//!   counted, never a panic.
//!
//! It is not a socket owner, a signalling agent or a video mixer:
//! conferences are audio only. The room in `crate::room` (feature `room`)
//! is its tokio edge.

mod dtmf;
pub mod resample;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};

use crate::codec::{Decoder, Encoder};
use crate::jitter::{JitterBuffer, JitterStats, Pop};
use crate::rtp::{self, RtpHeader, TelephoneEvent};
use crate::sdp::CodecKind;
use crate::MediaError;

pub use dtmf::MUTE_KEYS;

/// Milliseconds between mixes (one frame).
pub const TICK_MS: u64 = 20;

pub type ParticipantId = u32;

#[derive(Debug, Clone)]
pub struct MixerConfig {
    /// The mixing rate: 8000, 16000, 24000 or 48000 Hz.
    pub rate: u32,
    /// Jitter buffer depth to start playing at, and its most, in frames.
    pub jitter_target: usize,
    pub jitter_max: usize,
    /// Peak level (of 32767) under which a frame counts as silence.
    pub gate: i16,
    /// Silent frames a speaker stays in the mix after speaking (hang-over).
    pub hangover: u32,
    /// Most participants at once.
    pub max_participants: usize,
    /// Opus encoder complexity, 0–10 (Janus's AudioBridge uses 4; the
    /// phone's calls use opus-rs's 9).
    pub opus_complexity: i32,
}

impl Default for MixerConfig {
    fn default() -> MixerConfig {
        MixerConfig {
            rate: 16_000,
            jitter_target: 2,
            jitter_max: 10,
            gate: 64,
            hangover: 10,
            max_participants: 1000,
            opus_complexity: 4,
        }
    }
}

/// How one participant's RTP looks (from the SDP the edge negotiated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParticipantConfig {
    pub codec: CodecKind,
    pub payload_type: u8,
    /// RFC 4733 telephone-event payload type, if negotiated.
    pub dtmf_payload_type: Option<u8>,
}

/// A datagram for one participant's RTP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub participant: ParticipantId,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MixerEvent {
    /// A participant muted or unmuted itself with [`MUTE_KEYS`].
    Muted { participant: ParticipantId, muted: bool },
    /// Fewer than two participants remain: the conference is over.
    Ended,
}

/// What one participant sent and got.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ParticipantStats {
    pub received: u64,
    pub sent: u64,
    /// Not RTP, or RTP that does not parse.
    pub malformed: u64,
    /// RTP with a payload type that is neither the codec's nor DTMF's.
    pub wrong_payload_type: u64,
    pub decode_errors: u64,
    pub jitter: JitterStats,
}

/// The whole conference's counters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MixerStats {
    pub ticks: u64,
    pub dropped: u64,
    /// Encodings shared by listeners (one per codec per tick at most).
    pub shared_encodings: u64,
    pub own_encodings: u64,
}

struct Participant {
    id: ParticipantId,
    config: ParticipantConfig,
    decoder: Decoder,
    /// Its own encoder, made when it first speaks (Opus keeps state).
    encoder: Option<Encoder>,
    jitter: JitterBuffer,
    up: resample::Up,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    first: bool,
    muted: bool,
    keys: dtmf::Keys,
    /// This tick's frame at the mixing rate.
    frame: Vec<i16>,
    /// Ticks left in the mix after the last loud frame.
    hang: u32,
    speaking: bool,
    stats: ParticipantStats,
}

pub struct Mixer {
    config: MixerConfig,
    participants: Vec<Participant>,
    index: HashMap<ParticipantId, usize>,
    next_id: ParticipantId,
    next_tick: Option<u64>,
    had_two: bool,
    ended: bool,
    events: VecDeque<MixerEvent>,
    transmits: VecDeque<Transmit>,
    /// Listeners' shared Opus encoder (the only codec with state).
    shared_opus: Option<Encoder>,
    total: Vec<i32>,
    mix: Vec<i16>,
    narrow: Vec<i16>,
    payload: Vec<u8>,
    stats: MixerStats,
}

impl Mixer {
    pub fn new(config: MixerConfig) -> Result<Mixer, MediaError> {
        if ![8000, 16_000, 24_000, 48_000].contains(&config.rate) {
            return Err(MediaError::Conference("the mixing rate must be 8, 16, 24 or 48 kHz"));
        }
        let frame = config.rate as usize / 50;
        Ok(Mixer {
            config,
            participants: Vec::new(),
            index: HashMap::new(),
            next_id: 1,
            next_tick: None,
            had_two: false,
            ended: false,
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            shared_opus: None,
            total: vec![0; frame],
            mix: Vec::with_capacity(frame),
            narrow: Vec::with_capacity(160),
            payload: Vec::with_capacity(1500),
            stats: MixerStats::default(),
        })
    }

    pub fn rate(&self) -> u32 {
        self.config.rate
    }

    fn frame_len(&self) -> usize {
        self.config.rate as usize / 50
    }

    /// Adds a participant; it hears the mix from the next tick on.
    pub fn join(&mut self, config: ParticipantConfig, now: u64) -> Result<ParticipantId, MediaError> {
        if self.ended {
            return Err(MediaError::Conference("the conference has ended"));
        }
        if self.participants.len() >= self.config.max_participants {
            return Err(MediaError::Conference("the conference is full"));
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let p = Participant {
            id,
            config,
            decoder: Decoder::with_rate(config.codec, self.config.rate)?,
            encoder: None,
            jitter: JitterBuffer::new(self.config.jitter_target, self.config.jitter_max),
            up: resample::Up::default(),
            ssrc: rand::random(),
            seq: rand::random(),
            timestamp: rand::random(),
            first: true,
            muted: false,
            keys: dtmf::Keys::default(),
            frame: Vec::with_capacity(self.frame_len()),
            hang: 0,
            speaking: false,
            stats: ParticipantStats::default(),
        };
        self.index.insert(id, self.participants.len());
        self.participants.push(p);
        if self.participants.len() >= 2 {
            self.had_two = true;
        }
        self.next_tick.get_or_insert(now + TICK_MS);
        Ok(id)
    }

    /// Removes a participant; false if there was none by that id.
    pub fn leave(&mut self, id: ParticipantId) -> bool {
        let Some(at) = self.index.remove(&id) else { return false };
        self.participants.swap_remove(at);
        if let Some(moved) = self.participants.get(at) {
            self.index.insert(moved.id, at);
        }
        self.transmits.retain(|t| t.participant != id);
        if self.had_two && self.participants.len() < 2 && !self.ended {
            self.ended = true;
            self.next_tick = None;
            self.transmits.clear();
            self.events.push_back(MixerEvent::Ended);
        }
        true
    }

    pub fn participants(&self) -> impl Iterator<Item = ParticipantId> + '_ {
        self.participants.iter().map(|p| p.id)
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    fn get_mut(&mut self, id: ParticipantId) -> Option<&mut Participant> {
        let at = *self.index.get(&id)?;
        self.participants.get_mut(at)
    }

    pub fn set_muted(&mut self, id: ParticipantId, muted: bool) -> bool {
        self.get_mut(id).map(|p| p.muted = muted).is_some()
    }

    pub fn muted(&self, id: ParticipantId) -> Option<bool> {
        self.index.get(&id).map(|&at| self.participants[at].muted)
    }

    pub fn participant_stats(&self, id: ParticipantId) -> Option<ParticipantStats> {
        let p = &self.participants[*self.index.get(&id)?];
        let mut s = p.stats.clone();
        s.jitter = p.jitter.stats.clone();
        Some(s)
    }

    pub fn stats(&self) -> MixerStats {
        self.stats.clone()
    }

    /// A datagram from a participant's RTP address. RTCP (RFC 5761
    /// multiplexing) is ignored; anything bad is counted and dropped.
    pub fn handle_input(&mut self, id: ParticipantId, data: &[u8], now: u64) {
        let Some(at) = self.index.get(&id).copied() else {
            self.stats.dropped += 1;
            return;
        };
        if rtp::is_rtcp(data) {
            return;
        }
        let p = &mut self.participants[at];
        let Ok((h, payload)) = rtp::parse(data) else {
            p.stats.malformed += 1;
            self.stats.dropped += 1;
            return;
        };
        if Some(h.payload_type) == p.config.dtmf_payload_type {
            let Ok(ev) = TelephoneEvent::parse(payload) else {
                p.stats.malformed += 1;
                self.stats.dropped += 1;
                return;
            };
            if p.keys.event(h.timestamp, ev, now) {
                p.muted = !p.muted;
                self.events.push_back(MixerEvent::Muted {
                    participant: id,
                    muted: p.muted,
                });
            }
            return;
        }
        if h.payload_type != p.config.payload_type {
            p.stats.wrong_payload_type += 1;
            self.stats.dropped += 1;
            return;
        }
        p.stats.received += 1;
        p.jitter.push_from(h.ssrc, h.seq, payload.to_vec());
    }

    /// When [`Mixer::handle_timeout`] should next be called; `None` while
    /// the room is empty or after the end.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.next_tick
    }

    /// Mixes every tick that is due. A clock that jumped ahead (a stalled
    /// edge) mixes at most five ticks at once and drops the rest.
    pub fn handle_timeout(&mut self, now: u64) {
        let Some(mut next) = self.next_tick else { return };
        if now >= next + 5 * TICK_MS {
            next = now - 4 * TICK_MS;
        }
        while now >= next {
            self.tick();
            next += TICK_MS;
        }
        if self.next_tick.is_some() {
            self.next_tick = Some(next);
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<MixerEvent> {
        self.events.pop_front()
    }

    fn tick(&mut self) {
        if self.ended {
            return;
        }
        self.stats.ticks += 1;
        let frame = self.frame_len();
        let rate = self.config.rate;
        self.total.iter_mut().for_each(|t| *t = 0);
        // Decode everyone's frame; add the speakers'.
        for p in &mut self.participants {
            p.frame.clear();
            let payload = match p.jitter.pop() {
                Pop::Frame(f) => Some(f),
                Pop::Lost | Pop::Waiting => None,
            };
            decode(p, payload.as_deref(), frame, rate);
            let peak = p.frame.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
            if peak >= self.config.gate.unsigned_abs() {
                p.hang = self.config.hangover + 1;
            }
            p.hang = p.hang.saturating_sub(1);
            p.speaking = p.hang > 0 && !p.muted;
            if p.speaking {
                for (t, &s) in self.total.iter_mut().zip(&p.frame) {
                    *t += s as i32;
                }
            }
        }
        // One encoding per codec for everyone who hears the whole sum.
        let (mut pcmu, mut pcma) = (Encoder::Pcmu, Encoder::Pcma);
        let mut shared: [Option<Vec<u8>>; 3] = [None, None, None];
        for i in 0..self.participants.len() {
            let p = &self.participants[i];
            let codec = p.config.codec;
            if p.speaking {
                let p = &mut self.participants[i];
                self.mix.clear();
                self.mix
                    .extend(self.total.iter().zip(&p.frame).map(|(&t, &s)| saturate(t - s as i32)));
                let enc = match &mut p.encoder {
                    Some(e) => e,
                    None => match new_encoder(codec, rate, self.config.opus_complexity) {
                        Ok(e) => p.encoder.insert(e),
                        Err(_) => continue,
                    },
                };
                if encode(enc, codec, &self.mix, rate, &mut self.narrow, &mut self.payload).is_err() {
                    continue;
                }
                self.stats.own_encodings += 1;
                let data = packet(p, &self.payload);
                self.transmits.push_back(Transmit { participant: p.id, data });
            } else {
                let slot = codec_slot(codec);
                if shared[slot].is_none() {
                    self.mix.clear();
                    self.mix.extend(self.total.iter().map(|&t| saturate(t)));
                    let enc = match codec {
                        CodecKind::Opus => match &mut self.shared_opus {
                            Some(e) => e,
                            None => match new_encoder(codec, rate, self.config.opus_complexity) {
                                Ok(e) => self.shared_opus.insert(e),
                                Err(_) => continue,
                            },
                        },
                        CodecKind::Pcmu => &mut pcmu,
                        CodecKind::Pcma => &mut pcma,
                    };
                    if encode(enc, codec, &self.mix, rate, &mut self.narrow, &mut self.payload).is_err() {
                        continue;
                    }
                    self.stats.shared_encodings += 1;
                    shared[slot] = Some(self.payload.clone());
                }
                let p = &mut self.participants[i];
                let data = packet(p, shared[slot].as_deref().unwrap_or_default());
                self.transmits.push_back(Transmit { participant: p.id, data });
            }
        }
    }
}

fn new_encoder(codec: CodecKind, rate: u32, complexity: i32) -> Result<Encoder, MediaError> {
    let mut e = Encoder::with_rate(codec, rate)?;
    if let Encoder::Opus(o) = &mut e {
        o.complexity = complexity.clamp(0, 10);
    }
    Ok(e)
}

fn codec_slot(c: CodecKind) -> usize {
    match c {
        CodecKind::Pcmu => 0,
        CodecKind::Pcma => 1,
        CodecKind::Opus => 2,
    }
}

fn saturate(v: i32) -> i16 {
    v.clamp(i16::MIN as i32, i16::MAX as i32) as i16
}

/// One frame of `p`'s audio at the mixing rate into `p.frame` (silence or
/// concealment for a missing packet).
fn decode(p: &mut Participant, payload: Option<&[u8]>, frame: usize, rate: u32) {
    let codec = p.config.codec;
    let native = if codec == CodecKind::Opus { frame } else { 160 };
    let mut pcm = std::mem::take(&mut p.frame);
    if p.decoder.decode(payload, native, &mut pcm).is_err() {
        p.stats.decode_errors += 1;
        pcm.clear();
    }
    pcm.resize(native, 0);
    if codec != CodecKind::Opus && rate != 8000 {
        let narrow = std::mem::take(&mut pcm);
        p.up.run(&narrow, (rate / 8000) as usize, &mut pcm);
    }
    p.frame = pcm;
}

fn encode(enc: &mut Encoder, codec: CodecKind, mix: &[i16], rate: u32, narrow: &mut Vec<i16>, out: &mut Vec<u8>) -> Result<(), MediaError> {
    if codec != CodecKind::Opus && rate != 8000 {
        narrow.clear();
        resample::down(mix, (rate / 8000) as usize, narrow);
        enc.encode(narrow, out)
    } else {
        enc.encode(mix, out)
    }
}

/// The RTP packet for `p` with its own SSRC, sequence and timestamp.
fn packet(p: &mut Participant, payload: &[u8]) -> Vec<u8> {
    let h = RtpHeader {
        marker: std::mem::take(&mut p.first),
        payload_type: p.config.payload_type,
        seq: p.seq,
        timestamp: p.timestamp,
        ssrc: p.ssrc,
    };
    p.seq = p.seq.wrapping_add(1);
    p.timestamp = p.timestamp.wrapping_add(p.config.codec.clock_rate() / 50);
    p.stats.sent += 1;
    rtp::build(&h, payload)
}
