//! The mixer with simulated time: participants that speak tones through
//! their own codecs, and what each hears, measured by Goertzel.

use super::*;
use crate::audio::{tone, tone_share};
use proptest::prelude::*;

const DTMF_PT: u8 = 101;

/// A simulated phone in the conference: it speaks a tone (or silence)
/// and records what it hears, at its codec's rate.
struct Phone {
    id: ParticipantId,
    codec: CodecKind,
    pt: u8,
    freq: f32,
    speaking: bool,
    encoder: Encoder,
    decoder: Decoder,
    seq: u16,
    ts: u32,
    sample: usize,
    heard: Vec<i16>,
    headers: Vec<RtpHeader>,
}

impl Phone {
    fn join(m: &mut Mixer, codec: CodecKind, freq: f32, now: u64) -> Phone {
        let pt = match codec {
            CodecKind::Pcmu => 0,
            CodecKind::Pcma => 8,
            CodecKind::Opus => 111,
        };
        let cfg = ParticipantConfig {
            codec,
            payload_type: pt,
            dtmf_payload_type: Some(DTMF_PT),
        };
        Phone {
            id: m.join(cfg, now).unwrap(),
            codec,
            pt,
            freq,
            speaking: true,
            encoder: Encoder::new(codec).unwrap(),
            decoder: Decoder::new(codec).unwrap(),
            seq: 1000,
            ts: 0,
            sample: 0,
            heard: Vec::new(),
            headers: Vec::new(),
        }
    }

    fn frame(&self) -> usize {
        self.codec.clock_rate() as usize / 50
    }

    fn send_audio(&mut self, m: &mut Mixer, now: u64) {
        let n = self.frame();
        let rate = self.codec.clock_rate();
        let amp = if self.speaking { 6000.0 } else { 0.0 };
        let pcm: Vec<i16> = tone(self.freq, rate, self.sample + n, amp)[self.sample..].to_vec();
        self.sample += n;
        let mut payload = Vec::new();
        self.encoder.encode(&pcm, &mut payload).unwrap();
        self.send(m, self.pt, &payload, now);
        self.ts = self.ts.wrapping_add(n as u32);
    }

    fn send(&mut self, m: &mut Mixer, pt: u8, payload: &[u8], now: u64) {
        let h = RtpHeader {
            marker: false,
            payload_type: pt,
            seq: self.seq,
            timestamp: self.ts,
            ssrc: 7,
        };
        self.seq = self.seq.wrapping_add(1);
        m.handle_input(self.id, &rtp::build(&h, payload), now);
    }

    /// Presses a key: three packets of one event (the last ones marked
    /// end), as RFC 4733 senders do.
    fn press(&mut self, m: &mut Mixer, key: char, now: u64) {
        let event = TelephoneEvent::event_for(key).unwrap();
        for (i, end) in [false, true, true].into_iter().enumerate() {
            let ev = TelephoneEvent {
                event,
                end,
                volume: 10,
                duration: 400 * (i as u16 + 1),
            };
            self.send(m, DTMF_PT, &ev.to_bytes(), now);
        }
        self.ts = self.ts.wrapping_add(self.frame() as u32 * 4);
    }

    fn hear(&mut self, data: &[u8]) {
        let (h, payload) = rtp::parse(data).unwrap();
        self.headers.push(h);
        let n = self.frame();
        self.decoder.decode(Some(payload), n, &mut self.heard).unwrap();
    }

    /// The share of each frequency in the last `ms` of what was heard.
    fn shares(&self, ms: usize, freqs: &[f32]) -> Vec<f64> {
        let rate = self.codec.clock_rate();
        let n = rate as usize * ms / 1000;
        let tail = &self.heard[self.heard.len().saturating_sub(n)..];
        freqs.iter().map(|&f| tone_share(tail, rate, f)).collect()
    }
}

/// Runs `ticks` ticks from `*now`: everyone sends, the mixer mixes, each
/// hears its packets.
fn run(m: &mut Mixer, phones: &mut [Phone], now: &mut u64, ticks: u32) {
    for _ in 0..ticks {
        for p in phones.iter_mut() {
            p.send_audio(m, *now);
        }
        *now += TICK_MS;
        m.handle_timeout(*now);
        while let Some(t) = m.poll_transmit() {
            let p = phones.iter_mut().find(|p| p.id == t.participant).expect("a transmit for a member");
            p.hear(&t.data);
        }
    }
}

/// Phones with these codecs joined at `now`, speaking FREQS in order.
fn join_all(m: &mut Mixer, codecs: &[CodecKind], now: u64) -> Vec<Phone> {
    codecs.iter().zip(FREQS).map(|(&c, f)| Phone::join(m, c, f, now)).collect()
}

