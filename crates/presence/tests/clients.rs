//! The phone's publisher and watcher against the presence server, in
//! memory: wire bytes between them, simulated time, and a stand-in for the
//! region edge that challenges PUBLISH with digest authentication.

use std::net::SocketAddr;

use peerdial_number::Number;
use peerdial_presence::client::{Package, PublishEvent, Publisher, PublisherConfig, WatchEvent, Watcher, WatcherConfig};
use peerdial_presence::server::{PresenceServer, ServerConfig, WatcherAuth};
use peerdial_presence::{State, Transmit};
use peerdial_sip::digest::{challenges, Algorithm, Credentials, Ha1, NonceCheck, NonceKey};
use peerdial_sip::message::{response, top_via};
use peerdial_sip::{Message, Transport};

const T0: u64 = 1_700_000_000_000;
const DOMAIN: &str = "2.0.6.8.8.peerdial.internal";

fn alice() -> Number {
    Number::parse("886-02-10000001").unwrap()
}

fn server_addr() -> SocketAddr {
    "127.0.0.1:5060".parse().unwrap()
}
fn pub_addr() -> SocketAddr {
    "127.0.0.1:7001".parse().unwrap()
}
fn watch_addr() -> SocketAddr {
    "127.0.0.1:7002".parse().unwrap()
}

fn new_server(now: u64) -> PresenceServer {
    let mut s = PresenceServer::new(ServerConfig::new(DOMAIN, server_addr()));
    s.add_number(alice(), now);
    s.set_reachable(alice(), true, now);
    s
}

struct Net {
    server: PresenceServer,
    nonces: NonceKey,
    publisher: Publisher,
    watcher: Watcher,
    now: u64,
    challenged: usize,
}

impl Net {
    fn new() -> Net {
        let publisher = Publisher::new(PublisherConfig {
            server: server_addr(),
            user: alice().digits(),
            domain: DOMAIN.into(),
            password: "secret".into(),
            expires: 600,
            local: pub_addr(),
            user_agent: "test".into(),
        });
        let watcher = Watcher::new(WatcherConfig {
            server: server_addr(),
            domain: DOMAIN.into(),
            target: alice(),
            local: watch_addr(),
            user: None,
            password: None,
            expires: 300,
            user_agent: "test".into(),
            signed: false,
            package: Package::Presence,
        });
        Net {
            server: new_server(T0),
            nonces: NonceKey::new([9; 32], 300_000),
            publisher,
            watcher,
            now: T0,
            challenged: 0,
        }
    }

    /// The region edge: PUBLISH must carry valid credentials for its number.
    fn edge(&mut self, t: &Transmit, from: SocketAddr) -> Option<Transmit> {
        let msg = Message::parse(&t.data).unwrap();
        if !msg.is_request() {
            self.server.handle_response(&msg, self.now);
            return None;
        }
        let mut who = WatcherAuth::Anonymous;
        if msg.method() == Some("PUBLISH") {
            let ha1 = Ha1::new(&alice().digits(), DOMAIN, "secret");
            let ok = msg
                .header("Authorization")
                .and_then(Credentials::parse)
                .filter(|c| self.nonces.check(&c.nonce, self.now) == NonceCheck::Valid && c.verify(&ha1, "PUBLISH"));
            match ok {
                Some(_) => who = WatcherAuth::Authenticated(alice()),
                None => {
                    self.challenged += 1;
                    let via = top_via(&msg).unwrap();
                    let mut r = response(&msg, &via, from, 401, "Unauthorized", "edge");
                    for c in challenges(DOMAIN, &self.nonces.issue(self.now), false, &[Algorithm::Md5]) {
                        r.push("WWW-Authenticate", c);
                    }
                    return Some(Transmit {
                        to: from,
                        transport: Transport::Udp,
                        data: r.to_bytes(),
                    });
                }
            }
        }
        self.server.handle_request(&msg, from, Transport::Udp, who, self.now)
    }

