//! The top's delegating zone: arbitrary queries never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdial_dns::{Transport, TreeZone, TreeZoneConfig};

fuzz_target!(|data: &[u8]| {
    let mut z = TreeZone::new(TreeZoneConfig { root: "peerdial.internal.".into(), prefix: String::new(), ns_ip: "127.0.0.1".parse().unwrap(), negative_ttl: 30, serial: 1 }).unwrap();
    z.set_delegation("88602", Some("127.0.0.2".parse().unwrap()));
    z.set_delegation("001", Some("127.0.0.3".parse().unwrap()));
    let _ = z.answer(data, Transport::Udp);
    let _ = z.answer(data, Transport::Tcp);
});