fn mixer(rate: u32) -> Mixer {
    Mixer::new(MixerConfig {
        rate,
        ..MixerConfig::default()
    })
    .unwrap()
}

const FREQS: [f32; 3] = [400.0, 700.0, 1100.0];

/// Asserts that phone `i` hears exactly the tones of `speakers` (indices
/// into FREQS) over the last half second.
fn hears(p: &Phone, speakers: &[usize], what: &str) {
    let shares = p.shares(500, &FREQS);
    for (j, s) in shares.iter().enumerate() {
        if speakers.contains(&j) {
            assert!(*s > 0.15, "{what}: {:?} should hear {} Hz: {shares:?}", p.codec, FREQS[j]);
        } else {
            assert!(*s < 0.02, "{what}: {:?} should not hear {} Hz: {shares:?}", p.codec, FREQS[j]);
        }
    }
}

#[test]
fn each_hears_the_other_two_and_not_itself_at_every_rate() {
    for rate in [8000, 16_000, 48_000] {
        let mut m = mixer(rate);
        let mut now = 0;
        let mut phones = join_all(&mut m, &[CodecKind::Pcmu, CodecKind::Pcma, CodecKind::Opus], now);
        run(&mut m, &mut phones, &mut now, 75);
        for (i, p) in phones.iter().enumerate() {
            let others: Vec<usize> = (0..3).filter(|&j| j != i).collect();
            hears(p, &others, &format!("{rate} Hz"));
            // Its own stream: one SSRC, consecutive numbers, a frame of
            // its clock per packet, its payload type.
            let h = &p.headers;
            assert_eq!(h.len(), 75);
            assert!(h.iter().all(|x| x.ssrc == h[0].ssrc && x.payload_type == p.pt));
            assert!(h
                .windows(2)
                .all(|w| w[1].seq == w[0].seq.wrapping_add(1) && w[1].timestamp == w[0].timestamp.wrapping_add(p.frame() as u32)));
            assert!(h[0].marker && !h[1].marker);
        }
        let ssrcs: std::collections::HashSet<u32> = phones.iter().map(|p| p.headers[0].ssrc).collect();
        assert_eq!(ssrcs.len(), 3);
        assert!(m.poll_event().is_none());
    }
}

#[test]
fn star_six_mutes_and_unmutes_oneself() {
    let mut m = mixer(16_000);
    let mut now = 0;
    let mut phones = join_all(&mut m, &[CodecKind::Pcmu, CodecKind::Opus, CodecKind::Pcma], now);
    run(&mut m, &mut phones, &mut now, 30);
    assert_eq!(MUTE_KEYS, "*6");
    phones[0].press(&mut m, '*', now);
    phones[0].press(&mut m, '6', now + 200);
    assert_eq!(
        m.poll_event(),
        Some(MixerEvent::Muted {
            participant: phones[0].id,
            muted: true
        })
    );
    assert_eq!(m.muted(phones[0].id), Some(true));
    run(&mut m, &mut phones, &mut now, 50);
    hears(&phones[1], &[2], "muted");
    hears(&phones[2], &[1], "muted");
    hears(&phones[0], &[1, 2], "the muted one still hears");
    // A lone 6, or a * long before the 6, does nothing.
    phones[0].press(&mut m, '6', now);
    phones[0].press(&mut m, '*', now);
    phones[0].press(&mut m, '6', now + KEY_GAP_MS_FOR_TEST);
    assert_eq!(m.poll_event(), None);
    phones[0].press(&mut m, '*', now + 4000);
    phones[0].press(&mut m, '6', now + 4100);
    assert_eq!(
        m.poll_event(),
        Some(MixerEvent::Muted {
            participant: phones[0].id,
            muted: false
        })
    );
    run(&mut m, &mut phones, &mut now, 50);
    hears(&phones[1], &[0, 2], "unmuted");
    // Muting by the edge (a web control) works the same way.
    assert!(m.set_muted(phones[2].id, true));
    run(&mut m, &mut phones, &mut now, 50);
    hears(&phones[1], &[0], "muted by the edge");
}

const KEY_GAP_MS_FOR_TEST: u64 = dtmf::KEY_GAP_MS + 1;

