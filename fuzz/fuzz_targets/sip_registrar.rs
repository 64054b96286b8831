//! The registrar state machine: arbitrary datagrams never panic, and a
//! request without valid credentials never creates a binding.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdial_number::Area;
use peerdial_sip::digest::Ha1;
use peerdial_sip::{Output, Registrar, RegistrarConfig, Transport};

fuzz_target!(|data: &[u8]| {
    let area = Area::parse("886-02").unwrap();
    let mut r = Registrar::new(RegistrarConfig::new(area, "2.0.6.8.8.peerdial.internal", [3; 32]));
    r.set_credential(peerdial_number::Number::parse("886-02-12345678").unwrap(), Ha1::new("8860212345678", "2.0.6.8.8.peerdial.internal", "pw"));
    let src = "192.0.2.1:5060".parse().unwrap();
    for (i, chunk) in data.split(|b| *b == 0xff).enumerate() {
        let out = r.handle(chunk, if i % 2 == 0 { Transport::Udp } else { Transport::Tcp }, src, 1_000_000 + i as u64);
        assert!(!matches!(out, Output::Commit { .. }), "no valid nonce can be forged");
        let _ = r.handle_timeout(2_000_000 + i as u64);
    }
});
