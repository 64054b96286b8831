//! The RFC 3842 message-summary parser: arbitrary bytes never panic; what
//! parses re-encodes to a body that parses to the same summary.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdial_mailbox::Summary;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = Summary::parse(data) {
        let again = Summary::parse(s.encode().as_bytes()).expect("our own encoding parses");
        assert_eq!(again, s);
    }
});
