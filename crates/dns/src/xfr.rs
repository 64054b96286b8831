//! Zone transfers from a region: AXFR (RFC 5936) of the whole zone and
//! IXFR (RFC 1995) from the change journal, with TSIG (RFC 8945) on
//! requests and every response message; and what a signed ordinary query
//! needs. Falls back to a full transfer when the journal no longer reaches
//! the secondary's serial.

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{NS, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use peerdial_number::Number;

use crate::tsig::{self, TsigFailure, TsigKey, Verified};
use crate::{formerr, host_record, naptr_ordered, Transport, Zone};

/// Changes kept for IXFR; older secondaries get a full transfer.
pub const JOURNAL_LIMIT: usize = 100_000;
/// Records per transfer message (NAPTRs are ~80 bytes: well under 64 KiB).
const RECORDS_PER_MESSAGE: usize = 400;

/// One published change: serial `from` → `from + 1`.
#[derive(Debug, Clone)]
pub struct Change {
    pub from: u32,
    pub individual: u32,
    /// Which record of the number's set: the contact or the mailbox.
    pub order: u16,
    pub old: Option<Box<str>>,
    pub new: Option<Box<str>>,
}

/// Who may transfer the zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferPolicy {
    /// Signed requests only (when keys are configured).
    SignedOnly,
    /// This source is allowed unsigned (a listed secondary).
    Allowed,
    Refused,
}

impl Zone {
    /// Answers a query that may be TSIG-signed and may ask for a transfer.
    /// Returns the messages to send (several for a transfer over TCP).
    pub fn respond(&self, query: &[u8], transport: Transport, keys: &[TsigKey], policy: TransferPolicy, now: u64) -> Vec<Vec<u8>> {
        if query.len() < 12 || query[2] & 0x80 != 0 {
            return Vec::new();
        }
        let (plain, verified) = match tsig::find(query) {
            Err(_) => return vec![formerr(query)],
            Ok(None) => (None, None),
            Ok(Some(t)) => match tsig::verify(query, &t, keys, now) {
                Ok(v) => (Some(tsig::unsigned(query, &t)), Some(v)),
                Err(f @ TsigFailure::Malformed) => return tsig::refusal(query, &f, now).into_iter().collect(),
                Err(f) => {
                    tracing::warn!(key = ?t_key(&f), "TSIG check failed: NOTAUTH");
                    return tsig::refusal(query, &f, now).into_iter().collect();
                }
            },
        };
        let q = plain.as_deref().unwrap_or(query);
        let messages = match transfer_type(q) {
            Some(t) => {
                let allowed = match policy {
                    TransferPolicy::Allowed => true,
                    TransferPolicy::SignedOnly => verified.is_some(),
                    TransferPolicy::Refused => false,
                };
                if !allowed {
                    vec![rcode_only(q, ResponseCode::Refused)]
                } else {
                    self.transfer(q, t, transport)
                }
            }
            None => self.answer(q, transport).into_iter().collect(),
        };
        match verified {
            None => messages,
            Some(v) => sign_all(messages, &v, now),
        }
    }

    fn soa_with(&self, serial: u32) -> Record {
        crate::soa_record(&self.origin, &self.ns_name, serial, self.cfg.negative_ttl)
    }

    fn naptr_record(&self, individual: u32, order: u16, uri: &str) -> Record {
        let n = Number::new(self.cfg.area, individual);
        let name = Name::from_ascii(n.enum_name(&self.cfg.root)).expect("numbers make valid names");
        Record::from_rdata(name, self.cfg.ttl, RData::NAPTR(naptr_ordered(order, uri)))
    }

    /// Every record of the zone but the SOA.
    fn apex_records(&self) -> Vec<Record> {
        let srv = |label: &str, port: u16, target: &Name| {
            let name = Name::from_ascii(format!("{label}.{}", self.origin_str)).expect("valid");
            Record::from_rdata(name, 3600, RData::SRV(SRV::new(0, 0, port, target.clone())))
        };
        let mut records = vec![
            Record::from_rdata(self.origin.clone(), 3600, RData::NS(NS(self.ns_name.clone()))),
            host_record(self.ns_name.clone(), self.cfg.dns.ip(), 3600),
            host_record(self.sip_name.clone(), self.cfg.sip.ip(), 3600),
            host_record(self.api_name.clone(), self.cfg.http.ip(), 3600),
            srv("_sip._udp", self.cfg.sip.port(), &self.sip_name),
            srv("_sip._tcp", self.cfg.sip.port(), &self.sip_name),
            srv("_peerdial._tcp", self.cfg.http.port(), &self.api_name),
        ];
        records.extend(self.apex_txt_records());
        records
    }

