//! The DNS query path: any bytes get no answer, or an answer that parses
//! and carries the query's ID.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdial_dns::{Transport, Zone, ZoneConfig};
use peerdial_number::{Area, Number};

fuzz_target!(|data: &[u8]| {
    let a = "127.0.0.1:53".parse().unwrap();
    let area = Area::parse("886-02").unwrap();
    let mut z = Zone::new(ZoneConfig { root: "peerdial.internal.".into(), area, ttl: 60, negative_ttl: 30, dns: a, sip: a, http: a, serial: 1 }).unwrap();
    z.set(Number::new(area, 12345678), Some("sip:8860212345678@10.0.0.1:5060")).unwrap();
    for t in [Transport::Udp, Transport::Tcp] {
        if let Some(resp) = z.answer(data, t) {
            assert!(resp.len() >= 12);
            assert_eq!(&resp[..2], &data[..2]);
            if t == Transport::Udp {
                assert!(resp.len() <= 1232);
            }
        }
    }
});
