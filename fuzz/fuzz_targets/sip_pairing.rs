//! Third-party call control: a pairing fed arbitrary datagrams for its
//! legs (`CID0` / `CID1` in a chunk stand for the legs' Call-IDs, so the
//! fuzzer reaches them), the clock and the dialer's cancel; never a panic,
//! and once over it stays over with every leg ending. The directory's
//! account parser takes every chunk too.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdial_sip::call::Local;
use peerdial_sip::pairing::{Leg, Pairing, Progress, Timeouts};
use peerdial_sip::Message;

fuzz_target!(|data: &[u8]| {
    let local = Local { uri: "sip:c@127.0.0.1:5060".into(), addr: "127.0.0.1:5060".parse().unwrap(), user_agent: "fuzz".into() };
    let leg = |u: &str, port: u16| Leg { uri: format!("sip:{u}@127.0.0.1:{port}"), next_hop: format!("127.0.0.1:{port}").parse().unwrap() };
    let mut p = Pairing::start(local, leg("a", 5071), leg("b", 5072), Timeouts::default(), 0);
    let mut over = false;
    for (i, chunk) in data.split(|b| *b == 0xff).enumerate() {
        let now = 200 * i as u64;
        let text = String::from_utf8_lossy(chunk);
        let _ = peerdial_directory::Account::sip(&text, "127.0.0.1:5070");
        let ids = p.call_ids();
        let mut text = text.replace("CID0", &ids[0]);
        if let Some(b) = ids.get(1) {
            text = text.replace("CID1", b);
        }
        if let Ok(m) = Message::parse(text.as_bytes()) {
            p.handle(&m, "127.0.0.1:5071".parse().unwrap(), now);
        }
        match i % 7 {
            5 => p.cancel(now),
            6 => p.handle_timeout(now * 20),
            _ => {}
        }
        while p.poll_transmit().is_some() {}
        while let Some(ev) = p.poll_progress() {
            assert!(!over, "progress after the end: {ev:?}");
            over = matches!(ev, Progress::Failed { .. } | Progress::Ended { .. });
        }
    }
});