    fn transfer(&self, q: &[u8], t: RecordType, transport: Transport) -> Vec<Vec<u8>> {
        let Ok(req) = Message::from_vec(q) else { return vec![formerr(q)] };
        let Some(question) = req.queries().first().cloned() else {
            return vec![formerr(q)];
        };
        if req.queries().len() != 1 || question.name().to_ascii().to_ascii_lowercase() != self.origin_str {
            return vec![rcode_only(
                q,
                if req.queries().len() == 1 {
                    ResponseCode::NotAuth
                } else {
                    ResponseCode::FormErr
                },
            )];
        }
        let current = self.soa_with(self.serial);
        let mut records: Vec<Record> = Vec::new();
        if t == RecordType::IXFR {
            // RFC 1995 3: the client's SOA is in the authority section.
            let Some(client) = req.name_servers().iter().find_map(|r| match r.data() {
                RData::SOA(s) => Some(s.serial()),
                _ => None,
            }) else {
                return vec![rcode_only(q, ResponseCode::FormErr)];
            };
            if transport == Transport::Udp || client == self.serial {
                // Up to date, or "come back over TCP": the SOA alone.
                return self.pack(&req, vec![current]);
            }
            if let Some(start) = self.journal.iter().position(|c| c.from == client) {
                records.push(current.clone());
                for c in self.journal.range(start..) {
                    records.push(self.soa_with(c.from));
                    if let Some(old) = &c.old {
                        records.push(self.naptr_record(c.individual, c.order, old));
                    }
                    records.push(self.soa_with(c.from.wrapping_add(1)));
                    if let Some(new) = &c.new {
                        records.push(self.naptr_record(c.individual, c.order, new));
                    }
                }
                records.push(current);
                return self.pack(&req, records);
            }
            // The journal does not reach back: send the whole zone.
        } else if transport == Transport::Udp {
            return vec![rcode_only(q, ResponseCode::NotImp)];
        }
        // A full transfer: the apex first, the numbers in hand-encoded
        // messages (the bulk of a large zone), the closing SOA last.
        records.push(current.clone());
        records.extend(self.apex_records());
        let mut out = self.pack(&req, records);
        out.extend(self.bulk_naptrs(req.id()));
        let mut last = self.pack(&req, vec![current]);
        if let Some(m) = last.first_mut() {
            // Only the first message carries the question.
            let mut msg = Message::from_vec(m).expect("just encoded");
            msg.take_queries();
            *m = msg.to_vec().expect("re-encodes");
        }
        out.extend(last);
        out
    }

