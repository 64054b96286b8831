//! Offers and answers inside a call (RFC 3264 section 8): hold and resume
//! (RFC 3264 8.4, RFC 6337 section 5), and taking the other side's new
//! offer. Our session keeps its id, port and codec; each new description
//! has the next version, as section 8 requires.
//!
//! What this is not: the first offer/answer of a call ([`crate::sdp`]), or
//! the signalling that carries these bodies (`peerdial_sip::call`).

use std::net::IpAddr;

use crate::sdp::{self, CodecKind, Direction, Negotiated, RtpMap, Sdp};
use crate::MediaError;

/// Who holds the call: us, the other side, both or neither.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hold {
    pub local: bool,
    pub remote: bool,
}

impl Hold {
    /// The direction our description states: we stop receiving while we
    /// hold, and stop sending while we are held.
    pub fn direction(self) -> Direction {
        match (self.local, self.remote) {
            (false, false) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (true, true) => Direction::Inactive,
        }
    }

    /// Whether our microphone goes out: not while either side holds.
    pub fn sends_audio(self) -> bool {
        !self.local && !self.remote
    }
}

/// What a direction in the other side's offer says about its hold.
pub fn remote_holds(offered: Direction) -> bool {
    matches!(offered, Direction::SendOnly | Direction::Inactive)
}

/// A new offer from our current description `current`, for the codec in
/// use (`neg`), stating `hold`.
pub fn hold_offer(current: &Sdp, neg: &Negotiated, hold: Hold) -> Sdp {
    let mut o = current.clone();
    o.version += 1;
    if let Some(m) = o.media.iter_mut().find(|m| m.kind == "audio" && m.port != 0) {
        let mut maps = vec![RtpMap {
            pt: neg.pt,
            encoding: neg.codec.name().into(),
            rate: neg.codec.clock_rate(),
        }];
        if let Some(d) = neg.dtmf_pt {
            maps.push(RtpMap {
                pt: d,
                encoding: "telephone-event".into(),
                rate: neg.codec.clock_rate(),
            });
        }
        m.formats = maps.iter().map(|r| r.pt).collect();
        m.rtpmaps = maps;
        m.direction = hold.direction();
    }
    o
}

/// Answers the other side's new `offer` from our current description
/// (same session id and port, next version), keeping our own hold. Returns
/// the answer, what it negotiates, and whether the other side now holds.
pub fn answer_reoffer(
    offer: &Sdp,
    current: &Sdp,
    addr: IpAddr,
    ours: &[CodecKind],
    local_hold: bool,
) -> Result<(Sdp, Negotiated, bool), MediaError> {
    let port = current
        .media
        .iter()
        .find(|m| m.kind == "audio" && m.port != 0)
        .map(|m| m.port)
        .ok_or_else(|| MediaError::Sdp("our session has no audio stream".into()))?;
    let (mut answer, mut neg) = sdp::answer(offer, current.session_id, addr, port, ours)?;
    answer.version = current.version + 1;
    let offered = offer
        .media
        .iter()
        .find(|m| m.kind == "audio" && m.port != 0)
        .map_or(Direction::SendRecv, |m| m.direction);
    let hold = Hold {
        local: local_hold,
        remote: remote_holds(offered),
    };
    // An answer may only narrow the offer (RFC 3264 6.1): recvonly offered
    // is answered sendonly at most, whatever our hold says.
    let narrowed = match (offered, hold.direction()) {
        (Direction::Inactive, _) | (_, Direction::Inactive) => Direction::Inactive,
        (Direction::SendOnly, Direction::SendOnly) | (Direction::RecvOnly, Direction::RecvOnly) => Direction::Inactive,
        (Direction::SendOnly, _) => Direction::RecvOnly,
        (Direction::RecvOnly, _) => Direction::SendOnly,
        (Direction::SendRecv, d) => d,
    };
    for m in answer.media.iter_mut().filter(|m| m.port != 0) {
        m.direction = narrowed;
    }
    neg.direction = narrowed;
    Ok((answer, neg, hold.remote))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip() -> IpAddr {
        "127.0.0.1".parse().unwrap()
    }

    fn session() -> (Sdp, Negotiated) {
        let ours = sdp::offer(7, ip(), 20_000, &[CodecKind::Opus, CodecKind::Pcmu]);
        let theirs = sdp::offer(9, ip(), 30_000, &[CodecKind::Pcmu]);
        let (answer, _) = sdp::answer(&ours, 9, ip(), 30_000, &[CodecKind::Pcmu]).unwrap();
        let neg = sdp::accept_answer(&ours, &answer).unwrap();
        let _ = theirs;
        (ours, neg)
    }

    #[test]
    fn holding_offers_sendonly_for_the_codec_in_use_with_the_next_version() {
        let (ours, neg) = session();
        let o = hold_offer(
            &ours,
            &neg,
            Hold {
                local: true,
                remote: false,
            },
        );
        assert_eq!(o.version, ours.version + 1);
        assert_eq!(o.session_id, ours.session_id);
        let m = &o.media[0];
        assert_eq!((m.port, m.direction), (20_000, Direction::SendOnly));
        assert_eq!(m.formats, vec![0, 101], "PCMU and its telephone-event only");
        let text = o.to_text(ip());
        assert!(text.contains("a=sendonly") && !text.contains("opus"), "{text}");
        // Resume: sendrecv again; both holding: inactive.
        let r = hold_offer(&o, &neg, Hold::default());
        assert_eq!((r.version, r.media[0].direction), (o.version + 1, Direction::SendRecv));
        assert_eq!(
            hold_offer(&o, &neg, Hold { local: true, remote: true }).media[0].direction,
            Direction::Inactive
        );
    }

    #[test]
    fn answers_keep_our_session_and_hold() {
        let (ours, neg) = session();
        let theirs = sdp::offer(9, ip(), 30_000, &[CodecKind::Pcmu]);
        for (offered, local_hold, want, remote) in [
            (Direction::SendOnly, false, Direction::RecvOnly, true),
            (Direction::Inactive, false, Direction::Inactive, true),
            (Direction::SendRecv, false, Direction::SendRecv, false),
            (Direction::SendRecv, true, Direction::SendOnly, false),
            (Direction::SendOnly, true, Direction::Inactive, true),
            (Direction::RecvOnly, false, Direction::SendOnly, false),
        ] {
            let mut offer = hold_offer(&theirs, &neg, Hold::default());
            offer.media[0].direction = offered;
            let (a, n, held) = answer_reoffer(&offer, &ours, ip(), &[CodecKind::Pcmu], local_hold).unwrap();
            assert_eq!(
                (a.media[0].direction, n.direction, held),
                (want, want, remote),
                "{offered:?} {local_hold}"
            );
            assert_eq!((a.session_id, a.version, a.media[0].port), (7, ours.version + 1, 20_000));
        }
        // An offer with nothing we take is refused, not half-answered.
        let g722 = Sdp::parse("v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 9\r\n").unwrap();
        assert_eq!(
            answer_reoffer(&g722, &ours, ip(), &[CodecKind::Pcmu], false).unwrap_err(),
            MediaError::NoCommonCodec
        );
    }
}
