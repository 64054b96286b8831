//! The SIP dialog layer: an incoming INVITE and then arbitrary datagrams
//! for the call, on either side, mixed with the user's actions (ring,
//! answer, hang up, re-INVITE for hold, answering or refusing the other
//! side's re-INVITE, REFER for a transfer, accepting or refusing the other
//! side's REFER and notifying its progress); never a panic, and a call once
//! ended never comes back. The sipfrag parser takes every chunk too.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdial_sip::call::{Call, Local, State};
use peerdial_sip::Message;

fuzz_target!(|data: &[u8]| {
    let local = Local { uri: "sip:1@127.0.0.1:5060".into(), addr: "127.0.0.1:5060".parse().unwrap(), user_agent: "fuzz".into() };
    let src = "127.0.0.1:5070".parse().unwrap();
    let mut parts = data.split(|b| *b == 0xff);
    let first = parts.next().unwrap_or_default();
    let mut calls = vec![Call::outgoing(local.clone(), "sip:2@127.0.0.1:5070", src, b"v=0".to_vec(), 60_000, 0)];
    if let Ok(c) = Call::incoming(local, first, src, 0) {
        calls.push(c);
    }
    for (i, chunk) in parts.enumerate() {
        let now = 100 * i as u64;
        for c in &mut calls {
            let was_ended = c.state() == State::Ended;
            if let Ok(m) = Message::parse(chunk) {
                c.handle(&m, src, now);
            }
            let _ = peerdial_sip::call::parse_sipfrag(chunk);
            match i % 11 {
                0 => c.ring(now),
                1 => c.answer(b"v=0".to_vec(), now),
                2 => {
                    let _ = c.reinvite(b"v=0 hold".to_vec(), now);
                }
                3 => c.answer_reoffer(b"v=0 held".to_vec(), now),
                4 => c.reject_reoffer(488, "Not Acceptable Here", now),
                5 => c.hangup(now),
                6 => {
                    let _ = c.refer("sip:3@127.0.0.1:5080", now);
                }
                7 => c.accept_refer(now),
                8 => c.reject_refer(603, "Decline"),
                9 => c.notify_transfer(180 + (i as u16 % 3) * 10, "Progress", now),
                _ => c.handle_timeout(now * 10),
            }
            assert!(!was_ended || c.state() == State::Ended);
            while c.poll_transmit().is_some() {}
            while c.poll_event().is_some() {}
        }
    }
});
