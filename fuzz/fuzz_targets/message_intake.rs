//! The mailbox's HTTP message intake (multipart/form-data, then each
//! file checked against its claimed type): arbitrary bytes and
//! Content-Types never panic, and what is taken is never empty or over
//! the limits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdial_mailbox::intake::{intake, IntakeLimits};

fuzz_target!(|data: &[u8]| {
    // The first line is the Content-Type; the rest the body.
    let (ctype, body) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (String::from_utf8_lossy(&data[..at]).into_owned(), &data[at + 1..]),
        None => ("multipart/form-data; boundary=b".to_string(), data),
    };
    let limits = IntakeLimits {
        max_body: 1 << 20,
        max_image: 256 << 10,
        image_box: 256,
        max_text: 1024,
    };
    if let Ok(m) = intake(body, &ctype, &limits) {
        for item in m.items() {
            assert!(!item.body.is_empty());
            assert!(item.body.len() as u64 <= limits.max_body.max(4 << 20));
        }
    }
});
