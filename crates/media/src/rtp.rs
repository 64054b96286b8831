//! RTP (RFC 3550 section 5) and RTCP (section 6) packets: parse with strict
//! checks, build the few kinds a phone sends (audio, SR, BYE), and the
//! RFC 4733 telephone-event payload.

use crate::MediaError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// Whether a datagram on a shared port is RTCP (RFC 5761 section 4:
/// payload types 64–95 are RTCP's packet types 192–223).
pub fn is_rtcp(data: &[u8]) -> bool {
    data.len() >= 2 && (192..=223).contains(&data[1])
}

/// Parses an RTP packet and returns its header and payload.
pub fn parse(data: &[u8]) -> Result<(RtpHeader, &[u8]), MediaError> {
    if data.len() < 12 {
        return Err(MediaError::Rtp("shorter than the 12-byte header"));
    }
    if data[0] >> 6 != 2 {
        return Err(MediaError::Rtp("version is not 2"));
    }
    let padding = data[0] & 0x20 != 0;
    let extension = data[0] & 0x10 != 0;
    let csrc = (data[0] & 0x0F) as usize;
    let mut at = 12 + 4 * csrc;
    if data.len() < at {
        return Err(MediaError::Rtp("CSRC list runs past the end"));
    }
    if extension {
        if data.len() < at + 4 {
            return Err(MediaError::Rtp("extension header runs past the end"));
        }
        let words = u16::from_be_bytes([data[at + 2], data[at + 3]]) as usize;
        at += 4 + 4 * words;
        if data.len() < at {
            return Err(MediaError::Rtp("extension runs past the end"));
        }
    }
    let mut end = data.len();
    if padding {
        let pad = data[end - 1] as usize;
        if pad == 0 || at + pad > end {
            return Err(MediaError::Rtp("bad padding length"));
        }
        end -= pad;
    }
    let header = RtpHeader {
        marker: data[1] & 0x80 != 0,
        payload_type: data[1] & 0x7F,
        seq: u16::from_be_bytes([data[2], data[3]]),
        timestamp: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
        ssrc: u32::from_be_bytes([data[8], data[9], data[10], data[11]]),
    };
    Ok((header, &data[at..end]))
}

pub fn build(h: &RtpHeader, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + payload.len());
    out.push(0x80);
    out.push((h.marker as u8) << 7 | (h.payload_type & 0x7F));
    out.extend_from_slice(&h.seq.to_be_bytes());
    out.extend_from_slice(&h.timestamp.to_be_bytes());
    out.extend_from_slice(&h.ssrc.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// One packet of a compound RTCP datagram, as far as a phone cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rtcp {
    SenderReport { ssrc: u32, packets: u32, octets: u32 },
    ReceiverReport { ssrc: u32 },
    Bye { ssrc: u32 },
    Other { packet_type: u8 },
}

/// Parses a compound RTCP datagram (RFC 3550 section 6.1): every packet
/// must be version 2 and the lengths must add up exactly.
pub fn parse_rtcp(data: &[u8]) -> Result<Vec<Rtcp>, MediaError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let rest = &data[at..];
        if rest.len() < 4 {
            return Err(MediaError::Rtcp("truncated header"));
        }
        if rest[0] >> 6 != 2 {
            return Err(MediaError::Rtcp("version is not 2"));
        }
        let len = 4 * (u16::from_be_bytes([rest[2], rest[3]]) as usize + 1);
        if len > rest.len() {
            return Err(MediaError::Rtcp("length runs past the end"));
        }
        let p = &rest[..len];
        let ssrc = |p: &[u8]| -> Result<u32, MediaError> {
            p.get(4..8)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or(MediaError::Rtcp("packet too short for its SSRC"))
        };
        out.push(match p[1] {
            200 => {
                if p.len() < 28 {
                    return Err(MediaError::Rtcp("sender report too short"));
                }
                Rtcp::SenderReport {
                    ssrc: ssrc(p)?,
                    packets: u32::from_be_bytes([p[20], p[21], p[22], p[23]]),
                    octets: u32::from_be_bytes([p[24], p[25], p[26], p[27]]),
                }
            }
            201 => Rtcp::ReceiverReport { ssrc: ssrc(p)? },
            203 => Rtcp::Bye { ssrc: ssrc(p)? },
            t @ 192..=223 => Rtcp::Other { packet_type: t },
            _ => return Err(MediaError::Rtcp("not an RTCP packet type")),
        });
        at += len;
    }
    if out.is_empty() {
        return Err(MediaError::Rtcp("empty datagram"));
    }
    Ok(out)
}

/// A sender report with no report blocks, followed by an SDES CNAME, the
/// minimal compound packet RFC 3550 section 6.1 allows.
pub fn build_sender_report(ssrc: u32, ntp: u64, rtp_ts: u32, packets: u32, octets: u32, cname: &str) -> Vec<u8> {
    let mut out = vec![0x80, 200, 0, 6];
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(&ntp.to_be_bytes());
    out.extend_from_slice(&rtp_ts.to_be_bytes());
    out.extend_from_slice(&packets.to_be_bytes());
    out.extend_from_slice(&octets.to_be_bytes());
    out.extend(sdes(ssrc, cname));
    out
}

