//! The benchmark's shape (10,000 subscriptions over 1,000 numbers, state
//! changes at a steady rate) at unit-test size: each change reaches exactly
//! that number's watchers, and nothing else is sent.

use std::net::SocketAddr;

use peerdial_number::Number;
use peerdial_presence::server::{PresenceServer, ServerConfig, WatcherAuth};
use peerdial_sip::message::{response, top_via};
use peerdial_sip::{Message, Transport};

const T0: u64 = 1_700_000_000_000;

#[test]
fn ten_thousand_subscriptions_over_a_thousand_numbers() {
    let mut cfg = ServerConfig::new("example", "127.0.0.1:5060".parse().unwrap());
    cfg.max_subscriptions_per_ip = 100_000;
    cfg.subscribe_burst_per_ip = 100_000;
    let mut s = PresenceServer::new(cfg);
    let numbers: Vec<Number> = (0..1000).map(|i| Number::from_u64(8_860_200_000_000 + i).unwrap()).collect();
    for n in &numbers {
        s.add_number(*n, T0);
    }
    let src: SocketAddr = "127.0.0.1:9000".parse().unwrap();
    for i in 0..10_000u64 {
        let n = numbers[(i % 1000) as usize];
        let req = format!(
            "SUBSCRIBE sip:{d}@example SIP/2.0\r\nVia: SIP/2.0/UDP {src};branch=z9hG4bK{i}\r\nFrom: <sip:w{i}@x>;tag=t{i}\r\n\
To: <sip:{d}@example>\r\nCall-ID: c{i}\r\nCSeq: 1 SUBSCRIBE\r\nContact: <sip:w{i}@{src}>\r\nEvent: presence\r\nContent-Length: 0\r\n\r\n",
            d = n.digits()
        );
        let r = s.handle(req.as_bytes(), src, Transport::Udp, WatcherAuth::Anonymous, T0).unwrap();
        assert!(r.data.starts_with(b"SIP/2.0 200"));
    }
    assert_eq!(s.subscription_count(), 10_000);
    let answer_all = |s: &mut PresenceServer, now| {
        let mut count = 0;
        while let Some(t) = s.poll_transmit() {
            let m = Message::parse(&t.data).unwrap();
            let r = response(&m, &top_via(&m).unwrap(), t.to, 200, "OK", "x");
            assert!(s.handle_response(&Message::parse(&r.to_bytes()).unwrap(), now));
            count += 1;
        }
        count
    };
    assert_eq!(answer_all(&mut s, T0), 10_000);
    // 1,000 changes, one every 10 ms: ten NOTIFYs each.
    for (k, n) in numbers.iter().enumerate() {
        let now = T0 + 10 * k as u64;
        s.handle_timeout(now);
        s.set_reachable(*n, true, now);
        assert_eq!(answer_all(&mut s, now), 10);
        assert_eq!(s.poll_event().map(|e| e.number), Some(*n));
    }
    // Nothing is left to retransmit.
    s.handle_timeout(T0 + 40_000);
    assert!(s.poll_transmit().is_none());
    assert_eq!(s.subscription_count(), 10_000);
}
