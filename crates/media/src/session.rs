//! One call's audio stream as a state machine: fed received datagrams and
//! the time, it yields datagrams to send and the audio it played out.
//! The phone owns the sockets and the clock (quinn-proto's shape:
//! `handle_*`, `poll_transmit`, `poll_timeout`).
//!
//! With a sound device ([`MediaSession::set_live`]) the session keeps no
//! playout clock of its own: each frame is decoded and handed out as soon
//! as it arrives in order (a missing one is concealed once a later one has
//! waited `LOSS_WAIT_MS` past its due time), and the device's buffer sets
//! how long audio waits, in samples. With
//! [`MediaSession::set_capture_clocked`] the microphone clocks the sender
//! too: a frame goes as soon as a frame's worth is captured, and the
//! session's timer only stands in (with silence) when the microphone has
//! given nothing for `CAPTURE_GRACE_MS`.

use std::collections::VecDeque;
use std::net::SocketAddr;

use crate::codec::{Decoder, Encoder};
use crate::jitter::{JitterBuffer, Pop};
use crate::live::LiveQueues;
use crate::rtp::{self, RtpHeader, TelephoneEvent};
use crate::sdp::{Direction, Negotiated};
use crate::MediaError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Rtp,
    Rtcp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub channel: Channel,
    pub to: SocketAddr,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// The first audio packet from the peer.
    AudioStarted,
    Dtmf(char),
    RemoteBye,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MediaStats {
    pub sent_packets: u32,
    pub sent_octets: u32,
    pub received_packets: u64,
    /// Datagrams from an address that is not the negotiated peer.
    pub foreign: u64,
    /// Datagrams that did not parse, or carried a payload type not agreed.
    pub malformed: u64,
}

const RTCP_INTERVAL_MS: u64 = 5_000;
/// DTMF key length before the end packets (RFC 4733 section 2.5).
const DTMF_TICKS: u32 = 5;

struct DtmfOut {
    event: u8,
    timestamp: u32,
    ticks: u32,
}

/// Frames the jitter buffer holds when playout starts: one with a sound
/// device, the least (it grows only when packets come later than that
/// allows, see [`JitterBuffer`]); two for a file, where a frame of margin
/// costs nobody a wait.
fn jitter_start(live: bool) -> usize {
    if live {
        1
    } else {
        2
    }
}
const JITTER_MAX: usize = 15;
/// Live playout: how long past its due time (a frame after the last one
/// played) a missing frame is waited for when a later one is here, before
/// it is concealed as lost (reordering on the way is that short).
const LOSS_WAIT_MS: u64 = 10;
/// A capture-clocked sender falls back to its timer when the microphone
/// has given no frame for this long (a device that stopped silently).
const CAPTURE_GRACE_MS: u64 = 100;

pub struct MediaSession {
    neg: Negotiated,
    encoder: Encoder,
    decoder: Decoder,
    jitter: JitterBuffer,
    /// Samples per frame at the codec rate.
    frame: usize,
    ptime_ms: u64,
    source: Vec<i16>,
    source_pos: usize,
    record: bool,
    /// A recording no one listens to live (a voicemail): a slot where the
    /// sender was merely late adds nothing (see [`Pop::Waiting`]).
    record_arrivals: bool,
    played: Vec<i16>,
    heard: bool,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    next_send: u64,
    next_play: u64,
    next_rtcp: u64,
    cname: String,
    dtmf_queue: VecDeque<char>,
    dtmf: Option<DtmfOut>,
    last_dtmf_in: Option<u32>,
    out: VecDeque<Transmit>,
    events: VecDeque<MediaEvent>,
    payload: Vec<u8>,
    pcm: Vec<i16>,
    /// The microphone is not sent (silence goes instead, so the stream
    /// and its timing stay).
    muted: bool,
    /// Playout gain in percent (100: as received).
    volume: u16,
    /// A sound device instead of `source` (see [`MediaSession::set_live`]).
    live: Option<LiveQueues>,
    /// Live: a frame is sent when the microphone has captured one (see
    /// [`MediaSession::set_capture_clocked`]).
    capture_clocked: bool,
    pub stats: MediaStats,
}

