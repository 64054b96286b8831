//! The designation request parser and a switch's join never panic on
//! arbitrary bytes; what they accept the core takes without panicking, and
//! every answer is JSON with a status the contract names.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdial_directory::designation::{answer, decide, parse_request, CalleeIs, Origin, Outcome, Step, SwitchJoin, Switches};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = parse_request(data) {
        let s = Switches::default();
        assert!(s.serving(req.callee, 0).is_none());
        for known in [CalleeIs::Unknown, CalleeIs::Disabled, CalleeIs::NoSwitch] {
            if let Step::Refuse(r) = decide(&known) {
                let (code, body) = answer(Origin::Device, &Outcome::Refused(r));
                assert!([401, 403, 404, 409, 502, 504].contains(&code) && body["error"].is_string());
            }
        }
    }
    if let Ok(join) = serde_json::from_slice::<SwitchJoin>(data) {
        let mut s = Switches::default();
        let devices: Vec<String> = join.devices.iter().map(|d| d.number.clone()).collect();
        if s.join("fuzz", join, 0).is_ok() {
            for d in devices {
                if let Ok(n) = peerdial_number::Number::parse(&d) {
                    assert!(s.serves("fuzz", n));
                }
            }
        }
    }
});
