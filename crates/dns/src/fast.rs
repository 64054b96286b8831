//! The hot path: one NAPTR question for a number of this zone, answered
//! straight from the query's bytes, with no message parsing or encoding
//! allocations. Anything unusual (other types, opcodes, counts, EDNS
//! versions, compression in the question, trailing bytes) returns `None`
//! and goes through the general path in `lib.rs`, which gives the same
//! answers for the queries handled here (a property test checks it).

use peerdial_number::{Number, INDIVIDUAL_DIGITS};

use crate::{Zone, MAX_UDP_PAYLOAD};

const TYPE_NAPTR: u16 = 35;
const TYPE_OPT: u16 = 41;
const TYPE_SOA: u16 = 6;
const CLASS_IN: u16 = 1;

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

/// `limit_udp`: `None` for TCP, else the extra cap on UDP answers.
pub(crate) fn answer(zone: &Zone, q: &[u8], tcp: bool, udp_cap: Option<usize>) -> Option<Vec<u8>> {
    if q.len() < 12 || q[2] & 0xf8 != 0 {
        return None; // a response, or not a standard query
    }
    if u16_at(q, 4)? != 1 || u16_at(q, 6)? != 0 || u16_at(q, 8)? != 0 {
        return None;
    }
    let arcount = u16_at(q, 10)?;
    // Eight one-digit labels (least significant first), then the origin.
    let mut individual = 0u32;
    let mut pos = 12;
    let mut scale = 1u32;
    for _ in 0..INDIVIDUAL_DIGITS {
        if q.get(pos) != Some(&1) {
            return None;
        }
        let d = *q.get(pos + 1)?;
        if !d.is_ascii_digit() {
            return None;
        }
        individual += (d - b'0') as u32 * scale;
        scale *= 10;
        pos += 2;
    }
    let origin_at = pos;
    let origin = &zone.origin_wire;
    let tail = q.get(pos..pos + origin.len())?;
    if !tail.eq_ignore_ascii_case(origin) {
        return None;
    }
    pos += origin.len();
    if u16_at(q, pos)? != TYPE_NAPTR || u16_at(q, pos + 2)? != CLASS_IN {
        return None;
    }
    pos += 4;
    let question_end = pos;
    let edns_payload = match arcount {
        0 if pos == q.len() => None,
        1 => {
            // OPT: root name, type 41, class = payload, ttl = rcode/version/flags.
            if q.get(pos) != Some(&0) || u16_at(q, pos + 1)? != TYPE_OPT {
                return None;
            }
            let payload = u16_at(q, pos + 3)?;
            // The DO bit (RFC 3225), the top bit of the flags.
            let dnssec_ok = *q.get(pos + 7)? & 0x80;
            if *q.get(pos + 6)? != 0 {
                return None; // EDNS version other than 0: BADVERS on the general path
            }
            let rdlen = u16_at(q, pos + 9)? as usize;
            if pos + 11 + rdlen != q.len() {
                return None;
            }
            Some((payload, dnssec_ok))
        }
        _ => return None,
    };
    let limit = if tcp {
        u16::MAX as usize
    } else {
        edns_payload
            .map_or(512, |(p, _)| p.clamp(512, MAX_UDP_PAYLOAD) as usize)
            .min(udp_cap.unwrap_or(usize::MAX))
    };

    let number = Number::new(zone.cfg.area, individual);
    let entry = zone.entries.get(&number.individual());
    let count = entry.map_or(0, |e| e.contact.is_some() as u8 + e.mailbox as u8);
    let mut out = Vec::with_capacity(question_end + 256);
    out.extend_from_slice(&q[..2]);
    out.push(0x84 | (q[2] & 0x01)); // QR, AA, RD copied
    out.push(if entry.is_some() { 0 } else { 3 }); // NOERROR or NXDOMAIN
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&[0, count]);
    out.extend_from_slice(&[0, entry.is_none() as u8]);
    out.extend_from_slice(&[0, edns_payload.is_some() as u8]);
    out.extend_from_slice(&q[12..question_end]);
    let origin_ptr = [0xc0 | (origin_at >> 8) as u8, origin_at as u8];
    match entry {
        Some(e) => {
            if let Some(uri) = &e.contact {
                naptr_rr(&mut out, zone.cfg.ttl, crate::CONTACT_ORDER, &[uri.as_bytes()]);
            }
            if e.mailbox {
                // sip:<13 digits>@<region SIP address>, with no allocation.
                let mut digits = [0u8; 13];
                let mut v = number.as_u64();
                for d in digits.iter_mut().rev() {
                    *d = b'0' + (v % 10) as u8;
                    v /= 10;
                }
                let parts: [&[u8]; 3] = [b"sip:", &digits, zone.mailbox_host.as_bytes()];
                naptr_rr(&mut out, zone.cfg.ttl, crate::MAILBOX_ORDER, &parts);
            }
        }
        None => {
            // The SOA, for negative caching (RFC 2308).
            out.extend_from_slice(&origin_ptr);
            out.extend_from_slice(&TYPE_SOA.to_be_bytes());
            out.extend_from_slice(&CLASS_IN.to_be_bytes());
            out.extend_from_slice(&zone.cfg.negative_ttl.to_be_bytes());
            let rdlen = (3 + 2) + (11 + 2) + 20;
            out.extend_from_slice(&(rdlen as u16).to_be_bytes());
            out.extend_from_slice(&[2, b'n', b's']);
            out.extend_from_slice(&origin_ptr);
            out.push(10);
            out.extend_from_slice(b"hostmaster");
            out.extend_from_slice(&origin_ptr);
            for v in [zone.serial, 3600, 600, 604_800, zone.cfg.negative_ttl] {
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
    }
    if let Some((_, dnssec_ok)) = edns_payload {
        out.extend_from_slice(&[0, 0, TYPE_OPT as u8]);
        out.extend_from_slice(&MAX_UDP_PAYLOAD.to_be_bytes());
        // Extended rcode, version, flags (DO copied, nothing else), rdlen.
        out.extend_from_slice(&[0, 0, dnssec_ok, 0, 0, 0]);
    }
    if out.len() > limit {
        return None; // let the general path truncate
    }
    Some(out)
}

/// One NAPTR answer owned by the question's name, its URI given in parts.
fn naptr_rr(out: &mut Vec<u8>, ttl: u32, order: u16, uri: &[&[u8]]) {
    let uri_len: usize = uri.iter().map(|p| p.len()).sum();
    out.extend_from_slice(&[0xc0, 12]);
    out.extend_from_slice(&TYPE_NAPTR.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    let regexp_len = 7 + uri_len;
    let rdlen = 2 + 2 + 2 + 8 + 1 + regexp_len + 1;
    out.extend_from_slice(&(rdlen as u16).to_be_bytes());
    out.extend_from_slice(&order.to_be_bytes());
    out.extend_from_slice(&[0, 100, 1, b'u', 7]);
    out.extend_from_slice(b"E2U+sip");
    out.push(regexp_len as u8);
    out.extend_from_slice(b"!^.*$!");
    for p in uri {
        out.extend_from_slice(p);
    }
    out.push(b'!');
    out.push(0);
}