impl MediaSession {
    /// `source` is what we send, at the codec's rate (silence once it ends).
    pub fn new(neg: Negotiated, source: Vec<i16>, record: bool, cname: &str, now: u64) -> Result<MediaSession, MediaError> {
        let rate = neg.codec.clock_rate();
        let ptime = neg.ptime.clamp(10, 60) as u64;
        Ok(MediaSession {
            encoder: Encoder::new(neg.codec)?,
            decoder: Decoder::new(neg.codec)?,
            jitter: JitterBuffer::new(jitter_start(false), JITTER_MAX),
            frame: (rate as u64 * ptime / 1000) as usize,
            ptime_ms: ptime,
            source,
            source_pos: 0,
            record,
            record_arrivals: false,
            played: Vec::new(),
            heard: false,
            ssrc: rand::random(),
            seq: rand::random(),
            timestamp: rand::random(),
            next_send: now,
            next_play: now,
            next_rtcp: now + RTCP_INTERVAL_MS,
            cname: cname.to_string(),
            dtmf_queue: VecDeque::new(),
            dtmf: None,
            last_dtmf_in: None,
            out: VecDeque::new(),
            events: VecDeque::new(),
            payload: Vec::new(),
            pcm: Vec::new(),
            muted: false,
            volume: 100,
            live: None,
            capture_clocked: false,
            stats: MediaStats::default(),
            neg,
        })
    }

    pub fn negotiated(&self) -> &Negotiated {
        &self.neg
    }

    /// Takes what a new offer/answer inside the call agreed (hold, resume,
    /// a new address or codec). The stream goes on: same SSRC, sequence
    /// and timestamps.
    pub fn renegotiate(&mut self, neg: Negotiated) -> Result<(), MediaError> {
        if neg.codec != self.neg.codec {
            let (old, new) = (self.neg.codec.clock_rate(), neg.codec.clock_rate());
            self.encoder = Encoder::new(neg.codec)?;
            self.decoder = Decoder::new(neg.codec)?;
            self.frame = (new as u64 * self.ptime_ms / 1000) as usize;
            self.jitter = JitterBuffer::new(jitter_start(self.live.is_some()), JITTER_MAX);
            if old != new {
                let rest = self.source.get(self.source_pos..).unwrap_or_default();
                self.source = crate::audio::resample(rest, old, new);
                self.source_pos = 0;
            }
        }
        self.neg = neg;
        Ok(())
    }

    /// Mutes or unmutes the microphone: silence is sent while muted.
    pub fn set_muted(&mut self, muted: bool) {
        self.muted = muted;
    }

    pub fn muted(&self) -> bool {
        self.muted
    }

    /// Playout volume in percent, 0–200.
    pub fn set_volume(&mut self, percent: u16) {
        self.volume = percent.min(200);
    }

    pub fn sample_rate(&self) -> u32 {
        self.neg.codec.clock_rate()
    }

    /// Whether everything of `source` was sent (silence goes from now on).
    pub fn source_done(&self) -> bool {
        self.live.is_none() && self.source_pos >= self.source.len()
    }

    /// Records what the sender sent rather than what a listener would have
    /// heard: where its packets come late (a busy sender, a busy us), the
    /// recording waits for them instead of filling the slot with silence.
    /// Real losses are still concealed. For a voicemail, where no one
    /// listens while it is recorded.
    pub fn record_arrivals(&mut self) {
        self.record_arrivals = true;
    }

    /// Ends a recording of arrivals: what still waits in the jitter buffer
    /// goes in (the last words of a voicemail are not left behind).
    pub fn finish_recording(&mut self) -> Result<(), MediaError> {
        if self.record_arrivals && self.live.is_none() && self.heard {
            // Each slot plays a frame or passes a gap; bounded all the same.
            for _ in 0..self.jitter.depth() * 2 + 2 {
                if self.jitter.depth() == 0 {
                    break;
                }
                self.play_frame()?;
            }
        }
        Ok(())
    }

    /// The audio played out so far (when recording).
    pub fn played(&self) -> &[i16] {
        &self.played
    }

    /// Frames waiting in the jitter buffer, and its target.
    pub fn jitter_depth(&self) -> (usize, usize) {
        (self.jitter.depth(), self.jitter.target())
    }

    pub fn jitter_stats(&self) -> &crate::jitter::JitterStats {
        &self.jitter.stats
    }

    pub fn send_dtmf(&mut self, key: char) -> Result<(), MediaError> {
        if self.neg.dtmf_pt.is_none() {
            return Err(MediaError::Codec("the peer did not agree to telephone-event"));
        }
        TelephoneEvent::event_for(key).ok_or(MediaError::Codec("not a DTMF key"))?;
        self.dtmf_queue.push_back(key);
        Ok(())
    }

