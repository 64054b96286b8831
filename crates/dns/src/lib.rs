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
mod tests;
