//! The zone engine's tests: answers, the fast path against the general
//! path, and the mailbox record beside the contact.

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