    /// A datagram that arrived on the RTP port.
    pub fn handle_rtp(&mut self, data: &[u8], from: SocketAddr) {
        if from != self.neg.remote_rtp {
            self.stats.foreign += 1;
            return;
        }
        if rtp::is_rtcp(data) {
            // rtcp-mux peers send RTCP on the RTP port.
            self.handle_rtcp(data, from);
            return;
        }
        let Ok((h, payload)) = rtp::parse(data) else {
            self.stats.malformed += 1;
            return;
        };
        if Some(h.payload_type) == self.neg.dtmf_pt {
            if let Ok(ev) = TelephoneEvent::parse(payload) {
                // The end packet is sent three times; report it once.
                if ev.end && self.last_dtmf_in != Some(h.timestamp) {
                    self.last_dtmf_in = Some(h.timestamp);
                    if let Some(k) = ev.key() {
                        self.events.push_back(MediaEvent::Dtmf(k));
                    }
                }
            } else {
                self.stats.malformed += 1;
            }
            return;
        }
        if h.payload_type != self.neg.pt {
            self.stats.malformed += 1;
            return;
        }
        self.stats.received_packets += 1;
        if !self.heard {
            self.heard = true;
            self.events.push_back(MediaEvent::AudioStarted);
        }
        self.jitter.push_from(h.ssrc, h.seq, payload.to_vec());
    }

    /// A datagram that arrived on the RTCP port.
    pub fn handle_rtcp(&mut self, data: &[u8], from: SocketAddr) {
        if from.ip() != self.neg.remote_rtcp.ip() {
            self.stats.foreign += 1;
            return;
        }
        match rtp::parse_rtcp(data) {
            Ok(packets) => {
                if packets.iter().any(|p| matches!(p, rtp::Rtcp::Bye { .. })) {
                    self.events.push_back(MediaEvent::RemoteBye);
                }
            }
            Err(_) => self.stats.malformed += 1,
        }
    }

    pub fn poll_timeout(&self) -> u64 {
        if self.captured_frame() || self.plays_on_arrival() && self.jitter.next_ready() {
            return 0;
        }
        self.next_send.min(self.next_play).min(self.next_rtcp)
    }

    pub fn handle_timeout(&mut self, now: u64) -> Result<(), MediaError> {
        // After a long stall (a suspended process), restart the clocks
        // instead of bursting. A recording (no sound device) catches up
        // instead: what arrived meanwhile is queued and goes in, in order.
        if now > self.next_send + 500 {
            self.next_send = now;
            if !self.record || self.live.is_some() {
                self.next_play = now;
            }
        }
        if self.captured_frame() {
            while self.capture_queued() >= self.frame {
                self.send_frame()?;
            }
            self.next_send = now + CAPTURE_GRACE_MS;
        }
        while self.next_send <= now {
            self.next_send += self.ptime_ms;
            self.send_frame()?;
        }
        if self.plays_on_arrival() {
            self.play_arrivals(now)?;
        } else {
            while self.next_play <= now {
                self.next_play += self.ptime_ms;
                self.play_frame()?;
            }
        }
        if self.next_rtcp <= now {
            self.next_rtcp = now + RTCP_INTERVAL_MS;
            let ntp = ntp_now();
            let sr = rtp::build_sender_report(
                self.ssrc,
                ntp,
                self.timestamp,
                self.stats.sent_packets,
                self.stats.sent_octets,
                &self.cname,
            );
            self.out.push_back(Transmit {
                channel: Channel::Rtcp,
                to: self.neg.remote_rtcp,
                data: sr,
            });
        }
        Ok(())
    }

    fn sends(&self) -> bool {
        matches!(self.neg.direction, Direction::SendRecv | Direction::SendOnly)
    }

