//! SDP (RFC 8866) for one audio stream and the offer/answer rules of
//! RFC 3264: what a phone offers, how it answers an offer, and what both
//! sides end up sending.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use crate::MediaError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodecKind {
    Opus,
    Pcmu,
    Pcma,
}

impl CodecKind {
    pub fn name(self) -> &'static str {
        match self {
            CodecKind::Opus => "opus",
            CodecKind::Pcmu => "PCMU",
            CodecKind::Pcma => "PCMA",
        }
    }

    /// The RTP clock rate, which is also the rate audio is processed at.
    pub fn clock_rate(self) -> u32 {
        match self {
            CodecKind::Opus => 48_000,
            _ => 8_000,
        }
    }

    /// The payload type we offer it under: RFC 3551's static one for
    /// G.711, a dynamic one for Opus.
    pub fn default_pt(self) -> u8 {
        match self {
            CodecKind::Opus => 111,
            CodecKind::Pcmu => 0,
            CodecKind::Pcma => 8,
        }
    }

    pub fn from_name(s: &str) -> Option<CodecKind> {
        match s.to_ascii_lowercase().as_str() {
            "opus" => Some(CodecKind::Opus),
            "pcmu" | "g711u" => Some(CodecKind::Pcmu),
            "pcma" | "g711a" => Some(CodecKind::Pcma),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub pt: u8,
    pub encoding: String,
    pub rate: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn attr(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction an answer takes to an offer with this one.
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub kind: String,
    pub port: u16,
    pub proto: String,
    pub formats: Vec<u8>,
    pub rtpmaps: Vec<RtpMap>,
    pub connection: Option<IpAddr>,
    pub rtcp_port: Option<u16>,
    pub direction: Direction,
    pub ptime: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    pub session_id: u64,
    pub version: u64,
    pub connection: Option<IpAddr>,
    pub media: Vec<Media>,
}

fn bad(why: impl Into<String>) -> MediaError {
    MediaError::Sdp(why.into())
}

impl Sdp {
    pub fn parse(text: &str) -> Result<Sdp, MediaError> {
        let mut sdp = Sdp {
            session_id: 0,
            version: 0,
            connection: None,
            media: Vec::new(),
        };
        let mut seen_v = false;
        let mut seen_o = false;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            let (t, value) = line.split_once('=').ok_or_else(|| bad(format!("line {}: no '='", i + 1)))?;
            if t.len() != 1 {
                return Err(bad(format!("line {}: type {t:?} is not one letter", i + 1)));
            }
            match t {
                "v" => {
                    if value != "0" {
                        return Err(bad("version is not 0"));
                    }
                    seen_v = true;
                }
                "o" => {
                    let f: Vec<&str> = value.split_whitespace().collect();
                    if f.len() != 6 {
                        return Err(bad("origin line does not have six fields"));
                    }
                    sdp.session_id = f[1].parse().map_err(|_| bad("origin session id is not a number"))?;
                    sdp.version = f[2].parse().map_err(|_| bad("origin version is not a number"))?;
                    seen_o = true;
                }
                "c" => {
                    let f: Vec<&str> = value.split_whitespace().collect();
                    if f.len() != 3 || f[0] != "IN" {
                        return Err(bad("connection line is not 'IN <family> <address>'"));
                    }
                    // Multicast TTL suffixes are not for phones.
                    let addr: IpAddr = f[2]
                        .parse()
                        .map_err(|_| bad(format!("connection address {:?} is not an IP address", f[2])))?;
                    match sdp.media.last_mut() {
                        Some(m) => m.connection = Some(addr),
                        None => sdp.connection = Some(addr),
                    }
                }
                "m" => {
                    let f: Vec<&str> = value.split_whitespace().collect();
                    if f.len() < 4 {
                        return Err(bad("media line has fewer than four fields"));
                    }
                    let port = f[1].split('/').next().unwrap_or("");
                    let port: u16 = port.parse().map_err(|_| bad(format!("media port {:?} is not a port", f[1])))?;
                    let formats = if f[2].contains("RTP") {
                        f[3..]
                            .iter()
                            .map(|p| p.parse::<u8>().ok().filter(|p| *p < 128))
                            .collect::<Option<Vec<u8>>>()
                            .ok_or_else(|| bad("RTP payload type is not 0..127"))?
                    } else {
                        Vec::new()
                    };
                    sdp.media.push(Media {
                        kind: f[0].to_string(),
                        port,
                        proto: f[2].to_string(),
                        formats,
                        rtpmaps: Vec::new(),
                        connection: None,
                        rtcp_port: None,
                        direction: Direction::SendRecv,
                        ptime: None,
                    });
                }
                "a" => {
                    let Some(m) = sdp.media.last_mut() else { continue };
                    let (name, val) = value.split_once(':').unwrap_or((value, ""));
                    match name {
                        // An attribute we cannot read is ignored (RFC 8866
                        // 5.13), not a reason to refuse the call: a payload
                        // type without a readable rtpmap is one we will not
                        // use (`a=rtpmap:31 LPC` of RFC 4475 3.1.1.3).
                        "rtpmap" => match parse_rtpmap(val) {
                            Some(r) => m.rtpmaps.push(r),
                            None => tracing::debug!(attribute = val, "ignoring an rtpmap we cannot read"),
                        },
                        "rtcp" => match val.split_whitespace().next().and_then(|p| p.parse().ok()) {
                            Some(p) => m.rtcp_port = Some(p),
                            None => tracing::debug!(attribute = val, "ignoring an rtcp attribute we cannot read"),
                        },
                        "ptime" => m.ptime = val.trim().parse().ok(),
                        "sendrecv" => m.direction = Direction::SendRecv,
                        "sendonly" => m.direction = Direction::SendOnly,
                        "recvonly" => m.direction = Direction::RecvOnly,
                        "inactive" => m.direction = Direction::Inactive,
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        if !seen_v || !seen_o {
            return Err(bad("missing v= or o= line"));
        }
        if sdp.media.is_empty() {
            return Err(bad("no media line"));
        }
        Ok(sdp)
    }

    pub fn to_text(&self, origin_addr: IpAddr) -> String {
        let fam = |a: IpAddr| if a.is_ipv4() { "IP4" } else { "IP6" };
        let mut s = String::new();
        let _ = write!(
            s,
            "v=0\r\no=peerdial {} {} IN {} {}\r\ns=peerdial\r\n",
            self.session_id,
            self.version,
            fam(origin_addr),
            origin_addr
        );
        if let Some(c) = self.connection {
            let _ = write!(s, "c=IN {} {}\r\n", fam(c), c);
        }
        s.push_str("t=0 0\r\n");
        for m in &self.media {
            let fmts: Vec<String> = m.formats.iter().map(|f| f.to_string()).collect();
            let _ = write!(s, "m={} {} {} {}\r\n", m.kind, m.port, m.proto, fmts.join(" "));
            if let Some(c) = m.connection {
                let _ = write!(s, "c=IN {} {}\r\n", fam(c), c);
            }
            for r in &m.rtpmaps {
                let chans = if r.encoding.eq_ignore_ascii_case("opus") { "/2" } else { "" };
                let _ = write!(s, "a=rtpmap:{} {}/{}{}\r\n", r.pt, r.encoding, r.rate, chans);
                if r.encoding == "telephone-event" {
                    let _ = write!(s, "a=fmtp:{} 0-16\r\n", r.pt);
                }
                if r.encoding.eq_ignore_ascii_case("opus") {
                    let _ = write!(s, "a=fmtp:{} useinbandfec=1\r\n", r.pt);
                }
            }
            if let Some(p) = m.ptime {
                let _ = write!(s, "a=ptime:{p}\r\n");
            }
            if let Some(p) = m.rtcp_port {
                let _ = write!(s, "a=rtcp:{p}\r\n");
            }
            let _ = write!(s, "a={}\r\n", m.direction.attr());
        }
        s
    }
}

/// `<pt> <encoding>/<rate>[/<channels>]`.
fn parse_rtpmap(val: &str) -> Option<RtpMap> {
    let (pt, enc) = val.split_once(' ')?;
    let pt: u8 = pt.trim().parse().ok().filter(|p| *p < 128)?;
    let mut parts = enc.trim().split('/');
    let encoding = parts.next().unwrap_or("").to_string();
    let rate: u32 = parts.next().and_then(|r| r.parse().ok())?;
    Some(RtpMap { pt, encoding, rate })
}

impl Media {
    /// The encoding and rate of a payload type: from its rtpmap, or the
    /// static table of RFC 3551 for 0 and 8.
    pub fn format(&self, pt: u8) -> Option<(String, u32)> {
        if let Some(r) = self.rtpmaps.iter().find(|r| r.pt == pt) {
            return Some((r.encoding.clone(), r.rate));
        }
        match pt {
            0 => Some(("PCMU".into(), 8000)),
            8 => Some(("PCMA".into(), 8000)),
            _ => None,
        }
    }
}

/// What both sides agreed on for the audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub codec: CodecKind,
    pub pt: u8,
    pub dtmf_pt: Option<u8>,
    pub remote_rtp: SocketAddr,
    pub remote_rtcp: SocketAddr,
    pub ptime: u32,
    pub direction: Direction,
}

/// Builds an offer for one audio stream with the codecs in preference order
/// and telephone-event at 8 and 48 kHz.
pub fn offer(session_id: u64, addr: IpAddr, rtp_port: u16, codecs: &[CodecKind]) -> Sdp {
    let mut rtpmaps: Vec<RtpMap> = codecs
        .iter()
        .map(|c| RtpMap {
            pt: c.default_pt(),
            encoding: c.name().into(),
            rate: c.clock_rate(),
        })
        .collect();
    rtpmaps.push(RtpMap {
        pt: 101,
        encoding: "telephone-event".into(),
        rate: 8000,
    });
    if codecs.contains(&CodecKind::Opus) {
        rtpmaps.push(RtpMap {
            pt: 102,
            encoding: "telephone-event".into(),
            rate: 48000,
        });
    }
    audio(session_id, addr, rtp_port, rtpmaps, Direction::SendRecv)
}

fn audio(session_id: u64, addr: IpAddr, rtp_port: u16, rtpmaps: Vec<RtpMap>, direction: Direction) -> Sdp {
    Sdp {
        session_id,
        version: 1,
        connection: Some(addr),
        media: vec![Media {
            kind: "audio".into(),
            port: rtp_port,
            proto: "RTP/AVP".into(),
            formats: rtpmaps.iter().map(|r| r.pt).collect(),
            rtpmaps,
            connection: None,
            rtcp_port: Some(rtp_port + 1),
            direction,
            ptime: Some(20),
        }],
    }
}

fn audio_stream(sdp: &Sdp) -> Result<(usize, &Media), MediaError> {
    sdp.media
        .iter()
        .enumerate()
        .find(|(_, m)| m.kind == "audio" && m.port != 0 && m.proto.starts_with("RTP/AVP"))
        .ok_or_else(|| bad("no usable audio stream (RTP/AVP) in the offer"))
}

fn remote_addrs(sdp: &Sdp, m: &Media) -> Result<(SocketAddr, SocketAddr), MediaError> {
    let ip = m
        .connection
        .or(sdp.connection)
        .ok_or_else(|| bad("no connection address for the audio stream"))?;
    let rtcp = m.rtcp_port.unwrap_or(m.port.wrapping_add(1));
    Ok((SocketAddr::new(ip, m.port), SocketAddr::new(ip, rtcp)))
}

fn dtmf_pt(m: &Media, rate: u32) -> Option<u8> {
    m.formats.iter().copied().find(|&pt| {
        m.format(pt)
            .is_some_and(|(e, r)| e.eq_ignore_ascii_case("telephone-event") && r == rate)
    })
}

/// Picks the first format of `m` (in its order, RFC 3264 section 6.1) that
/// we support.
fn first_common(m: &Media, ours: &[CodecKind]) -> Option<(CodecKind, u8)> {
    m.formats.iter().find_map(|&pt| {
        let (enc, rate) = m.format(pt)?;
        let kind = CodecKind::from_name(&enc)?;
        (ours.contains(&kind) && rate == kind.clock_rate()).then_some((kind, pt))
    })
}

/// Answers an offer: one codec (the offerer's first that we support), plus
/// telephone-event when offered at that codec's rate. Other streams are
/// rejected with port 0 as RFC 3264 section 6 requires.
pub fn answer(offer: &Sdp, session_id: u64, addr: IpAddr, rtp_port: u16, ours: &[CodecKind]) -> Result<(Sdp, Negotiated), MediaError> {
    let (index, m) = audio_stream(offer)?;
    let (codec, pt) = first_common(m, ours).ok_or(MediaError::NoCommonCodec)?;
    let (remote_rtp, remote_rtcp) = remote_addrs(offer, m)?;
    let dtmf = dtmf_pt(m, codec.clock_rate());
    let mut rtpmaps = vec![RtpMap {
        pt,
        encoding: codec.name().into(),
        rate: codec.clock_rate(),
    }];
    if let Some(d) = dtmf {
        rtpmaps.push(RtpMap {
            pt: d,
            encoding: "telephone-event".into(),
            rate: codec.clock_rate(),
        });
    }
    let direction = m.direction.answer();
    let mut sdp = audio(session_id, addr, rtp_port, rtpmaps, direction);
    // Keep the offer's m-line positions: reject the others with port 0.
    let ours_m = sdp.media.remove(0);
    sdp.media = offer
        .media
        .iter()
        .enumerate()
        .map(|(i, om)| {
            if i == index {
                ours_m.clone()
            } else {
                Media {
                    port: 0,
                    rtpmaps: Vec::new(),
                    rtcp_port: None,
                    ptime: None,
                    ..om.clone()
                }
            }
        })
        .collect();
    let neg = Negotiated {
        codec,
        pt,
        dtmf_pt: dtmf,
        remote_rtp,
        remote_rtcp,
        ptime: m.ptime.unwrap_or(20),
        direction,
    };
    Ok((sdp, neg))
}

/// Reads the answer to our offer: the codec must be one we offered.
pub fn accept_answer(our_offer: &Sdp, answer: &Sdp) -> Result<Negotiated, MediaError> {
    let (_, m) = audio_stream(answer)?;
    let offered = &our_offer.media[0];
    let ours: Vec<CodecKind> = offered.rtpmaps.iter().filter_map(|r| CodecKind::from_name(&r.encoding)).collect();
    let (codec, pt) = first_common(m, &ours).ok_or(MediaError::NoCommonCodec)?;
    let (remote_rtp, remote_rtcp) = remote_addrs(answer, m)?;
    Ok(Negotiated {
        codec,
        pt,
        dtmf_pt: dtmf_pt(m, codec.clock_rate()),
        remote_rtp,
        remote_rtcp,
        ptime: m.ptime.unwrap_or(20),
        direction: m.direction.answer(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BARESIP_OFFER: &str = "v=0\r\no=- 1199149738 1407587339 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        m=audio 10200 RTP/AVP 96 0 8 101\r\na=rtpmap:96 opus/48000/2\r\na=fmtp:96 stereo=1;sprop-stereo=1\r\n\
        a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=rtcp:10201\r\na=sendrecv\r\n";

    #[test]
    fn answers_with_the_offerers_first_common_codec() {
        let offer = Sdp::parse(BARESIP_OFFER).unwrap();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (ans, neg) = answer(&offer, 5, ip, 4000, &[CodecKind::Pcmu, CodecKind::Opus]).unwrap();
        assert_eq!((neg.codec, neg.pt), (CodecKind::Opus, 96));
        assert_eq!(neg.dtmf_pt, None, "telephone-event was offered at 8 kHz only");
        assert_eq!(neg.remote_rtp, "127.0.0.1:10200".parse().unwrap());
        let (_, neg) = answer(&offer, 5, ip, 4000, &[CodecKind::Pcma]).unwrap();
        assert_eq!((neg.codec, neg.pt, neg.dtmf_pt), (CodecKind::Pcma, 8, Some(101)));
        // The answer parses back and the offerer reads the same codec.
        let back = Sdp::parse(&ans.to_text(ip)).unwrap();
        assert_eq!(accept_answer(&offer, &back).unwrap().codec, CodecKind::Opus);
    }

    #[test]
    fn static_payload_types_need_no_rtpmap() {
        let o = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8\r\n";
        let (_, neg) = answer(
            &Sdp::parse(o).unwrap(),
            1,
            "127.0.0.1".parse().unwrap(),
            4000,
            &[CodecKind::Pcmu, CodecKind::Pcma],
        )
        .unwrap();
        assert_eq!(neg.codec, CodecKind::Pcma);
        assert_eq!(neg.remote_rtcp, "10.0.0.1:6001".parse().unwrap());
    }

    #[test]
    fn no_common_codec_and_malformed_offers() {
        let g722 = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 9\r\n";
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            answer(&Sdp::parse(g722).unwrap(), 1, ip, 4000, &[CodecKind::Pcmu]).unwrap_err(),
            MediaError::NoCommonCodec
        );
        for bad in [
            "",
            "hello",
            "v=1\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\n",
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n",
            "v=0\r\no=- x 1 IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\n",
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 nowhere\r\nm=audio 1 RTP/AVP 0\r\n",
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 99999 RTP/AVP 0\r\n",
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 300\r\n",
        ] {
            assert!(Sdp::parse(bad).is_err(), "{bad:?}");
        }
        // Parses, but has no address for the stream.
        let no_c = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";
        assert!(answer(&Sdp::parse(no_c).unwrap(), 1, ip, 4000, &[CodecKind::Pcmu]).is_err());
    }

    #[test]
    fn unreadable_attributes_for_unused_payload_types_are_ignored() {
        // RFC 4475 3.1.1.3's offer: `a=rtpmap:31 LPC` has no clock rate.
        let o = "v=0\r\no=mhandley 29739 7272939 IN IP4 127.0.2.1\r\ns=-\r\nc=IN IP4 127.0.2.1\r\nt=0 0\r\n\
                 m=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\na=rtcp:x\r\n";
        let sdp = Sdp::parse(o).unwrap();
        assert!(sdp.media[1].rtpmaps.is_empty() && sdp.media[1].rtcp_port.is_none());
        let (ans, neg) = answer(&sdp, 1, "127.0.0.1".parse().unwrap(), 4000, &[CodecKind::Pcmu]).unwrap();
        assert_eq!((neg.codec, neg.pt), (CodecKind::Pcmu, 0));
        assert_eq!(neg.remote_rtp, "127.0.2.1:49217".parse().unwrap());
        assert_eq!(ans.media[1].port, 0, "the video stream is refused in place");
    }

    #[test]
    fn second_streams_are_rejected_in_place() {
        let o =
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=video 7000 RTP/AVP 96\r\nm=audio 6000 RTP/AVP 0\r\n";
        let (ans, _) = answer(&Sdp::parse(o).unwrap(), 1, "127.0.0.1".parse().unwrap(), 4000, &[CodecKind::Pcmu]).unwrap();
        assert_eq!(ans.media.len(), 2);
        assert_eq!((ans.media[0].kind.as_str(), ans.media[0].port), ("video", 0));
        assert_eq!(ans.media[1].port, 4000);
    }
}
