//! The presence server: arbitrary SIP bytes (requests and responses, as
//! anyone or as the number itself) and timer runs never panic, and every
//! subscription stays within the configured limits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use peerdial_number::Number;
use peerdial_presence::server::{PresenceServer, ServerConfig, WatcherAuth};
use peerdial_sip::Transport;

fuzz_target!(|data: &[u8]| {
    let mut cfg = ServerConfig::new("example", "127.0.0.1:5060".parse().unwrap());
    cfg.max_subscriptions_per_ip = 4;
    let mut s = PresenceServer::new(cfg);
    let n = Number::parse("886-02-12345678").unwrap();
    s.add_number(n, 1_000_000);
    let src = "192.0.2.1:5060".parse().unwrap();
    let mut now = 1_000_000u64;
    for (i, chunk) in data.split(|b| *b == 0xff).enumerate() {
        let who = if i % 3 == 0 { WatcherAuth::Authenticated(n) } else { WatcherAuth::Anonymous };
        let transport = if i % 2 == 0 { Transport::Udp } else { Transport::Tcp };
        let _ = s.handle(chunk, src, transport, who, now);
        match i % 4 {
            0 => s.set_reachable(n, i % 8 == 0, now),
            1 => s.set_in_call(n, i % 5 == 0, now),
            _ => {}
        }
        now += 700 * (i as u64 % 50);
        s.handle_timeout(now);
        while s.poll_transmit().is_some() {}
        while s.poll_event().is_some() {}
        assert!(s.subscription_count() <= 4);
    }
});
