//! The region's full DNS entry point: TSIG parsing and verification,
//! transfers (AXFR/IXFR) and ordinary queries. Arbitrary bytes never
//! panic, and nothing unsigned ever gets a transfer when keys are set.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdial_dns::{TransferPolicy, Transport, TsigKey, Zone, ZoneConfig};
use peerdial_number::{Area, Number};

fuzz_target!(|data: &[u8]| {
    let a = "127.0.0.1:5300".parse().unwrap();
    let area = Area::parse("886-02").unwrap();
    let mut z = Zone::new(ZoneConfig { root: "peerdial.internal.".into(), area, ttl: 60, negative_ttl: 30, dns: a, sip: a, http: a, serial: 1 }).unwrap();
    for i in 0..3 {
        z.set(Number::new(area, i), Some("sip:x@127.0.0.1:5060")).unwrap();
    }
    let key = TsigKey::parse("k:c2VjcmV0").unwrap();
    for t in [Transport::Udp, Transport::Tcp] {
        let out = z.respond(data, t, std::slice::from_ref(&key), TransferPolicy::SignedOnly, 1_800_000_000);
        // Without the key nobody can produce a valid MAC: never more than
        // one message, so never a multi-message transfer.
        assert!(out.len() <= 1);
    }
});
