//! The zone of a tree node above the areas: the root domain at the top
//! server, or a country zone (`6.8.8.<root>`) at a country server. It holds
//! no numbers, only delegations: for each child prefix (a country's digits,
//! or an area's five) an NS record and its glue, so resolvers are referred
//! down to the child's own servers (RFC 1034 section 4.3.2).

use std::collections::BTreeMap;
use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::NS;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::{begin, finish, host_record, DnsError, Transport};

/// The zone name of a digit prefix under `root`: "88602" →
/// `2.0.6.8.8.<root>.`; "" → the root itself.
pub fn prefix_zone(prefix: &str, root: &str) -> String {
    let mut out = String::new();
    for c in prefix.chars().rev() {
        out.push(c);
        out.push('.');
    }
    out.push_str(root.trim_end_matches('.'));
    out.push('.');
    out.to_ascii_lowercase()
}

#[derive(Debug, Clone)]
pub struct TreeZoneConfig {
    pub root: String,
    /// The digits this node covers ("" at the top, "886" for a country).
    pub prefix: String,
    /// This node's own name server address (its NS glue).
    pub ns_ip: IpAddr,
    pub negative_ttl: u32,
    pub serial: u32,
}

pub struct TreeZone {
    cfg: TreeZoneConfig,
    origin: Name,
    origin_str: String,
    ns_name: Name,
    serial: u32,
    /// Child prefix (full digits, extending ours) → its name server address.
    delegations: BTreeMap<String, IpAddr>,
}

/// TTL of delegation NS and glue records.
const DELEGATION_TTL: u32 = 3600;

impl TreeZone {
    pub fn new(cfg: TreeZoneConfig) -> Result<TreeZone, DnsError> {
        let origin_str = prefix_zone(&cfg.prefix, &cfg.root);
        let name = |s: &str| Name::from_ascii(s).map_err(|e| DnsError::BadName(s.to_string(), e));
        Ok(TreeZone {
            origin: name(&origin_str)?,
            ns_name: name(&format!("ns.{origin_str}"))?,
            origin_str,
            serial: cfg.serial,
            delegations: BTreeMap::new(),
            cfg,
        })
    }

    pub fn origin(&self) -> &str {
        &self.origin_str
    }

    pub fn serial(&self) -> u32 {
        self.serial
    }

    pub fn delegations(&self) -> impl Iterator<Item = (&String, &IpAddr)> {
        self.delegations.iter()
    }

    /// Adds, moves (`Some`) or removes (`None`) the delegation of a child
    /// prefix. Returns whether anything changed (which bumps the serial).
    pub fn set_delegation(&mut self, prefix: &str, ns_ip: Option<IpAddr>) -> bool {
        let changed = match ns_ip {
            Some(ip) => self.delegations.insert(prefix.to_string(), ip) != Some(ip),
            None => self.delegations.remove(prefix).is_some(),
        };
        if changed {
            self.serial = self.serial.wrapping_add(1);
        }
        changed
    }

    pub fn answer(&self, query: &[u8], transport: Transport) -> Option<Vec<u8>> {
        if query.len() < 12 || query[2] & 0x80 != 0 {
            return None;
        }
        let (q, mut resp, limit) = match begin(query, transport, None) {
            Ok(x) => x,
            Err(done) => return done,
        };
        let qname = q.name().to_ascii().to_ascii_lowercase();
        let sub = if qname == self.origin_str {
            Some("")
        } else {
            qname.strip_suffix(&self.origin_str).and_then(|s| s.strip_suffix('.'))
        };
        let Some(sub) = sub.filter(|_| matches!(q.query_class(), DNSClass::IN | DNSClass::ANY)) else {
            resp.set_response_code(ResponseCode::Refused);
            return resp.to_vec().ok();
        };
        let qt = q.query_type();
        let wants = |t: RecordType| qt == t || qt == RecordType::ANY;
        let mut aa = true;
        if sub.is_empty() {
            if wants(RecordType::SOA) {
                resp.add_answer(self.soa());
            }
            if wants(RecordType::NS) {
                resp.add_answer(Record::from_rdata(
                    self.origin.clone(),
                    DELEGATION_TTL,
                    RData::NS(NS(self.ns_name.clone())),
                ));
                resp.add_additional(host_record(self.ns_name.clone(), self.cfg.ns_ip, DELEGATION_TTL));
            }
        } else if sub == "ns" {
            if wants(RecordType::A) && self.cfg.ns_ip.is_ipv4() || wants(RecordType::AAAA) && self.cfg.ns_ip.is_ipv6() {
                resp.add_answer(host_record(q.name().clone(), self.cfg.ns_ip, DELEGATION_TTL));
            }
        } else {
            match self.walk(sub) {
                Walk::Delegated(prefix, ip) => {
                    // A referral: not authoritative, NS in authority, glue.
                    aa = false;
                    let child = Name::from_ascii(prefix_zone(&prefix, &self.cfg.root)).ok()?;
                    let ns = Name::from_ascii(format!("ns.{}", prefix_zone(&prefix, &self.cfg.root))).ok()?;
                    resp.add_name_server(Record::from_rdata(child, DELEGATION_TTL, RData::NS(NS(ns.clone()))));
                    resp.add_additional(host_record(ns, ip, DELEGATION_TTL));
                }
                Walk::EmptyNonTerminal => {}
                Walk::Missing => {
                    resp.set_response_code(ResponseCode::NXDomain);
                }
            }
        }
        resp.set_authoritative(aa);
        if aa && resp.answers().is_empty() {
            let mut soa = self.soa();
            soa.set_ttl(self.cfg.negative_ttl);
            resp.add_name_server(soa);
        }
        finish(resp, q, limit)
    }

