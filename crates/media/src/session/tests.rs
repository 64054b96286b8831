use super::*;
use crate::audio::{frequency, tone};
use crate::sdp::CodecKind;

fn neg(codec: CodecKind, peer: u16) -> Negotiated {
    let pt = if codec == CodecKind::Opus { 111 } else { 0 };
    Negotiated {
        codec,
        pt,
        dtmf_pt: Some(101),
        remote_rtp: SocketAddr::from(([127, 0, 0, 1], peer)),
        remote_rtcp: SocketAddr::from(([127, 0, 0, 1], peer + 1)),
        ptime: 20,
        direction: Direction::SendRecv,
    }
}

/// Two sessions wired back to back with simulated time; `mangle` may
/// drop, reorder or corrupt the packets in flight.
fn call(codec: CodecKind, secs: u64, mangle: impl Fn(u64, Vec<Transmit>) -> Vec<Transmit>) -> (MediaSession, MediaSession) {
    let rate = codec.clock_rate();
    let src = tone(1000.0, rate, (rate as u64 * secs) as usize, 8000.0);
    let mut a = MediaSession::new(neg(codec, 6000), src, false, "a", 0).unwrap();
    let mut b = MediaSession::new(neg(codec, 4000), Vec::new(), true, "b", 0).unwrap();
    let a_addr = SocketAddr::from(([127, 0, 0, 1], 4000));
    for now in (0..secs * 1000).step_by(20) {
        a.handle_timeout(now).unwrap();
        let batch: Vec<Transmit> = std::iter::from_fn(|| a.poll_transmit())
            .filter(|t| t.channel == Channel::Rtp)
            .collect();
        for t in mangle(now, batch) {
            b.handle_rtp(&t.data, a_addr);
        }
        b.handle_timeout(now).unwrap();
        while b.poll_transmit().is_some() {}
    }
    (a, b)
}

/// a sends a tone to b for 3 s; `at(now, a, b)` changes them on the way.
fn steered(codec: CodecKind, at: impl Fn(u64, &mut MediaSession, &mut MediaSession)) -> MediaSession {
    let rate = codec.clock_rate();
    let mut a = MediaSession::new(neg(codec, 6000), tone(1000.0, rate, rate as usize * 3, 8000.0), false, "a", 0).unwrap();
    let mut b = MediaSession::new(neg(codec, 4000), Vec::new(), true, "b", 0).unwrap();
    let a_addr = SocketAddr::from(([127, 0, 0, 1], 4000));
    for now in (0..3000).step_by(20) {
        at(now, &mut a, &mut b);
        a.handle_timeout(now).unwrap();
        while let Some(t) = a.poll_transmit() {
            if t.channel == Channel::Rtp {
                b.handle_rtp(&t.data, a_addr);
            }
        }
        b.handle_timeout(now).unwrap();
        while b.poll_transmit().is_some() {}
    }
    b
}

/// The loudness heard in the middle of each second (away from the
/// jitter buffer's delay at the changes).
fn per_second(b: &MediaSession) -> Vec<f64> {
    let rate = b.sample_rate() as usize;
    b.played()
        .chunks(rate)
        .filter(|c| c.len() == rate)
        .map(|c| crate::audio::rms(&c[rate / 5..rate * 4 / 5]))
        .collect()
}

#[test]
fn mute_hold_and_volume_change_what_the_other_side_hears() {
    // Muted in the second second: silence goes, then the tone again.
    let b = steered(CodecKind::Pcmu, |now, a, _| a.set_muted((1000..2000).contains(&now)));
    let l = per_second(&b);
    assert!(l[0] > 3000.0 && l[1] < 100.0 && l[2] > 3000.0, "{l:?}");
    // b holds in the second second (sendonly): it plays nothing.
    let b = steered(CodecKind::Pcmu, |now, _, b| {
        let mut n = b.negotiated().clone();
        n.direction = if (1000..2000).contains(&now) {
            Direction::SendOnly
        } else {
            Direction::SendRecv
        };
        b.renegotiate(n).unwrap();
    });
    let l = per_second(&b);
    assert!(l[0] > 3000.0 && l[1] < 100.0 && l[2] > 3000.0, "{l:?}");
    // Half volume from the second second on.
    let b = steered(CodecKind::Pcmu, |now, _, b| b.set_volume(if now >= 1000 { 50 } else { 100 }));
    let l = per_second(&b);
    assert!((l[2] / l[0] - 0.5).abs() < 0.1, "{l:?}");
    // A codec change mid-call: the stream goes on in the new codec.
    let b = steered(CodecKind::Pcmu, |now, a, b| {
        if now == 1000 {
            for s in [a, b] {
                let mut n = s.negotiated().clone();
                n.codec = CodecKind::Pcma;
                n.pt = 8;
                s.renegotiate(n).unwrap();
            }
        }
    });
    let tail = &b.played()[2 * 8000..];
    assert!((frequency(tail, 8000) - 1000.0).abs() < 20.0);
}

