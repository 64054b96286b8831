//! The authoritative zone engine of one area, free of I/O.
//!
//! [`Zone`] holds the NAPTR set of every provisioned number of an area in
//! an ordered in-memory index (design §9: order 10 → the phone's contact
//! while it is registered, order 20 → the region's mailbox always, so only
//! an unassigned number is NXDOMAIN), plus the apex records (SOA, NS, SRV for the
//! registrar and the HTTP API, and their addresses). [`Zone::answer`] turns
//! one query message (bytes) into one response message (bytes): NAPTR at
//! each number, NODATA at empty non-terminals (so resolvers that minimise
//! query names keep walking), NXDOMAIN with the SOA elsewhere in the zone,
//! REFUSED outside it, FORMERR for what does not parse, TC when a UDP
//! answer would not fit. Every change bumps the SOA serial.
//!
//! Sockets live in the region server; this crate never touches one.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, NAPTR, NS, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use peerdial_number::{Area, Number, INDIVIDUAL_DIGITS};

mod fast;
pub mod tree;
pub mod tsig;
mod xfr;

pub use tsig::TsigKey;
pub use xfr::TransferPolicy;

pub use tree::{prefix_zone, TreeZone, TreeZoneConfig};

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("invalid domain name {0:?}: {1}")]
    BadName(String, hickory_proto::ProtoError),
    #[error("number {0} is not in area {1}")]
    OutsideArea(Number, Area),
    #[error("SIP URI of {0} bytes does not fit a NAPTR regexp (255 bytes at most)")]
    UriTooLong(usize),
    #[error("cannot encode DNS message: {0}")]
    Encode(#[from] hickory_proto::ProtoError),
}

/// The largest UDP answer we send when the client offers more (RFC 9715's
/// advice against fragmentation).
pub const MAX_UDP_PAYLOAD: u16 = 1232;

#[derive(Debug, Clone)]
pub struct ZoneConfig {
    pub root: String,
    pub area: Area,
    /// TTL of NAPTR records (short: phones move).
    pub ttl: u32,
    /// Negative-caching TTL (SOA minimum), short too.
    pub negative_ttl: u32,
    pub dns: SocketAddr,
    pub sip: SocketAddr,
    pub http: SocketAddr,
    pub serial: u32,
}

pub struct Zone {
    cfg: ZoneConfig,
    origin: Name,
    /// Lower-case origin with trailing dot, for fast suffix tests.
    origin_str: String,
    /// The origin in lower-case wire format, for the fast path.
    origin_wire: Vec<u8>,
    entries: BTreeMap<u32, Entry>,
    /// `@<region SIP address>`: the mailbox URI's host part.
    mailbox_host: Box<str>,
    /// How many numbers have a contact (are registered).
    contacts: usize,
    serial: u32,
    /// Recent changes, oldest first, for IXFR (RFC 1995).
    journal: std::collections::VecDeque<xfr::Change>,
    ns_name: Name,
    sip_name: Name,
    api_name: Name,
    /// TXT records at the apex (the region's caller-identity key), each
    /// as its character-strings.
    apex_txt: Vec<Vec<String>>,
}

/// The order of the phone's contact in a number's NAPTR set.
pub const CONTACT_ORDER: u16 = 10;
/// The order of the region's mailbox: tried when the contact fails.
pub const MAILBOX_ORDER: u16 = 20;

/// What a number's NAPTR set holds; a number with neither is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) contact: Option<Box<str>>,
    pub(crate) mailbox: bool,
}

/// How a query arrived: UDP answers must fit the client's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

enum Owner {
    Apex,
    Host(IpAddr),
    Srv(u16, bool),
    Number(Number),
    EmptyNonTerminal,
    Missing,
}

impl Zone {
    pub fn new(cfg: ZoneConfig) -> Result<Zone, DnsError> {
        let origin_str = cfg.area.zone_name(&cfg.root).to_ascii_lowercase();
        let name = |s: &str| Name::from_ascii(s).map_err(|e| DnsError::BadName(s.to_string(), e));
        let origin = name(&origin_str)?;
        Ok(Zone {
            ns_name: name(&format!("ns.{origin_str}"))?,
            sip_name: name(&format!("sip.{origin_str}"))?,
            api_name: name(&format!("api.{origin_str}"))?,
            origin,
            origin_wire: origin_str
                .trim_end_matches('.')
                .split('.')
                .flat_map(|l| std::iter::once(l.len() as u8).chain(l.bytes()))
                .chain(std::iter::once(0))
                .collect(),
            origin_str,
            entries: BTreeMap::new(),
            mailbox_host: format!("@{}", cfg.sip).into(),
            contacts: 0,
            serial: cfg.serial,
            journal: std::collections::VecDeque::new(),
            apex_txt: Vec::new(),
            cfg,
        })
    }