    fn send_frame(&mut self) -> Result<(), MediaError> {
        let ts = self.timestamp;
        self.timestamp = self.timestamp.wrapping_add(self.frame as u32);
        // The microphone's frame for this slot, taken even when it is not
        // sent (held, a DTMF key): what waits stays one frame at most.
        self.pcm.clear();
        if let Some(l) = &mut self.live {
            l.take_frame(self.frame, &mut self.pcm);
        }
        if !self.sends() {
            return Ok(());
        }
        if self.dtmf.is_none() {
            if let Some(k) = self.dtmf_queue.pop_front() {
                let event = TelephoneEvent::event_for(k).unwrap_or(0);
                self.dtmf = Some(DtmfOut {
                    event,
                    timestamp: ts,
                    ticks: 0,
                });
            }
        }
        if let (Some(d), Some(pt)) = (&mut self.dtmf, self.neg.dtmf_pt) {
            d.ticks += 1;
            let end = d.ticks >= DTMF_TICKS;
            let ev = TelephoneEvent {
                event: d.event,
                end,
                volume: 10,
                duration: (d.ticks as usize * self.frame).min(65535) as u16,
            };
            let (marker, timestamp) = (d.ticks == 1, d.timestamp);
            // The end packet goes three times (RFC 4733 section 2.5.1.4).
            for _ in 0..if end { 3 } else { 1 } {
                self.push_rtp(
                    RtpHeader {
                        marker,
                        payload_type: pt,
                        seq: self.seq,
                        timestamp,
                        ssrc: self.ssrc,
                    },
                    ev.to_bytes().to_vec(),
                );
            }
            if end {
                self.dtmf = None;
            }
            return Ok(());
        }
        if self.live.is_none() {
            let end = (self.source_pos + self.frame).min(self.source.len());
            self.pcm.extend_from_slice(&self.source[self.source_pos.min(end)..end]);
            self.source_pos = end;
            self.pcm.resize(self.frame, 0);
        }
        if self.muted {
            self.pcm.fill(0);
        }
        let mut payload = std::mem::take(&mut self.payload);
        self.encoder.encode(&self.pcm, &mut payload)?;
        let h = RtpHeader {
            marker: self.stats.sent_packets == 0,
            payload_type: self.neg.pt,
            seq: self.seq,
            timestamp: ts,
            ssrc: self.ssrc,
        };
        self.push_rtp(h, payload.clone());
        self.payload = payload;
        Ok(())
    }

    fn push_rtp(&mut self, h: RtpHeader, payload: Vec<u8>) {
        self.seq = self.seq.wrapping_add(1);
        self.stats.sent_packets += 1;
        self.stats.sent_octets = self.stats.sent_octets.wrapping_add(payload.len() as u32);
        self.out.push_back(Transmit {
            channel: Channel::Rtp,
            to: self.neg.remote_rtp,
            data: rtp::build(&h, &payload),
        });
    }

    fn play_frame(&mut self) -> Result<(), MediaError> {
        if !self.heard {
            return Ok(());
        }
        if !matches!(self.neg.direction, Direction::SendRecv | Direction::RecvOnly) {
            // Held (by either side): nothing is played, silence is heard.
            self.jitter = JitterBuffer::new(jitter_start(self.live.is_some()), JITTER_MAX);
            if self.record {
                self.played.resize(self.played.len() + self.frame, 0);
            }
            if let Some(l) = &mut self.live {
                l.push_playout(&vec![0; self.frame]);
            }
            return Ok(());
        }
        let mut pcm = std::mem::take(&mut self.pcm);
        pcm.clear();
        let pop = self.jitter.pop();
        if pop == Pop::Waiting && self.record_arrivals && self.live.is_none() {
            return Ok(());
        }
        match pop {
            Pop::Frame(p) => {
                if self.decoder.decode(Some(&p), self.frame, &mut pcm).is_err() {
                    // A payload the codec refuses is concealed like a loss.
                    self.stats.malformed += 1;
                    pcm.clear();
                    self.decoder.decode(None, self.frame, &mut pcm)?;
                }
            }
            Pop::Lost | Pop::Waiting => self.decoder.decode(None, self.frame, &mut pcm)?,
        }
        if self.volume != 100 {
            for x in pcm.iter_mut() {
                *x = (*x as i32 * self.volume as i32 / 100).clamp(i16::MIN as i32, i16::MAX as i32) as i16;
            }
        }
        if self.record {
            self.played.extend_from_slice(&pcm);
        }
        if let Some(l) = &mut self.live {
            l.push_playout(&pcm);
        }
        self.pcm = pcm;
        Ok(())
    }

    /// RTCP BYE for the end of the call.
    pub fn close(&mut self) {
        self.out.push_back(Transmit {
            channel: Channel::Rtcp,
            to: self.neg.remote_rtcp,
            data: rtp::build_bye(self.ssrc, &self.cname),
        });
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }
}

fn ntp_now() -> u64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() + 2_208_988_800;
    (secs << 32) | (((d.subsec_nanos() as u64) << 32) / 1_000_000_000)
}

mod live_io;
#[cfg(test)]
mod tests;