    /// Follows the labels below our origin, most significant first, to a
    /// delegation, an empty non-terminal on the way to one, or nothing.
    fn walk(&self, sub: &str) -> Walk {
        let mut digits = self.cfg.prefix.clone();
        for label in sub.rsplit('.') {
            let b = label.as_bytes();
            if b.len() != 1 || !b[0].is_ascii_digit() {
                return Walk::Missing;
            }
            digits.push(b[0] as char);
            if let Some(ip) = self.delegations.get(&digits) {
                return Walk::Delegated(digits, *ip);
            }
        }
        if self
            .delegations
            .range(digits.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&digits))
        {
            Walk::EmptyNonTerminal
        } else {
            Walk::Missing
        }
    }

    fn soa(&self) -> Record {
        crate::soa_record(&self.origin, &self.ns_name, self.serial, self.cfg.negative_ttl)
    }
}

enum Walk {
    Delegated(String, IpAddr),
    EmptyNonTerminal,
    Missing,
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, Query};

    fn top() -> TreeZone {
        let mut z = TreeZone::new(TreeZoneConfig {
            root: "peerdial.internal.".into(),
            prefix: String::new(),
            ns_ip: "127.53.0.1".parse().unwrap(),
            negative_ttl: 30,
            serial: 1,
        })
        .unwrap();
        assert!(z.set_delegation("88602", Some("127.53.0.2".parse().unwrap())));
        assert!(z.set_delegation("001", Some("127.53.0.9".parse().unwrap())));
        z
    }

    fn ask(z: &TreeZone, name: &str, t: RecordType) -> Message {
        let mut m = Message::new();
        m.set_id(7).add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        Message::from_vec(&z.answer(&m.to_vec().unwrap(), Transport::Udp).unwrap()).unwrap()
    }

    #[test]
    fn numbers_below_a_delegation_get_a_referral_with_glue() {
        let z = top();
        for name in [
            "8.7.6.5.4.3.2.1.2.0.6.8.8.peerdial.internal.",
            "2.0.6.8.8.peerdial.internal.",
            "ns.2.0.6.8.8.peerdial.internal.",
        ] {
            let r = ask(&z, name, RecordType::NAPTR);
            assert_eq!(r.response_code(), ResponseCode::NoError, "{name}");
            assert!(!r.authoritative());
            assert!(r.answers().is_empty());
            assert_eq!(r.name_servers()[0].name().to_ascii(), "2.0.6.8.8.peerdial.internal.");
            assert_eq!(
                r.name_servers()[0].data(),
                &RData::NS(NS(Name::from_ascii("ns.2.0.6.8.8.peerdial.internal.").unwrap()))
            );
            assert_eq!(r.additionals()[0].data(), &RData::A("127.53.0.2".parse().unwrap()));
        }
        // A country delegation (a country server below the top).
        let r = ask(&z, "5.2.0.1.0.0.peerdial.internal.", RecordType::NAPTR);
        assert_eq!(r.name_servers()[0].name().to_ascii(), "1.0.0.peerdial.internal.");
    }

    #[test]
    fn apex_empty_non_terminals_and_missing_names() {
        let mut z = top();
        let r = ask(&z, "peerdial.internal.", RecordType::SOA);
        assert!(r.authoritative());
        let serial = match r.answers()[0].data() {
            RData::SOA(s) => s.serial(),
            _ => panic!(),
        };
        let r = ask(&z, "peerdial.internal.", RecordType::NS);
        assert_eq!(r.additionals()[0].data(), &RData::A("127.53.0.1".parse().unwrap()));
        // On the way to a delegation: NODATA, authoritative.
        let r = ask(&z, "6.8.8.peerdial.internal.", RecordType::NAPTR);
        assert_eq!(
            (r.response_code(), r.authoritative(), r.answers().len()),
            (ResponseCode::NoError, true, 0)
        );
        // Nothing there: NXDOMAIN with the SOA.
        let r = ask(&z, "3.0.6.8.8.peerdial.internal.", RecordType::NAPTR);
        assert_eq!(r.response_code(), ResponseCode::NXDomain);
        assert!(matches!(r.name_servers()[0].data(), RData::SOA(_)));
        let r = ask(&z, "example.com.", RecordType::A);
        assert_eq!(r.response_code(), ResponseCode::Refused);
        // Removing the delegation bumps the serial and the referral goes.
        assert!(z.set_delegation("88602", None));
        assert!(!z.set_delegation("88602", None));
        assert_eq!(z.serial(), serial + 1);
        let r = ask(&z, "8.7.6.5.4.3.2.1.2.0.6.8.8.peerdial.internal.", RecordType::NAPTR);
        assert_eq!(r.response_code(), ResponseCode::NXDomain);
    }

    #[test]
    fn malformed_queries_get_formerr() {
        let z = top();
        let r = z
            .answer(&[0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff], Transport::Udp)
            .unwrap();
        assert_eq!((r[0], r[1], r[3] & 0x0f), (0x12, 0x34, 1));
    }
}