    /// Every number's NAPTR, in messages of up to ~60 KB, encoded by hand:
    /// each message spells the origin once and points back at it.
    fn bulk_naptrs(&self, id: u16) -> Vec<Vec<u8>> {
        const LIMIT: usize = 60_000;
        let origin_wire: Vec<u8> = self
            .origin_str
            .trim_end_matches('.')
            .split('.')
            .flat_map(|l| std::iter::once(l.len() as u8).chain(l.bytes()))
            .chain(std::iter::once(0))
            .collect();
        let mut out = Vec::new();
        let mut msg: Vec<u8> = Vec::new();
        let mut count: u16 = 0;
        let mut origin_at = 0usize;
        let flush = |msg: &mut Vec<u8>, count: &mut u16, out: &mut Vec<Vec<u8>>| {
            if *count > 0 {
                msg[6..8].copy_from_slice(&count.to_be_bytes());
                out.push(std::mem::take(msg));
            }
            *count = 0;
        };
        for (individual, uri, order) in self
            .entries
            .iter()
            .flat_map(|(i, e)| self.entry_records(*i, e).into_iter().map(move |(order, uri)| (i, uri, order)))
        {
            if msg.len() + 64 + uri.len() + origin_wire.len() > LIMIT {
                flush(&mut msg, &mut count, &mut out);
            }
            if msg.is_empty() {
                msg.extend_from_slice(&id.to_be_bytes());
                msg.extend_from_slice(&[0x84, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            }
            let digits = format!("{individual:08}");
            for d in digits.bytes().rev() {
                msg.extend_from_slice(&[1, d]);
            }
            if count == 0 {
                origin_at = msg.len();
                msg.extend_from_slice(&origin_wire);
            } else {
                msg.extend_from_slice(&[0xc0 | (origin_at >> 8) as u8, origin_at as u8]);
            }
            msg.extend_from_slice(&35u16.to_be_bytes()); // NAPTR
            msg.extend_from_slice(&1u16.to_be_bytes()); // IN
            msg.extend_from_slice(&self.cfg.ttl.to_be_bytes());
            let regexp_len = 7 + uri.len();
            msg.extend_from_slice(&((2 + 2 + 2 + 8 + 1 + regexp_len + 1) as u16).to_be_bytes());
            msg.extend_from_slice(&order.to_be_bytes());
            msg.extend_from_slice(&[0, 100, 1, b'u', 7]);
            msg.extend_from_slice(b"E2U+sip");
            msg.push(regexp_len as u8);
            msg.extend_from_slice(b"!^.*$!");
            msg.extend_from_slice(uri.as_bytes());
            msg.push(b'!');
            msg.push(0);
            count += 1;
        }
        flush(&mut msg, &mut count, &mut out);
        out
    }

    /// Splits transfer records into messages; the question goes in the first.
    fn pack(&self, req: &Message, records: Vec<Record>) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for (i, chunk) in records.chunks(RECORDS_PER_MESSAGE).enumerate() {
            let mut m = Message::new();
            m.set_id(req.id())
                .set_message_type(MessageType::Response)
                .set_op_code(OpCode::Query)
                .set_authoritative(true);
            if i == 0 {
                m.add_queries(req.queries().iter().cloned());
            }
            m.add_answers(chunk.iter().cloned());
            match m.to_vec() {
                Ok(b) => out.push(b),
                Err(e) => {
                    tracing::error!("cannot encode a transfer message: {e}");
                    return vec![rcode_only(&req.to_vec().unwrap_or_default(), ResponseCode::ServFail)];
                }
            }
        }
        out
    }
}

fn t_key(f: &TsigFailure) -> Option<&str> {
    match f {
        TsigFailure::BadKey(t) | TsigFailure::BadSig(t) => Some(&t.key_name),
        TsigFailure::BadTime(tk) => Some(&tk.0.key_name),
        TsigFailure::Malformed => None,
    }
}

/// AXFR or IXFR, read from the raw question (no full parse needed).
fn transfer_type(q: &[u8]) -> Option<RecordType> {
    if u16::from_be_bytes([q[4], q[5]]) != 1 {
        return None;
    }
    let mut p = 12;
    loop {
        let len = *q.get(p)? as usize;
        if len == 0 || len & 0xC0 != 0 {
            break;
        }
        p += 1 + len;
    }
    let t = u16::from_be_bytes([*q.get(p + 1)?, *q.get(p + 2)?]);
    match t {
        251 => Some(RecordType::IXFR),
        252 => Some(RecordType::AXFR),
        _ => None,
    }
}

/// A response with the request's header and question and just an rcode.
fn rcode_only(q: &[u8], rcode: ResponseCode) -> Vec<u8> {
    match Message::from_vec(q) {
        Ok(req) => {
            let mut m = Message::new();
            m.set_id(req.id())
                .set_message_type(MessageType::Response)
                .set_op_code(req.op_code())
                .set_response_code(rcode);
            m.add_queries(req.queries().iter().cloned());
            m.to_vec().unwrap_or_else(|_| formerr(q))
        }
        Err(_) => formerr(q),
    }
}

fn sign_all(messages: Vec<Vec<u8>>, v: &Verified, now: u64) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(messages.len());
    let mut prior: Option<Vec<u8>> = None;
    for m in messages {
        let (signed, mac) = match &prior {
            None => tsig::sign_response(m, v, now),
            Some(p) => tsig::sign_next(m, &v.key, p, now),
        };
        prior = Some(mac);
        out.push(signed);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ZoneConfig;
    use hickory_proto::op::Query;
    use hickory_proto::rr::rdata::SOA;
    use peerdial_number::Area;

    fn zone() -> Zone {
        let a: std::net::SocketAddr = "127.0.0.1:5300".parse().unwrap();
        Zone::new(ZoneConfig {
            root: "peerdial.internal.".into(),
            area: Area::parse("886-02").unwrap(),
            ttl: 60,
            negative_ttl: 30,
            dns: a,
            sip: a,
            http: a,
            serial: 100,
        })
        .unwrap()
    }

    fn n(i: u32) -> Number {
        Number::new(Area::parse("886-02").unwrap(), i)
    }

    fn xfr(t: RecordType, serial: Option<u32>) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(5)
            .add_query(Query::query(Name::from_ascii("2.0.6.8.8.peerdial.internal.").unwrap(), t));
        if let Some(s) = serial {
            let soa = SOA::new(Name::root(), Name::root(), s, 0, 0, 0, 0);
            m.add_name_server(Record::from_rdata(
                Name::from_ascii("2.0.6.8.8.peerdial.internal.").unwrap(),
                0,
                RData::SOA(soa),
            ));
        }
        m.to_vec().unwrap()
    }

