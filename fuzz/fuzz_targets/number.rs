//! Number parsing and dialing never panic; what parses round-trips.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdial_number::{Area, Number};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(n) = Number::parse(s) {
        assert_eq!(Number::parse(&n.to_string()).unwrap(), n);
    }
    let _ = Number::dial(s, Area::parse("886-02").unwrap());
    let _ = Number::from_enum_name(s, "peerdial.internal.");
});
