//! Channel posts and the MESSAGE fan-out: arbitrary text never panics the
//! cleaner, and nothing a terminal acts on survives it; arbitrary bytes
//! as a response never panic the fan-out or answer a MESSAGE it did not
//! send.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdial_channels::text::{clean, post_text, MAX_TEXT};
use peerdial_channels::{Delivery, Fanout, FanoutConfig, Target};
use peerdial_number::Number;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let c = clean(&text);
    assert!(!c.chars().any(char::is_control), "{c:?}");
    assert_eq!(clean(&c), c);
    if let Ok(p) = post_text(&text) {
        assert!(!p.is_empty() && p.len() <= MAX_TEXT);
    }
    let mut f = Fanout::new(FanoutConfig::new("127.0.0.1:5060".parse().unwrap(), "d"));
    let number = Number::parse("886-02-10000001").unwrap();
    let target = Target {
        number,
        uri: "sip:8860210000001@127.0.0.1:7000".into(),
        addr: "127.0.0.1:7000".parse().unwrap(),
        transport: peerdial_sip::Transport::Udp,
    };
    let d = Delivery {
        id: 1,
        from_user: "broadcast".into(),
        from_name: None,
        text: c,
    };
    f.start(d, vec![target], 0);
    if let Ok(m) = peerdial_sip::Message::parse(data) {
        let before = f.backlog();
        if f.handle_response(&m, 10) {
            assert!(f.backlog().0 <= before.0);
        }
    }
});