pub fn build_bye(ssrc: u32, cname: &str) -> Vec<u8> {
    let mut out = vec![0x80, 201, 0, 1];
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend(sdes(ssrc, cname));
    out.extend_from_slice(&[0x81, 203, 0, 1]);
    out.extend_from_slice(&ssrc.to_be_bytes());
    out
}

fn sdes(ssrc: u32, cname: &str) -> Vec<u8> {
    let cname = &cname.as_bytes()[..cname.len().min(255)];
    let mut chunk = ssrc.to_be_bytes().to_vec();
    chunk.push(1);
    chunk.push(cname.len() as u8);
    chunk.extend_from_slice(cname);
    // The item list ends with a zero byte and pads to a 32-bit boundary.
    chunk.push(0);
    while !chunk.len().is_multiple_of(4) {
        chunk.push(0);
    }
    let mut out = vec![0x81, 202];
    out.extend_from_slice(&((chunk.len() / 4) as u16).to_be_bytes());
    out.extend(chunk);
    out
}

/// An RFC 4733 telephone event (a DTMF key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    pub end: bool,
    pub volume: u8,
    pub duration: u16,
}

impl TelephoneEvent {
    pub fn parse(p: &[u8]) -> Result<TelephoneEvent, MediaError> {
        if p.len() < 4 {
            return Err(MediaError::Rtp("telephone-event payload shorter than 4 bytes"));
        }
        Ok(TelephoneEvent {
            event: p[0],
            end: p[1] & 0x80 != 0,
            volume: p[1] & 0x3F,
            duration: u16::from_be_bytes([p[2], p[3]]),
        })
    }

    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [self.event, (self.end as u8) << 7 | (self.volume & 0x3F), d[0], d[1]]
    }

    /// The key an event number stands for (RFC 4733 section 3.2).
    pub fn key(self) -> Option<char> {
        "0123456789*#ABCD".chars().nth(self.event as usize)
    }

    pub fn event_for(key: char) -> Option<u8> {
        "0123456789*#ABCD".find(key.to_ascii_uppercase()).map(|i| i as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = RtpHeader {
            marker: true,
            payload_type: 111,
            seq: 65535,
            timestamp: 0xdead_beef,
            ssrc: 42,
        };
        let b = build(&h, b"abc");
        let (h2, p) = parse(&b).unwrap();
        assert_eq!(h2, h);
        assert_eq!(p, b"abc");
        assert!(!is_rtcp(&b));
    }

    #[test]
    fn csrc_extension_and_padding_are_skipped() {
        let mut b = vec![0xB1, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        b.extend_from_slice(&[9, 9, 9, 9]); // one CSRC
        b.extend_from_slice(&[0xBE, 0xDE, 0, 1, 7, 7, 7, 7]); // one-word extension
        b.extend_from_slice(b"xy");
        b.extend_from_slice(&[0, 2]); // two bytes of padding
        let (_, p) = parse(&b).unwrap();
        assert_eq!(p, b"xy");
    }

    #[test]
    fn malformed_packets_are_refused() {
        assert!(parse(&[0x80; 11]).is_err());
        assert!(parse(&[0x40; 12]).is_err(), "version 1");
        let mut b = build(
            &RtpHeader {
                marker: false,
                payload_type: 0,
                seq: 0,
                timestamp: 0,
                ssrc: 0,
            },
            b"",
        );
        b[0] |= 0x0F;
        assert!(parse(&b).is_err(), "15 CSRCs that are not there");
        let mut b = build(
            &RtpHeader {
                marker: false,
                payload_type: 0,
                seq: 0,
                timestamp: 0,
                ssrc: 0,
            },
            b"a",
        );
        b[0] |= 0x20;
        *b.last_mut().unwrap() = 200;
        assert!(parse(&b).is_err(), "padding longer than the packet");
    }

    #[test]
    fn rtcp_compound_round_trip_and_errors() {
        let sr = build_sender_report(7, 1 << 32, 160, 10, 1600, "phone@example");
        let parsed = parse_rtcp(&sr).unwrap();
        assert_eq!(
            parsed[0],
            Rtcp::SenderReport {
                ssrc: 7,
                packets: 10,
                octets: 1600
            }
        );
        assert!(is_rtcp(&sr));
        let bye = parse_rtcp(&build_bye(9, "x")).unwrap();
        assert_eq!(bye.last(), Some(&Rtcp::Bye { ssrc: 9 }));
        assert!(parse_rtcp(&sr[..sr.len() - 1]).is_err());
        assert!(parse_rtcp(&[]).is_err());
        assert!(parse_rtcp(&[0x80, 100, 0, 0]).is_err());
    }

    #[test]
    fn telephone_events() {
        let e = TelephoneEvent {
            event: 11,
            end: true,
            volume: 10,
            duration: 800,
        };
        assert_eq!(TelephoneEvent::parse(&e.to_bytes()).unwrap(), e);
        assert_eq!(e.key(), Some('#'));
        assert_eq!(TelephoneEvent::event_for('5'), Some(5));
        assert!(TelephoneEvent::parse(&[1, 2]).is_err());
    }
}