    fn records(msgs: &[Vec<u8>]) -> Vec<Record> {
        msgs.iter().flat_map(|m| Message::from_vec(m).unwrap().answers().to_vec()).collect()
    }

    fn serial_of(r: &Record) -> Option<u32> {
        match r.data() {
            RData::SOA(s) => Some(s.serial()),
            _ => None,
        }
    }

    #[test]
    fn axfr_is_the_whole_zone_between_two_soas_in_several_messages() {
        let mut z = zone();
        for i in 0..1000 {
            z.set(n(i), Some(&format!("sip:x{i}@127.0.0.1:5060"))).unwrap();
        }
        let msgs = z.respond(&xfr(RecordType::AXFR, None), Transport::Tcp, &[], TransferPolicy::Allowed, 0);
        assert!(msgs.len() >= 3, "{} messages", msgs.len());
        let rs = records(&msgs);
        assert_eq!(rs.len(), 1000 + 7 + 2);
        assert_eq!(serial_of(&rs[0]), Some(1100));
        assert_eq!(serial_of(rs.last().unwrap()), Some(1100));
        let naptrs: Vec<&Record> = rs.iter().filter(|r| r.record_type() == RecordType::NAPTR).collect();
        assert_eq!(naptrs.len(), 1000);
        // The hand-encoded records are exactly what a query would get.
        for (r, i) in naptrs.iter().zip(0..) {
            assert_eq!(**r, z.naptr_record(i, 10, &format!("sip:x{i}@127.0.0.1:5060")));
        }
        // Not over UDP, and not for strangers.
        let udp = z.respond(&xfr(RecordType::AXFR, None), Transport::Udp, &[], TransferPolicy::Allowed, 0);
        assert_eq!(Message::from_vec(&udp[0]).unwrap().response_code(), ResponseCode::NotImp);
        let refused = z.respond(&xfr(RecordType::AXFR, None), Transport::Tcp, &[], TransferPolicy::Refused, 0);
        assert_eq!(Message::from_vec(&refused[0]).unwrap().response_code(), ResponseCode::Refused);
    }

    #[test]
    fn ixfr_sends_the_differences_from_the_journal() {
        let mut z = zone();
        z.set(n(1), Some("sip:a@10.0.0.1:5060")).unwrap(); // 100 -> 101
        z.set(n(2), Some("sip:b@10.0.0.2:5060")).unwrap(); // 101 -> 102
        z.set(n(1), Some("sip:a@10.0.0.9:5060")).unwrap(); // 102 -> 103: moved
        z.set(n(2), None).unwrap(); // 103 -> 104: gone
        let msgs = z.respond(&xfr(RecordType::IXFR, Some(102)), Transport::Tcp, &[], TransferPolicy::Allowed, 0);
        let rs = records(&msgs);
        let serials: Vec<Option<u32>> = rs.iter().map(serial_of).collect();
        assert_eq!(
            serials,
            vec![Some(104), Some(102), None, Some(103), None, Some(103), None, Some(104), Some(104)]
        );
        assert!(
            matches!(rs[2].data(), RData::NAPTR(x) if x.regexp().ends_with(b"10.0.0.1:5060!")),
            "deleted old address"
        );
        assert!(
            matches!(rs[4].data(), RData::NAPTR(x) if x.regexp().ends_with(b"10.0.0.9:5060!")),
            "added new address"
        );
        // Up to date: the SOA alone. Unknown serial: a full transfer.
        assert_eq!(
            records(&z.respond(&xfr(RecordType::IXFR, Some(104)), Transport::Tcp, &[], TransferPolicy::Allowed, 0)).len(),
            1
        );
        let full = records(&z.respond(&xfr(RecordType::IXFR, Some(7)), Transport::Tcp, &[], TransferPolicy::Allowed, 0));
        assert_eq!(full.len(), 1 + 7 + 1 + 1);
        // An IXFR without the client's SOA is malformed.
        let bad = z.respond(&xfr(RecordType::IXFR, None), Transport::Tcp, &[], TransferPolicy::Allowed, 0);
        assert_eq!(Message::from_vec(&bad[0]).unwrap().response_code(), ResponseCode::FormErr);
    }