    /// Sets the TXT records at the zone's apex (each given as its
    /// character-strings of at most 255 bytes). Meant for start-up, before
    /// the zone is served: it does not bump the serial.
    pub fn set_apex_txt(&mut self, records: Vec<Vec<String>>) {
        self.apex_txt = records;
    }

    fn apex_txt_records(&self) -> impl Iterator<Item = Record> + '_ {
        self.apex_txt
            .iter()
            .map(|r| Record::from_rdata(self.origin.clone(), 3600, RData::TXT(TXT::new(r.clone()))))
    }

    pub fn origin(&self) -> &str {
        &self.origin_str
    }

    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// Numbers with a contact published: the registered ones.
    pub fn contact_count(&self) -> usize {
        self.contacts
    }

    /// Every number with a record, in order.
    pub fn numbers(&self) -> impl Iterator<Item = Number> + '_ {
        self.entries.keys().map(|i| Number::new(self.cfg.area, *i))
    }

    /// Numbers with any record (provisioned or registered).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The phone's contact published for `n` (order 10), if any.
    pub fn lookup(&self, n: Number) -> Option<&str> {
        if !self.cfg.area.contains(n) {
            return None;
        }
        self.entries.get(&n.individual()).and_then(|e| e.contact.as_deref())
    }

    /// The region's mailbox for `n`: `sip:<number>@<region SIP address>`.
    pub fn mailbox_uri(&self, n: Number) -> String {
        format!("sip:{}{}", n.digits(), self.mailbox_host)
    }

    /// The NAPTR set of `n` as (order, URI), lowest order first.
    pub fn records(&self, n: Number) -> Vec<(u16, String)> {
        if !self.cfg.area.contains(n) {
            return Vec::new();
        }
        self.entries
            .get(&n.individual())
            .map(|e| self.entry_records(n.individual(), e))
            .unwrap_or_default()
    }

    pub(crate) fn entry_records(&self, individual: u32, e: &Entry) -> Vec<(u16, String)> {
        let mut out = Vec::with_capacity(2);
        if let Some(c) = &e.contact {
            out.push((CONTACT_ORDER, c.to_string()));
        }
        if e.mailbox {
            out.push((MAILBOX_ORDER, self.mailbox_uri(Number::new(self.cfg.area, individual))));
        }
        out
    }

    /// Publishes (`Some(uri)`) or withdraws (`None`) a number's contact.
    /// Returns whether anything changed; only a change bumps the serial.
    pub fn set(&mut self, n: Number, uri: Option<&str>) -> Result<bool, DnsError> {
        if !self.cfg.area.contains(n) {
            return Err(DnsError::OutsideArea(n, self.cfg.area));
        }
        if let Some(u) = uri {
            // "!^.*$!" + uri + "!" must fit one character-string.
            if u.len() + 7 > 255 {
                return Err(DnsError::UriTooLong(u.len()));
            }
        }
        let entry = self.entries.entry(n.individual()).or_default();
        if entry.contact.as_deref() == uri {
            self.drop_if_empty(n);
            return Ok(false);
        }
        let old = std::mem::replace(&mut entry.contact, uri.map(Into::into));
        match (&old, uri) {
            (None, Some(_)) => self.contacts += 1,
            (Some(_), None) => self.contacts -= 1,
            _ => {}
        }
        self.drop_if_empty(n);
        self.record_change(n, CONTACT_ORDER, old, uri.map(Into::into));
        Ok(true)
    }

    /// Publishes (`true`) or withdraws the mailbox record of a number: it
    /// is there from provisioning until the number is released, moved or
    /// disabled. Returns whether anything changed.
    pub fn set_mailbox(&mut self, n: Number, on: bool) -> Result<bool, DnsError> {
        if !self.cfg.area.contains(n) {
            return Err(DnsError::OutsideArea(n, self.cfg.area));
        }
        let entry = self.entries.entry(n.individual()).or_default();
        let was = std::mem::replace(&mut entry.mailbox, on);
        self.drop_if_empty(n);
        if was == on {
            return Ok(false);
        }
        let uri: Box<str> = self.mailbox_uri(n).into();
        let (old, new) = if on { (None, Some(uri)) } else { (Some(uri), None) };
        self.record_change(n, MAILBOX_ORDER, old, new);
        Ok(true)
    }

    fn drop_if_empty(&mut self, n: Number) {
        if self.entries.get(&n.individual()) == Some(&Entry::default()) {
            self.entries.remove(&n.individual());
        }
    }

    fn record_change(&mut self, n: Number, order: u16, old: Option<Box<str>>, new: Option<Box<str>>) {
        // RFC 1982 serial arithmetic: wrapping is allowed.
        let from = self.serial;
        self.serial = self.serial.wrapping_add(1);
        self.journal.push_back(xfr::Change {
            from,
            individual: n.individual(),
            order,
            old,
            new,
        });
        if self.journal.len() > xfr::JOURNAL_LIMIT {
            self.journal.pop_front();
        }
    }

    /// Answers one query. `None` means send nothing (it was a response,
    /// or too short to carry an ID).
    pub fn answer(&self, query: &[u8], transport: Transport) -> Option<Vec<u8>> {
        self.answer_within(query, transport, None)
    }

    /// [`Zone::answer`] with a lower UDP size limit than the client's, to
    /// exercise truncation with records that are small in practice.
    pub fn answer_within(&self, query: &[u8], transport: Transport, udp_cap: Option<usize>) -> Option<Vec<u8>> {
        if query.len() < 12 || query[2] & 0x80 != 0 {
            return None;
        }
        if let Some(fast) = fast::answer(self, query, transport == Transport::Tcp, udp_cap) {
            return Some(fast);
        }
        self.general(query, transport, udp_cap)
    }

    /// Any query, through hickory-proto's parser and encoder.
    fn general(&self, query: &[u8], transport: Transport, udp_cap: Option<usize>) -> Option<Vec<u8>> {
        let (q, mut resp, limit) = match begin(query, transport, udp_cap) {
            Ok(x) => x,
            Err(done) => return done,
        };
        let qname = q.name().to_ascii().to_ascii_lowercase();
        let Some(owner) = self
            .classify(&qname)
            .filter(|_| matches!(q.query_class(), DNSClass::IN | DNSClass::ANY))
        else {
            resp.set_response_code(ResponseCode::Refused);
            return resp.to_vec().ok();
        };
        resp.set_authoritative(true);
        self.fill(&mut resp, &q, owner);
        finish(resp, q, limit)
    }

    /// Where in (or outside, `None`) the zone a lower-case FQDN falls.
    fn classify(&self, qname: &str) -> Option<Owner> {
        if qname == self.origin_str {
            return Some(Owner::Apex);
        }
        let sub = qname.strip_suffix(&self.origin_str)?.strip_suffix('.')?;
        Some(match sub {
            "ns" => Owner::Host(self.cfg.dns.ip()),
            "sip" => Owner::Host(self.cfg.sip.ip()),
            "api" => Owner::Host(self.cfg.http.ip()),
            "_sip._udp" => Owner::Srv(self.cfg.sip.port(), false),
            "_sip._tcp" => Owner::Srv(self.cfg.sip.port(), false),
            "_peerdial._tcp" => Owner::Srv(self.cfg.http.port(), true),
            "_udp" | "_tcp" | "_sip" | "_peerdial" => Owner::EmptyNonTerminal,
            _ => {
                // Digit labels, least significant first: "8.7.6.5.4.3.2.1".
                let mut value = 0u32;
                let mut count = 0usize;
                for label in sub.rsplit('.') {
                    let b = label.as_bytes();
                    if b.len() != 1 || !b[0].is_ascii_digit() || count == INDIVIDUAL_DIGITS {
                        return Some(Owner::Missing);
                    }
                    value = value * 10 + (b[0] - b'0') as u32;
                    count += 1;
                }
                if count == INDIVIDUAL_DIGITS {
                    Owner::Number(Number::new(self.cfg.area, value))
                } else {
                    let span = 10u32.pow((INDIVIDUAL_DIGITS - count) as u32);
                    let lo = value * span;
                    if self.entries.range(lo..lo + span).next().is_some() {
                        Owner::EmptyNonTerminal
                    } else {
                        Owner::Missing
                    }
                }
            }
        })
    }

    fn fill(&self, resp: &mut Message, q: &Query, owner: Owner) {
        let qt = q.query_type();
        let wants = |t: RecordType| qt == t || qt == RecordType::ANY;
        let name = q.name().clone();
        let ttl = self.cfg.ttl;
        match owner {
            Owner::Apex => {
                if wants(RecordType::SOA) {
                    resp.add_answer(self.soa_record());
                }
                if wants(RecordType::NS) {
                    resp.add_answer(Record::from_rdata(self.origin.clone(), 3600, RData::NS(NS(self.ns_name.clone()))));
                    resp.add_additional(host_record(self.ns_name.clone(), self.cfg.dns.ip(), 3600));
                }
                if wants(RecordType::TXT) {
                    for r in self.apex_txt_records() {
                        resp.add_answer(r);
                    }
                }
            }
            Owner::Host(ip) => {
                let t = if ip.is_ipv4() { RecordType::A } else { RecordType::AAAA };
                if wants(t) {
                    resp.add_answer(host_record(name, ip, 3600));
                }
            }
            Owner::Srv(port, api) => {
                if wants(RecordType::SRV) {
                    let (target, ip) = if api {
                        (&self.api_name, self.cfg.http.ip())
                    } else {
                        (&self.sip_name, self.cfg.sip.ip())
                    };
                    resp.add_answer(Record::from_rdata(name, 3600, RData::SRV(SRV::new(0, 0, port, target.clone()))));
                    resp.add_additional(host_record(target.clone(), ip, 3600));
                }
            }
            Owner::Number(n) => match self.entries.get(&n.individual()) {
                Some(e) => {
                    if wants(RecordType::NAPTR) {
                        for (order, uri) in self.entry_records(n.individual(), e) {
                            resp.add_answer(Record::from_rdata(name.clone(), ttl, RData::NAPTR(naptr_ordered(order, &uri))));
                        }
                    }
                }
                None => {
                    resp.set_response_code(ResponseCode::NXDomain);
                }
            },
            Owner::EmptyNonTerminal => {}
            Owner::Missing => {
                resp.set_response_code(ResponseCode::NXDomain);
            }
        }
        if resp.answers().is_empty() {
            // NODATA or NXDOMAIN: the SOA lets resolvers cache the negative
            // answer for the (short) SOA minimum (RFC 2308).
            let mut soa = self.soa_record();
            soa.set_ttl(self.cfg.negative_ttl);
            resp.add_name_server(soa);
        }
    }

    fn soa_record(&self) -> Record {
        soa_record(&self.origin, &self.ns_name, self.serial, self.cfg.negative_ttl)
    }
}