#[test]
fn people_leave_and_join_and_the_end_comes_below_two() {
    let mut m = mixer(16_000);
    let mut now = 0;
    // Alone at first: no end, and the lone one hears silence.
    let mut phones = vec![Phone::join(&mut m, CodecKind::Opus, FREQS[0], now)];
    run(&mut m, &mut phones, &mut now, 10);
    assert!(!m.is_ended());
    phones.push(Phone::join(&mut m, CodecKind::Pcmu, FREQS[1], now));
    phones.push(Phone::join(&mut m, CodecKind::Pcma, FREQS[2], now));
    run(&mut m, &mut phones, &mut now, 50);
    hears(&phones[0], &[1, 2], "three");
    // The PCMU phone leaves; a new PCMU phone joins with the same tone.
    assert!(m.leave(phones[1].id));
    assert!(!m.leave(phones[1].id), "twice");
    phones.remove(1);
    run(&mut m, &mut phones, &mut now, 50);
    hears(&phones[0], &[2], "after one left");
    phones.push(Phone::join(&mut m, CodecKind::Pcmu, FREQS[1], now));
    run(&mut m, &mut phones, &mut now, 50);
    hears(&phones[0], &[1, 2], "after one joined");
    hears(&phones[2], &[0, 2], "the newcomer");
    assert_eq!(m.participants().count(), 3);
    assert!(m.leave(phones[1].id));
    assert_eq!(m.poll_event(), None, "two remain");
    assert!(m.leave(phones[2].id));
    assert_eq!(m.poll_event(), Some(MixerEvent::Ended));
    assert!(m.is_ended());
    assert_eq!(m.poll_timeout(), None);
    m.handle_timeout(now + 1000);
    assert_eq!(m.poll_transmit(), None);
    let cfg = ParticipantConfig {
        codec: CodecKind::Pcmu,
        payload_type: 0,
        dtmf_payload_type: None,
    };
    assert!(matches!(m.join(cfg, now), Err(MediaError::Conference(_))));
}

#[test]
fn listeners_share_one_encoding_per_codec() {
    let mut m = mixer(48_000);
    let mut now = 0;
    let mut phones: Vec<Phone> = (0..5)
        .map(|i| Phone::join(&mut m, if i < 3 { CodecKind::Opus } else { CodecKind::Pcmu }, FREQS[0], now))
        .collect();
    for p in &mut phones[1..] {
        p.speaking = false;
    }
    run(&mut m, &mut phones, &mut now, 60);
    let s = m.stats();
    // One talker (its own encoding from its first frame on) and two
    // codecs of listeners, each encoded once a tick.
    assert!(s.own_encodings <= s.ticks && s.own_encodings + 3 >= s.ticks, "{s:?}");
    assert_eq!(s.shared_encodings, 2 * s.ticks);
    for p in &phones[1..] {
        let share = p.shares(500, &FREQS)[0];
        assert!(share > 0.5, "{:?} hears the talker: {share}", p.codec);
    }
    assert!(phones[0].shares(500, &FREQS)[0] < 0.02);
}

#[test]
fn bad_datagrams_are_counted_and_dropped() {
    let mut m = mixer(8000);
    let mut now = 0;
    let mut phones = join_all(&mut m, &[CodecKind::Pcmu, CodecKind::Opus], now);
    let id = phones[0].id;
    m.handle_input(id, b"not rtp", now);
    m.handle_input(id, &[0x80; 11], now);
    phones[0].send(&mut m, 96, b"wrong payload type", now);
    phones[0].send(&mut m, DTMF_PT, b"", now);
    let stranger = RtpHeader {
        marker: false,
        payload_type: 0,
        seq: 0,
        timestamp: 0,
        ssrc: 0,
    };
    m.handle_input(999, &rtp::build(&stranger, &[0xff; 160]), now);
    m.handle_input(id, &rtp::build_bye(5, "x"), now);
    let s = m.participant_stats(id).unwrap();
    assert_eq!((s.malformed, s.wrong_payload_type, s.received), (3, 1, 0));
    assert_eq!(m.stats().dropped, 5);
    // Garbage for Opus decodes as concealment, and the call goes on.
    phones[1].send(&mut m, 111, &[0xff; 40], now);
    run(&mut m, &mut phones, &mut now, 40);
    hears(&phones[0], &[1], "after garbage");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn arbitrary_datagrams_never_panic(packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..40)) {
        let mut m = mixer(16_000);
        let cfg = |codec, payload_type| ParticipantConfig { codec, payload_type, dtmf_payload_type: Some(DTMF_PT) };
        let a = m.join(cfg(CodecKind::Opus, 111), 0).unwrap();
        let b = m.join(cfg(CodecKind::Pcma, 8), 0).unwrap();
        for (i, mut p) in packets.into_iter().enumerate() {
            // Make some of them parse as RTP of a known payload type.
            if i % 2 == 0 && p.len() >= 12 {
                p[0] = 0x80;
                p[1] = [111, 8, DTMF_PT][i % 3];
            }
            m.handle_input(if i % 3 == 0 { a } else { b }, &p, i as u64 * 10);
            m.handle_timeout(i as u64 * 10);
            while m.poll_transmit().is_some() {}
        }
    }
}
