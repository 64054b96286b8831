//! PIDF decoding: arbitrary bytes never panic; what decodes re-encodes to
//! a document that decodes to the same state.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdial_presence::{pidf, Presence};

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = pidf::decode(data) {
        let p = Presence {
            state: doc.state,
            since: doc.timestamp.unwrap_or(0),
            note: doc.note.clone(),
        };
        let again = pidf::decode(&pidf::encode("sip:1@x", &p)).expect("our own encoding decodes");
        assert_eq!(again.state, doc.state);
        assert_eq!(again.note, doc.note);
    }
});
