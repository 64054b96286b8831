//! SDP parsing and offer/answer: arbitrary text never panics, and any
//! answer we produce parses back and names a codec we support; taken as a
//! re-INVITE's offer inside a call, the answer keeps our session (id,
//! port, next version).
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdial_media::reoffer::answer_reoffer;
use peerdial_media::sdp::{accept_answer, answer, offer as our_offer, CodecKind, Sdp};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(offer) = Sdp::parse(&text) else { return };
    let ip = "127.0.0.1".parse().unwrap();
    if let Ok((ans, neg)) = answer(&offer, 1, ip, 4000, &[CodecKind::Pcmu, CodecKind::Opus]) {
        let back = Sdp::parse(&ans.to_text(ip)).expect("our answer parses");
        assert!(matches!(neg.codec, CodecKind::Pcmu | CodecKind::Opus));
        let _ = accept_answer(&offer, &back);
    }
    let ours = our_offer(7, ip, 5000, &[CodecKind::Pcmu]);
    for hold in [false, true] {
        if let Ok((ans, _, _)) = answer_reoffer(&offer, &ours, ip, &[CodecKind::Pcmu], hold) {
            let back = Sdp::parse(&ans.to_text(ip)).expect("our re-answer parses");
            assert_eq!((back.session_id, back.version), (7, ours.version + 1));
        }
    }
});
