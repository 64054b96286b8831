//! RTP, RTCP and telephone-event parsing, and a media session fed
//! arbitrary datagrams from its peer: never a panic, and every parsed
//! RTP packet re-serialises to a header that parses the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdial_media::rtp;
use peerdial_media::sdp::{CodecKind, Direction, Negotiated};
use peerdial_media::MediaSession;

fuzz_target!(|data: &[u8]| {
    if let Ok((h, payload)) = rtp::parse(data) {
        let again = rtp::build(&h, payload);
        assert_eq!(rtp::parse(&again).unwrap().0, h);
        let _ = rtp::TelephoneEvent::parse(payload);
    }
    let _ = rtp::parse_rtcp(data);
    let peer = "127.0.0.1:4000".parse().unwrap();
    for codec in [CodecKind::Pcmu, CodecKind::Opus] {
        let neg = Negotiated {
            codec,
            pt: if codec == CodecKind::Opus { 111 } else { 0 },
            dtmf_pt: Some(101),
            remote_rtp: peer,
            remote_rtcp: "127.0.0.1:4001".parse().unwrap(),
            ptime: 20,
            direction: Direction::SendRecv,
        };
        let mut m = MediaSession::new(neg, Vec::new(), true, "fuzz", 0).unwrap();
        for (i, chunk) in data.split(|b| *b == 0xfe).enumerate() {
            m.handle_rtp(chunk, peer);
            m.handle_rtcp(chunk, "127.0.0.1:4001".parse().unwrap());
            let _ = m.handle_timeout(20 * i as u64);
            while m.poll_transmit().is_some() {}
        }
    }
});