    /// Delivers datagrams until the network is quiet.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(t) = self.publisher.poll_transmit() {
                moved = true;
                assert_eq!(t.to, server_addr());
                if let Some(r) = self.edge(&t, pub_addr()) {
                    self.publisher.handle_response(&Message::parse(&r.data).unwrap(), self.now);
                }
            }
            while let Some(t) = self.watcher.poll_transmit() {
                moved = true;
                if let Some(r) = self.edge(&t, watch_addr()) {
                    self.watcher.handle(&Message::parse(&r.data).unwrap(), server_addr(), self.now);
                }
            }
            while let Some(t) = self.server.poll_transmit() {
                moved = true;
                assert_eq!(t.to, watch_addr());
                if let Some(r) = self.watcher.handle(&Message::parse(&t.data).unwrap(), server_addr(), self.now) {
                    self.edge(&r, watch_addr());
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Runs time forward to `until`, firing every machine's timers.
    fn run_until(&mut self, until: u64) {
        self.pump();
        loop {
            let next = [
                self.server.poll_timeout(),
                self.publisher.poll_timeout(),
                self.watcher.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(t) if t <= until => {
                    self.now = t.max(self.now);
                    self.server.handle_timeout(self.now);
                    self.publisher.handle_timeout(self.now);
                    self.watcher.handle_timeout(self.now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = until;
    }

    fn watch_events(&mut self) -> Vec<Option<State>> {
        std::iter::from_fn(|| self.watcher.poll_event())
            .map(|WatchEvent { number, presence }| {
                assert_eq!(number, alice());
                presence.map(|p| p.state)
            })
            .collect()
    }
}

#[test]
fn publish_and_watch_round_trip_with_refreshes() {
    let mut n = Net::new();
    n.watcher.start(n.now);
    n.pump();
    assert_eq!(n.watch_events(), vec![Some(State::Online)]);

    n.publisher.set(State::Meeting, Some("until 3 <pm>".into()), n.now);
    n.pump();
    assert_eq!(n.challenged, 1, "the first PUBLISH is challenged and answered");
    assert_eq!(
        n.publisher.poll_event(),
        Some(PublishEvent::Published {
            state: State::Meeting,
            expires: 600
        })
    );
    assert_eq!(n.watch_events(), vec![Some(State::Meeting)]);
    let p = n.watcher.presence().unwrap();
    assert_eq!(p.note.as_deref(), Some("until 3 <pm>"));
    assert_eq!(n.server.presence(alice()).unwrap().state, State::Meeting);

    // Two hours: both refresh (the publisher every ~8 minutes, the watcher
    // every ~4), nothing expires, no state changes are reported.
    n.run_until(T0 + 2 * 3600 * 1000);
    assert_eq!(n.server.published(alice()), Some(State::Meeting));
    assert_eq!(n.server.subscription_count(), 1);
    assert!(n.watch_events().is_empty());
    let published: Vec<_> = std::iter::from_fn(|| n.publisher.poll_event()).collect();
    assert!(published.len() >= 14, "{published:?}");

    // Modify, then remove.
    n.publisher.set(State::Dnd, None, n.now);
    n.pump();
    assert_eq!(n.watch_events(), vec![Some(State::Dnd)]);
    n.publisher.remove(n.now);
    n.pump();
    assert!(std::iter::from_fn(|| n.publisher.poll_event()).any(|e| e == PublishEvent::Removed));
    assert_eq!(n.watch_events(), vec![Some(State::Online)]);
    assert_eq!(n.server.published(alice()), None);

    // The region sees the phone go: the watcher is told at once.
    n.server.set_reachable(alice(), false, n.now);
    n.pump();
    assert_eq!(n.watch_events(), vec![Some(State::Offline)]);

    // Unsubscribe: the final NOTIFY is answered and the server forgets it.
    n.watcher.stop(n.now);
    n.pump();
    assert_eq!(n.server.subscription_count(), 0);
    n.run_until(n.now + 3600 * 1000);
    assert_eq!(n.server.subscription_count(), 0, "no re-subscription after stop");
}

#[test]
fn after_a_region_restart_the_watcher_resubscribes_and_the_publisher_republishes() {
    let mut n = Net::new();
    n.watcher.start(n.now);
    n.publisher.set(State::Dnd, None, n.now);
    n.pump();
    assert_eq!(n.server.presence(alice()).unwrap().state, State::Dnd);
    let _ = n.watch_events();

    // The region restarts and forgets everything.
    n.server = new_server(n.now);
    assert_eq!(n.server.presence(alice()).unwrap().state, State::Online);
    // The watcher's refresh gets 481 and it subscribes anew; the
    // publisher's refresh gets 412 and it publishes its state again.
    n.run_until(n.now + 600 * 1000);
    assert_eq!(n.server.subscription_count(), 1);
    assert_eq!(n.server.presence(alice()).unwrap().state, State::Dnd);
    assert_eq!(n.watcher.presence().unwrap().state, State::Dnd);
}

#[test]
fn the_watcher_subscribes_again_when_the_region_ends_the_subscription() {
    let mut n = Net::new();
    n.watcher.start(n.now);
    n.pump();
    let first = n.watcher.call_id().to_string();
    // The region times the subscription out (as if a refresh were lost).
    let mut cfg = ServerConfig::new(DOMAIN, server_addr());
    cfg.max_expires = 60;
    cfg.min_expires = 60;
    n.server = PresenceServer::new(cfg);
    n.server.add_number(alice(), n.now);
    n.server.set_reachable(alice(), true, n.now);
    n.watcher.start(n.now);
    n.pump();
    assert_ne!(n.watcher.call_id(), first);
    // Granted 60 s, the watcher refreshes at 48 s; stop its refreshes by
    // dropping them: run the server alone past the expiry.
    n.server.handle_timeout(n.now + 60_000);
    n.now += 60_000;
    let t = n.server.poll_transmit().unwrap();
    let m = Message::parse(&t.data).unwrap();
    assert_eq!(m.header("Subscription-State"), Some("terminated;reason=timeout"));
    let reply = n.watcher.handle(&m, server_addr(), n.now).unwrap();
    assert_eq!(Message::parse(&reply.data).unwrap().header("CSeq"), m.header("CSeq"));
    n.edge(&reply, watch_addr());
    let before = n.watcher.call_id().to_string();
    n.run_until(n.now + 1000);
    assert_ne!(n.watcher.call_id(), before, "a new dialog");
    assert_eq!(n.server.subscription_count(), 1);
}

#[test]
fn a_message_summary_watcher_hands_over_each_notify_body_and_refuses_other_packages() {
    let mut w = Watcher::new(WatcherConfig {
        server: server_addr(),
        domain: DOMAIN.into(),
        target: alice(),
        local: watch_addr(),
        user: Some(alice().digits()),
        password: Some("secret".into()),
        expires: 300,
        user_agent: "test".into(),
        signed: false,
        package: Package::MessageSummary,
    });
    w.start(T0);
    let sub = Message::parse(&w.poll_transmit().expect("a SUBSCRIBE").data).unwrap();
    assert_eq!(sub.header("Event"), Some("message-summary"));
    assert_eq!(sub.header("Accept"), Some("application/simple-message-summary"));
    let tag = sub.header("From").unwrap().split("tag=").nth(1).unwrap().to_string();
    let call_id = w.call_id().to_string();
    let notify = |event: &str, body: &str| {
        let m = format!(
            "NOTIFY sip:x@127.0.0.1:7002 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK{event}\r\nFrom: <sip:{}@r>;tag=srv\r\nTo: <sip:x@y>;tag={tag}\r\nCall-ID: {}\r\nCSeq: 1 NOTIFY\r\nEvent: {event}\r\nSubscription-State: active;expires=300\r\nContent-Type: application/simple-message-summary\r\nContent-Length: {}\r\n\r\n{body}",
            alice().digits(),
            call_id,
            body.len()
        );
        Message::parse(m.as_bytes()).unwrap()
    };
    let code = |t: Option<Transmit>| match Message::parse(&t.expect("an answer").data).unwrap().start {
        peerdial_sip::message::StartLine::Response { code, .. } => code,
        other => panic!("not a response: {other:?}"),
    };
    let body = "Messages-Waiting: yes\r\nVoice-Message: 1/0\r\n";
    assert_eq!(code(w.handle(&notify("message-summary", body), server_addr(), T0)), 200);
    assert_eq!(w.poll_body().as_deref(), Some(body.as_bytes()));
    assert!(w.poll_event().is_none(), "no presence reported");
    assert_eq!(code(w.handle(&notify("presence", ""), server_addr(), T0)), 489);
    assert!(w.poll_body().is_none());
}

#[test]
fn a_notify_for_another_dialog_is_not_taken() {
    let mut n = Net::new();
    n.watcher.start(n.now);
    n.pump();
    let other = b"NOTIFY sip:x@127.0.0.1:7002 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>;tag=2\r\nCall-ID: someone-else\r\nCSeq: 1 NOTIFY\r\nEvent: presence\r\nContent-Length: 0\r\n\r\n";
    assert!(n.watcher.handle(&Message::parse(other).unwrap(), server_addr(), n.now).is_none());
}

#[test]
fn a_silent_region_fails_the_publisher_which_retries_with_back_off() {
    let mut p = Publisher::new(PublisherConfig {
        server: server_addr(),
        user: alice().digits(),
        domain: DOMAIN.into(),
        password: "secret".into(),
        expires: 600,
        local: pub_addr(),
        user_agent: "test".into(),
    });
    p.set(State::Meeting, None, T0);
    let mut sent = 0;
    let mut now = T0;
    while p.poll_event().is_none() {
        while p.poll_transmit().is_some() {
            sent += 1;
        }
        now = p.poll_timeout().unwrap();
        p.handle_timeout(now);
    }
    assert_eq!(now - T0, 32_000, "Timer F");
    assert!(sent >= 10, "retransmitted: {sent}");
    let retry = p.poll_timeout().unwrap() - now;
    assert_eq!(retry, 5_000);
    p.handle_timeout(now + retry);
    let t = p.poll_transmit().expect("publishes again");
    assert!(Message::parse(&t.data).unwrap().body.len() > 100, "with its body");
}

#[test]
fn a_signed_watcher_proves_itself_on_each_new_dialogs_first_subscribe_only() {
    let mut n = Net::new();
    n.watcher = Watcher::new(WatcherConfig {
        server: server_addr(),
        domain: DOMAIN.into(),
        target: alice(),
        local: watch_addr(),
        user: Some("8860310000009".into()),
        password: None,
        expires: 300,
        user_agent: "test".into(),
        signed: true,
        package: Package::Presence,
    });
    // Nothing goes out before a token is handed over.
    n.watcher.start(n.now);
    assert!(n.watcher.wants_identity());
    assert!(n.watcher.poll_transmit().is_none() && n.watcher.poll_timeout().is_none());
    n.watcher.start_signed(Some("tok.en.sig;info=<https://r/k>".into()), n.now);
    assert!(!n.watcher.wants_identity());
    let first = n.watcher.poll_transmit().expect("the first SUBSCRIBE");
    let m = Message::parse(&first.data).unwrap();
    assert_eq!(m.header("Identity"), Some("tok.en.sig;info=<https://r/k>"));
    assert!(m.header("From").unwrap().contains("sip:8860310000009@"));
    let r = n.edge(&first, watch_addr()).unwrap();
    n.watcher.handle(&Message::parse(&r.data).unwrap(), server_addr(), n.now);
    n.pump();
    assert_eq!(n.watch_events(), vec![Some(State::Online)]);
    // The refresh is in the dialog: no token (it would have expired).
    let refresh = n.watcher.poll_timeout().expect("a refresh");
    n.now = refresh;
    n.watcher.handle_timeout(n.now);
    let again = Message::parse(&n.watcher.poll_transmit().expect("refresh").data).unwrap();
    assert_eq!(again.header("Identity"), None);
    assert!(again.header("To").unwrap().contains("tag="));
}