/// The SOA of a zone we serve (an area or a tree node): `ns.<origin>`,
/// `hostmaster.<origin>`, the negative-caching TTL as its minimum.
pub(crate) fn soa_record(origin: &Name, ns_name: &Name, serial: u32, negative_ttl: u32) -> Record {
    let rname = Name::from_ascii("hostmaster")
        .expect("label")
        .append_domain(origin)
        .expect("valid origin gives a valid rname");
    Record::from_rdata(
        origin.clone(),
        negative_ttl.max(60),
        RData::SOA(SOA::new(ns_name.clone(), rname, serial, 3600, 600, 604_800, negative_ttl)),
    )
}

/// The ENUM NAPTR of RFC 6116 for a phone's contact (order 10).
pub fn naptr(uri: &str) -> NAPTR {
    naptr_ordered(CONTACT_ORDER, uri)
}

/// The ENUM NAPTR of RFC 6116 for a SIP URI, at `order`.
pub fn naptr_ordered(order: u16, uri: &str) -> NAPTR {
    NAPTR::new(
        order,
        100,
        b"u".to_vec().into_boxed_slice(),
        b"E2U+sip".to_vec().into_boxed_slice(),
        format!("!^.*$!{uri}!").into_bytes().into_boxed_slice(),
        Name::root(),
    )
}

