//! RFC 8599 Contact parameters and wake payloads never panic; what parses
//! round-trips through the Contact form.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdial_push::{PushParams, WakePayload};

fuzz_target!(|data: &[u8]| {
    let _ = WakePayload::parse(data);
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(Some(p)) = PushParams::from_uri_params(s) {
        let back = PushParams::from_uri_params(&p.to_uri_params()).unwrap().unwrap();
        assert_eq!(back, p);
    }
});