#[test]
fn a_tone_arrives_at_its_frequency() {
    for codec in [CodecKind::Pcmu, CodecKind::Opus] {
        let (_, b) = call(codec, 2, |_, v| v);
        let f = frequency(&b.played()[b.played().len() / 4..], codec.clock_rate());
        assert!((f - 1000.0).abs() < 20.0, "{codec:?}: {f}");
        assert_eq!(b.stats.received_packets, 100);
    }
}

#[test]
fn reordering_and_loss_are_survived() {
    // Every 7th packet is held back one period (arrives after its
    // successor); every 10th is lost.
    let held = std::cell::RefCell::new(Vec::new());
    let (_, b) = call(CodecKind::Pcmu, 4, |now, v| {
        let n = now / 20;
        let mut out = std::mem::take(&mut *held.borrow_mut());
        if n % 10 == 3 {
            return out;
        }
        if n % 7 == 0 {
            *held.borrow_mut() = v;
        } else {
            out.splice(0..0, v);
        }
        out
    });
    let s = b.jitter_stats();
    assert_eq!((s.lost, s.late), (20, 0), "{s:?}");
    // Every frame but the concealed ones carries the tone.
    let frames = b.played().chunks_exact(160);
    let total = frames.len();
    let toned = frames.filter(|f| (frequency(f, 8000) - 1000.0).abs() < 20.0).count();
    assert!(toned >= total - 21 && toned < total, "{toned} of {total}");
}

/// A sender that stalls for 60 ms every half second, then sends what it
/// owes at once (a busy machine): a voicemail keeps every frame it sent,
/// with no silence where the packets were merely late; a live listener
/// hears the gaps.
#[test]
fn a_recording_waits_for_a_late_sender_and_a_listener_does_not() {
    let a_addr = SocketAddr::from(([127, 0, 0, 1], 4000));
    let src = tone(1000.0, 8000, 8000 * 3, 8000.0);
    let mut a = MediaSession::new(neg(CodecKind::Pcmu, 6000), src, false, "a", 0).unwrap();
    let mut voicemail = MediaSession::new(neg(CodecKind::Pcmu, 4000), Vec::new(), true, "v", 0).unwrap();
    voicemail.record_arrivals();
    let mut listener = MediaSession::new(neg(CodecKind::Pcmu, 4000), Vec::new(), true, "l", 0).unwrap();
    let mut held = Vec::new();
    for now in (0..3000).step_by(20) {
        a.handle_timeout(now).unwrap();
        held.extend(std::iter::from_fn(|| a.poll_transmit()).filter(|t| t.channel == Channel::Rtp));
        if now % 500 < 400 || now % 500 >= 460 {
            for t in held.drain(..) {
                voicemail.handle_rtp(&t.data, a_addr);
                listener.handle_rtp(&t.data, a_addr);
            }
        }
        for b in [&mut voicemail, &mut listener] {
            b.handle_timeout(now).unwrap();
            while b.poll_transmit().is_some() {}
        }
    }
    let toned = |b: &MediaSession| {
        b.played()
            .chunks_exact(160)
            .filter(|f| (frequency(f, 8000) - 1000.0).abs() < 20.0)
            .count()
    };
    voicemail.finish_recording().unwrap();
    let got = voicemail.stats.received_packets as usize;
    assert_eq!(voicemail.jitter_stats().lost, 0);
    let kept = voicemail.played().len() / 160;
    assert_eq!(kept, got, "{:?}", voicemail.jitter_stats());
    assert_eq!(toned(&voicemail), kept, "every frame kept is the tone");
    assert!(toned(&listener) < listener.played().len() / 160, "a listener hears the stalls");
}

#[test]
fn packets_from_strangers_and_garbage_are_ignored() {
    let mut b = MediaSession::new(neg(CodecKind::Pcmu, 4000), Vec::new(), true, "b", 0).unwrap();
    let peer = SocketAddr::from(([127, 0, 0, 1], 4000));
    let stranger = SocketAddr::from(([127, 0, 0, 1], 4002));
    let good = rtp::build(
        &RtpHeader {
            marker: false,
            payload_type: 0,
            seq: 1,
            timestamp: 0,
            ssrc: 5,
        },
        &[0xFF; 160],
    );
    b.handle_rtp(&good, stranger);
    assert_eq!((b.stats.foreign, b.stats.received_packets), (1, 0));
    b.handle_rtp(b"\x00garbage", peer);
    b.handle_rtp(
        &rtp::build(
            &RtpHeader {
                marker: false,
                payload_type: 9,
                seq: 1,
                timestamp: 0,
                ssrc: 5,
            },
            &[1; 160],
        ),
        peer,
    );
    b.handle_rtcp(b"\x80\xc8\x00\xff", peer);
    assert_eq!(b.stats.malformed, 3);
    assert_eq!(b.stats.received_packets, 0);
    assert_eq!(b.poll_event(), None);
}

