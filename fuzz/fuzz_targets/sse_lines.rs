//! Server-Sent Events as the phone reads the cloud's command connection:
//! arbitrary text never panics, and no event's data outgrows the cap.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdial_net::sse::{Lines, MAX_DATA};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = Lines::default();
    for line in text.split('\n').chain([""]) {
        if let Some((kind, data)) = lines.line(line.trim_end_matches('\r')) {
            assert!(data.len() <= MAX_DATA, "{} bytes", data.len());
            assert!(!kind.is_empty());
        }
    }
});