fn host_record(name: Name, ip: IpAddr, ttl: u32) -> Record {
    match ip {
        IpAddr::V4(v4) => Record::from_rdata(name, ttl, RData::A(A(v4))),
        IpAddr::V6(v6) => Record::from_rdata(name, ttl, RData::AAAA(AAAA(v6))),
    }
}

/// What every query goes through before the zone looks at its name:
/// parsing (FORMERR), EDNS (BADVERS for versions above 0), the opcode
/// (NOTIMP), exactly one question (FORMERR). Gives the question, the
/// response begun (ID, flags, question, EDNS) and the size it must fit, or
/// the finished answer.
pub(crate) fn begin(query: &[u8], transport: Transport, udp_cap: Option<usize>) -> Result<(Query, Message, usize), Option<Vec<u8>>> {
    let Ok(req) = Message::from_vec(query) else {
        return Err(Some(formerr(query)));
    };
    let mut resp = Message::new();
    resp.set_id(req.id())
        .set_message_type(MessageType::Response)
        .set_op_code(req.op_code())
        .set_recursion_desired(req.recursion_desired());
    let limit = match transport {
        Transport::Tcp => u16::MAX as usize,
        Transport::Udp => match req.extensions() {
            Some(e) => e.max_payload().clamp(512, MAX_UDP_PAYLOAD) as usize,
            None => 512,
        }
        .min(udp_cap.unwrap_or(usize::MAX)),
    };
    if let Some(e) = req.extensions() {
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_UDP_PAYLOAD);
        // RFC 3225: the DO bit is copied from the query; other flags we do
        // not know are not echoed (RFC 6891 6.1.4), nor are options.
        edns.set_dnssec_ok(e.flags().dnssec_ok);
        if e.version() > 0 {
            // RFC 6891: unknown EDNS version.
            resp.set_response_code(ResponseCode::BADVERS);
            resp.set_edns(edns);
            return Err(resp.to_vec().ok());
        }
        resp.set_edns(edns);
    }
    // One question, whatever the opcode: a NOTIFY or UPDATE without its
    // zone is malformed before it is unsupported.
    if req.queries().len() != 1 {
        resp.set_response_code(ResponseCode::FormErr);
        return Err(resp.to_vec().ok());
    }
    if req.op_code() != OpCode::Query {
        resp.set_response_code(ResponseCode::NotImp);
        return Err(resp.to_vec().ok());
    }
    let q = req.queries()[0].clone();
    resp.add_query(q.clone());
    Ok((q, resp, limit))
}