#[test]
fn live_audio_goes_through_the_queues() {
    let peer = SocketAddr::from(([127, 0, 0, 1], 4000));
    let mut a = MediaSession::new(neg(CodecKind::Pcmu, 6000), Vec::new(), false, "a", 0).unwrap();
    let mut b = MediaSession::new(neg(CodecKind::Pcmu, 4000), Vec::new(), false, "b", 0).unwrap();
    a.set_live();
    b.set_live();
    let mut heard = Vec::new();
    for now in (0..1000).step_by(20) {
        // Half a second of tone is captured in the first 20 ms.
        if now == 0 {
            a.push_capture(&tone(1000.0, 8000, 4000, 8000.0));
        }
        a.handle_timeout(now).unwrap();
        while let Some(t) = a.poll_transmit() {
            if t.channel == Channel::Rtp {
                b.handle_rtp(&t.data, peer);
            }
        }
        b.handle_timeout(now).unwrap();
        b.take_playout(&mut heard);
    }
    assert_eq!(a.capture_queued(), 0);
    // The tone, then the silence sent once the capture ran dry.
    assert!((frequency(&heard[800..3200], 8000) - 1000.0).abs() < 20.0);
    assert!(crate::audio::rms(&heard[heard.len() - 1600..]) < 50.0);
}

#[test]
fn live_sending_follows_the_microphone_and_playout_follows_arrivals() {
    // Simulated milliseconds. a's microphone clocks its sender; b plays
    // what arrives at once.
    let peer = SocketAddr::from(([127, 0, 0, 1], 4000));
    let mut a = MediaSession::new(neg(CodecKind::Pcmu, 6000), Vec::new(), false, "a", 0).unwrap();
    let mut b = MediaSession::new(neg(CodecKind::Pcmu, 4000), Vec::new(), false, "b", 0).unwrap();
    a.set_live();
    a.set_capture_clocked(true);
    b.set_live();
    let rtp = |a: &mut MediaSession| -> Vec<Vec<u8>> {
        std::iter::from_fn(|| a.poll_transmit())
            .filter(|t| t.channel == Channel::Rtp)
            .map(|t| t.data)
            .collect()
    };
    // Nothing captured yet: nothing is due (the microphone's first frame
    // is on its way), not even at the session's start.
    a.handle_timeout(0).unwrap();
    assert!(rtp(&mut a).is_empty() && a.poll_timeout() > 0);
    // Half a frame captured: still nothing; a whole one: due at once.
    a.push_capture(&tone(1000.0, 8000, 80, 8000.0));
    assert!(a.poll_timeout() > 7);
    a.push_capture(&tone(1000.0, 8000, 80, 8000.0));
    assert_eq!(a.poll_timeout(), 0);
    a.handle_timeout(7).unwrap();
    let first = rtp(&mut a);
    assert_eq!(first.len(), 1);
    // b hears it the moment it arrives, not at a playout tick.
    b.handle_rtp(&first[0], peer);
    assert_eq!(b.poll_timeout(), 0);
    b.handle_timeout(8).unwrap();
    let mut heard = Vec::new();
    b.take_playout(&mut heard);
    assert_eq!(heard.len(), 160);
    assert!((frequency(&heard, 8000) - 1000.0).abs() < 30.0);
    // Two more frames; the first of them is lost on the way. Its slot is
    // concealed once the next has waited past the loss deadline, and the
    // next plays right behind it.
    a.push_capture(&tone(1000.0, 8000, 320, 8000.0));
    a.handle_timeout(27).unwrap();
    let two = rtp(&mut a);
    assert_eq!(two.len(), 2);
    b.handle_rtp(&two[1], peer);
    b.handle_timeout(30).unwrap();
    heard.clear();
    b.take_playout(&mut heard);
    assert!(heard.is_empty(), "the missing frame is waited for");
    b.handle_timeout(b.poll_timeout()).unwrap();
    b.take_playout(&mut heard);
    assert_eq!(heard.len(), 320);
    assert_eq!(b.jitter_stats().lost, 1);
    // The microphone stops: after the grace the timer sends (silence),
    // a frame every 20 ms.
    let mut next_sent = || {
        for _ in 0..100 {
            let t = a.poll_timeout();
            a.handle_timeout(t).unwrap();
            if !rtp(&mut a).is_empty() {
                return t;
            }
        }
        panic!("nothing sent");
    };
    assert_eq!(next_sent(), 27 + CAPTURE_GRACE_MS);
    assert_eq!(next_sent(), 27 + CAPTURE_GRACE_MS + 20);
}

#[test]
fn dtmf_is_sent_and_reported_once() {
    let mut a = MediaSession::new(neg(CodecKind::Pcmu, 6000), Vec::new(), false, "a", 0).unwrap();
    let mut b = MediaSession::new(neg(CodecKind::Pcmu, 4000), Vec::new(), false, "b", 0).unwrap();
    a.send_dtmf('7').unwrap();
    assert!(a.send_dtmf('x').is_err());
    for now in (0..400).step_by(20) {
        a.handle_timeout(now).unwrap();
        while let Some(t) = a.poll_transmit() {
            if t.channel == Channel::Rtp {
                b.handle_rtp(&t.data, SocketAddr::from(([127, 0, 0, 1], 4000)));
            }
        }
    }
    let events: Vec<_> = std::iter::from_fn(|| b.poll_event())
        .filter(|e| matches!(e, MediaEvent::Dtmf(_)))
        .collect();
    assert_eq!(events, vec![MediaEvent::Dtmf('7')]);
}