    #[test]
    fn transfers_carry_the_mailbox_records_beside_the_contacts() {
        let mut z = zone();
        z.set_mailbox(n(1), true).unwrap(); // 100 -> 101
        z.set(n(1), Some("sip:a@10.0.0.1:5060")).unwrap(); // 101 -> 102
        z.set_mailbox(n(2), true).unwrap(); // 102 -> 103
        let orders = |rs: &[Record]| -> Vec<u16> {
            rs.iter()
                .filter_map(|r| match r.data() {
                    RData::NAPTR(x) => Some(x.order()),
                    _ => None,
                })
                .collect()
        };
        let all = records(&z.respond(&xfr(RecordType::AXFR, None), Transport::Tcp, &[], TransferPolicy::Allowed, 0));
        assert_eq!(orders(&all), vec![10, 20, 20]);
        let mailbox = all.iter().find(|r| matches!(r.data(), RData::NAPTR(x) if x.order() == 20)).unwrap();
        assert_eq!(*mailbox, z.naptr_record(n(1).individual(), 20, &z.mailbox_uri(n(1))));
        let diff = records(&z.respond(&xfr(RecordType::IXFR, Some(102)), Transport::Tcp, &[], TransferPolicy::Allowed, 0));
        assert_eq!(orders(&diff), vec![20], "the one added mailbox record");
    }

    #[test]
    fn signed_transfers_and_bad_signatures() {
        let mut z = zone();
        for i in 0..900 {
            z.set(n(i), Some("sip:x@127.0.0.1:1")).unwrap();
        }
        let key = TsigKey::parse("xfr.:c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0").unwrap();
        let now = 1_800_000_000;
        let (signed, mac) = tsig::sign_request(xfr(RecordType::AXFR, None), &key, now);
        // Unsigned requests are refused when only signed ones may transfer.
        let r = z.respond(
            &xfr(RecordType::AXFR, None),
            Transport::Tcp,
            std::slice::from_ref(&key),
            TransferPolicy::SignedOnly,
            now,
        );
        assert_eq!(Message::from_vec(&r[0]).unwrap().response_code(), ResponseCode::Refused);
        let msgs = z.respond(&signed, Transport::Tcp, std::slice::from_ref(&key), TransferPolicy::SignedOnly, now);
        assert!(msgs.len() >= 3);
        assert!(
            tsig::verify_response(&msgs[0], &key, &mac),
            "first message signed over the request MAC"
        );
        for m in &msgs {
            assert!(tsig::find(m).unwrap().is_some(), "every message carries a TSIG");
        }
        // A key we do not know, or a wrong secret: NOTAUTH, nothing served.
        let stranger = TsigKey::parse("other.:c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0").unwrap();
        let wrong = TsigKey::parse("xfr.:d3Jvbmd3cm9uZ3dyb25nd3Jvbmc=").unwrap();
        for k in [stranger, wrong] {
            let (req, _) = tsig::sign_request(xfr(RecordType::AXFR, None), &k, now);
            let r = z.respond(&req, Transport::Tcp, std::slice::from_ref(&key), TransferPolicy::SignedOnly, now);
            assert_eq!(r.len(), 1);
            assert_eq!(r[0][3] & 0x0f, 9, "NOTAUTH");
            assert!(Message::from_vec(&r[0][..]).map(|m| m.answers().is_empty()).unwrap_or(true));
        }
        // A signed ordinary query gets a signed answer.
        let mut q = Message::new();
        q.set_id(9).add_query(Query::query(
            Name::from_ascii("2.0.6.8.8.peerdial.internal.").unwrap(),
            RecordType::SOA,
        ));
        let (req, mac) = tsig::sign_request(q.to_vec().unwrap(), &key, now);
        let r = z.respond(&req, Transport::Udp, std::slice::from_ref(&key), TransferPolicy::SignedOnly, now);
        assert!(tsig::verify_response(&r[0], &key, &mac));
    }
}