/// Encodes the response; one too big for the client gets TC and no
/// records, so the client retries over TCP.
pub(crate) fn finish(resp: Message, q: Query, limit: usize) -> Option<Vec<u8>> {
    let bytes = resp.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    let mut short = Message::new();
    short.set_header(*resp.header());
    short.set_truncated(true);
    short.add_query(q);
    if let Some(e) = resp.extensions().clone() {
        short.set_edns(e);
    }
    short.to_vec().ok()
}

/// A FORMERR built from the raw header, for queries that do not parse.
fn formerr(query: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 12];
    out[0] = query[0];
    out[1] = query[1];
    // QR=1, the query's opcode, RD copied.
    out[2] = 0x80 | (query[2] & 0x78) | (query[2] & 0x01);
    out[3] = ResponseCode::FormErr.low();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;

    fn zone() -> Zone {
        let a: SocketAddr = "127.0.0.1:5300".parse().unwrap();
        Zone::new(ZoneConfig {
            root: "peerdial.internal.".into(),
            area: Area::parse("886-02").unwrap(),
            ttl: 60,
            negative_ttl: 30,
            dns: a,
            sip: "127.0.0.1:5060".parse().unwrap(),
            http: "127.0.0.1:8080".parse().unwrap(),
            serial: 1,
        })
        .unwrap()
    }

    fn ask(z: &Zone, name: &str, t: RecordType, transport: Transport) -> Message {
        let mut m = Message::new();
        m.set_id(4242).add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        Message::from_vec(&z.answer(&m.to_vec().unwrap(), transport).unwrap()).unwrap()
    }

    const N: &str = "8.7.6.5.4.3.2.1.2.0.6.8.8.peerdial.internal.";

    #[test]
    fn notify_and_update_are_not_for_us_and_malformed_ones_are_formerr() {
        let z = zone();
        for (op, questions, want) in [
            (OpCode::Notify, 1, ResponseCode::NotImp),
            (OpCode::Update, 1, ResponseCode::NotImp),
            (OpCode::Notify, 0, ResponseCode::FormErr),
            (OpCode::Notify, 2, ResponseCode::FormErr),
        ] {
            let mut m = Message::new();
            m.set_id(1).set_op_code(op);
            for _ in 0..questions {
                m.add_query(Query::query(
                    Name::from_ascii("2.0.6.8.8.peerdial.internal.").unwrap(),
                    RecordType::SOA,
                ));
            }
            let r = Message::from_vec(&z.answer(&m.to_vec().unwrap(), Transport::Udp).unwrap()).unwrap();
            assert_eq!(r.response_code(), want, "{op:?} with {questions} questions");
        }
    }

    #[test]
    fn naptr_appears_changes_and_goes() {
        let mut z = zone();
        let n = Number::parse("886-02-12345678").unwrap();
        let r = ask(&z, N, RecordType::NAPTR, Transport::Udp);
        assert_eq!(r.response_code(), ResponseCode::NXDomain);
        assert!(r.authoritative());
        assert_eq!(r.name_servers()[0].record_type(), RecordType::SOA);

        assert!(z.set(n, Some("sip:8860212345678@10.0.0.1:5060")).unwrap());
        assert_eq!(z.serial(), 2);
        let r = ask(&z, &N.to_uppercase(), RecordType::NAPTR, Transport::Udp);
        assert_eq!(r.id(), 4242);
        assert_eq!(r.response_code(), ResponseCode::NoError);
        let RData::NAPTR(rec) = r.answers()[0].data() else { panic!() };
        assert_eq!(rec.services(), b"E2U+sip");
        assert_eq!(rec.regexp(), b"!^.*$!sip:8860212345678@10.0.0.1:5060!");
        assert_eq!(r.answers()[0].ttl(), 60);

        // Same value again: no change, no serial bump.
        assert!(!z.set(n, Some("sip:8860212345678@10.0.0.1:5060")).unwrap());
        assert_eq!(z.serial(), 2);
        // Other type at the number: NODATA.
        let r = ask(&z, N, RecordType::A, Transport::Udp);
        assert_eq!((r.response_code(), r.answers().len()), (ResponseCode::NoError, 0));
        // Empty non-terminals above it: NODATA, not NXDOMAIN.
        let r = ask(&z, "1.2.0.6.8.8.peerdial.internal.", RecordType::A, Transport::Udp);
        assert_eq!(r.response_code(), ResponseCode::NoError);
        let r = ask(&z, "9.2.0.6.8.8.peerdial.internal.", RecordType::A, Transport::Udp);
        assert_eq!(r.response_code(), ResponseCode::NXDomain);

        assert!(z.set(n, None).unwrap());
        assert_eq!(z.serial(), 3);
        assert_eq!(
            ask(&z, N, RecordType::NAPTR, Transport::Udp).response_code(),
            ResponseCode::NXDomain
        );
        assert!(z.set(Number::parse("886-03-12345678").unwrap(), None).is_err());
    }

    #[test]
    fn a_provisioned_number_always_resolves_to_its_mailbox_after_its_contact() {
        let mut z = zone();
        let n = Number::parse("886-02-12345678").unwrap();
        let orders = |z: &Zone| {
            let r = ask(z, N, RecordType::NAPTR, Transport::Udp);
            let recs: Vec<(u16, String)> = r
                .answers()
                .iter()
                .map(|a| match a.data() {
                    RData::NAPTR(rec) => (rec.order(), String::from_utf8_lossy(rec.regexp()).into_owned()),
                    _ => panic!("not a NAPTR"),
                })
                .collect();
            (r.response_code(), recs)
        };
        let mailbox = "!^.*$!sip:8860212345678@127.0.0.1:5060!".to_string();
        assert!(z.set_mailbox(n, true).unwrap());
        assert!(!z.set_mailbox(n, true).unwrap());
        assert_eq!(
            orders(&z),
            (ResponseCode::NoError, vec![(20, mailbox.clone())]),
            "offline: the mailbox"
        );
        z.set(n, Some("sip:8860212345678@10.0.0.1:5060")).unwrap();
        assert_eq!(
            orders(&z),
            (
                ResponseCode::NoError,
                vec![(10, "!^.*$!sip:8860212345678@10.0.0.1:5060!".into()), (20, mailbox.clone())]
            ),
            "online: the phone first, then the mailbox"
        );
        assert_eq!((z.records(n).len(), z.contact_count(), z.len()), (2, 1, 1));
        z.set(n, None).unwrap();
        assert_eq!(orders(&z), (ResponseCode::NoError, vec![(20, mailbox)]), "offline again");
        assert_eq!(z.serial(), 4);
        assert!(z.set_mailbox(n, false).unwrap());
        assert_eq!(orders(&z).0, ResponseCode::NXDomain, "released: unassigned");
        assert!(z.is_empty());
    }

    #[test]
    fn apex_txt_records_carry_their_strings() {
        let mut z = zone();
        let r = ask(&z, "2.0.6.8.8.peerdial.internal.", RecordType::TXT, Transport::Udp);
        assert!(r.answers().is_empty());
        z.set_apex_txt(vec![vec!["v=pdid1; k=es256; ".into(), "p=AAAA".into()]]);
        let r = ask(&z, "2.0.6.8.8.peerdial.internal.", RecordType::TXT, Transport::Udp);
        let RData::TXT(t) = r.answers()[0].data() else { panic!("{r:?}") };
        let strings: Vec<&[u8]> = t.iter().map(|s| &s[..]).collect();
        assert_eq!(strings, vec![&b"v=pdid1; k=es256; "[..], &b"p=AAAA"[..]]);
    }

    #[test]
    fn apex_and_service_records() {
        let z = zone();
        let r = ask(&z, "2.0.6.8.8.peerdial.internal.", RecordType::SOA, Transport::Udp);
        assert!(matches!(r.answers()[0].data(), RData::SOA(s) if s.serial() == 1));
        let r = ask(&z, "2.0.6.8.8.peerdial.internal.", RecordType::NS, Transport::Udp);
        assert_eq!(r.answers().len(), 1);
        assert_eq!(r.additionals().len(), 1);
        let r = ask(&z, "_sip._udp.2.0.6.8.8.peerdial.internal.", RecordType::SRV, Transport::Udp);
        assert!(matches!(r.answers()[0].data(), RData::SRV(s) if s.port() == 5060));
        let r = ask(&z, "_peerdial._tcp.2.0.6.8.8.peerdial.internal.", RecordType::SRV, Transport::Udp);
        assert!(matches!(r.answers()[0].data(), RData::SRV(s) if s.port() == 8080));
    }

    #[test]
    fn refusals_and_errors() {
        let z = zone();
        assert_eq!(
            ask(&z, "example.com.", RecordType::A, Transport::Udp).response_code(),
            ResponseCode::Refused
        );
        assert_eq!(
            ask(&z, "3.0.6.8.8.peerdial.internal.", RecordType::A, Transport::Udp).response_code(),
            ResponseCode::Refused
        );
        // Garbage after a valid header: FORMERR with the same ID.
        let mut junk = vec![0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
        junk.extend_from_slice(&[0xff; 20]);
        let r = z.answer(&junk, Transport::Udp).unwrap();
        assert_eq!(&r[..2], &[0x12, 0x34]);
        assert_eq!(r[3] & 0x0f, 1);
        assert!(z.answer(&[1, 2, 3], Transport::Udp).is_none());
        // Responses are never answered (no reflection loops).
        let mut resp = junk.clone();
        resp[2] |= 0x80;
        assert!(z.answer(&resp, Transport::Udp).is_none());
    }

    #[test]
    fn edns_versions_options_and_flags() {
        use hickory_proto::rr::rdata::opt::EdnsOption;
        let z = zone();
        let query = |version: u8, dnssec_ok: bool, option: bool| {
            let mut m = Message::new();
            m.set_id(9).add_query(Query::query(
                Name::from_ascii("2.0.6.8.8.peerdial.internal.").unwrap(),
                RecordType::SOA,
            ));
            let mut e = Edns::new();
            e.set_version(version).set_dnssec_ok(dnssec_ok);
            if option {
                e.options_mut().insert(EdnsOption::Unknown(65001, vec![1, 2, 3]));
            }
            m.set_edns(e);
            Message::from_vec(&z.answer(&m.to_vec().unwrap(), Transport::Udp).unwrap()).unwrap()
        };
        // RFC 6891 6.1.3: version 1 gets BADVERS, with an OPT of version 0.
        let r = query(1, true, false);
        // 16 is both BADVERS and BADSIG; hickory decodes it as the latter.
        assert_eq!(u16::from(r.response_code()), u16::from(ResponseCode::BADVERS));
        let e = r.extensions().as_ref().expect("OPT in a BADVERS answer");
        assert_eq!((e.version(), e.flags().dnssec_ok), (0, true));
        // An unknown option is ignored: answered, and not echoed.
        let r = query(0, false, true);
        assert_eq!((r.response_code(), r.answers().len()), (ResponseCode::NoError, 1));
        let e = r.extensions().as_ref().unwrap();
        assert!(e.options().as_ref().is_empty());
        assert!(!e.flags().dnssec_ok);
    }

    #[test]
    fn large_answers_truncate_over_udp_only() {
        let mut z = zone();
        let n = Number::parse("886-02-12345678").unwrap();
        z.set(n, Some("sip:8860212345678@10.0.0.1:5060")).unwrap();
        assert!(z
            .set(n, Some(&format!("sip:8860212345678@10.0.0.1:5060;x={}", "a".repeat(220))))
            .is_err());
        let mut m = Message::new();
        m.add_query(Query::query(Name::from_ascii(N).unwrap(), RecordType::NAPTR));
        let q = m.to_vec().unwrap();
        let full = Message::from_vec(&z.answer(&q, Transport::Udp).unwrap()).unwrap();
        assert!(!full.truncated() && full.answers().len() == 1);
        let r = Message::from_vec(&z.answer_within(&q, Transport::Udp, Some(80)).unwrap()).unwrap();
        assert!(r.truncated() && r.answers().is_empty());
        assert_eq!(r.queries().len(), 1);
        let r = Message::from_vec(&z.answer_within(&q, Transport::Tcp, Some(80)).unwrap()).unwrap();
        assert!(!r.truncated() && r.answers().len() == 1);
    }

    proptest::proptest! {
        /// Any bytes: no answer, or one that parses, carries the ID and fits UDP.
        #[test]
        fn any_query_bytes_are_safe(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let z = zone();
            if let Some(resp) = z.answer(&data, Transport::Udp) {
                proptest::prop_assert!(resp.len() >= 12 && resp.len() <= 1232);
                proptest::prop_assert_eq!(&resp[..2], &data[..2]);
            }
        }

        /// Every name under the origin gets an authoritative answer; ENUM
        /// names of unregistered numbers get NXDOMAIN.
        #[test]
        fn unregistered_numbers_are_nxdomain(ind in 0u32..100_000_000) {
            let z = zone();
            let n = Number::new(Area::parse("886-02").unwrap(), ind);
            let r = ask(&z, &n.enum_name("peerdial.internal."), RecordType::NAPTR, Transport::Udp);
            proptest::prop_assert_eq!(r.response_code(), ResponseCode::NXDomain);
            proptest::prop_assert!(r.authoritative());
        }
    }

    proptest::proptest! {
        /// The fast path answers NAPTR lookups exactly as the general path
        /// does: registered or not, any letter case, with or without EDNS.
        #[test]
        fn fast_path_agrees_with_general_path(ind in 0u32..100_000_000, registered: bool, provisioned: bool, upper: bool, edns: bool, rd: bool, dnssec_ok: bool, z_flag: bool) {
            let mut z = zone();
            let n = Number::new(Area::parse("886-02").unwrap(), ind);
            if registered {
                z.set(n, Some(&format!("sip:{}@10.1.2.3:5060", n.digits()))).unwrap();
            }
            z.set_mailbox(n, provisioned).unwrap();
            let name = if upper { n.enum_name("PeerDial.Internal.").to_uppercase() } else { n.enum_name("peerdial.internal.") };
            let mut m = Message::new();
            m.set_id(77).set_recursion_desired(rd).add_query(Query::query(Name::from_ascii(&name).unwrap(), RecordType::NAPTR));
            if edns {
                let mut e = Edns::new();
                e.set_max_payload(4096);
                e.set_dnssec_ok(dnssec_ok);
                // An unknown flag, which must not be echoed.
                e.flags_mut().z = if z_flag { 0x0040 } else { 0 };
                m.set_edns(e);
            }
            let q = m.to_vec().unwrap();
            for t in [Transport::Udp, Transport::Tcp] {
                let fast = fast::answer(&z, &q, t == Transport::Tcp, None);
                proptest::prop_assert!(fast.is_some(), "the fast path takes plain NAPTR lookups");
                let general = z.general(&q, t, None).unwrap();
                let (a, b) = (Message::from_vec(&fast.unwrap()).unwrap(), Message::from_vec(&general).unwrap());
                proptest::prop_assert_eq!(a.header(), b.header());
                proptest::prop_assert_eq!(a.queries(), b.queries());
                proptest::prop_assert_eq!(a.answers(), b.answers());
                proptest::prop_assert_eq!(a.name_servers(), b.name_servers());
                proptest::prop_assert_eq!(a.extensions(), b.extensions());
                if let Some(e) = a.extensions() {
                    // RFC 3225: DO copied; RFC 6891: unknown flags not echoed.
                    proptest::prop_assert_eq!((e.flags().dnssec_ok, e.flags().z), (dnssec_ok, 0));
                }
            }
        }
    }
}
